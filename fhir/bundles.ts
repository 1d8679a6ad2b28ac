import type { Bundle, BundleEntry } from '@medplum/fhirtypes';
import { FhirError, badRequest } from './errors.js';
import type { JsonPatchOperation } from './patch.js';
import type { OpResult, WriteOp } from './repository.js';
import { checkId, checkType, validate } from './validation.js';

/** Transaction and batch Bundles: their entries checked and turned into writes and reads, and their responses. */

export interface PreparedEntry {
  index: number;
  write?: WriteOp;
  read?: string;
  returnResource: boolean;
  error?: FhirError;
}

/**
 * Checks the bundle's shape and validates every resource before anything is written. For a
 * transaction the first problem fails the whole bundle; for a batch it fails only its entry.
 */
export function prepareBundle(bundle: Bundle, kind: 'transaction' | 'batch'): PreparedEntry[] {
  const problems: FhirError[] = [];
  const prepared = (bundle.entry ?? []).map((entry, index): PreparedEntry => {
    const at = `Bundle.entry[${index}]`;
    try {
      return { index, returnResource: false, ...prepareEntry(entry, at) };
    } catch (err) {
      if (!(err instanceof FhirError)) throw err;
      problems.push(err);
      return { index, returnResource: false, error: err };
    }
  });
  if (kind === 'transaction' && problems.length > 0) {
    const status = problems.some((p) => p.status !== 404 && p.status !== 400) ? problems[0]!.status : 400;
    throw new FhirError(status, { resourceType: 'OperationOutcome', issue: problems.flatMap((p) => p.outcome.issue ?? []) });
  }
  return prepared;
}

function prepareEntry(entry: BundleEntry, at: string): { write?: WriteOp; read?: string } {
  const request = entry.request;
  if (!request?.method || !request.url) throw badRequest('each entry needs request.method and request.url', [`${at}.request`]);
  const url = request.url.replace(/^\//, '');
  const [path, query] = url.split('?', 2) as [string, string | undefined];
  const parts = path.split('/').filter(Boolean);
  const type = parts[0] ?? '';
  switch (request.method) {
    case 'GET':
      return { read: url };
    case 'POST': {
      const resource = validate(entry.resource, type, `${at}.resource`);
      return { write: { kind: 'create', resource, ifNoneExist: request.ifNoneExist, fullUrl: entry.fullUrl } };
    }
    case 'PUT': {
      checkType(type);
      const resource = validate(entry.resource, type, `${at}.resource`);
      if (parts.length === 2) {
        checkId(parts[1]!);
        if (resource.id && resource.id !== parts[1]) throw badRequest(`resource id "${resource.id}" must equal the id in request.url`, [`${at}.resource.id`]);
        return { write: { kind: 'update', type, id: parts[1]!, resource: { ...resource, id: parts[1]! }, ifMatch: request.ifMatch, fullUrl: entry.fullUrl } };
      }
      if (query) return { write: { kind: 'update', type, condition: query, resource, fullUrl: entry.fullUrl } };
      throw badRequest('PUT needs Type/id or Type?condition in request.url', [`${at}.request.url`]);
    }
    case 'DELETE':
      checkType(type);
      if (parts.length !== 2) throw badRequest('DELETE needs Type/id in request.url (conditional delete is not supported)', [`${at}.request.url`]);
      checkId(parts[1]!);
      return { write: { kind: 'delete', type, id: parts[1]! } };
    case 'PATCH': {
      checkType(type);
      const binary = entry.resource as { resourceType?: string; contentType?: string; data?: string } | undefined;
      if (parts.length !== 2 || binary?.resourceType !== 'Binary' || !binary.data) {
        throw badRequest('PATCH entries need Type/id and a Binary holding a JSON Patch', [`${at}.resource`]);
      }
      let patch: unknown;
      try {
        patch = JSON.parse(Buffer.from(binary.data, 'base64').toString('utf8'));
      } catch {
        throw badRequest('the Binary of a PATCH entry must hold JSON', [`${at}.resource.data`]);
      }
      if (!Array.isArray(patch)) throw badRequest('a JSON Patch must be an array', [`${at}.resource.data`]);
      return { write: { kind: 'patch', type, id: parts[1]!, patch: patch as JsonPatchOperation[], ifMatch: request.ifMatch } };
    }
    default:
      throw badRequest(`unsupported method ${request.method}`, [`${at}.request.method`]);
  }
}

export function responseEntry(baseUrl: string, r: OpResult, withResource: boolean): BundleEntry {
  const statusText: Record<number, string> = { 200: '200 OK', 201: '201 Created', 204: '204 No Content' };
  return {
    ...(withResource && r.resource ? { resource: r.resource } : {}),
    response: {
      status: statusText[r.status] ?? String(r.status),
      ...(r.status !== 204 ? { location: `${baseUrl}/${r.type}/${r.id}/_history/${r.versionId}` } : {}),
      ...(r.versionId ? { etag: `W/"${r.versionId}"` } : {}),
      ...(r.lastModified ? { lastModified: r.lastModified } : {}),
    },
  };
}

