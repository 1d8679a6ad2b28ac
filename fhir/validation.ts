import { OperationOutcomeError, validateResource } from '@medplum/core';
import type { OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { isSupportedType, loadDefinitions } from './definitions.js';
import { checkPlausibility } from './evalise/plausibility.js';
import { FhirError, badRequest, notFound, outcome } from './errors.js';

const ID_RE = /^[A-Za-z0-9\-.]{1,64}$/;

const NUMBER_TOKEN = /^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$/;

/** R4 SampledData.data: decimals, or E (error), L / U (below / above detection limit), space-separated. */
function isSampledData(data: string): boolean {
  let start = 0;
  for (let i = 0; i <= data.length; i++) {
    if (i < data.length && data.charCodeAt(i) !== 32) continue;
    const length = i - start;
    if (length === 0) return false;
    const c = data.charCodeAt(start);
    // Fast path for plain integers, the common case of waveform samples.
    let plain = true;
    for (let k = c === 45 ? start + 1 : start; k < i; k++) {
      const d = data.charCodeAt(k);
      if (d < 48 || d > 57) {
        plain = false;
        break;
      }
    }
    if (!plain || (c === 45 && length === 1)) {
      const token = data.slice(start, i);
      if (token !== 'E' && token !== 'L' && token !== 'U' && !NUMBER_TOKEN.test(token)) return false;
    }
    start = i + 1;
  }
  return true;
}

type SampledDataHolder = { valueSampledData?: { data?: unknown } };

/**
 * Checks SampledData.data of an Observation (waveforms: a 12-lead ECG holds 60,000 samples) with one
 * linear scan, and hands the generic validator a shallow copy with the long strings
 * replaced by a stand-in: the generic string checks cost ~10 ms per ECG, this costs well under one.
 */
function withSampledDataChecked(resource: Resource, issues: OperationOutcomeIssue[]): Resource {
  if (resource.resourceType !== 'Observation') return resource;
  const check = (holder: SampledDataHolder | undefined, path: string): SampledDataHolder | undefined => {
    const sd = holder?.valueSampledData;
    if (!sd || typeof sd.data !== 'string') return holder;
    if (!isSampledData(sd.data)) {
      issues.push({
        severity: 'error',
        code: 'value',
        diagnostics: 'SampledData.data must be decimals (or E, L, U) separated by single spaces',
        expression: [`${path}.valueSampledData.data`],
      });
    }
    return { ...holder, valueSampledData: { ...sd, data: '0' } };
  };
  const obs = resource as Resource & SampledDataHolder & { component?: SampledDataHolder[] };
  // A copy even without a top-level valueSampledData: replacing `component` must not touch the caller's resource.
  const copy = { ...(check(obs, 'Observation') as typeof obs) };
  if (Array.isArray(obs.component)) {
    copy.component = obs.component.map((c, i) => check(c, `Observation.component[${i}]`)!);
  }
  return copy;
}

export function checkId(id: string): void {
  if (!ID_RE.test(id)) throw badRequest(`invalid id "${id}": 1-64 characters of A-Z, a-z, 0-9, '-' and '.'`, ['id']);
}

export function checkType(type: string): void {
  if (!isSupportedType(type)) throw notFound(`unknown resource type "${type}"`);
}

/**
 * Checks a resource against the R4 StructureDefinitions (400), then the physiological plausibility
 * of what it records (422, fhir/evalise/plausibility.ts). Every problem is reported with its path
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
  const sampledDataIssues: OperationOutcomeIssue[] = [];
  const checked = withSampledDataChecked(resource, sampledDataIssues);
  let issues: OperationOutcomeIssue[];
  try {
    issues = [...sampledDataIssues, ...validateResource(checked)];
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
  // Well formed, but can it be true? Impossible readings are a business rule (422), not a syntax error.
  const implausible = checkPlausibility(resource, pathPrefix?.replace(/\.resource$/, ''));
  if (implausible.length > 0) {
    // Inside a bundle, the path goes on from the entry's resource: Bundle.entry[2].resource.valueQuantity.value.
    const fromEntry = (e: string) => (pathPrefix ? `${pathPrefix}${e.slice(type.length)}` : e);
    throw new FhirError(422, outcome(implausible.map((i) => ({ ...i, expression: i.expression?.map(fromEntry) }))));
  }
  return resource;
}
