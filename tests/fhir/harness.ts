import type { AddressInfo } from 'node:net';
import { createServer } from 'node:http';
import { Client } from 'fhir-kit-client';
import { pino } from 'pino';
import { createApp } from '../../server/app.js';
import type { AuditSink } from '../../server/auth/audit-sink.js';
import { fhirAuditSink } from '../../server/auth/fhir-audit-sink.js';
import type { LockoutPolicy } from '../../server/auth/accounts.js';
import { demoPassword, seedDemoAccounts } from '../../server/auth/demo-accounts.js';
import { openAuth, type Auth } from '../../server/auth/services.js';
import { Realtime } from '../../server/realtime.js';
import { openFhirStore, type FhirStore } from '../../fhir/store.js';
import { RoomTickets, type TicketSettings } from '../../server/rooms/tickets.js';
import type { RoomSignaling } from '../../server/rooms/signaling.js';
import { RoomRegistry } from '../../sfu/room-registry.js';
import { WorkerPool } from '../../sfu/worker-pool.js';
import { DEMO_IDS } from '../../fhir/demo/demo-data.js';

export interface Backend {
  name: 'pglite' | 'postgres';
  databaseUrl?: string;
}

/**
 * The storage backends every FHIR test runs against: embedded PGlite always, and the machine's
 * PostgreSQL when TEST_DATABASE_URL is set (CI sets it and checks it is reachable).
 */
export function backends(): Backend[] {
  const list: Backend[] = [{ name: 'pglite' }];
  if (process.env.TEST_DATABASE_URL) list.push({ name: 'postgres', databaseUrl: process.env.TEST_DATABASE_URL });
  return list;
}

/** The demo account `hub.client` (and requests sent without Authorization) act as: the GP of Tende. */
export const DEFAULT_TEST_USER = 'dr.pastorelli';

export interface TestHub {
  store: FhirStore;
  auth: Auth;
  realtime: Realtime;
  /** http://127.0.0.1:port, the root of the hub (health, /api, socket.io). */
  rootUrl: string;
  baseUrl: string;
  /** A FHIR client logged in as `defaultUser` (DEFAULT_TEST_USER unless chosen). */
  client: Client;
  /** Logs a demo account in over HTTP (its demo password unless given) and returns the access token. */
  login(username: string, password?: string): Promise<string>;
  /** A FHIR client logged in as a demo account. */
  clientAs(username: string): Promise<Client>;
  /** Present with `rooms: true`: the media side and the room signaling. */
  rooms?: { pool: WorkerPool; registry: RoomRegistry; tickets: RoomTickets; signaling: RoomSignaling };
  close(): Promise<void>;
}

export interface TestHubOptions {
  bodyLimit?: string;
  /** The account of `hub.client`. */
  defaultUser?: string;
  /**
   * Requests that reach the hub without an Authorization header are sent as defaultUser, so FHIR
   * tests written before authentication keep working with raw fetch. Tests of authentication turn it off.
   */
  implicitAuth?: boolean;
  audit?: AuditSink;
  lockout?: LockoutPolicy;
  loginRateLimitPerMinute?: number;
  corsOrigins?: string[];
  /** Start a mediasoup worker and the consultation rooms (namespace /rooms, /api/rooms). */
  rooms?: boolean | { graceMs?: number; tickets?: Partial<TicketSettings>; workers?: number };
  /** Serve a built web app (client/web/dist) at /. */
  webRoot?: string;
}

let schemaCounter = 0;

/**
 * A real hub on an ephemeral port, with a fresh database (in-memory PGlite, or a new PostgreSQL
 * schema), authentication with the demo accounts, and socket.io.
 */
