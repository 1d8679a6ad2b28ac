import type { AddressInfo } from 'node:net';
import { createServer } from 'node:http';
import { Client } from 'fhir-kit-client';
import { pino } from 'pino';
import { createApp } from '../../server/app.js';
import { openFhirStore, type FhirStore } from '../../fhir/store.js';

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

export interface TestHub {
  store: FhirStore;
  baseUrl: string;
  client: Client;
  close(): Promise<void>;
}

let schemaCounter = 0;

/** A real hub on an ephemeral port, with a fresh database (in-memory PGlite, or a new PostgreSQL schema). */
export async function startTestHub(backend: Backend, options: { bodyLimit?: string } = {}): Promise<TestHub> {
  const schema = backend.databaseUrl ? `t_${process.pid}_${Date.now().toString(36)}_${++schemaCounter}` : undefined;
  // Listen first: the store needs its base URL (with the port) before the app exists.
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const baseUrl = `http://127.0.0.1:${port}/fhir/R4`;
  const store = await openFhirStore({ databaseUrl: backend.databaseUrl, schema, baseUrl, poolSize: 25 });
  const app = createApp({ store, fhirBodyLimit: options.bodyLimit ?? '25mb', logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }) });
  server.on('request', app);
  const client = new Client({ baseUrl });
  return {
    store,
    baseUrl,
    client,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
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

