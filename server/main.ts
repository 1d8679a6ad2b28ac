import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
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

/**
 * Starts the hub: HTTP first (answering 503 while starting, so health checks see it come up), then
 * storage (PGlite or PostgreSQL) with its migrations, demo data once, and the application.
 */
export async function startHub(config: HubConfig): Promise<RunningHub> {
  const logger = pino({ level: config.logLevel });
  const server = createServer((_req, res) => {
    res.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': '2' }).end('{"status":"starting"}');
  });
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
      await store.repo.transaction(demoBundle());
    });
    if (loaded) logger.info('demo data loaded');
  }
  const app = createApp({ store, fhirBodyLimit: config.fhirBodyLimit, logger });
  server.removeAllListeners('request');
  server.on('request', app);
  logger.info({ port, url: publicUrl, storage: store.db.kind }, 'hub listening');
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
