import { randomUUID } from 'node:crypto';
import type { Bundle, BundleEntry, Resource } from '@medplum/fhirtypes';
import { SYSTEM, type AccessContext } from './access.js';
import { AccessDenied, canRead, checkWrite, compartmentParams, hidden, patientsOf, readCondition, scopeOf, type Scope } from './access-policy.js';
import { auditEvent, type AuditFacts, type Interaction } from './audit.js';
import { actStartedBy, checkConsent } from './consent.js';
import type { Database, SqlExecutor } from './db.js';
import { FhirError, badRequest, gone, notFound, preconditionFailed } from './errors.js';
import { applyJsonPatch, type JsonPatchOperation } from './patch.js';
import { SqlArgs, cursorCondition, encodeCursor, filterPairs, parseSearch, pinnedPatient, type ParsedSearch } from './search.js';
import { checkId, checkType, validate } from './validation.js';
import { prepareBundle, responseEntry, type PreparedEntry } from './bundles.js';
import { writeVersions, type PendingVersion } from './writer.js';

export interface WriteResult {
  resource: Resource;
  /** True when a new resource came into being (201), false for an update or a matched condition (200). */
  created: boolean;
}

export interface HistoryOptions {
  count?: number;
  since?: string;
}

/** A write to make inside one database transaction (a REST interaction or a bundle entry). */
export type WriteOp =
  | { kind: 'create'; resource: Resource; ifNoneExist?: string; fullUrl?: string }
  | { kind: 'update'; type: string; id?: string; condition?: string; resource: Resource; ifMatch?: string; fullUrl?: string }
  | { kind: 'patch'; type: string; id: string; patch: JsonPatchOperation[]; ifMatch?: string }
  | { kind: 'delete'; type: string; id: string };

export interface OpResult {
  status: number;
  resource?: Resource;
  type: string;
  id: string;
  versionId?: number;
  lastModified?: string;
}

interface CurrentRow {
  version_id: number;
  deleted: boolean;
  content: string | null;
  /** The stored version, parsed. */
  resource?: Resource;
}

/** An AuditEvent as a new version to store alongside other writes. */
function auditVersion(ctx: AccessContext, facts: AuditFacts, now = new Date().toISOString()): PendingVersion {
  const event = auditEvent(ctx, facts, now);
  const id = event.id!;
  return {
    type: 'AuditEvent',
    id,
    versionId: 1,
    lastUpdated: now,
    action: 'create',
    resource: { ...event, meta: { versionId: '1', lastUpdated: now } },
    replacesIndex: false,
  };
}

interface Match {
  id: string;
  versionId: number;
  lastUpdated: string;
}

type Row = { resource_type: string; id: string; version_id: number; last_updated: string; deleted: boolean; content: string | null };

/**
 * The FHIR store: every interaction is one function over SQL that runs unchanged on PostgreSQL and
 * PGlite. The REST layer (rest.ts) only translates HTTP to these calls.
 */
export class FhirRepository {
  constructor(
    readonly db: Database,
    /** Absolute base URL (…/fhir/R4) used in fullUrl and paging links. */
    readonly baseUrl: string,
  ) {}

  // ---------------------------------------------------------------- access and audit

  private readonly scopes = new WeakMap<AccessContext, Promise<Scope>>();

  /** The caller's reach, computed once per request (the context object lives for one request). */
  private scope(ctx: AccessContext, exec: SqlExecutor): Promise<Scope | undefined> {
    if (ctx.kind === 'system') return Promise.resolve(undefined);
    let scope = this.scopes.get(ctx);
    if (!scope) {
      scope = scopeOf(exec, ctx);
      this.scopes.set(ctx, scope);
    }
    return scope;
  }

  /** The caller's reach among the given patients only (not cached: it answers one question). */
  private reach(ctx: AccessContext, exec: SqlExecutor, patientIds: string[]): Promise<Scope | undefined> {
    return ctx.kind === 'system' ? Promise.resolve(undefined) : scopeOf(exec, ctx, patientIds);
  }

  /** Records one access by a professional; the hub's own work is not audited. */
  private async audit(ctx: AccessContext, facts: AuditFacts, exec: SqlExecutor, scope?: Scope): Promise<void> {
    if (ctx.kind === 'system') return;
    // Access through break-the-glass is marked as such (purpose BTG) in the trail.
    const emergency = new Set(scope?.emergencyPatientIds ?? []);
    await writeVersions(exec, [auditVersion(ctx, { ...facts, emergency: facts.patientIds.some((p) => emergency.has(p)) })]);
  }

  /** Patient ids of a row, as a SQL column (for the audit trail of reads and searches). */
  private patientsColumn(type: string, alias: string, args: SqlArgs): string {
    if (type === 'Patient') return `ARRAY[${alias}.id]`;
    const params = compartmentParams(type);
    if (params.length === 0) return `ARRAY[]::text[]`;
    return `ARRAY(SELECT pc.target_id FROM sp_reference pc WHERE pc.resource_type = ${alias}.resource_type AND pc.id = ${alias}.id
              AND pc.code = ANY(${args.add(params)}::text[]) AND pc.target_type = 'Patient')`;
  }

