import { evalFhirPathTyped, toTypedValue, type TypedValue } from '@medplum/core';
import type { Resource } from '@medplum/fhirtypes';
import { searchParamsOf } from './definitions.js';

/** Rows of the search index tables for one resource, computed at write time. */
export interface IndexRows {
  token: [code: string, system: string | null, value: string][];
  string: [code: string, norm: string, exact: string][];
  date: [code: string, lo: string, hi: string][];
  reference: [code: string, targetType: string | null, targetId: string | null, ref: string][];
  number: [code: string, value: string][];
  quantity: [code: string, value: string, system: string | null, unit: string | null][];
  uri: [code: string, value: string][];
}

export function emptyIndexRows(): IndexRows {
  return { token: [], string: [], date: [], reference: [], number: [], quantity: [], uri: [] };
}

/** Case- and accent-insensitive form used for string search ("Hélène" finds "helene"). */
export function normalizeString(s: string): string {
  return s
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .trim();
}

const DATE_RE = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * The instant range [lo, hi] (both inclusive, millisecond precision) that a FHIR date, dateTime
 * or instant covers: "2024-03" is the whole of March. Values without a zone are read as UTC.
 */
export function dateRange(value: string): [string, string] | undefined {
  const m = DATE_RE.exec(value.trim());
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, tz] = m;
  if (!isCalendarDate(+y!, mo, d)) return undefined;
  const zone = tz ?? 'Z';
  const iso = (parts: string) => new Date(parts).getTime();
  let lo: number;
  let next: number;
  if (h !== undefined) {
    const base = `${y}-${mo}-${d}T${h}:${mi}`;
    if (s === undefined) {
      lo = iso(`${base}:00${zone}`);
      next = lo + 60_000;
    } else if (frac === undefined) {
      lo = iso(`${base}:${s}${zone}`);
      next = lo + 1000;
    } else {
      const ms = frac.slice(0, 3).padEnd(3, '0');
      lo = iso(`${base}:${s}.${ms}${zone}`);
      next = lo + 1;
    }
  } else if (d !== undefined) {
    lo = Date.UTC(+y!, +mo! - 1, +d!);
    next = Date.UTC(+y!, +mo! - 1, +d! + 1);
  } else if (mo !== undefined) {
    lo = Date.UTC(+y!, +mo! - 1, 1);
    next = Date.UTC(+y!, +mo!, 1);
  } else {
    lo = Date.UTC(+y!, 0, 1);
    next = Date.UTC(+y! + 1, 0, 1);
  }
  if (Number.isNaN(lo) || Number.isNaN(next)) return undefined;
  return [new Date(lo).toISOString(), new Date(next - 1).toISOString()];
}

/** A month 01-12 and a day that exists in it: Date would silently roll "2024-02-30" over to March. */
function isCalendarDate(year: number, month: string | undefined, day: string | undefined): boolean {
  if (month === undefined) return true;
  if (+month < 1 || +month > 12) return false;
  if (day === undefined) return true;
  return +day >= 1 && +day <= new Date(Date.UTC(year, +month, 0)).getUTCDate();
}

/** "Patient/123", "Patient/123/_history/2" or an absolute URL ending so → [type, id]. */
export function parseReference(ref: string): [string, string] | undefined {
  const m = /(?:^|\/)([A-Z][A-Za-z]+)\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(ref);
  return m ? [m[1]!, m[2]!] : undefined;
}

type Obj = Record<string, unknown>;
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function addToken(rows: IndexRows, code: string, tv: TypedValue): void {
  const v = tv.value as unknown;
  switch (tv.type) {
    case 'CodeableConcept':
      for (const c of ((v as Obj).coding as Obj[] | undefined) ?? []) addCoding(rows, code, c);
      return;
    case 'Coding':
      addCoding(rows, code, v as Obj);
      return;
    case 'Identifier': {
      const value = str((v as Obj).value);
      if (value) rows.token.push([code, str((v as Obj).system) ?? null, value]);
      return;
    }
    case 'ContactPoint': {
      const value = str((v as Obj).value);
      if (value) rows.token.push([code, str((v as Obj).system) ?? null, value]);
      return;
    }
    case 'boolean':
      rows.token.push([code, null, String(v)]);
      return;
    default:
      if (typeof v === 'string' && v !== '') rows.token.push([code, null, v]);
  }
}

