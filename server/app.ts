import compression from 'compression';
import express, { type NextFunction, type Request, type Response } from 'express';
import helmet from 'helmet';
import type { Logger } from 'pino';
import { FHIR_JSON, fhirRouter, toFhirError } from '../fhir/rest.js';
import type { FhirStore } from '../fhir/store.js';
import { accessOf, authenticate } from './auth/middleware.js';
import { authRoutes } from './auth/routes.js';
import type { Auth } from './auth/services.js';
import { cors } from './cors.js';
import { emergencyRoutes } from './emergency.js';
import { ApiError, apiErrors, sendApiError } from './errors.js';
import { roomRoutes, type QueueEntry } from './rooms/routes.js';
import type { RoomTickets } from './rooms/tickets.js';
import { webApp } from './web.js';

export interface AppOptions {
  store: FhirStore;
  auth: Auth;
  fhirBodyLimit: string;
  logger: Logger;
  /** Browser origins allowed by CORS; none by default. */
  corsOrigins?: readonly string[];
  loginRateLimitPerMinute?: number;
  /** express "trust proxy": which X-Forwarded-For to believe for client addresses. */
  trustProxy?: boolean | number | string;
  /** Room tickets (teleconsultation, teleassistance); without them /api/rooms answers 404. */
  tickets?: RoomTickets;
  /** The SAMU organization that assists calls naming none. */
  teleassistanceOrganization?: string;
  /** Tells the assisting organization that its teleassistance queue changed (socket.io). */
  onTeleassistanceCall?: (performer: string, entry: QueueEntry) => void;
  /** The built web app (client/web/dist); served at / when the folder exists. */
  webRoot?: string;
}

/**
 * The hub's HTTP application. Public: health checks, the FHIR CapabilityStatement, and login,
 * refresh and logout (their body carries the credential). Everything else needs an access token.
 */
export function createApp(options: AppOptions): express.Express {
  const { store, auth, fhirBodyLimit, logger, corsOrigins = [], loginRateLimitPerMinute = 20, trustProxy = false } = options;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('trust proxy', trustProxy);
  app.use(helmet());
  app.use(cors(corsOrigins));
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

  const requireToken = authenticate(auth.keyRing, auth.accounts);

  app.use('/api', express.json({ limit: '100kb' }));
  app.use('/api/auth', authRoutes(auth, { loginRateLimitPerMinute }));
  app.use('/api/emergency-access', requireToken, emergencyRoutes(store.repo));
  if (options.tickets) {
    app.use(
      '/api',
      requireToken,
      roomRoutes({
        store,
        tickets: options.tickets,
        ...(options.teleassistanceOrganization ? { defaultAssistingOrganization: options.teleassistanceOrganization } : {}),
        onCall: options.onTeleassistanceCall ?? (() => {}),
      }),
    );
  }
  app.use('/api', requireToken, (_req, _res, next) => next(new ApiError(404, 'not-found', 'no such API')));
  app.use('/api', apiErrors((err) => logger.error({ err }, 'API request failed')));

  app.use(
    '/fhir/R4',
    // The CapabilityStatement stays public, as FHIR servers conventionally do (and SMART on FHIR
    // requires): clients read what the server supports, and how to authenticate, before logging in.
    (req: Request, res: Response, next: NextFunction) =>
      (req.method === 'GET' || req.method === 'HEAD') && req.path === '/metadata' ? next() : requireToken(req, res, next),
    fhirRouter(store.repo, {
      bodyLimit: fhirBodyLimit,
      contextOf: (_req: Request, res: Response) => accessOf(res),
      onError: (err) => logger.error({ err }, 'FHIR request failed'),
    }),
  );
  // Errors raised in front of the FHIR router (authentication unable to reach the database) are OperationOutcomes too.
  app.use('/fhir/R4', (err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    logger.error({ err }, 'FHIR request failed');
    const fhirError = toFhirError(err);
    res.status(fhirError.status).type(FHIR_JSON).send(JSON.stringify(fhirError.outcome));
  });

  if (options.webRoot) app.use(webApp(options.webRoot));
  app.use((_req, res) => sendApiError(res, new ApiError(404, 'not-found', 'no such resource on this hub')));
  return app;
}
