import type { NextFunction, Request, Response } from 'express';

const ALLOWED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE';
const ALLOWED_HEADERS = [
  'Authorization',
  'Content-Type',
  'Content-Encoding',
  'Accept',
  'If-Match',
  'If-None-Match',
  'If-None-Exist',
  'If-Modified-Since',
  'Prefer',
].join(', ');
const EXPOSED_HEADERS = ['Location', 'Content-Location', 'ETag', 'Last-Modified', 'Retry-After', 'WWW-Authenticate', 'RateLimit', 'RateLimit-Policy'].join(', ');

/**
 * No Origin (not a browser), a listed origin, or the hub's own (the web app served by the hub
 * itself: browsers send Origin on same-origin POSTs and WebSocket handshakes too).
 */
export function isAllowedOrigin(origin: string | undefined, allowList: readonly string[], host: string | undefined): boolean {
  if (origin === undefined || allowList.includes(origin)) return true;
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

/**
 * CORS with an allow-list of origins. A request without Origin is not from a browser (e-valise
 * uploader, FHIR clients) and passes untouched; a listed origin gets the CORS headers; an unlisted
 * one gets none, and its preflight is refused with 403 so the browser never sends the request.
 * Authentication is by bearer token, not cookies, so credentials are never allowed.
 */
export function cors(allowList: readonly string[]) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const origin = req.get('origin');
    if (origin === undefined) return next();
    res.vary('Origin');
    const preflight = req.method === 'OPTIONS' && req.get('access-control-request-method') !== undefined;
    if (!allowList.includes(origin)) {
      if (preflight) {
        res.status(403).json({ error: { code: 'origin-not-allowed', message: `the origin ${origin} may not call this hub` } });
        return;
      }
      return next();
    }
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
    if (preflight) {
      res.setHeader('Access-Control-Allow-Methods', ALLOWED_METHODS);
      res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      res.setHeader('Access-Control-Max-Age', '600');
      res.status(204).end();
      return;
    }
    next();
  };
}
