import { OperationOutcomeError, validateResource } from '@medplum/core';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { isSupportedType, loadDefinitions } from './definitions.js';
import { FhirError, badRequest, notFound, outcome } from './errors.js';

const ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;

export function checkId(id: string): void {
  if (!ID_RE.test(id)) throw badRequest(`invalid id "${id}": 1-64 characters of A-Z, a-z, 0-9, '-' and '.'`, ['id']);
}

export function checkType(type: string): void {
  if (!isSupportedType(type)) throw notFound(`unknown resource type "${type}"`);
}

/**
 * Checks a resource against the R4 StructureDefinitions. Every problem is reported with its path
 * (prefixed by `pathPrefix` inside bundles, e.g. "Bundle.entry[3].resource") in one OperationOutcome.
 */
export function validate(body: unknown, expectedType?: string, pathPrefix?: string): Resource {
  loadDefinitions();
  const where = (p: string) => (pathPrefix ? `${pathPrefix}.${p}` : p);
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('the body must be a JSON object holding a FHIR resource', pathPrefix ? [pathPrefix] : undefined);
  }
  const resource = body as Resource;
  const type = (resource as { resourceType?: unknown }).resourceType;
  if (typeof type !== 'string') throw badRequest('missing resourceType', [where('resourceType')]);
  if (!isSupportedType(type)) {
    throw FhirError.of(pathPrefix ? 400 : 404, 'not-supported', `unknown resource type "${type}"`, [where('resourceType')]);
  }
  if (expectedType && type !== expectedType) {
    throw badRequest(`resourceType "${type}" does not match the URL's type ${expectedType}`, [where('resourceType')]);
  }
  if (resource.id !== undefined && (typeof resource.id !== 'string' || !ID_RE.test(resource.id))) {
    throw badRequest(`invalid id "${String(resource.id)}"`, [where(`${type}.id`)]);
  }
  let issues: OperationOutcomeIssue[];
  try {
    issues = validateResource(resource);
  } catch (err) {
    if (err instanceof OperationOutcomeError) {
      issues = err.outcome.issue ?? [];
    } else throw err;
  }
  const errors = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal');
  if (errors.length > 0) {
    throw new FhirError(
      400,
      outcome(
        errors.map((i) => ({
          ...i,
          diagnostics: i.diagnostics ?? i.details?.text,
          expression: pathPrefix ? i.expression?.map((e) => `${pathPrefix}.${e}`) : i.expression,
        })),
      ),
    );
  }
  return resource;
}
