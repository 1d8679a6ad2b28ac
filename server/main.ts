import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { SYSTEM } from '../fhir/access.js';
import { demoBundle } from '../fhir/demo/demo-data.js';
import { exampleExams } from '../fhir/evalise/examples.js';
import { openFhirStore, seedOnce } from '../fhir/store.js';
import { createApp } from './app.js';
import { fhirAuditSink } from './auth/fhir-audit-sink.js';
import { seedDemoAccounts } from './auth/demo-accounts.js';
import { openAuth } from './auth/services.js';
import { loadConfig, type HubConfig } from './config.js';
import { Realtime } from './realtime.js';
import { RoomTickets } from './rooms/tickets.js';
import { DEMO_IDS } from '../fhir/demo/demo-data.js';
import { RoomRegistry } from '../sfu/room-registry.js';
import { WorkerPool } from '../sfu/worker-pool.js';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The built browser app (npm run build:web). */
const WEB_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../client/web/dist');

export interface RunningHub {
  url: string;
  close(): Promise<void>;
}

/**
 * Starts the hub: HTTP first (answering 503 while starting, so health checks see it come up), then
 * storage (PGlite or PostgreSQL) with its migrations, authentication (its migrations and signing
 * key), demo data and demo accounts once, the application and socket.io.
 */
export async function startHub(config: HubConfig): Promise<RunningHub> {
  const logger = pino({ level: config.logLevel });
  const server = createServer((_req, res) => {
    res.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': '2' }).end('{"status":"starting"}');
  });
  // Idle keep-alive connections outlive a load balancer's (usually 60 s): the hub never closes one
  // that the balancer is about to reuse, which would turn into a 502 for the next request.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const publicUrl = config.publicUrl ?? `http://localhost:${port}`;

  if (!config.databaseUrl) mkdirSync(config.dataDir, { recursive: true });
  const store = await openFhirStore({
    databaseUrl: config.databaseUrl,
    dataDir: config.databaseUrl ? undefined : config.dataDir,
    baseUrl: `${publicUrl}/fhir/R4`,
  });
  if (config.loadDemoData) {
    const loaded = await seedOnce(store, 'demo-v1', async () => {
      await store.repo.transaction(SYSTEM, demoBundle());
    });
    if (loaded) logger.info('demo data loaded');
    // The example e-valise exams, one per rhythm; conditional creates, so a reload is harmless.
    const exams = await seedOnce(store, 'demo-evalise-v1', async () => {
      for (const { bundle } of exampleExams()) await store.repo.transaction(SYSTEM, bundle);
    });
    if (exams) logger.info('demo e-valise exams loaded');
  }
  const auth = await openAuth(store.db, {
    audit: fhirAuditSink(store.repo),
    accessTokenTtlSeconds: config.accessTokenTtlSeconds,
    refreshTokenTtlDays: config.refreshTokenTtlDays,
  });
  if (config.loadDemoData) {
    const seeded = await seedOnce(store, 'demo-accounts-v1', async () => {
      await seedDemoAccounts(auth.accounts);
    });
    if (seeded) logger.warn('demo accounts created (public passwords, see README): set LOAD_DEMO_DATA=false in production');
  }
  // Media: one mediasoup worker per core (or SFU_WORKERS), rooms on the least-loaded.
  const pool = await WorkerPool.create({
    ...(config.sfu.workers ? { numWorkers: config.sfu.workers } : {}),
    rtcMinPort: config.sfu.rtcMinPort,
    rtcMaxPort: config.sfu.rtcMaxPort,
    maxStreamsPerWorker: config.sfu.maxStreamsPerWorker,
    logger: logger.child({ part: 'sfu' }),
  });
  const registry = new RoomRegistry({
    pool,
    transports: { listenIps: [{ ip: config.sfu.listenIp, ...(config.sfu.announcedIp ? { announcedIp: config.sfu.announcedIp } : {}) }] },
    logger: logger.child({ part: 'sfu' }),
  });
  const tickets = new RoomTickets(store, auth.keyRing);
  let realtime: Realtime | undefined;
  const app = createApp({
    store,
    auth,
    fhirBodyLimit: config.fhirBodyLimit,
    logger,
    corsOrigins: config.corsOrigins,
    loginRateLimitPerMinute: config.loginRateLimitPerMinute,
    trustProxy: config.trustProxy,
    tickets,
    ...((config.teleassistanceOrganization ?? (config.loadDemoData ? DEMO_IDS.organizations.samu : undefined))
      ? { teleassistanceOrganization: config.teleassistanceOrganization ?? DEMO_IDS.organizations.samu }
      : {}),
    onTeleassistanceCall: (performer, entry) => realtime?.teleassistanceCall(performer, entry),
    webRoot: WEB_ROOT,
  });
  server.removeAllListeners('request');
  server.on('request', app);
  // After the app: socket.io takes over the request listeners and hands on what is not its own.
  realtime = await Realtime.attach(server, {
    auth,
    corsOrigins: config.corsOrigins,
    redisUrl: config.redisUrl,
    logger,
    rooms: { registry, tickets, store, graceMs: config.roomGraceSeconds * 1000 },
  });
  const live = realtime;
  logger.info({ port, url: publicUrl, storage: store.db.kind, realtime: config.redisUrl ? 'redis' : 'in-process' }, 'hub listening');
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      await live.close(); // closes the HTTP server too
      registry.close();
      pool.close();
      await store.close();
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const hub = await startHub(loadConfig());
  const stop = () => {
    hub.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}