  /**
   * Emergency "break-the-glass" access of a regulator to one patient: time-limited, with the
   * stated reason, audited (purpose BTG) and flagged on the patient for the care team.
   */
  async breakTheGlass(ctx: AccessContext, patientId: string, reason: string, minutes: number): Promise<{ grantId: string; expiresAt: string }> {
    if (ctx.kind !== 'user' || ctx.role !== 'regulator') {
      throw new AccessDenied(403, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'forbidden', diagnostics: 'only a regulator can open emergency access' }] });
    }
    checkId(patientId);
    const now = new Date();
    const expiresAt = new Date(now.getTime() + minutes * 60_000).toISOString();
    const grantId = randomUUID();
    await this.db.transaction(async (tx) => {
      const exists = await tx.query('SELECT 1 FROM resource WHERE resource_type = $1 AND id = $2 AND NOT deleted', ['Patient', patientId]);
      if (exists.length === 0) throw notFound(`Patient/${patientId} not found`);
      await tx.query(
        `INSERT INTO access_grant (id, account_id, practitioner_id, patient_id, reason, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
        [grantId, ctx.accountId, ctx.practitionerId ?? null, patientId, reason, expiresAt],
      );
      const stamp = now.toISOString();
      const flagId = randomUUID();
      const flag: Resource = {
        resourceType: 'Flag',
        id: flagId,
        meta: { versionId: '1', lastUpdated: stamp },
        status: 'active',
        category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/flag-category', code: 'admin' }] }],
        code: {
          coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'BTG', display: 'break the glass' }],
          text: `Accès d'urgence ouvert par ${ctx.username} : ${reason}`,
        },
        subject: { reference: `Patient/${patientId}` },
        period: { start: stamp, end: expiresAt },
        ...(ctx.practitionerId ? { author: { reference: `Practitioner/${ctx.practitionerId}` } } : {}),
      };
      await writeVersions(tx, [
        { type: 'Flag', id: flagId, versionId: 1, lastUpdated: stamp, action: 'create', resource: flag, replacesIndex: false },
        auditVersion(ctx, { interaction: 'operation', resources: [`Flag/${flagId}`], patientIds: [patientId], outcome: 'success', emergency: true, description: `break-the-glass: ${reason}` }, stamp),
      ]);
    });
    return { grantId, expiresAt };
  }

  /** Stores an AuditEvent made by the hub itself (logins, logouts). */
  async recordAuditEvent(event: Resource & { resourceType: 'AuditEvent' }): Promise<void> {
    const now = new Date().toISOString();
    const id = event.id ?? randomUUID();
    await writeVersions(this.db, [
      { type: 'AuditEvent', id, versionId: 1, lastUpdated: now, action: 'create', resource: { ...event, id, meta: { versionId: '1', lastUpdated: now } }, replacesIndex: false },
    ]);
  }

  // ---------------------------------------------------------------- reads

  async read(ctx: AccessContext, type: string, id: string, exec: SqlExecutor = this.db): Promise<Resource> {
    checkType(type);
    checkId(id);
    const rows = await exec.query<Row>(
      `SELECT r.deleted, v.content FROM resource r
         JOIN resource_version v ON v.resource_type = r.resource_type AND v.id = r.id AND v.version_id = r.version_id
        WHERE r.resource_type = $1 AND r.id = $2`,
      [type, id],
    );
    const row = rows[0];
    if (!row) throw notFound(`${type}/${id} not found`);
    // Deleted resources are judged by the last version that had content.
    let content = row.content;
    if (row.deleted || !content) {
      const last = await exec.query<Row>(
        `SELECT content FROM resource_version WHERE resource_type = $1 AND id = $2 AND content IS NOT NULL ORDER BY version_id DESC LIMIT 1`,
        [type, id],
      );
      content = last[0]?.content ?? null;
    }
    const resource = content ? (JSON.parse(content) as Resource) : undefined;
    const patients = resource ? patientsOf(resource) : [];
    const reach = await this.reach(ctx, exec, patients);
    if (resource && !canRead(reach, resource)) {
      await this.audit(ctx, { interaction: 'read', resources: [`${type}/${id}`], patientIds: [], outcome: 'denied' }, exec);
      throw hidden(`${type}/${id}`);
    }
    if (row.deleted || !resource) throw gone(`${type}/${id} was deleted`);
    await this.audit(ctx, { interaction: 'read', resources: [`${type}/${id}`], patientIds: patients, outcome: 'success' }, exec, reach);
    return resource;
  }

  async vread(ctx: AccessContext, type: string, id: string, versionId: string): Promise<Resource> {
    checkType(type);
    checkId(id);
    const vid = Number(versionId);
    if (!Number.isInteger(vid) || vid < 1) throw notFound(`${type}/${id}/_history/${versionId} not found`);
    const rows = await this.db.query<Row>(
      'SELECT deleted, content FROM resource_version WHERE resource_type = $1 AND id = $2 AND version_id = $3',
      [type, id, vid],
    );
    const row = rows[0];
    if (!row) throw notFound(`${type}/${id}/_history/${versionId} not found`);
    // A deletion is judged by the version before it: whether it existed is not for every eye.
    let content = row.content;
    if (row.deleted || !content) {
      const before = await this.db.query<Row>(
        `SELECT content FROM resource_version WHERE resource_type = $1 AND id = $2 AND version_id < $3 AND content IS NOT NULL ORDER BY version_id DESC LIMIT 1`,
        [type, id, vid],
      );
      content = before[0]?.content ?? null;
    }
    const resource = content ? (JSON.parse(content) as Resource) : undefined;
    const reach = resource ? await this.reach(ctx, this.db, patientsOf(resource)) : undefined;
    if (resource && !canRead(reach, resource)) {
      await this.audit(ctx, { interaction: 'vread', resources: [`${type}/${id}`], patientIds: [], outcome: 'denied' }, this.db);
      throw hidden(`${type}/${id}/_history/${versionId}`);
    }
    if (row.deleted || !row.content || !resource) throw gone(`${type}/${id} version ${versionId} is a deletion`);
    await this.audit(ctx, { interaction: 'vread', resources: [`${type}/${id}`], patientIds: patientsOf(resource), outcome: 'success' }, this.db, reach);
    return resource;
  }

  /** Instance history (type and id) or type history (type only), newest first. */
  async history(ctx: AccessContext, type: string, id: string | undefined, options: HistoryOptions = {}): Promise<Bundle> {
    checkType(type);
    if (id) checkId(id);
    const scope = await this.scope(ctx, this.db);
    const count = Math.min(options.count ?? 50, 1000);
    const args: unknown[] = [type];
    let where = 'resource_type = $1';
    if (id) {
      args.push(id);
      where += ` AND id = $${args.length}`;
    }
    if (options.since) {
      args.push(options.since);
      where += ` AND last_updated >= $${args.length}::timestamptz`;
    }
    args.push(count);
    const rows = await this.db.query<Row>(
      `SELECT resource_type, id, version_id, to_json(last_updated) #>> '{}' AS last_updated, deleted, content
         FROM resource_version WHERE ${where}
        ORDER BY last_updated DESC, version_id DESC LIMIT $${args.length}`,
      args,
    );
    if (id && rows.length === 0) throw notFound(`${type}/${id} not found`);
    // A version is shown when the caller may read it; a deletion when they may read the resource.
    const readable = new Set<string>();
    const patients = new Set<string>();
    const shown = rows.filter((row) => {
      if (!row.content) return true;
      const resource = JSON.parse(row.content) as Resource;
      if (!canRead(scope, resource)) return false;
      readable.add(row.id);
      patientsOf(resource).forEach((p) => patients.add(p));
      return true;
    }).filter((row) => row.content || readable.has(row.id));
    if (id && shown.length === 0) {
      await this.audit(ctx, { interaction: 'history-instance', resources: [`${type}/${id}`], patientIds: [], outcome: 'denied' }, this.db);
      throw hidden(`${type}/${id}`);
    }
    await this.audit(
      ctx,
      { interaction: id ? 'history-instance' : 'history-type', resources: [...readable].map((r) => `${type}/${r}`), patientIds: [...patients], outcome: 'success' },
      this.db,
      scope,
    );
    return {
      resourceType: 'Bundle',
      type: 'history',
      entry: shown.map((row) => {
        const fullUrl = `${this.baseUrl}/${row.resource_type}/${row.id}`;
        if (row.deleted || !row.content) {
          return {
            fullUrl,
            request: { method: 'DELETE', url: `${row.resource_type}/${row.id}` },
            response: { status: '410 Gone', etag: `W/"${row.version_id}"`, lastModified: new Date(row.last_updated).toISOString() },
          };
        }
        const resource = JSON.parse(row.content) as Resource;
        return {
          fullUrl,
          resource,
          request: { method: row.version_id === 1 ? 'POST' : 'PUT', url: row.version_id === 1 ? row.resource_type : `${row.resource_type}/${row.id}` },
          response: { status: row.version_id === 1 ? '201 Created' : '200 OK', etag: `W/"${row.version_id}"`, lastModified: resource.meta?.lastUpdated },
        };
      }),
    };
  }

  // ---------------------------------------------------------------- search

  async search(ctx: AccessContext, type: string, pairs: [string, string][], exec: SqlExecutor = this.db): Promise<Bundle> {
    checkType(type);
    // A search pinned to one patient needs only that patient's reach (its rows all belong to them).
    const pin = pinnedPatient(type, pairs);
    const scope = pin ? await this.reach(ctx, exec, [pin]) : await this.scope(ctx, exec);
    const args = new SqlArgs();
    const parsed = parseSearch(type, pairs, args, scope);
    const access = readCondition(type, scope, 'r', args);
    const where = [`r.resource_type = ${args.add(type)}`, 'NOT r.deleted', ...parsed.where, ...(access ? [access] : [])];

    let total: number | undefined;
    if (parsed.total !== 'none' || parsed.summaryCount) {
      const countArgs = new SqlArgs();
      // Only the filters: parameters of sorting and paging would leave unused, untyped SQL arguments.
      const again = parseSearch(type, filterPairs(pairs), countArgs, scope);
      const countAccess = readCondition(type, scope, 'r', countArgs);
      const countWhere = [`r.resource_type = ${countArgs.add(type)}`, 'NOT r.deleted', ...again.where, ...(countAccess ? [countAccess] : [])];
      const rows = await exec.query<{ n: string }>(`SELECT count(*) AS n FROM resource r WHERE ${countWhere.join(' AND ')}`, countArgs.values);
      total = Number(rows[0]!.n);
    }
    if (parsed.summaryCount) {
      await this.audit(ctx, { interaction: 'search-type', resources: [], patientIds: [], outcome: 'success', query: `${type}?${new URLSearchParams(pairs)}` }, exec);
      return { resourceType: 'Bundle', type: 'searchset', total, link: [this.selfLink(type, parsed)] };
    }

    const keyCols = parsed.sort.map((k, i) => `${k.expr} AS s${i}`);
    const order = (alias: string) =>
      [...parsed.sort.flatMap((k, i) => [`(${alias}.s${i} IS NULL)`, `${alias}.s${i} ${k.dir.toUpperCase()}`]), `${alias}.id`].join(', ');
    const cursor = parsed.cursor ? `WHERE ${cursorCondition(parsed.sort, parsed.cursor, args)}` : '';
    const limit = args.add(parsed.count + 1);
    const sql = `
      SELECT q.*, v.content, ${this.patientsColumn(type, 'q', args)} AS patients FROM (
        SELECT f.* FROM (
          SELECT r.resource_type, r.id, r.version_id${keyCols.map((c) => `, ${c}`).join('')}
            FROM resource r WHERE ${where.join(' AND ')}
        ) f ${cursor}
        ORDER BY ${order('f')} LIMIT ${limit}
      ) q JOIN resource_version v ON v.resource_type = q.resource_type AND v.id = q.id AND v.version_id = q.version_id
      ORDER BY ${order('q')}`;
    const rows =
      parsed.count === 0
        ? []
        : usesPatientDateIndex(parsed)
          ? await this.patientDatePage(type, pairs, parsed, scope, exec)
          : await exec.query<Row & Record<string, unknown>>(sql, args.values);
    // Whose data was returned, for the audit trail (a column of the page query).
    const patientIds = new Set<string>();
    for (const row of rows.slice(0, parsed.count)) (row.patients as string[]).forEach((p) => patientIds.add(p));

    const page = rows.slice(0, parsed.count);
    const entries: BundleEntry[] = page.map((row) => ({
      fullUrl: `${this.baseUrl}/${row.resource_type}/${row.id}`,
      resource: JSON.parse(row.content!) as Resource,
      search: { mode: 'match' },
    }));
    const links = [this.selfLink(type, parsed)];
    if (rows.length > parsed.count && page.length > 0) {
      const last = page[page.length - 1]!;
      const cursorValues = [...parsed.sort.map((_, i) => last[`s${i}`] ?? null), last.id];
      links.push({ relation: 'next', url: this.pageUrl(type, parsed, encodeCursor(cursorValues)) });
    }
    const matched = page.map((r) => ({ type: r.resource_type, id: r.id }));
    const included = await this.included(parsed, matched, scope, exec);
    entries.push(...included);
    for (const e of included) patientsOf(e.resource!).forEach((p) => patientIds.add(p));
    await this.audit(
      ctx,
      {
        interaction: 'search-type',
        resources: entries.map((e) => `${e.resource!.resourceType}/${e.resource!.id}`),
        patientIds: [...patientIds],
        outcome: 'success',
        query: `${type}?${new URLSearchParams(pairs)}`,
      },
      exec,
      scope,
    );
    return { resourceType: 'Bundle', type: 'searchset', ...(total !== undefined ? { total } : {}), link: links, entry: entries };
  }

  /**
   * One page of a patient's resources newest first by a single-valued date ("latest vitals"): walks
   * the patient-keyed date index in order and stops after a page, whatever the patient's history
   * size. Resources it does not cover (no date, or in several patients' compartments) follow, as
   * resources without a sort value do in the general ordering.
   */
  private async patientDatePage(
    type: string,
    pairs: [string, string][],
    parsed: ParsedSearch,
    scope: Scope | undefined,
    exec: SqlExecutor,
  ): Promise<(Row & Record<string, unknown>)[]> {
    const code = parsed.sort[0]!.param!.code;
    const limit = parsed.count + 1;
    const build = () => {
      const args = new SqlArgs();
      const filters = parseSearch(type, pairs.filter(([name]) => !name.startsWith('_sort') && name !== '_cursor'), args, scope);
      const access = readCondition(type, scope, 'r', args);
      return { args, where: [`r.resource_type = ${args.add(type)}`, 'NOT r.deleted', ...filters.where, ...(access ? [access] : [])] };
    };
    const content = (args: SqlArgs, inner: string, order: string) => `
      SELECT q.*, v.content, ${this.patientsColumn(type, 'q', args)} AS patients FROM (${inner}) q
        JOIN resource_version v ON v.resource_type = q.resource_type AND v.id = q.id AND v.version_id = q.version_id
       ORDER BY ${order}`;
    const cursor = parsed.cursor;
    let rows: (Row & Record<string, unknown>)[] = [];
    if (!cursor || cursor[0] !== null) {
      const { args, where } = build();
      const c = cursor ? args.add(cursor[0]) : '';
      const upTo = cursor ? `AND k.hi <= ${c}::timestamptz` : '';
      const after = cursor ? `WHERE (k.hi < ${c}::timestamptz OR r.id > ${args.add(String(cursor[1]))})` : '';
      // The date index is walked newest first in a subquery kept apart (OFFSET 0), each date's
      // resource is filtered in a lateral join, and the walk stops once the page is full.
      rows = await exec.query(
        content(
          args,
          `SELECT r.resource_type, r.id, r.version_id, k.hi AS s0
             FROM (SELECT k.resource_type, k.id, k.hi FROM sp_date k
                    WHERE k.resource_type = ${args.add(type)} AND k.code = ${args.add(code)} AND k.patient = ${args.add(parsed.patientId)} ${upTo}
                    ORDER BY k.hi DESC OFFSET 0) k
             JOIN LATERAL (SELECT r.resource_type, r.id, r.version_id FROM resource r
                            WHERE r.resource_type = k.resource_type AND r.id = k.id AND ${where.join(' AND ')}) r ON true
            ${after}
            ORDER BY k.hi DESC, r.id LIMIT ${args.add(limit)}`,
          'q.s0 DESC, q.id',
        ),
        args.values,
      );
    }
    if (rows.length < limit) {
      const { args, where } = build();
      const after = cursor && cursor[0] === null ? `AND r.id > ${args.add(String(cursor[1]))}` : '';
      const rest = await exec.query<Row & Record<string, unknown>>(
        content(
          args,
          `SELECT r.resource_type, r.id, r.version_id, NULL::timestamptz AS s0 FROM resource r
            WHERE ${where.join(' AND ')} ${after}
              AND NOT EXISTS (SELECT 1 FROM sp_date k WHERE k.resource_type = r.resource_type AND k.id = r.id
                                AND k.code = ${args.add(code)} AND k.patient = ${args.add(parsed.patientId)})
            ORDER BY r.id LIMIT ${args.add(limit - rows.length)}`,
          'q.id',
        ),
        args.values,
      );
      rows = [...rows, ...rest];
    }
    return rows;
  }

  private selfLink(type: string, parsed: ParsedSearch) {
    return { relation: 'self', url: this.pageUrl(type, parsed) };
  }

  private pageUrl(type: string, parsed: ParsedSearch, cursor?: string): string {
    const q = new URLSearchParams(parsed.canonical);
    if (cursor) q.set('_cursor', cursor);
    const qs = q.toString();
    return `${this.baseUrl}/${type}${qs ? `?${qs}` : ''}`;
  }

  /** _include and _revinclude: one level, de-duplicated, never repeating a match. */
  private async included(
    parsed: ParsedSearch,
    matched: { type: string; id: string }[],
    scope: Scope | undefined,
    exec: SqlExecutor,
  ): Promise<BundleEntry[]> {
    if (matched.length === 0 || (parsed.includes.length === 0 && parsed.revincludes.length === 0)) return [];
    const seen = new Set(matched.map((m) => `${m.type}/${m.id}`));
    const wanted: [string, string][] = [];
    const want = (type: string, id: string) => {
      const key = `${type}/${id}`;
      if (!seen.has(key)) {
        seen.add(key);
        wanted.push([type, id]);
      }
    };
    const ids = matched.map((m) => m.id);
    for (const inc of parsed.includes) {
      const rows = await exec.query<{ target_type: string; target_id: string }>(
        `SELECT DISTINCT target_type, target_id FROM sp_reference
          WHERE resource_type = $1 AND id = ANY($2::text[]) AND code = $3 AND target_type IS NOT NULL
            ${inc.targetType ? 'AND target_type = $4' : ''}`,
        inc.targetType ? [parsed.type, ids, inc.param.code, inc.targetType] : [parsed.type, ids, inc.param.code],
      );
      for (const r of rows) want(r.target_type, r.target_id);
    }
    const refs = matched.map((m) => `${m.type}/${m.id}`);
    for (const rev of parsed.revincludes) {
      const rows = await exec.query<{ id: string }>(
        `SELECT DISTINCT id FROM sp_reference WHERE resource_type = $1 AND code = $2 AND ref = ANY($3::text[])`,
        [rev.sourceType, rev.param.code, refs],
      );
      for (const r of rows) want(rev.sourceType, r.id);
    }
    // Included resources pass the same access rule as matches: _include cannot reach other teams' data.
    const resources = await this.readMany(wanted, exec, scope);
    return resources.map((resource) => ({
      fullUrl: `${this.baseUrl}/${resource.resourceType}/${resource.id}`,
      resource,
      search: { mode: 'include' },
    }));
  }

  /** Current, non-deleted versions of the given resources that the scope may read (others are skipped). */
  private async readMany(keys: [string, string][], exec: SqlExecutor, scope: Scope | undefined): Promise<Resource[]> {
    const resources: Resource[] = [];
    for (const type of new Set(keys.map((k) => k[0]))) {
      const args = new SqlArgs();
      const ids = keys.filter((k) => k[0] === type).map((k) => k[1]);
      const access = readCondition(type, scope, 'r', args);
      const rows = await exec.query<Row>(
        `SELECT v.content FROM resource r
           JOIN resource_version v ON v.resource_type = r.resource_type AND v.id = r.id AND v.version_id = r.version_id
          WHERE r.resource_type = ${args.add(type)} AND r.id = ANY(${args.add(ids)}::text[]) AND NOT r.deleted${access ? ` AND ${access}` : ''}`,
        args.values,
      );
      resources.push(...rows.map((r) => JSON.parse(r.content!) as Resource));
    }
    return resources;
  }

  /**
   * Observation/$lastn: the latest `max` Observations per patient and code among those matching
   * the search parameters (patient/subject, category, code, date…).
   */
  async lastn(ctx: AccessContext, pairs: [string, string][], exec: SqlExecutor = this.db): Promise<Bundle> {
    let max = 1;
    const rest: [string, string][] = [];
    for (const [k, v] of pairs) {
      if (k === 'max') {
        max = Number(v);
        if (!Number.isInteger(max) || max < 1 || max > 1000) throw badRequest(`max must be an integer from 1 to 1000, not "${v}"`, ['max']);
      } else rest.push([k, v]);
    }
    const pin = pinnedPatient('Observation', rest);
    const scope = pin ? await this.reach(ctx, exec, [pin]) : await this.scope(ctx, exec);
    const args = new SqlArgs();
    const parsed = parseSearch('Observation', rest, args, scope);
    if (parsed.sort.length || parsed.includes.length || parsed.revincludes.length) {
      throw badRequest('$lastn takes search filters and max only (no _sort or _include)', ['_sort']);
    }
    const access = readCondition('Observation', scope, 'r', args);
    const where = [`r.resource_type = 'Observation'`, 'NOT r.deleted', ...parsed.where, ...(access ? [access] : [])];
    const rows = await exec.query<Row>(
      `SELECT v.content FROM (
         SELECT DISTINCT ON (x.id) x.id, x.version_id, x.hi FROM (
           SELECT r.id, r.version_id, d.hi,
                  row_number() OVER (PARTITION BY s.ref, c.system, c.value ORDER BY d.hi DESC, r.id) AS rn
             FROM resource r
             JOIN sp_reference s ON s.resource_type = r.resource_type AND s.id = r.id AND s.code = 'subject'
             JOIN sp_token c ON c.resource_type = r.resource_type AND c.id = r.id AND c.code = 'code'
             LEFT JOIN LATERAL (SELECT max(hi) AS hi FROM sp_date d WHERE d.resource_type = r.resource_type AND d.id = r.id AND d.code = 'date') d ON true
            WHERE ${where.join(' AND ')}
         ) x WHERE x.rn <= ${args.add(max)}
       ) l JOIN resource_version v ON v.resource_type = 'Observation' AND v.id = l.id AND v.version_id = l.version_id
       ORDER BY l.hi DESC NULLS LAST, l.id`,
      args.values,
    );
    const resources = rows.map((r) => JSON.parse(r.content!) as Resource);
    await this.audit(
      ctx,
      {
        interaction: 'operation',
        resources: resources.map((r) => `Observation/${r.id}`),
        patientIds: [...new Set(resources.flatMap(patientsOf))],
        outcome: 'success',
        query: `Observation/$lastn?${new URLSearchParams(pairs)}`,
      },
      exec,
      scope,
    );
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      total: resources.length,
      entry: resources.map((resource) => ({ fullUrl: `${this.baseUrl}/Observation/${resource.id}`, resource, search: { mode: 'match' } })),
    };
  }

  // ---------------------------------------------------------------- writes

  async create(ctx: AccessContext, body: unknown, ifNoneExist?: string): Promise<WriteResult> {
    const resource = validate(body);
    const [result] = await this.write(ctx, [{ kind: 'create', resource, ifNoneExist }], 'create');
    // A matched condition returns the resource that already exists.
    const stored = result!.resource ?? (await this.read(ctx, result!.type, result!.id));
    return { resource: stored, created: result!.status === 201 };
  }

  async update(ctx: AccessContext, type: string, id: string, body: unknown, ifMatch?: string): Promise<WriteResult> {
    checkType(type);
    checkId(id);
    const resource = validate(body, type);
    if (resource.id !== id) throw badRequest(`the resource id "${resource.id ?? ''}" must equal the URL id "${id}"`, [`${type}.id`]);
    const [result] = await this.write(ctx, [{ kind: 'update', type, id, resource, ifMatch }], 'update');
    return { resource: result!.resource!, created: result!.status === 201 };
  }

  async conditionalUpdate(ctx: AccessContext, type: string, condition: string, body: unknown): Promise<WriteResult> {
    checkType(type);
    const resource = validate(body, type);
    const [result] = await this.write(ctx, [{ kind: 'update', type, condition, resource }], 'update');
    return { resource: result!.resource!, created: result!.status === 201 };
  }

  async patch(ctx: AccessContext, type: string, id: string, patch: unknown, ifMatch?: string): Promise<Resource> {
    checkType(type);
    checkId(id);
    if (!Array.isArray(patch)) throw badRequest('a JSON Patch body must be an array of operations');
    const [result] = await this.write(ctx, [{ kind: 'patch', type, id, patch: patch as JsonPatchOperation[], ifMatch }], 'patch');
    return result!.resource!;
  }

  async delete(ctx: AccessContext, type: string, id: string): Promise<void> {
    checkType(type);
    checkId(id);
    await this.write(ctx, [{ kind: 'delete', type, id }], 'delete');
  }

  /**
   * Runs writes atomically. A lone unconditional create is a single INSERT statement, atomic by
   * itself, so it skips BEGIN/COMMIT (two round trips fewer on the hottest path).
   */
  private async write(ctx: AccessContext, ops: WriteOp[], interaction: Interaction): Promise<OpResult[]> {
    try {
      if (ops.length === 1 && ops[0]!.kind === 'create' && !ops[0]!.ifNoneExist) return await this.applyWrites(this.db, ops, ctx, interaction);
      return await this.db.transaction((tx) => this.applyWrites(tx, ops, ctx, interaction), lockKeysOf(ops));
    } catch (err) {
      await this.auditDenial(ctx, err, ops, interaction);
      throw err;
    }
  }

  /** A write refused by the access rules rolled back; its refusal is recorded on its own. */
  private async auditDenial(ctx: AccessContext, err: unknown, ops: WriteOp[], interaction: Interaction): Promise<void> {
    if (!(err instanceof AccessDenied)) return;
    const resources = ops.map((op) => (op.kind === 'create' ? op.resource.resourceType : `${op.type}/${op.id ?? ''}`));
    await this.audit(ctx, { interaction, resources, patientIds: [], outcome: 'denied', description: err.message }, this.db);
  }

  /**
   * Applies writes inside the caller's transaction, which must hold the advisory locks of
   * lockKeysOf(ops): concurrent identical conditional creates then serialise and only one creates.
   * All conditions are matched in one query; urn:uuid references between the resources are
   * rewritten to the assigned Type/id.
   */
  async applyWrites(tx: SqlExecutor, ops: WriteOp[], ctx: AccessContext = SYSTEM, interaction: Interaction = 'transaction'): Promise<OpResult[]> {
    const now = new Date().toISOString();
    // The caller's reach among the patients these writes name (a few probes, not their whole panel).
    const named = new Set(ops.flatMap((op) => (op.kind === 'create' || op.kind === 'update' ? patientsOf(op.resource) : [])));
    let scope = await this.reach(ctx, tx, [...named]);
    const results: (OpResult | undefined)[] = new Array(ops.length);
    const urnMap = new Map<string, string>();

    // 2. Resolve conditions (one query for all of them) and assign ids.
    // Conditions are matched within the caller's reach: narrowed to the named patients when every
    // conditional write names one (e-valise readings), the whole reach otherwise (a Patient by INS).
    const conditional = ops.filter((op) => (op.kind === 'create' && op.ifNoneExist) || (op.kind === 'update' && op.condition));
    const narrow = conditional.every((op) => (op.kind === 'create' || op.kind === 'update') && op.resource.resourceType !== 'Patient' && patientsOf(op.resource).length > 0);
    const matches = await this.matchConditions(
      tx,
      conditional.length > 0 && !narrow ? await this.scope(ctx, tx) : scope,
      ops.map((op) =>
        op.kind === 'create' && op.ifNoneExist
          ? { type: op.resource.resourceType, condition: op.ifNoneExist }
          : op.kind === 'update' && op.condition
            ? { type: op.type, condition: op.condition }
            : undefined,
      ),
    );
    const targets: { type: string; id: string }[] = new Array(ops.length);
    // A condition repeated within one bundle creates once: later entries resolve to the first one.
    const firstCreate = new Map<string, number>();
    const sameAs = new Map<number, number>();
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op.kind === 'create') {
        const type = op.resource.resourceType;
        if (op.ifNoneExist) {
          const existing = matches.get(i) ?? [];
          if (existing.length > 1) throw preconditionFailed(`If-None-Exist "${op.ifNoneExist}" matches ${existing.length} ${type} resources`);
          if (existing.length === 1) {
            const found = existing[0]!;
            results[i] = { status: 200, type, id: found.id, versionId: found.versionId, lastModified: found.lastUpdated };
            if (op.fullUrl) urnMap.set(op.fullUrl, `${type}/${found.id}`);
            targets[i] = { type, id: found.id };
            continue;
          }
          const key = conditionKey(type, op.ifNoneExist);
          const first = firstCreate.get(key);
          if (first !== undefined) {
            sameAs.set(i, first);
            targets[i] = targets[first]!;
            if (op.fullUrl) urnMap.set(op.fullUrl, `${type}/${targets[first]!.id}`);
            continue;
          }
          firstCreate.set(key, i);
        }
        const id = randomUUID();
        targets[i] = { type, id };
        if (op.fullUrl) urnMap.set(op.fullUrl, `${type}/${id}`);
      } else if (op.kind === 'update' && op.condition) {
        const existing = matches.get(i) ?? [];
        if (existing.length > 1) throw preconditionFailed(`conditional update "${op.condition}" matches ${existing.length} resources`);
        const id = existing[0]?.id ?? op.resource.id ?? randomUUID();
        if (existing[0] && op.resource.id && op.resource.id !== existing[0].id) {
          throw badRequest(`the resource id "${op.resource.id}" differs from the matched ${op.type}/${existing[0].id}`, [`${op.type}.id`]);
        }
        targets[i] = { type: op.type, id };
        if (op.fullUrl) urnMap.set(op.fullUrl, `${op.type}/${id}`);
      } else {
        targets[i] = { type: op.type, id: op.id! };
        if (op.kind === 'update' && op.fullUrl) urnMap.set(op.fullUrl, `${op.type}/${op.id}`);
      }
    }

    const seen = new Set<string>();
    for (let i = 0; i < ops.length; i++) {
      if (results[i] || sameAs.has(i)) continue;
      const key = `${targets[i]!.type}/${targets[i]!.id}`;
      if (seen.has(key)) throw badRequest(`${key} is written twice in one transaction`);
      seen.add(key);
    }

    // 3. Current versions of everything updated, patched or deleted, locked against concurrent writers.
    const existingKeys = ops.map((op, i) => (op.kind !== 'create' && !results[i] ? targets[i]! : undefined)).filter((t) => !!t);
    const current = new Map<string, CurrentRow>();
    if (existingKeys.length > 0) {
      const rows = await tx.query<CurrentRow & { resource_type: string; id: string }>(
        `SELECT r.resource_type, r.id, r.version_id, r.deleted, v.content FROM resource r
           JOIN unnest($1::text[], $2::text[]) AS k(resource_type, id) ON r.resource_type = k.resource_type AND r.id = k.id
           JOIN resource_version v ON v.resource_type = r.resource_type AND v.id = r.id AND v.version_id = r.version_id
           FOR UPDATE OF r`,
        [existingKeys.map((k) => k.type), existingKeys.map((k) => k.id)],
      );
      // Parsed once: the access checks, the patch, consent and audit all read the stored version.
      for (const r of rows) current.set(`${r.resource_type}/${r.id}`, { ...r, resource: r.content ? (JSON.parse(r.content) as Resource) : undefined });
    }

    // Patients this very write brings into being are within reach of the rest of it (their own
    // check refuses any the caller's organization does not follow): an exam may come with its patient.
    const newPatients = targets.filter((t, i) => t.type === 'Patient' && (ops[i]!.kind === 'create' || ops[i]!.kind === 'update') && !results[i] && !current.has(`Patient/${t.id}`));

    // 4. Build the new versions.
    const pending: PendingVersion[] = [];
    const checks: [Resource, 'create' | 'update' | 'delete'][] = [];
    for (let i = 0; i < ops.length; i++) {
      if (results[i] || sameAs.has(i)) continue;
      const op = ops[i]!;
      const { type, id } = targets[i]!;
      const cur = current.get(`${type}/${id}`);
      const nextVersion = (cur?.version_id ?? 0) + 1;
      const ifMatch = op.kind === 'update' || op.kind === 'patch' ? op.ifMatch : undefined;
      if (ifMatch !== undefined) {
        const wanted = parseETag(ifMatch);
        if (!cur || cur.deleted || String(cur.version_id) !== wanted) {
          throw preconditionFailed(`${type}/${id} is at version ${cur?.version_id ?? 'none'}, not ${wanted}: read it again and retry`);
        }
      }
      if (op.kind === 'delete') {
        // Deleting twice is fine (retries); deleting what never existed is a 404, as for another team's record.
        if (!cur) throw notFound(`${type}/${id} not found`);
        if (cur.deleted) {
          results[i] = { status: 204, type, id };
          continue;
        }
        if (cur.resource) checks.push([cur.resource, 'delete']);
        pending.push({ type, id, versionId: nextVersion, lastUpdated: now, action: 'delete', replacesIndex: true });
        results[i] = { status: 204, type, id, versionId: nextVersion, lastModified: now };
        continue;
      }
      let resource: Resource;
      if (op.kind === 'patch') {
        if (!cur) throw notFound(`${type}/${id} not found`);
        if (cur.deleted) throw gone(`${type}/${id} was deleted`);
        const patched = applyJsonPatch(cur.resource!, op.patch);
        if (patched.resourceType !== type || patched.id !== id) throw FhirError.of(422, 'processing', 'a patch may not change resourceType or id');
        resource = validate(patched, type);
      } else {
        resource = rewriteReferences(op.resource, urnMap);
      }
      const stored = {
        ...resource,
        id,
        meta: { ...resource.meta, versionId: String(nextVersion), lastUpdated: now },
      } as Resource;
      const action = op.kind === 'create' || !cur ? 'create' : 'update';
      checks.push([stored, action]);
      pending.push({ type, id, versionId: nextVersion, lastUpdated: now, action, resource: stored, replacesIndex: !!cur && !cur.deleted });
      results[i] = { status: cur && !cur.deleted ? 200 : 201, resource: stored, type, id, versionId: nextVersion, lastModified: now };
    }

    for (const [i, first] of sameAs) results[i] = { ...results[first]!, status: 200 };

    // 5. Access: what is stored and what will be must both be within the caller's reach.
    if (scope) {
      const stored = [...current.values()].flatMap((c) => (c.resource ? [c.resource] : []));
      const needed = new Set([...stored, ...checks.map(([r]) => r)].flatMap(patientsOf));
      if ([...needed].some((p) => !named.has(p))) scope = await this.reach(ctx, tx, [...needed]);
      // Nothing is taken over from another team: the current versions must be readable.
      for (const r of stored) if (!canRead(scope, r)) throw hidden(`${r.resourceType}/${r.id}`);
      // Patients this very write brings into being are within reach of the rest of it (their own
      // check refuses any the caller's organization does not follow): an exam may come with its patient.
      const writeScope = newPatients.length > 0 ? { ...scope!, patientIds: [...scope!.patientIds, ...newPatients.map((t) => t.id)] } : scope;
      for (const [resource, action] of checks) checkWrite(writeScope, resource, action);
    }

    // Starting a telemedicine act needs the patient's consent (emergencies go ahead, flagged).
    // An update that turns a resource into the start of an act counts as starting it.
    const starting = pending.filter((p) => {
      if (!p.resource) return false;
      const before = current.get(`${p.type}/${p.id}`);
      return p.action === 'create' || !before?.resource || actStartedBy(before.resource)?.act !== actStartedBy(p.resource)?.act;
    });
    const writtenNow = pending.filter((p) => p.resource).map((p) => p.resource!);
    for (const flag of await checkConsent(tx, starting.map((p) => p.resource!), now, writtenNow)) {
      pending.push({ type: 'Flag', id: flag.id!, versionId: 1, lastUpdated: now, action: 'create', resource: { ...flag, meta: { versionId: '1', lastUpdated: now } }, replacesIndex: false });
    }

    if (ctx.kind === 'user') {
      // The audit record commits with the write it records (same statement).
      const written = pending.map((p) => ({ ref: `${p.type}/${p.id}`, patients: p.resource ? patientsOf(p.resource) : [] }));
      for (const [k, cur] of current) if (cur.resource) written.push({ ref: k, patients: patientsOf(cur.resource) });
      const emergency = new Set(scope?.emergencyPatientIds ?? []);
      const patientIds = [...new Set(written.flatMap((w) => w.patients))];
      pending.push(
        auditVersion(ctx, {
          interaction,
          resources: [...new Set(written.map((w) => w.ref))],
          patientIds,
          outcome: 'success',
          emergency: patientIds.some((p) => emergency.has(p)),
        }, now),
      );
    }

    await writeVersions(tx, pending);
    return results as OpResult[];
  }

  /**
   * For each condition (by position), the current versions it matches (at most two are looked up).
   * Ids and versions only: a matched exam reading needs no content to be answered.
   */
  private async matchConditions(
    tx: SqlExecutor,
    scope: Scope | undefined,
    conditions: ({ type: string; condition: string } | undefined)[],
  ): Promise<Map<number, Match[]>> {
    const matches = new Map<number, Match[]>();
    const args = new SqlArgs();
    const parts: string[] = [];
    conditions.forEach((c, k) => {
      if (!c) return;
      const pairs = conditionPairs(c.condition);
      if (pairs.length === 0 || pairs.some(([name]) => CONTROL_IN_CONDITION.test(name))) {
        throw badRequest(`invalid condition "${c.condition}": search parameters only, at least one`);
      }
      const parsed = parseSearch(c.type, pairs, args, scope);
      // A condition only sees what the caller may read: it cannot probe other teams' records.
      const access = readCondition(c.type, scope, 'r', args);
      const where = [`r.resource_type = ${args.add(c.type)}`, 'NOT r.deleted', ...parsed.where, ...(access ? [access] : [])];
      parts.push(
        `(SELECT ${k} AS k, r.id, r.version_id, to_json(r.last_updated) #>> '{}' AS last_updated
            FROM resource r WHERE ${where.join(' AND ')} LIMIT 2)`,
      );
    });
    if (parts.length === 0) return matches;
    const rows = await tx.query<{ k: number; id: string; version_id: number; last_updated: string }>(parts.join(' UNION ALL '), args.values);
    for (const r of rows) {
      const match = { id: r.id, versionId: r.version_id, lastUpdated: new Date(r.last_updated).toISOString() };
      matches.set(r.k, [...(matches.get(r.k) ?? []), match]);
    }
    return matches;
  }

  // ---------------------------------------------------------------- bundles

  async transaction(ctx: AccessContext, bundle: Bundle): Promise<Bundle> {
    const ops = prepareBundle(bundle, 'transaction');
    const writeOps = ops.filter((o) => o.write).map((o) => o.write!);
    const results = await this.db.transaction(async (tx) => {
      const reads = ops.filter((o) => o.read);
      const writes = ops.filter((o) => o.write);
      // FHIR processing order: DELETE, POST, PUT/PATCH, then GET.
      const rank = (o: PreparedEntry) => (o.write!.kind === 'delete' ? 0 : o.write!.kind === 'create' ? 1 : 2);
      const ordered = [...writes].sort((a, b) => rank(a) - rank(b));
      const writeResults = await this.applyWrites(tx, ordered.map((o) => o.write!), ctx, 'transaction');
      const byIndex = new Map<number, BundleEntry>();
      ordered.forEach((o, k) => byIndex.set(o.index, responseEntry(this.baseUrl, writeResults[k]!, o.returnResource)));
      // Reads come after the writes: their reach includes what the writes just created.
      const afterWrites = fresh(ctx);
      for (const r of reads) byIndex.set(r.index, await this.readEntry(afterWrites, r.read!, tx));
      return ops.map((o) => byIndex.get(o.index)!);
    }, lockKeysOf(writeOps)).catch(async (err: unknown) => {
      await this.auditDenial(ctx, err, writeOps, 'transaction');
      throw err;
    });
    return { resourceType: 'Bundle', type: 'transaction-response', entry: results };
  }

  /** Batch: each entry on its own; one entry's failure is reported in its response, not thrown. */
  async batch(ctx: AccessContext, bundle: Bundle): Promise<Bundle> {
    const entries: BundleEntry[] = [];
    const ops = prepareBundle(bundle, 'batch');
    for (const o of ops) {
      // Each entry is its own request: its reach includes what earlier entries created.
      const entryCtx = fresh(ctx);
      try {
        if (o.error) throw o.error;
        if (o.read) entries.push(await this.readEntry(entryCtx, o.read, this.db));
        else {
          const op = o.write!;
          const [result] = await this.write(entryCtx, [op], op.kind);
          entries.push(responseEntry(this.baseUrl, result!, o.returnResource));
        }
      } catch (err) {
        if (!(err instanceof FhirError)) throw err;
        entries.push({ response: { status: String(err.status), outcome: err.outcome } });
      }
    }
    return { resourceType: 'Bundle', type: 'batch-response', entry: entries };
  }

  private async readEntry(ctx: AccessContext, url: string, exec: SqlExecutor): Promise<BundleEntry> {
    const [path, query] = url.split('?', 2) as [string, string | undefined];
    const parts = path.split('/').filter(Boolean);
    if (parts.length === 1) {
      const result = await this.search(ctx, parts[0]!, [...new URLSearchParams(query ?? '')], exec);
      return { resource: result, response: { status: '200 OK' } };
    }
    if (parts.length === 2) {
      const resource = await this.read(ctx, parts[0]!, parts[1]!, exec);
      return { resource, response: { status: '200 OK', etag: `W/"${resource.meta?.versionId}"` } };
    }
    throw badRequest(`unsupported GET in bundle: ${url}`);
  }
}

