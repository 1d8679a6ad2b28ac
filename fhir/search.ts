import { searchParam, isSupportedType, type IndexedParam } from './definitions.js';
import { compartmentParams, readCondition, type Scope } from './access-policy.js';
import { badRequest, notSupported } from './errors.js';
import { dateRange, normalizeString, parseReference } from './indexer.js';

/** Collects positional SQL parameters ($1, $2…) while a query is assembled. */
export class SqlArgs {
  readonly values: unknown[] = [];
  add(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

export type Direction = 'asc' | 'desc';
export interface SortKey {
  /** SQL expression over alias r; never NULL-safe by itself. */
  expr: string;
  dir: Direction;
  /** The search parameter sorted on (absent for _id and _lastUpdated). */
  param?: IndexedParam;
}

export interface IncludeSpec {
  sourceType: string;
  param: IndexedParam;
  targetType?: string;
}

export interface ParsedSearch {
  type: string;
  where: string[];
  sort: SortKey[];
  count: number;
  total: 'none' | 'accurate' | 'estimate';
  summaryCount: boolean;
  includes: IncludeSpec[];
  revincludes: IncludeSpec[];
  cursor?: unknown[];
  /** Set when the search is restricted to one patient's compartment (subject=Patient/x, patient=x). */
  patientId?: string;
  /** The query pairs that define the result set (for self/next links). */
  canonical: [string, string][];
}

export const DEFAULT_COUNT = 20;
export const MAX_COUNT = 1000;

const CONTROL_PARAMS = new Set(['_count', '_sort', '_include', '_revinclude', '_total', '_cursor', '_format', '_summary', '_pretty']);

const PREFIXES = ['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb'] as const;
type Prefix = (typeof PREFIXES)[number];

function splitPrefix(value: string): [Prefix, string] {
  const p = value.slice(0, 2);
  if ((PREFIXES as readonly string[]).includes(p) && /^[\d-]/.test(value.slice(2))) return [p as Prefix, value.slice(2)];
  if (/^(ap)/.test(value)) throw notSupported(`prefix "ap" is not supported (supported: ${PREFIXES.join(', ')})`);
  return ['eq', value];
}

/**
 * SQL for "range [lo, hi] of the resource compares to [plo, phi] of the parameter". The bounds are
 * passed as functions so that only the SQL arguments actually used are added (PostgreSQL rejects
 * arguments it cannot type).
 */
function rangeCondition(prefix: Prefix, lo: string, hi: string, plo: () => string, phi: () => string): string {
  switch (prefix) {
    case 'eq':
      return `(${lo} >= ${plo()} AND ${hi} <= ${phi()})`;
    case 'ne':
      return `NOT (${lo} >= ${plo()} AND ${hi} <= ${phi()})`;
    case 'gt':
      return `${hi} > ${phi()}`;
    case 'lt':
      return `${lo} < ${plo()}`;
    case 'ge':
      return `${hi} >= ${plo()}`;
    case 'le':
      return `${lo} <= ${phi()}`;
    case 'sa':
      return `${lo} > ${phi()}`;
    case 'eb':
      return `${hi} < ${plo()}`;
  }
}

function parseDateValue(name: string, raw: string): [Prefix, string, string] {
  const [prefix, v] = splitPrefix(raw);
  const range = dateRange(v);
  if (!range) throw badRequest(`invalid date "${raw}" for search parameter ${name}`, [name]);
  return [prefix, range[0], range[1]];
}

/** Implicit precision of a decimal ("5.4" means [5.35, 5.45)). */
function numberRange(name: string, raw: string): [Prefix, string, string, string] {
  const [prefix, v] = splitPrefix(raw);
  if (!/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(v)) throw badRequest(`invalid number "${raw}" for search parameter ${name}`, [name]);
  const decimals = v.includes('.') && !/[eE]/.test(v) ? v.split('.')[1]!.length : 0;
  const half = 0.5 * 10 ** -decimals;
  const n = Number(v);
  return [prefix, v, String(n - half), String(n + half)];
}

function numberCondition(col: string, prefix: Prefix, args: SqlArgs, v: string, lo: string, hi: string): string {
  const a = (x: string) => `${args.add(x)}::numeric`;
  switch (prefix) {
    case 'eq':
      return `(${col} >= ${a(lo)} AND ${col} < ${a(hi)})`;
    case 'ne':
      return `NOT (${col} >= ${a(lo)} AND ${col} < ${a(hi)})`;
    case 'gt':
    case 'sa':
      return `${col} > ${a(v)}`;
    case 'lt':
    case 'eb':
      return `${col} < ${a(v)}`;
    case 'ge':
      return `${col} >= ${a(v)}`;
    case 'le':
      return `${col} <= ${a(v)}`;
  }
}

function escapeLike(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** Splits on commas not escaped by a backslash (FHIR's OR separator). */
function splitOr(value: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\' && i + 1 < value.length) {
      current += value[++i];
    } else if (c === ',') {
      parts.push(current);
      current = '';
    } else current += c;
  }
  parts.push(current);
  return parts;
}

const owner = (alias: string, t: string) => `${t}.resource_type = ${alias}.resource_type AND ${t}.id = ${alias}.id`;

let aliasCounter = 0;
const nextAlias = (p: string) => `${p}${++aliasCounter % 1_000_000}`;

/** Condition (over `alias`) for one parameter name and one value of the query. */
function paramCondition(type: string, name: string, rawValue: string, alias: string, args: SqlArgs, scope: Scope | undefined): string {
  // Chaining: subject:Patient.identifier=… (one level)
  const dot = name.indexOf('.');
  if (dot > 0) return chainCondition(type, name.slice(0, dot), name.slice(dot + 1), rawValue, alias, args, scope);

  const [code, modifier] = name.split(':', 2) as [string, string | undefined];

  if (code === '_id') {
    if (modifier === 'missing') return rawValue === 'true' ? 'false' : 'true';
    if (modifier) throw notSupported(`modifier :${modifier} is not supported on _id`);
    const ids = splitOr(rawValue);
    return `${alias}.id = ANY(${args.add(ids)}::text[])`;
  }
  if (code === '_lastUpdated') {
    if (modifier) throw notSupported(`modifier :${modifier} is not supported on _lastUpdated`);
    const ors = splitOr(rawValue).map((v) => {
      const [prefix, lo, hi] = parseDateValue(name, v);
      const col = `${alias}.last_updated`;
      return rangeCondition(prefix, col, col, () => `${args.add(lo)}::timestamptz`, () => `${args.add(hi)}::timestamptz`);
    });
    return `(${ors.join(' OR ')})`;
  }

  const param = searchParam(type, code);
  if (!param) throw badRequest(`unknown search parameter "${code}" for ${type}`, [code]);

  if (modifier === 'missing') {
    if (rawValue !== 'true' && rawValue !== 'false') throw badRequest(`:missing takes true or false, not "${rawValue}"`, [name]);
    const t = nextAlias('m');
    const exists = `EXISTS (SELECT 1 FROM sp_${param.kind} ${t} WHERE ${owner(alias, t)} AND ${t}.code = ${args.add(code)})`;
    return rawValue === 'true' ? `NOT ${exists}` : exists;
  }

  const negate = modifier === 'not';
  if (negate && param.kind !== 'token') throw notSupported(`modifier :not is only supported on token parameters, not on ${code}`);
  checkModifier(param, modifier);

  const t = nextAlias('s');
  const ors = splitOr(rawValue).map((v) => valueCondition(param, modifier, v, t, args, name));
  const sql = `EXISTS (SELECT 1 FROM sp_${param.kind} ${t} WHERE ${owner(alias, t)} AND ${t}.code = ${args.add(code)} AND (${ors.join(' OR ')}))`;
  return negate ? `NOT ${sql}` : sql;
}

/** The one patient a search is restricted to, if its filters pin it (subject=Patient/x, patient=x). */
export function pinnedPatient(type: string, pairs: [string, string][]): string | undefined {
  for (const [name, value] of pairs) {
    const id = patientOfFilter(type, name, value);
    if (id) return id;
  }
  return undefined;
}

/** The patient a filter pins the search to: subject=Patient/x, patient=x, subject:Patient=x. */
function patientOfFilter(type: string, name: string, value: string): string | undefined {
  const [code, modifier] = name.split(':', 2) as [string, string | undefined];
  if (value.includes(',') || (modifier && modifier !== 'Patient')) return undefined;
  const param = searchParam(type, code);
  if (param?.kind !== 'reference' || !compartmentParams(type).includes(code)) return undefined;
  const parsed = parseReference(value);
  if (parsed) return parsed[0] === 'Patient' ? parsed[1] : undefined;
  const onlyPatients = modifier === 'Patient' || (param.targets.length === 1 && param.targets[0] === 'Patient');
  return onlyPatients && /^[A-Za-z0-9\-.]{1,64}$/.test(value) ? value : undefined;
}

/** The instants a date condition can match at all: [lower, upper] (null = unbounded). */
function dateBounds(prefix: Prefix, plo: string, phi: string): [string | null, string | null] {
  switch (prefix) {
    case 'eq':
      return [plo, phi];
    case 'gt':
    case 'sa':
    case 'ge':
      return [prefix === 'ge' ? plo : phi, null];
    case 'lt':
    case 'eb':
    case 'le':
      return [null, prefix === 'le' ? phi : plo];
    case 'ne':
      return [null, null];
  }
}

/**
 * All single-valued conditions on one date parameter, tested against the same indexed value. The
 * overlap test (&&) with the intersection of their bounds lets the GiST index on the value's range
 * find the candidates of "a week of heart rates" among millions of rows.
 */
function dateRangeCondition(name: string, values: string[], alias: string, args: SqlArgs): string {
  const t = nextAlias('d');
  let lower: string | null = null;
  let upper: string | null = null;
  const tests = values.map((v) => {
    const [prefix, plo, phi] = parseDateValue(name, v);
    const [l, u] = dateBounds(prefix, plo, phi);
    if (l !== null && (lower === null || l > lower)) lower = l;
    if (u !== null && (upper === null || u < upper)) upper = u;
    return rangeCondition(prefix, `${t}.lo`, `${t}.hi`, () => `${args.add(plo)}::timestamptz`, () => `${args.add(phi)}::timestamptz`);
  });
  if (lower !== null || upper !== null) {
    tests.push(`tstzrange(${t}.lo, ${t}.hi, '[]') && tstzrange(${args.add(lower)}::timestamptz, ${args.add(upper)}::timestamptz, '[]')`);
  }
  return `EXISTS (SELECT 1 FROM sp_date ${t} WHERE ${owner(alias, t)} AND ${t}.code = ${args.add(name)} AND ${tests.join(' AND ')})`;
}

const ALLOWED_MODIFIERS: Record<string, string[]> = {
  token: ['not'],
  string: ['exact', 'contains'],
  uri: ['below'],
  reference: [],
  date: [],
  number: [],
  quantity: [],
};

function checkModifier(param: IndexedParam, modifier: string | undefined): void {
  if (!modifier) return;
  if (param.kind === 'reference' && isSupportedType(modifier)) return;
  if (!ALLOWED_MODIFIERS[param.kind]!.includes(modifier)) {
    throw notSupported(`modifier :${modifier} is not supported on ${param.kind} parameter ${param.code}`);
  }
}

function valueCondition(param: IndexedParam, modifier: string | undefined, v: string, t: string, args: SqlArgs, name: string): string {
  switch (param.kind) {
    case 'token': {
      const bar = v.indexOf('|');
      if (bar < 0) return `${t}.value = ${args.add(v)}`;
      const system = v.slice(0, bar);
      const value = v.slice(bar + 1);
      const sys = system === '' ? `${t}.system IS NULL` : `${t}.system = ${args.add(system)}`;
      return value === '' ? sys : `(${sys} AND ${t}.value = ${args.add(value)})`;
    }
    case 'string': {
      if (modifier === 'exact') return `${t}.exact = ${args.add(v)}`;
      const norm = escapeLike(normalizeString(v));
      return modifier === 'contains' ? `${t}.norm LIKE ${args.add(`%${norm}%`)}` : `${t}.norm LIKE ${args.add(`${norm}%`)}`;
    }
    case 'uri':
      return modifier === 'below' ? `${t}.value LIKE ${args.add(`${escapeLike(v)}%`)}` : `${t}.value = ${args.add(v)}`;
    case 'date': {
      const [prefix, lo, hi] = parseDateValue(name, v);
      return rangeCondition(prefix, `${t}.lo`, `${t}.hi`, () => `${args.add(lo)}::timestamptz`, () => `${args.add(hi)}::timestamptz`);
    }
    case 'number': {
      const [prefix, n, lo, hi] = numberRange(name, v);
      return numberCondition(`${t}.value`, prefix, args, n, lo, hi);
    }
    case 'quantity': {
      const [num, system, unit] = v.split('|') as [string, string | undefined, string | undefined];
      const [prefix, n, lo, hi] = numberRange(name, num);
      const parts = [numberCondition(`${t}.value`, prefix, args, n, lo, hi)];
      if (system) parts.push(`${t}.system = ${args.add(system)}`);
      if (unit) parts.push(`${t}.unit = ${args.add(unit)}`);
      return `(${parts.join(' AND ')})`;
    }
    case 'reference': {
      const targetType = modifier && isSupportedType(modifier) ? modifier : undefined;
      const parsed = parseReference(v);
      if (parsed) {
        if (targetType && parsed[0] !== targetType) return 'false';
        return `${t}.ref = ${args.add(`${parsed[0]}/${parsed[1]}`)}`;
      }
      if (/^[A-Za-z0-9\-.]{1,64}$/.test(v)) {
        const types = targetType ? [targetType] : param.targets;
        return `${t}.ref = ANY(${args.add(types.map((ty) => `${ty}/${v}`))}::text[])`;
      }
      return `${t}.ref = ${args.add(v)}`;
    }
  }
}

function chainCondition(type: string, left: string, right: string, value: string, alias: string, args: SqlArgs, scope: Scope | undefined): string {
  if (right.includes('.')) throw notSupported(`only one level of chaining is supported: "${left}.${right}"`);
  const [code, modifier] = left.split(':', 2) as [string, string | undefined];
  const param = searchParam(type, code);
  if (!param || param.kind !== 'reference') throw badRequest(`"${code}" is not a reference parameter of ${type}; it cannot be chained`, [left]);
  let targets: string[] = param.targets.filter(isSupportedType);
  if (modifier) {
    if (!targets.includes(modifier)) throw badRequest(`${type}.${code} cannot point to ${modifier}`, [left]);
    targets = [modifier];
  }
  if (targets.length === 0) throw badRequest(`${type}.${code} has no target type this server stores`, [left]);
  if (!modifier) {
    // Without a :Type modifier, chain only into the target types that have the parameter
    // (Observation.subject may be a Patient or a Device; only Patient has "name").
    const chained = right.split(':', 1)[0]!;
    targets = targets.filter((target) => chained === '_id' || chained === '_lastUpdated' || searchParam(target, chained));
    if (targets.length === 0) throw badRequest(`no target type of ${type}.${code} has a search parameter "${chained}"`, [`${left}.${right}`]);
  }
  const rf = nextAlias('c');
  const per = targets.map((target) => {
    const r2 = nextAlias('t');
    const inner = paramCondition(target, right, value, r2, args, scope);
    // The chained-to resources pass the caller's access rule too: a chain cannot probe other teams' data.
    const access = readCondition(target, scope, r2, args);
    return `(${rf}.target_type = ${args.add(target)} AND ${rf}.target_id IN (SELECT ${r2}.id FROM resource ${r2} WHERE ${r2}.resource_type = ${args.add(target)} AND NOT ${r2}.deleted AND ${inner}${access ? ` AND ${access}` : ''}))`;
  });
  return `EXISTS (SELECT 1 FROM sp_reference ${rf} WHERE ${owner(alias, rf)} AND ${rf}.code = ${args.add(code)} AND (${per.join(' OR ')}))`;
}

const SORT_COLUMN: Record<string, string> = {
  token: 'value',
  string: 'norm',
  uri: 'value',
  reference: 'ref',
  date: 'lo',
  number: 'value',
  quantity: 'value',
};

function sortKey(type: string, spec: string, args: SqlArgs): SortKey {
  const dir: Direction = spec.startsWith('-') ? 'desc' : 'asc';
  const code = spec.replace(/^-/, '');
  if (code === '_id') return { expr: 'r.id', dir };
  if (code === '_lastUpdated') return { expr: 'r.last_updated', dir };
  const param = searchParam(type, code);
  if (!param) throw badRequest(`cannot sort on unknown parameter "${code}" of ${type}`, ['_sort']);
  const col = param.kind === 'date' && dir === 'desc' ? 'hi' : SORT_COLUMN[param.kind]!;
  const agg = dir === 'asc' ? 'min' : 'max';
  return {
    expr: `(SELECT ${agg}(k.${col}) FROM sp_${param.kind} k WHERE k.resource_type = r.resource_type AND k.id = r.id AND k.code = ${args.add(code)})`,
    dir,
    param,
  };
}

function parseInclude(value: string, rev: boolean, searchType: string): IncludeSpec {
  const [sourceType, code, targetType] = value.split(':') as [string, string | undefined, string | undefined];
  const what = rev ? '_revinclude' : '_include';
  if (!code || !isSupportedType(sourceType)) throw badRequest(`${what}=${value}: expected Type:parameter[:TargetType]`, [what]);
  if (!rev && sourceType !== searchType) throw badRequest(`_include=${value}: the source type must be ${searchType}`, [what]);
  const param = searchParam(sourceType, code);
  if (!param || param.kind !== 'reference') throw badRequest(`${what}=${value}: ${code} is not a reference parameter of ${sourceType}`, [what]);
  if (targetType && !isSupportedType(targetType)) throw badRequest(`${what}=${value}: unknown target type ${targetType}`, [what]);
  return { sourceType, param, targetType };
}

/**
 * Turns the query pairs of a search into SQL pieces over `resource r`. `scope` (the caller's
 * reach) applies to what chained parameters look into; the caller adds it for `r` itself.
 */
export function parseSearch(type: string, pairs: [string, string][], args: SqlArgs, scope?: Scope): ParsedSearch {
  const parsed: ParsedSearch = {
    type,
    where: [],
    sort: [],
    count: DEFAULT_COUNT,
    total: 'none',
    summaryCount: false,
    includes: [],
    revincludes: [],
    canonical: [],
  };
  // date=ge…&date=lt… on one parameter: one range over one indexed value, not two independent tests.
  const dateRanges = new Map<string, string[]>();
  for (const [name, value] of pairs) {
    const base = name.split(':')[0]!;
    if (CONTROL_PARAMS.has(base)) {
      switch (base) {
        case '_count': {
          const n = Number(value);
          if (!Number.isInteger(n) || n < 0) throw badRequest(`_count must be a non-negative integer, not "${value}"`, ['_count']);
          parsed.count = Math.min(n, MAX_COUNT);
          parsed.canonical.push([name, value]);
          break;
        }
        case '_sort':
          for (const s of value.split(',').filter(Boolean)) parsed.sort.push(sortKey(type, s, args));
          parsed.canonical.push([name, value]);
          break;
        case '_total':
          if (value !== 'none' && value !== 'accurate' && value !== 'estimate') throw badRequest(`_total must be none, estimate or accurate`, ['_total']);
          parsed.total = value;
          parsed.canonical.push([name, value]);
          break;
        case '_summary':
          if (value !== 'count') throw notSupported(`_summary=${value} is not supported (only _summary=count)`);
          parsed.summaryCount = true;
          break;
        case '_include':
        case '_revinclude':
          if (name.includes(':iterate') || name.includes(':recurse')) throw notSupported(`${name} is not supported: one level of includes only`);
          (base === '_include' ? parsed.includes : parsed.revincludes).push(parseInclude(value, base === '_revinclude', type));
          parsed.canonical.push([name, value]);
          break;
        case '_cursor':
          parsed.cursor = decodeCursor(value);
          break;
        default:
          break; // _format, _pretty: presentation only
      }
      continue;
    }
    if (value === '') continue; // FHIR: an empty parameter value is ignored
    parsed.canonical.push([name, value]);
    parsed.patientId ??= patientOfFilter(type, name, value);
    const dateParam = searchParam(type, name);
    if (dateParam?.kind === 'date' && !value.includes(',')) {
      (dateRanges.get(name) ?? dateRanges.set(name, []).get(name)!).push(value);
      continue;
    }
    parsed.where.push(paramCondition(type, name, value, 'r', args, scope));
  }
  for (const [name, values] of dateRanges) parsed.where.push(dateRangeCondition(name, values, 'r', args));
  return parsed;
}

/** The pairs of a query that filter the result set, without those for paging, sorting, includes or totals. */
export function filterPairs(pairs: [string, string][]): [string, string][] {
  return pairs.filter(([name]) => !CONTROL_PARAMS.has(name.split(':')[0]!));
}

export function encodeCursor(values: unknown[]): string {
  return Buffer.from(JSON.stringify(values)).toString('base64url');
}

function decodeCursor(value: string): unknown[] {
  try {
    const v = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
    if (Array.isArray(v)) return v;
  } catch {
    // fall through
  }
  throw badRequest('invalid _cursor: use the next link exactly as the server returned it', ['_cursor']);
}

/**
 * Keyset condition "the row comes after the cursor" for the ordering
 * [for each key sN: (sN IS NULL) asc, sN dir], then id asc, over the columns of subquery `f`.
 * Keyset paging, not offsets, so that writes between pages neither skip nor repeat results.
 */
export function cursorCondition(sort: SortKey[], cursor: unknown[], args: SqlArgs): string {
  const ors: string[] = [];
  const eqs: string[] = [];
  sort.forEach((key, i) => {
    const col = `f.s${i}`;
    const v = cursor[i];
    if (v === null || v === undefined) {
      // The cursor row sorts among the NULLs of this key: only NULLs can follow or tie.
      eqs.push(`${col} IS NULL`);
      return;
    }
    // Non-null rows come before null rows, so every NULL follows.
    ors.push([...eqs, `${col} IS NULL`].join(' AND '));
    const p = args.add(v);
    ors.push([...eqs, `${col} ${key.dir === 'asc' ? '>' : '<'} ${p}`].join(' AND '));
    eqs.push(`${col} = ${p}`);
  });
  ors.push([...eqs, `f.id > ${args.add(String(cursor[sort.length]))}`].join(' AND '));
  return `(${ors.map((o) => `(${o})`).join(' OR ')})`;
}
