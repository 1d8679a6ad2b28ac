import express, { type NextFunction, type Request, type Response } from 'express';
import type { Bundle, Resource } from '@medplum/fhirtypes';
import { capabilityStatement } from './capability.js';
import { FhirError, badRequest, notFound, outcome } from './errors.js';
import type { AccessContext } from './access.js';
import type { FhirRepository } from './repository.js';

export const FHIR_JSON = 'application/fhir+json; charset=utf-8';

export interface FhirRestOptions {
  /** Largest accepted request body, after gzip decoding (e.g. "20mb"). */
  bodyLimit: string;
  /** The caller of a request, as authenticated in front of this router (see server/auth). */
  contextOf: (req: Request, res: Response) => AccessContext;
  onError?: (err: unknown) => void;
}

type Handler = (req: Request, res: Response) => Promise<void>;

/**
 * The FHIR R4 REST API over a FhirRepository. Handlers are thin: parse HTTP, call the repository,
 * write the result. Every error becomes an OperationOutcome in one place (the last middleware).
 */
export function fhirRouter(repo: FhirRepository, options: FhirRestOptions): express.Router {
  const router = express.Router();
  // Raw bytes, gzip/deflate decoded by body-parser (satellite uploads send Content-Encoding: gzip);
  // the limit applies to the decoded size. JSON is parsed below so errors become OperationOutcomes.
  router.use(express.raw({ type: () => true, limit: options.bodyLimit, inflate: true }));

  const who = (req: Request, res: Response): AccessContext => options.contextOf(req, res);
  const wrap =
    (h: Handler) =>
    (req: Request, res: Response, next: NextFunction): void => {
      h(req, res).catch(next);
    };

  router.get('/metadata', wrap(async (_req, res) => send(res, 200, capabilityStatement(repo.baseUrl))));

  router.post(
    '/',
    wrap(async (req, res) => {
      const bundle = jsonBody(req) as Bundle;
      if (bundle?.resourceType !== 'Bundle') throw badRequest('POST to the base URL takes a Bundle', ['resourceType']);
      if (bundle.type === 'transaction') return send(res, 200, await repo.transaction(who(req, res), bundle));
      if (bundle.type === 'batch') return send(res, 200, await repo.batch(who(req, res), bundle));
      throw badRequest(`Bundle.type must be transaction or batch, not "${bundle.type ?? ''}"`, ['Bundle.type']);
    }),
  );

  router.get('/Observation/\\$lastn', wrap(async (req, res) => send(res, 200, await repo.lastn(who(req, res), queryPairs(req)))));

  router.get('/:type/_history', wrap(async (req, res) => send(res, 200, await repo.history(who(req, res), p(req, 'type'), undefined, historyOptions(req)))));
  router.get(
    '/:type/:id/_history',
    wrap(async (req, res) => send(res, 200, await repo.history(who(req, res), p(req, 'type'), p(req, 'id'), historyOptions(req)))),
  );
  router.get(
    '/:type/:id/_history/:vid',
    wrap(async (req, res) => sendResource(res, 200, await repo.vread(who(req, res), p(req, 'type'), p(req, 'id'), p(req, 'vid')))),
  );

  router.get('/:type', wrap(async (req, res) => send(res, 200, await repo.search(who(req, res), p(req, 'type'), queryPairs(req)))));
  router.post(
    '/:type/_search',
    wrap(async (req, res) => {
      const form = req.body instanceof Buffer ? req.body.toString('utf8') : '';
      send(res, 200, await repo.search(who(req, res), p(req, 'type'), [...queryPairs(req), ...new URLSearchParams(form)]));
    }),
  );

  router.post(
    '/:type',
    wrap(async (req, res) => {
      const body = jsonBody(req) as Resource;
      if (body && typeof body === 'object' && body.resourceType && body.resourceType !== p(req, 'type')) {
        throw badRequest(`resourceType "${body.resourceType}" does not match the URL's type ${p(req, 'type')}`, ['resourceType']);
      }
      repoTypeCheck(p(req, 'type'));
      const result = await repo.create(who(req, res), body, header(req, 'if-none-exist'));
      res.setHeader('Location', `${repo.baseUrl}/${result.resource.resourceType}/${result.resource.id}/_history/${result.resource.meta?.versionId}`);
      sendResource(res, result.created ? 201 : 200, result.resource, req);
    }),
  );

  router.put(
    '/:type',
    wrap(async (req, res) => {
      const condition = new URLSearchParams(queryPairs(req)).toString();
      if (!condition) throw badRequest('PUT on a type needs search parameters (conditional update) or an id in the URL');
      const result = await repo.conditionalUpdate(who(req, res), p(req, 'type'), condition, jsonBody(req));
      sendResource(res, result.created ? 201 : 200, result.resource, req);
    }),
  );

  router.get('/:type/:id', wrap(async (req, res) => sendResource(res, 200, await repo.read(who(req, res), p(req, 'type'), p(req, 'id')))));
  router.put(
    '/:type/:id',
    wrap(async (req, res) => {
      const result = await repo.update(who(req, res), p(req, 'type'), p(req, 'id'), jsonBody(req), header(req, 'if-match'));
      if (result.created) res.setHeader('Location', `${repo.baseUrl}/${p(req, 'type')}/${p(req, 'id')}/_history/1`);
      sendResource(res, result.created ? 201 : 200, result.resource, req);
    }),
  );
  router.patch(
    '/:type/:id',
    wrap(async (req, res) => {
      const type = String(req.headers['content-type'] ?? '');
      if (!type.includes('json-patch+json')) {
        throw FhirError.of(415, 'not-supported', 'PATCH takes a JSON Patch (Content-Type: application/json-patch+json)');
      }
      sendResource(res, 200, await repo.patch(who(req, res), p(req, 'type'), p(req, 'id'), jsonBody(req), header(req, 'if-match')), req);
    }),
  );
  router.delete(
    '/:type/:id',
    wrap(async (req, res) => {
      await repo.delete(who(req, res), p(req, 'type'), p(req, 'id'));
      res.status(204).end();
    }),
  );

  router.use((req) => {
    throw notFound(`no FHIR interaction at ${req.method} ${req.path}`);
  });

  router.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const fhirError = toFhirError(err);
    if (fhirError.status >= 500) options.onError?.(err);
    send(res, fhirError.status, fhirError.outcome);
  });
  return router;
}

