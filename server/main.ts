import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { demoBundle } from '../fhir/demo/demo-data.js';
import { openFhirStore, seedOnce } from '../fhir/store.js';
import { createApp } from './app.js';
import { loadConfig, type HubConfig } from './config.js';

export interface RunningHub {
  url: string;
  close(): Promise<void>;
}

/** Starts the hub: storage (PGlite or PostgreSQL), migrations, demo data once, HTTP. */
export async function startHub(config: HubConfig): Promise<RunningHub> {
  const logger = pino({ level: config.logLevel });
  if (!config.databaseUrl) mkdirSync(config.dataDir, { recursive: true });
  const publicUrl = config.publicUrl ?? `http://localhost:${config.port}`;
  const store = await openFhirStore({
    databaseUrl: config.databaseUrl,
    dataDir: config.databaseUrl ? undefined : config.dataDir,
    baseUrl: `${publicUrl}/fhir/R4`,
  });
  if (config.loadDemoData) {
    const loaded = await seedOnce(store, 'demo-v1', async () => {
      await store.repo.transaction(demoBundle());
    });
    if (loaded) logger.info('demo data loaded');
  }
  const app = createApp({ store, fhirBodyLimit: config.fhirBodyLimit, logger });
  const server = app.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const port = (server.address() as AddressInfo).port;
  logger.info({ port, storage: store.db.kind }, 'hub listening');
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
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
