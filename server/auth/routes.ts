import express, { type NextFunction, type Request, type Response } from 'express';
import { rateLimit } from 'express-rate-limit';
import { z, type ZodIssue } from 'zod';
import { ApiError, sendApiError } from '../errors.js';
import { authenticate, clientInfo, principalOf } from './middleware.js';
import type { Auth } from './services.js';

export interface AuthRoutesOptions {
  /** Failed logins accepted per client address per minute before 429 (the per-account lockout comes on top). */
  loginRateLimitPerMinute: number;
}

const loginBody = z.object({
  username: z.string().trim().min(1, 'username must not be empty').max(200),
  password: z.string().min(1, 'password must not be empty').max(1024),
});
const refreshBody = z.object({ refreshToken: z.string().min(1, 'refreshToken must not be empty').max(512) });

/** Parses a body with a zod schema; the 400 names the first field at fault. */
function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new ApiError(400, 'invalid-request', 'the request body must be a JSON object (Content-Type: application/json)');
  }
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issue.path.join('.');
  throw new ApiError(400, 'invalid-request', describe(issue, field), field || undefined);
}

function describe(issue: ZodIssue, field: string): string {
  if (issue.code === 'invalid_type' && issue.received === 'undefined') return `${field} is required`;
  if (issue.code === 'invalid_type') return `${field} must be a ${issue.expected}`;
  if (issue.code === 'too_big') return `${field} is too long`;
  return issue.message.startsWith(field) ? issue.message : `${field}: ${issue.message}`;
}

type Handler = (req: Request, res: Response) => Promise<void>;
const wrap =
  (h: Handler) =>
  (req: Request, res: Response, next: NextFunction): void => {
    h(req, res).catch(next);
  };

/**
 * /api/auth: login, refresh and logout take credentials in their body and need no access token
 * (logout must work after the access token has expired, e.g. after a long satellite cut); /me
 * needs one. Token responses are never cached.
 */
export function authRoutes(auth: Auth, options: AuthRoutesOptions): express.Router {
  const router = express.Router();
  const noStore = (res: Response) => res.setHeader('Cache-Control', 'no-store').setHeader('Pragma', 'no-cache');

  // Counts failed logins only: a hospital's staff behind one NAT address all log in at shift change.
  const loginLimiter = rateLimit({
    windowMs: 60_000,
    limit: options.loginRateLimitPerMinute,
    skipSuccessfulRequests: true,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    handler: (_req, res, _next, limiter) => {
      res.setHeader('Retry-After', String(Math.ceil(limiter.windowMs / 1000)));
      sendApiError(res, new ApiError(429, 'rate-limited', 'too many failed logins from this address; try again in a minute'));
    },
  });

  router.post(
    '/login',
    loginLimiter,
    wrap(async (req, res) => {
      const { username, password } = parse(loginBody, req.body);
      const tokens = await auth.sessions.login(username, password, clientInfo(req));
      noStore(res);
      res.status(200).json(tokens);
    }),
  );

  router.post(
    '/refresh',
    wrap(async (req, res) => {
      const { refreshToken } = parse(refreshBody, req.body);
      const tokens = await auth.sessions.refresh(refreshToken);
      noStore(res);
      res.status(200).json(tokens);
    }),
  );

  router.post(
    '/logout',
    wrap(async (req, res) => {
      const { refreshToken } = parse(refreshBody, req.body);
      await auth.sessions.logout(refreshToken);
      res.status(204).end();
    }),
  );

  router.get('/me', authenticate(auth.keyRing, auth.accounts), (_req, res) => {
    noStore(res);
    res.json(principalOf(res));
  });

  return router;
}
