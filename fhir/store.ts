import { openDatabase, type Database, type DatabaseOptions } from './db.js';
import { loadDefinitions } from './definitions.js';
import { migrate } from './migrations.js';
import { FhirRepository } from './repository.js';

export interface FhirStore {
  db: Database;
  repo: FhirRepository;
  close(): Promise<void>;
}

/** Opens the database (PostgreSQL or PGlite), applies pending migrations and returns the repository. */
export async function openFhirStore(options: DatabaseOptions & { baseUrl: string }): Promise<FhirStore> {
  loadDefinitions();
  const db = await openDatabase(options);
  await migrate(db);
  const repo = new FhirRepository(db, options.baseUrl);
  return { db, repo, close: () => db.close() };
}

/**
 * Runs a seed once per database. Seeds must be idempotent (PUT with stable ids): a crash between
 * loading and recording only means the next start loads it again, harmlessly.
 */
export async function seedOnce(store: FhirStore, name: string, load: () => Promise<void>): Promise<boolean> {
  const rows = await store.db.query('SELECT 1 FROM data_seed WHERE name = $1', [name]);
  if (rows.length > 0) return false;
  await load();
  await store.db.query('INSERT INTO data_seed (name) VALUES ($1) ON CONFLICT DO NOTHING', [name]);
  return true;
}
