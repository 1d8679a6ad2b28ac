import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { ExtendedError, Socket } from 'socket.io';
import type { HubRole, UserContext } from '../../fhir/access.js';
import { outcome } from '../../fhir/errors.js';
import { FHIR_JSON } from '../../fhir/rest.js';
import { errorBody } from '../errors.js';
import type { AccountStore } from './accounts.js';
import { InvalidTokenError, type KeyRing } from './keys.js';
import { userContext, type ClientInfo, type Principal } from './principal.js';
import { principalFromClaims } from './tokens.js';

const REALM = 'telemedicine-hub';

/**
 * The principal of a verified access token, refused if its account has since been disabled (read
 * through a cache of a few seconds). Shared by HTTP and socket.io.
 */
export async function verifyAccessToken(token: string, keyRing: KeyRing, accounts: AccountStore): Promise<Principal> {
  const principal = principalFromClaims(await keyRing.verify(token));
  const account = await accounts.active(principal.accountId);
  if (!account) throw new InvalidTokenError('account-disabled', 'the account is disabled');
  return { ...principal, displayName: account.displayName };
}

/** What authenticate() leaves for the handlers after it. */
export function principalOf(res: Response): Principal | undefined {
  return res.locals.principal as Principal | undefined;
}

/**
 * The caller as the FHIR store sees it. Throws when authenticate() did not run before: a route
 * mounted without it fails closed instead of reaching the store with nobody behind it.
 */
export function accessOf(res: Response): UserContext {
  const access = res.locals.access as UserContext | undefined;
  if (!access) throw new Error('no authenticated caller: authenticate() must run before this route');
  return access;
}

export function clientInfo(req: Request): ClientInfo {
  const userAgent = req.get('user-agent');
  return { ...(req.ip ? { ip: req.ip } : {}), ...(userAgent ? { userAgent } : {}) };
}

/**
 * Requires `Authorization: Bearer <access token>`. On success res.locals holds the `principal` and
 * the store's `access` context (with the caller's address and user agent). Otherwise 401 with a
 * WWW-Authenticate challenge (RFC 6750: error="invalid_token" when a token was sent but refused,
 * none when no token was sent), the body an OperationOutcome under /fhir and the JSON error elsewhere.
 */
export function authenticate(keyRing: KeyRing, accounts: AccountStore): RequestHandler {
  return (req: Request, res: Response, next: NextFunction): void => {
    const token = bearerToken(req.get('authorization'));
    if (!token) return unauthenticated(req, res, 'authentication required: send Authorization: Bearer <access token>');
    verifyAccessToken(token, keyRing, accounts).then(
      (principal) => {
        res.locals.principal = principal;
        res.locals.access = userContext(principal, clientInfo(req));
        next();
      },
      (err: unknown) => (err instanceof InvalidTokenError ? unauthenticated(req, res, err.message, 'invalid_token') : next(err)),
    );
  };
}

/** Lets through only principals with one of the roles (after authenticate()); others get 403. */
export function requireRole(...roles: HubRole[]): RequestHandler {
  return (req: Request, res: Response, next: NextFunction): void => {
    const principal = principalOf(res);
    if (!principal) return unauthenticated(req, res, 'authentication required');
    if (roles.includes(principal.role)) return next();
    const message = `this action is reserved to the roles ${roles.join(', ')}`;
    if (isFhir(req)) {
      res.status(403).type(FHIR_JSON).send(JSON.stringify(outcome([{ severity: 'error', code: 'forbidden', diagnostics: message }])));
    } else {
      res.status(403).json(errorBody('forbidden', message));
    }
  };
}

/** What socketAuthenticate() leaves in socket.data. */
export interface AuthenticatedSocketData {
  principal: Principal;
  access: UserContext;
}

/**
 * socket.io middleware (`io.use(...)`): the client sends its access token in the handshake,
 * `io(url, { auth: { token } })`. A refused connection gets connect_error "unauthorized".
 */
export function socketAuthenticate(keyRing: KeyRing, accounts: AccountStore) {
  return (socket: Socket, next: (err?: ExtendedError) => void): void => {
    const raw: unknown = socket.handshake.auth?.token;
    const token = typeof raw === 'string' ? bearerToken(raw) ?? raw : undefined;
    if (!token) return next(new Error('unauthorized'));
    verifyAccessToken(token, keyRing, accounts).then(
      (principal) => {
        const userAgent = socket.handshake.headers['user-agent'];
        const data: AuthenticatedSocketData = {
          principal,
          access: userContext(principal, { ip: socket.handshake.address, ...(userAgent ? { userAgent } : {}) }),
        };
        Object.assign(socket.data as object, data);
        next();
      },
      (err: unknown) => next(new Error(err instanceof InvalidTokenError ? 'unauthorized' : 'unavailable')),
    );
  };
}

function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer +([A-Za-z0-9\-_.~+/]+=*) *$/i.exec(header ?? '');
  return match?.[1];
}

function isFhir(req: Request): boolean {
  return req.originalUrl === '/fhir' || req.originalUrl.startsWith('/fhir/');
}

function unauthenticated(req: Request, res: Response, message: string, error?: 'invalid_token'): void {
  const challenge = [`Bearer realm="${REALM}"`, ...(error ? [`error="${error}"`, `error_description="${message.replace(/["\\]/g, '')}"`] : [])];
  res.setHeader('WWW-Authenticate', challenge.join(', '));
  if (isFhir(req)) {
    res.status(401).type(FHIR_JSON).send(JSON.stringify(outcome([{ severity: 'error', code: 'login', diagnostics: message }])));
  } else {
    res.status(401).json(errorBody(error === 'invalid_token' ? 'invalid-token' : 'unauthenticated', message));
  }
}