/**
 * Advisory lock keys of the conditional writes among ops, and of updates to a given id: a PUT may
 * create its resource, and a row that does not exist yet cannot be locked with FOR UPDATE.
 */
function lockKeysOf(ops: WriteOp[]): string[] {
  return ops.flatMap((op) =>
    op.kind === 'create' && op.ifNoneExist
      ? [conditionKey(op.resource.resourceType, op.ifNoneExist)]
      : op.kind === 'update' && op.condition
        ? [conditionKey(op.type, op.condition)]
        : op.kind === 'update' && op.id
          ? [`${op.type}/${op.id}`]
          : [],
  );
}

/** A copy of the caller's context: its reach (cached per context object) is computed anew. */
function fresh(ctx: AccessContext): AccessContext {
  return ctx.kind === 'user' ? { ...ctx } : ctx;
}

/** Newest first by one single-valued date, within one patient: the patient-keyed date index serves it. */
function usesPatientDateIndex(parsed: ParsedSearch): boolean {
  const key = parsed.sort[0];
  return parsed.sort.length === 1 && !!parsed.patientId && key?.dir === 'desc' && key.param?.kind === 'date' && !key.param.multiple;
}

const CONTROL_IN_CONDITION = /^_(count|sort|include|revinclude|total|cursor|summary)/;

function conditionPairs(condition: string): [string, string][] {
  return [...new URLSearchParams(condition.replace(/^[A-Za-z]*\?/, ''))];
}

function conditionKey(type: string, condition: string): string {
  const pairs = conditionPairs(condition).sort((a, b) =>
    a[0] === b[0] ? a[1].localeCompare(b[1]) : a[0].localeCompare(b[0]),
  );
  return `${type}?${new URLSearchParams(pairs).toString()}`;
}

function parseETag(etag: string): string {
  return etag.replace(/^W\//, '').replace(/"/g, '').trim();
}

/** Replaces references to urn:uuid fullUrls of the same bundle with the assigned Type/id. */
function rewriteReferences<T>(value: T, urnMap: Map<string, string>): T {
  if (urnMap.size === 0) return value;
  const walk = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(walk);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, child] of Object.entries(v)) {
        out[k] = k === 'reference' && typeof child === 'string' && urnMap.has(child) ? urnMap.get(child) : walk(child);
      }
      return out;
    }
    return v;
  };
  return walk(value) as T;
}
