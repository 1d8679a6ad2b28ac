import { existsSync } from 'node:fs';
import path from 'node:path';
import express from 'express';

/**
 * The browser app (client/web, built by `npm run build:web`) at /, with the SPA fallback: any GET
 * that is not an API, FHIR or socket.io path and accepts HTML gets index.html, so deep links
 * (/salle/consultation/<id>) survive a reload. Hashed assets are cached for a year.
 */
export function webApp(root: string): express.RequestHandler {
  const index = path.join(root, 'index.html');
  const router = express.Router();
  router.use('/assets', express.static(path.join(root, 'assets'), { immutable: true, maxAge: '365d', fallthrough: false }));
  router.use(express.static(root, { index: false, maxAge: 0 }));
  router.get(/^\/(?!api\/|fhir\/|socket\.io\/|health).*/, (req, res, next) => {
    if (!req.accepts('html') || !existsSync(index)) return next();
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(index);
  });
  return router;
}
