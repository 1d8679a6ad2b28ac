import compression from 'compression';
import express from 'express';
import type { Logger } from 'pino';
import { fhirRouter } from '../fhir/rest.js';
import type { FhirStore } from '../fhir/store.js';

export interface AppOptions {
  store: FhirStore;
  fhirBodyLimit: string;
  logger: Logger;
}

/** The hub's HTTP application: health checks and the FHIR R4 API. */
export function createApp({ store, fhirBodyLimit, logger }: AppOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Responses are compressed when the client asks (Accept-Encoding): e-valise links are slow.
  app.use(compression());

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/health/ready', async (_req, res) => {
    try {
      await store.db.query('SELECT 1');
      res.json({ status: 'ok', storage: store.db.kind });
    } catch {
      res.status(503).json({ status: 'unavailable', storage: store.db.kind });
    }
  });

  app.use(
    '/fhir/R4',
    fhirRouter(store.repo, {
      bodyLimit: fhirBodyLimit,
      onError: (err) => logger.error({ err }, 'FHIR request failed'),
    }),
  );
  return app;
}