function addCoding(rows: IndexRows, code: string, c: Obj): void {
  const value = str(c.code);
  if (value) rows.token.push([code, str(c.system) ?? null, value]);
}

const STRING_PARTS: Record<string, string[]> = {
  HumanName: ['text', 'family', 'given', 'prefix', 'suffix'],
  Address: ['text', 'line', 'city', 'district', 'state', 'postalCode', 'country'],
};

function addString(rows: IndexRows, code: string, tv: TypedValue): void {
  const v = tv.value as unknown;
  const parts = STRING_PARTS[tv.type];
  if (parts) {
    for (const p of parts) {
      const field = (v as Obj)[p];
      for (const s of Array.isArray(field) ? field : [field]) {
        if (typeof s === 'string' && s !== '') rows.string.push([code, normalizeString(s), s]);
      }
    }
    return;
  }
  if (typeof v === 'string' && v !== '') rows.string.push([code, normalizeString(v), v]);
}

function addDate(rows: IndexRows, code: string, tv: TypedValue): void {
  const v = tv.value as unknown;
  if (tv.type === 'Period') {
    const start = str((v as Obj).start);
    const end = str((v as Obj).end);
    const lo = start ? dateRange(start)?.[0] : undefined;
    const hi = end ? dateRange(end)?.[1] : undefined;
    if (lo || hi) rows.date.push([code, lo ?? '-infinity', hi ?? 'infinity']);
    return;
  }
  if (tv.type === 'Timing') {
    for (const e of ((v as Obj).event as string[] | undefined) ?? []) {
      const r = dateRange(e);
      if (r) rows.date.push([code, r[0], r[1]]);
    }
    return;
  }
  if (typeof v === 'string') {
    const r = dateRange(v);
    if (r) rows.date.push([code, r[0], r[1]]);
  }
}

function addReference(rows: IndexRows, code: string, tv: TypedValue): void {
  const v = tv.value as unknown;
  const ref = typeof v === 'string' ? v : str((v as Obj).reference);
  if (!ref) return;
  const parsed = parseReference(ref);
  if (parsed) rows.reference.push([code, parsed[0], parsed[1], `${parsed[0]}/${parsed[1]}`]);
  else rows.reference.push([code, null, null, ref]);
}

function addQuantity(rows: IndexRows, code: string, tv: TypedValue): void {
  const v = tv.value as Obj;
  if (typeof v?.value !== 'number') return;
  rows.quantity.push([code, String(v.value), str(v.system) ?? null, str(v.code) ?? str(v.unit) ?? null]);
}

/**
 * Rows of resources already indexed, by object: one write asks for them several times (access
 * checks, audit, the writer). Stored versions are never mutated, so an object's rows never change.
 */
const indexed = new WeakMap<Resource, IndexRows>();

/** Evaluates every R4 search parameter of the resource's type and returns the rows to index. */
export function indexResource(resource: Resource): IndexRows {
  let rows = indexed.get(resource);
  if (!rows) {
    rows = evaluateParams(resource);
    indexed.set(resource, rows);
  }
  return rows;
}

function evaluateParams(resource: Resource): IndexRows {
  const rows = emptyIndexRows();
  const input = [toTypedValue(resource)];
  for (const param of searchParamsOf(resource.resourceType).values()) {
    let values: TypedValue[];
    try {
      values = evalFhirPathTyped(param.expression, input);
    } catch {
      continue; // an expression this engine cannot evaluate indexes nothing rather than refusing the write
    }
    for (const tv of values) {
      if (tv.value === undefined || tv.value === null) continue;
      switch (param.kind) {
        case 'token':
          addToken(rows, param.code, tv);
          break;
        case 'string':
          addString(rows, param.code, tv);
          break;
        case 'date':
          addDate(rows, param.code, tv);
          break;
        case 'reference':
          addReference(rows, param.code, tv);
          break;
        case 'quantity':
          addQuantity(rows, param.code, tv);
          break;
        case 'number':
          if (typeof tv.value === 'number') rows.number.push([param.code, String(tv.value)]);
          break;
        case 'uri':
          if (typeof tv.value === 'string' && tv.value !== '') rows.uri.push([param.code, tv.value]);
          break;
      }
    }
  }
  return rows;
}
