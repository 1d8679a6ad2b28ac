import { PGlite } from '@electric-sql/pglite';
import { createHash } from 'node:crypto';
import pg from 'pg';

/** A 64-bit advisory lock id for a key, as a SQL integer literal (safe to inline: digits only). */
function lockId(key: string): string {
  return createHash('sha1').update(key).digest().readBigInt64BE(0).toString();
}

/** The SQL surface the store needs; implemented by PostgreSQL (pg) and PGlite alike. */
export interface SqlExecutor {
  query<R = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
}

export interface Database extends SqlExecutor {
  readonly kind: 'postgres' | 'pglite';
  /**
   * Runs fn in one transaction: committed if fn resolves, rolled back if it throws.
   * lockKeys are taken as transaction-scoped advisory locks before fn runs (in the same round trip
   * as BEGIN), so writers of the same logical key (a conditional create's condition) serialise.
   */
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>, lockKeys?: string[]): Promise<T>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
  close(): Promise<void>;
}

// Keep timestamps, big integers and decimals as PostgreSQL's text: the store formats them itself,
// and both drivers then return the same values.
const TIMESTAMPTZ_OID = 1184;
const INT8_OID = 20;
const NUMERIC_OID = 1700;
pg.types.setTypeParser(TIMESTAMPTZ_OID, (v) => v);
pg.types.setTypeParser(INT8_OID, (v) => v);
pg.types.setTypeParser(NUMERIC_OID, (v) => v);

class PostgresDatabase implements Database {
  readonly kind = 'postgres' as const;
  constructor(private readonly pool: pg.Pool) {}

  async query<R>(sql: string, params: unknown[] = []): Promise<R[]> {
    const result = await this.pool.query(sql, params);
    return result.rows as R[];
  }

  async transaction<T>(fn: (tx: SqlExecutor) => Promise<T>, lockKeys: string[] = []): Promise<T> {
    const client = await this.pool.connect();
    try {
      // Sorted, so two transactions never wait on each other's keys in a cycle.
      const locks = [...new Set(lockKeys.map(lockId))].sort().map((k) => `SELECT pg_advisory_xact_lock(${k});`);
      await client.query(['BEGIN;', ...locks].join(' '));
      const tx: SqlExecutor = {
        query: async <R>(sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows as R[],
      };
      const result = await fn(tx);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async exec(sql: string): Promise<void> {
    await this.pool.query(sql);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

/**
 * PGlite is a single connection: transactions are serialised through one queue so that
 * concurrent HTTP requests never interleave statements inside another request's transaction.
 */
class PgliteDatabase implements Database {
  readonly kind = 'pglite' as const;
  private queue: Promise<unknown> = Promise.resolve();
  constructor(private readonly db: PGlite) {}

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  query<R>(sql: string, params: unknown[] = []): Promise<R[]> {
    return this.serialize(async () => (await this.db.query<R>(sql, params)).rows);
  }

  // lockKeys need no lock here: the queue already runs one transaction at a time.
  transaction<T>(fn: (tx: SqlExecutor) => Promise<T>, _lockKeys?: string[]): Promise<T> {
    return this.serialize(() =>
      this.db.transaction(async (inner) => {
        const tx: SqlExecutor = {
          query: async <R>(sql: string, params: unknown[] = []) => (await inner.query<R>(sql, params)).rows,
        };
        return fn(tx);
      }),
    );
  }

  async exec(sql: string): Promise<void> {
    await this.serialize(() => this.db.exec(sql));
  }

  async close(): Promise<void> {
    await this.serialize(() => this.db.close());
  }
}

export interface DatabaseOptions {
  /** postgres://… selects PostgreSQL; otherwise PGlite stores its files in dataDir. */
  databaseUrl?: string;
  dataDir?: string;
  poolSize?: number;
  /** PostgreSQL schema to use (created if missing); tests give each run its own. */
  schema?: string;
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.databaseUrl) {
    if (options.schema) {
      if (!/^[a-z_][a-z0-9_]*$/.test(options.schema)) throw new Error(`invalid schema name "${options.schema}"`);
      const admin = new pg.Client({ connectionString: options.databaseUrl });
      await admin.connect();
      await admin.query(`CREATE SCHEMA IF NOT EXISTS ${options.schema}`);
      await admin.end();
    }
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.poolSize ?? 10,
      ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
    });
    // Fail at start, with the URL's host in the message, rather than on the first request.
    const client = await pool.connect();
    client.release();
    return new PostgresDatabase(pool);
  }
  // No dataDir: an in-memory instance (tests that want a throwaway store).
  const parsers = { [TIMESTAMPTZ_OID]: (v: string) => v, [INT8_OID]: (v: string) => v, [NUMERIC_OID]: (v: string) => v };
  const db = options.dataDir ? await PGlite.create(options.dataDir, { parsers }) : await PGlite.create({ parsers });
  return new PgliteDatabase(db);
}
