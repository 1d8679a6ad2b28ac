import type { Database } from './db.js';

/**
 * Versioned schema migrations, applied in order at start. Each runs in its own transaction with
 * its version recorded, and a PostgreSQL advisory lock keeps two hub nodes starting at once from
 * applying the same one twice. Never edit a migration that has shipped: add a new one.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The FHIR store's own migrations (component "fhir"); other parts (server auth) keep their own lists. */
export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'resources, versions and search index',
    sql: `
      -- The current version of each resource (content lives once, in resource_version).
      CREATE TABLE resource (
        resource_type text NOT NULL,
        id text NOT NULL,
        version_id integer NOT NULL,
        last_updated timestamptz NOT NULL,
        deleted boolean NOT NULL DEFAULT false,
        PRIMARY KEY (resource_type, id)
      );
      CREATE INDEX resource_type_updated ON resource (resource_type, last_updated);

      -- Every version ever written, deletions included: history is never lost.
      CREATE TABLE resource_version (
        resource_type text NOT NULL,
        id text NOT NULL,
        version_id integer NOT NULL,
        last_updated timestamptz NOT NULL,
        deleted boolean NOT NULL DEFAULT false,
        content text,
        PRIMARY KEY (resource_type, id, version_id)
      );
      CREATE INDEX resource_version_type_updated ON resource_version (resource_type, last_updated);
      -- lz4 compresses a 12-lead ECG (~230 kB of JSON) about 3x faster than the default pglz;
      -- builds without lz4 (PGlite) keep pglz.
      DO $$ BEGIN ALTER TABLE resource_version ALTER COLUMN content SET COMPRESSION lz4; EXCEPTION WHEN others THEN NULL; END $$;

      -- Search index, one table per parameter kind, rows for current versions only.
      CREATE TABLE sp_token (resource_type text NOT NULL, id text NOT NULL, code text NOT NULL, system text, value text NOT NULL);
      CREATE INDEX sp_token_value ON sp_token (resource_type, code, value, system);
      CREATE INDEX sp_token_owner ON sp_token (resource_type, id, code);

      CREATE TABLE sp_string (resource_type text NOT NULL, id text NOT NULL, code text NOT NULL, norm text NOT NULL, exact text NOT NULL);
      CREATE INDEX sp_string_norm ON sp_string (resource_type, code, norm text_pattern_ops);
      CREATE INDEX sp_string_owner ON sp_string (resource_type, id, code);

      CREATE TABLE sp_date (resource_type text NOT NULL, id text NOT NULL, code text NOT NULL, lo timestamptz NOT NULL, hi timestamptz NOT NULL);
      CREATE INDEX sp_date_lo ON sp_date (resource_type, code, lo);
      CREATE INDEX sp_date_owner ON sp_date (resource_type, id, code);
      -- Ranges overlapping a search window ("heart rates of one week") among millions of values.
      CREATE INDEX sp_date_range ON sp_date USING gist (tstzrange(lo, hi, '[]'));

      CREATE TABLE sp_reference (resource_type text NOT NULL, id text NOT NULL, code text NOT NULL, target_type text, target_id text, ref text NOT NULL);
      CREATE INDEX sp_reference_ref ON sp_reference (resource_type, code, ref);
      CREATE INDEX sp_reference_owner ON sp_reference (resource_type, id, code);

      CREATE TABLE sp_number (resource_type text NOT NULL, id text NOT NULL, code text NOT NULL, value numeric NOT NULL);
      CREATE INDEX sp_number_value ON sp_number (resource_type, code, value);
      CREATE INDEX sp_number_owner ON sp_number (resource_type, id, code);

      CREATE TABLE sp_quantity (resource_type text NOT NULL, id text NOT NULL, code text NOT NULL, value numeric NOT NULL, system text, unit text);
      CREATE INDEX sp_quantity_value ON sp_quantity (resource_type, code, value);
      CREATE INDEX sp_quantity_owner ON sp_quantity (resource_type, id, code);

      CREATE TABLE sp_uri (resource_type text NOT NULL, id text NOT NULL, code text NOT NULL, value text NOT NULL);
      CREATE INDEX sp_uri_value ON sp_uri (resource_type, code, value);
      CREATE INDEX sp_uri_owner ON sp_uri (resource_type, id, code);

      -- Post-commit events for what comes next (surveillance rules, worklists): a transactional outbox.
      CREATE TABLE resource_event (
        seq bigserial PRIMARY KEY,
        resource_type text NOT NULL,
        id text NOT NULL,
        version_id integer NOT NULL,
        action text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );

      -- Data sets loaded once (demo data), so a restart does not load them again.
      CREATE TABLE data_seed (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
    `,
  },
  {
    version: 2,
    name: 'emergency access grants',
    sql: `
      -- Break-the-glass: a regulator's time-limited access to one patient, with the stated reason.
      CREATE TABLE access_grant (
        id text PRIMARY KEY,
        account_id text NOT NULL,
        practitioner_id text,
        patient_id text NOT NULL,
        reason text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        revoked_at timestamptz
      );
      CREATE INDEX access_grant_account ON access_grant (account_id, expires_at);
    `,
  },
  {
    version: 3,
    name: 'date index keyed by patient',
    sql: `
      -- The patient a dated value belongs to (its compartment), so "the latest vitals of a patient"
      -- walks one patient's dates in order and stops after a page instead of sorting all of them.
      ALTER TABLE sp_date ADD COLUMN patient text;
      CREATE INDEX sp_date_patient ON sp_date (resource_type, code, patient, hi) WHERE patient IS NOT NULL;
    `,
  },
];

const LOCK_KEY = 724_311_001; // arbitrary, constant: "hub schema migrations"

/**
 * Applies the pending migrations of one component ("fhir", "auth"…) in version order. The
 * advisory lock serialises hub nodes starting at once; a migration and its record commit together.
 */
export async function migrate(db: Database, component = 'fhir', migrations: Migration[] = MIGRATIONS): Promise<number[]> {
  await db.exec(`CREATE TABLE IF NOT EXISTS schema_migration (
    component text NOT NULL, version integer NOT NULL, name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (component, version))`);
  const applied: number[] = [];
  for (const m of migrations) {
    const done = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_KEY]);
      const rows = await tx.query('SELECT 1 FROM schema_migration WHERE component = $1 AND version = $2', [component, m.version]);
      if (rows.length > 0) return false;
      for (const statement of splitStatements(m.sql)) await tx.query(statement);
      await tx.query('INSERT INTO schema_migration (component, version, name) VALUES ($1, $2, $3)', [component, m.version, m.name]);
      return true;
    });
    if (done) applied.push(m.version);
  }
  return applied;
}

/** Migrations hold plain DDL: split on semicolons at line ends, drop comments. */
function splitStatements(sql: string): string[] {
  return sql
    .split('\n')
    .filter((l) => !l.trim().startsWith('--'))
    .join('\n')
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
