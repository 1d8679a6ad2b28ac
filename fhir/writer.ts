import type { Resource } from '@medplum/fhirtypes';
import type { SqlExecutor } from './db.js';
import { patientsOf } from './access-policy.js';
import { emptyIndexRows, indexResource, type IndexRows } from './indexer.js';

export type WriteAction = 'create' | 'update' | 'delete';

/** One new version to store: a created/updated resource, or a deletion marker. */
export interface PendingVersion {
  type: string;
  id: string;
  versionId: number;
  lastUpdated: string;
  action: WriteAction;
  /** The resource with its final meta; absent for deletions. */
  resource?: Resource;
  /** True when older versions exist whose index rows must be dropped first. */
  replacesIndex: boolean;
}

const INDEX_TABLES: { table: keyof IndexRows; columns: string[]; casts: string[] }[] = [
  { table: 'token', columns: ['code', 'system', 'value'], casts: ['text', 'text', 'text'] },
  { table: 'string', columns: ['code', 'norm', 'exact'], casts: ['text', 'text', 'text'] },
  { table: 'date', columns: ['code', 'lo', 'hi', 'patient'], casts: ['text', 'timestamptz', 'timestamptz', 'text'] },
  { table: 'reference', columns: ['code', 'target_type', 'target_id', 'ref'], casts: ['text', 'text', 'text', 'text'] },
  { table: 'number', columns: ['code', 'value'], casts: ['text', 'numeric'] },
  { table: 'quantity', columns: ['code', 'value', 'system', 'unit'], casts: ['text', 'numeric', 'text', 'text'] },
  { table: 'uri', columns: ['code', 'value'], casts: ['text', 'text'] },
];

/**
 * Stores a set of new versions with as few round trips as possible: one statement drops the
 * index rows of replaced versions, one statement (data-modifying CTEs over unnest arrays) writes
 * the current rows, the versions, every index row and the post-commit events. Bundles of
 * hundreds of resources cost two statements, which is what makes ingest fast.
 */
export async function writeVersions(tx: SqlExecutor, versions: PendingVersion[]): Promise<void> {
  if (versions.length === 0) return;
  const replaced = versions.filter((v) => v.replacesIndex);
  if (replaced.length > 0) {
    const types = replaced.map((v) => v.type);
    const ids = replaced.map((v) => v.id);
    const deletes = INDEX_TABLES.map(
      ({ table }) =>
        `d_${table} AS (DELETE FROM sp_${table} WHERE (resource_type, id) IN (SELECT * FROM unnest($1::text[], $2::text[])))`,
    );
    await tx.query(`WITH ${deletes.join(', ')} SELECT 1`, [types, ids]);
  }

  const params: unknown[] = [];
  const p = (value: unknown, cast: string) => {
    params.push(value);
    return `$${params.length}::${cast}[]`;
  };

  const types = versions.map((v) => v.type);
  const ids = versions.map((v) => v.id);
  const vids = versions.map((v) => v.versionId);
  const times = versions.map((v) => v.lastUpdated);
  const deleted = versions.map((v) => v.action === 'delete');
  const contents = versions.map((v) => (v.resource ? JSON.stringify(v.resource) : null));
  const pt = p(types, 'text');
  const pi = p(ids, 'text');
  const pv = p(vids, 'int');
  const pl = p(times, 'timestamptz');
  const pd = p(deleted, 'bool');

  const ctes = [
    `w_resource AS (INSERT INTO resource (resource_type, id, version_id, last_updated, deleted)
       SELECT * FROM unnest(${pt}, ${pi}, ${pv}, ${pl}, ${pd})
       ON CONFLICT (resource_type, id) DO UPDATE SET version_id = EXCLUDED.version_id,
         last_updated = EXCLUDED.last_updated, deleted = EXCLUDED.deleted)`,
    `w_version AS (INSERT INTO resource_version (resource_type, id, version_id, last_updated, deleted, content)
       SELECT * FROM unnest(${pt}, ${pi}, ${pv}, ${pl}, ${pd}, ${p(contents, 'text')}))`,
    `w_event AS (INSERT INTO resource_event (resource_type, id, version_id, action)
       SELECT * FROM unnest(${pt}, ${pi}, ${pv}, ${p(versions.map((v) => v.action), 'text')}))`,
  ];

  const all = emptyIndexRows();
  const owners: Record<keyof IndexRows, [string[], string[]]> = {
    token: [[], []],
    string: [[], []],
    date: [[], []],
    reference: [[], []],
    number: [[], []],
    quantity: [[], []],
    uri: [[], []],
  };
  for (const v of versions) {
    if (!v.resource) continue;
    const rows = indexResource(v.resource);
    // The one patient whose compartment it is in (none when several), for the patient-keyed date index.
    const patients = patientsOf(v.resource);
    const patient = patients.length === 1 ? patients[0]! : null;
    for (const key of Object.keys(rows) as (keyof IndexRows)[]) {
      for (const row of rows[key]) {
        (all[key] as unknown[][]).push(key === 'date' ? [...row, patient] : row);
        owners[key][0].push(v.type);
        owners[key][1].push(v.id);
      }
    }
  }
  for (const { table, columns, casts } of INDEX_TABLES) {
    const rows = all[table] as unknown[][];
    if (rows.length === 0) continue;
    const cols = columns.map((_, i) => p(rows.map((r) => r[i]), casts[i]!));
    ctes.push(
      `w_${table} AS (INSERT INTO sp_${table} (resource_type, id, ${columns.join(', ')})
         SELECT * FROM unnest(${p(owners[table][0], 'text')}, ${p(owners[table][1], 'text')}, ${cols.join(', ')}))`,
    );
  }
  await tx.query(`WITH ${ctes.join(',\n')} SELECT 1`, params);
}