function repoTypeCheck(type: string): void {
  // Create on an unknown type: 404, as for every other interaction on it.
  if (!/^[A-Z][A-Za-z]+$/.test(type)) throw notFound(`unknown resource type "${type}"`);
}

/** Errors from body parsing, the store and anything unexpected, as FHIR errors. */
export function toFhirError(err: unknown): FhirError {
  if (err instanceof FhirError) return err;
  const e = err as { type?: string; status?: number; message?: string };
  if (e?.type === 'entity.too.large') return FhirError.of(413, 'too-costly', `request body is larger than the limit (${e.message ?? ''})`);
  if (e?.type === 'encoding.unsupported') return FhirError.of(415, 'not-supported', 'unsupported Content-Encoding: use gzip, deflate or none');
  if (e?.status && e.status >= 400 && e.status < 500) return FhirError.of(e.status, 'invalid', e.message ?? 'bad request');
  return FhirError.of(500, 'exception', 'internal error: the request was not applied');
}

function p(req: Request, name: string): string {
  return String(req.params[name]);
}

function header(req: Request, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function queryPairs(req: Request): [string, string][] {
  const i = req.originalUrl.indexOf('?');
  return i < 0 ? [] : [...new URLSearchParams(req.originalUrl.slice(i + 1))];
}

function historyOptions(req: Request): { count?: number; since?: string } {
  const q = new URLSearchParams(queryPairs(req));
  const count = q.get('_count');
  const since = q.get('_since');
  if (count !== null && !/^\d+$/.test(count)) throw badRequest('_count must be a non-negative integer', ['_count']);
  if (since !== null && Number.isNaN(Date.parse(since))) throw badRequest('_since must be an instant', ['_since']);
  return { count: count === null ? undefined : Number(count), since: since ?? undefined };
}

function jsonBody(req: Request): unknown {
  const raw = req.body instanceof Buffer ? req.body : undefined;
  if (!raw || raw.length === 0) throw badRequest('the request needs a JSON body');
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch (err) {
    throw badRequest(`malformed JSON: ${(err as Error).message}`);
  }
}

function send(res: Response, status: number, body: unknown): void {
  res.status(status).setHeader('Content-Type', FHIR_JSON);
  res.send(JSON.stringify(body));
}

function sendResource(res: Response, status: number, resource: Resource, req?: Request): void {
  if (resource.meta?.versionId) res.setHeader('ETag', `W/"${resource.meta.versionId}"`);
  if (resource.meta?.lastUpdated) res.setHeader('Last-Modified', new Date(resource.meta.lastUpdated).toUTCString());
  const prefer = req ? String(req.headers.prefer ?? '') : '';
  if (prefer.includes('return=minimal')) {
    res.status(status).end();
    return;
  }
  if (prefer.includes('return=OperationOutcome')) {
    send(res, status, outcome([{ severity: 'information', code: 'informational', diagnostics: `${resource.resourceType}/${resource.id} stored` }]));
    return;
  }
  send(res, status, resource);
}