export async function startTestHub(backend: Backend, options: TestHubOptions = {}): Promise<TestHub> {
  const schema = backend.databaseUrl ? `t_${process.pid}_${Date.now().toString(36)}_${++schemaCounter}` : undefined;
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  // Listen first: the store needs its base URL (with the port) before the app exists.
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const rootUrl = `http://127.0.0.1:${port}`;
  const baseUrl = `${rootUrl}/fhir/R4`;
  const store = await openFhirStore({ databaseUrl: backend.databaseUrl, schema, baseUrl, poolSize: 25 });
  const auth = await openAuth(store.db, {
    audit: options.audit ?? fhirAuditSink(store.repo),
    accessTokenTtlSeconds: 900,
    refreshTokenTtlDays: 30,
    ...(options.lockout ? { lockout: options.lockout } : {}),
  });
  await seedDemoAccounts(auth.accounts);
  const roomOptions = options.rooms === true ? {} : options.rooms || undefined;
  let rooms: TestHub['rooms'] & object | undefined;
  let realtimeRef: Realtime | undefined;
  const media = roomOptions
    ? await (async () => {
        const pool = await WorkerPool.create({ numWorkers: roomOptions.workers ?? 1, rtcMinPort: 30000, rtcMaxPort: 39999, logger: { info: () => {}, error: () => {} } });
        const registry = new RoomRegistry({ pool });
        const tickets = new RoomTickets(store, auth.keyRing, { ttlSeconds: 120, earlyMinutes: 15, lateMinutes: 60, ...roomOptions.tickets });
        return { pool, registry, tickets };
      })()
    : undefined;
  const app = createApp({
    store,
    auth,
    fhirBodyLimit: options.bodyLimit ?? '25mb',
    logger,
    corsOrigins: options.corsOrigins ?? [],
    loginRateLimitPerMinute: options.loginRateLimitPerMinute ?? 10_000,
    ...(media ? { tickets: media.tickets, teleassistanceOrganization: DEMO_IDS.organizations.samu, onTeleassistanceCall: (performer, entry) => realtimeRef?.teleassistanceCall(performer, entry) } : {}),
    ...(options.webRoot ? { webRoot: options.webRoot } : {}),
  });
  let implicitAuthorization: string | undefined;
  server.on('request', (req, res) => {
    if (implicitAuthorization && req.headers.authorization === undefined) req.headers.authorization = implicitAuthorization;
    app(req, res);
  });
  const realtime = await Realtime.attach(server, {
    auth,
    corsOrigins: options.corsOrigins ?? [],
    logger,
    ...(media ? { rooms: { registry: media.registry, tickets: media.tickets, store, ...(roomOptions?.graceMs !== undefined ? { graceMs: roomOptions.graceMs } : {}) } } : {}),
  });
  realtimeRef = realtime;
  if (media) rooms = { ...media, signaling: realtime.rooms! };

  const login = async (username: string, password?: string): Promise<string> => {
    const response = await fetch(`${rootUrl}/api/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password: password ?? demoPassword(username) }),
    });
    if (response.status !== 200) throw new Error(`login of ${username} failed: ${response.status} ${await response.text()}`);
    return ((await response.json()) as { accessToken: string }).accessToken;
  };
  const clientAs = async (username: string) =>
    new Client({ baseUrl, customHeaders: { Authorization: `Bearer ${await login(username)}` } });

  const defaultUser = options.defaultUser ?? DEFAULT_TEST_USER;
  const client = await clientAs(defaultUser);
  if (options.implicitAuth ?? true) implicitAuthorization = `Bearer ${await login(defaultUser)}`;
  return {
    store,
    auth,
    realtime,
    rootUrl,
    baseUrl,
    client,
    login,
    clientAs,
    ...(rooms ? { rooms } : {}),
    close: async () => {
      await realtime.close(); // closes the HTTP server too
      media?.registry.close();
      media?.pool.close();
      await store.close();
      if (backend.databaseUrl && schema) {
        const pg = await import('pg');
        const admin = new pg.default.Client({ connectionString: backend.databaseUrl });
        await admin.connect();
        await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await admin.end();
      }
    },
  };
}
