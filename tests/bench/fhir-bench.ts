/**
 * npm run bench:fhir — ingest rate and search latency of the FHIR store, on PostgreSQL and PGlite.
 *
 * Prints, per backend:
 *  - ingest of e-valise exam transaction bundles over HTTP (gzip), and of single Observations;
 *  - the rate of bare INSERTs of the same JSON rows into a table with no index: our ceiling;
 *  - p50/p95/p99 of typical searches over HTTP at each size in BENCH_SIZES.
 *
 * Environment: BENCH_BACKENDS (postgres,pglite), BENCH_DATABASE_URL (the machine's PostgreSQL),
 * BENCH_SIZES (100000,1000000 Observations), BENCH_EXAMS (200), BENCH_SINGLES (3000),
 * BENCH_VITALS_BUNDLES (60 bundles of 100 Observations), BENCH_QUERIES (200 per search and size).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Bundle, Observation, Resource, Task } from '@medplum/fhirtypes';
import pg from 'pg';
import { pino } from 'pino';
import { openFhirStore, type FhirStore } from '../../fhir/store.js';
import { generateExam, EVALISE_RHYTHMS } from '../../fhir/evalise/synthetic.js';
import { createApp } from '../../server/app.js';
import { logAuditSink } from '../../server/auth/audit-sink.js';
import { openAuth } from '../../server/auth/services.js';

const env = process.env;
const BACKENDS = (env.BENCH_BACKENDS ?? 'postgres,pglite').split(',');
const DATABASE_URL = env.BENCH_DATABASE_URL ?? env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const SIZES = (env.BENCH_SIZES ?? '100000,1000000').split(',').map(Number);
const EXAMS = Number(env.BENCH_EXAMS ?? 200);
const SINGLES = Number(env.BENCH_SINGLES ?? 3000);
const VITALS_BUNDLES = Number(env.BENCH_VITALS_BUNDLES ?? 60);
const QUERIES = Number(env.BENCH_QUERIES ?? 200);
const PATIENTS = 1000;
const PRACTITIONERS = 20;
const CONCURRENCY = 4;

const VITALS = [
  { code: '8867-4', unit: '/min', base: 70, spread: 30 },
  { code: '2708-6', unit: '%', base: 94, spread: 6 },
  { code: '8310-5', unit: 'Cel', base: 36.5, spread: 2 },
  { code: '29463-7', unit: 'kg', base: 75, spread: 30 },
  { code: '9279-1', unit: '/min', base: 16, spread: 8 },
];
const START = Date.UTC(2024, 0, 1);
const SPAN_MS = 3 * 365 * 24 * 3600 * 1000;

interface Hub {
  store: FhirStore;
  url: string;
  /** Authorization header of the bench's account. */
  authorization: string;
  close(): Promise<void>;
}

async function startHub(backend: string): Promise<Hub> {
  const server: Server = createServer();
  // Loading a million rows between two query runs leaves the client's kept-alive sockets idle for
  // minutes: keep them longer than the load lasts, so no request meets a socket closed under it.
  server.keepAliveTimeout = 30 * 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}/fhir/R4`;
  const dir = backend === 'pglite' ? mkdtempSync(path.join(tmpdir(), 'hub-bench-')) : undefined;
  const schema = backend === 'postgres' ? `bench_${Date.now().toString(36)}` : undefined;
  const store = await openFhirStore({ databaseUrl: backend === 'postgres' ? DATABASE_URL : undefined, dataDir: dir, schema, baseUrl: url, poolSize: 8 });
  const logger = pino({ level: 'silent' });
  // A day-long access token: loading a million Observations outlasts the default 15 minutes.
  const auth = await openAuth(store.db, { audit: logAuditSink(logger), accessTokenTtlSeconds: 86_400, refreshTokenTtlDays: 1 });
  // The bench acts as a GP of an MSP that follows the bench's patients: every request goes through
  // the care-based access rules and leaves its AuditEvent, as in production.
  await auth.accounts.create({
    username: 'bench',
    password: 'bench-password',
    displayName: 'Benchmark',
    role: 'gp',
    practitionerId: 'bench-gp',
    organizationId: 'bench-msp',
  });
  await store.db.transaction((tx) =>
    store.repo.applyWrites(
      tx,
      Array.from({ length: PATIENTS }, (_, i) => ({
        kind: 'update' as const,
        type: 'Patient',
        id: `bench-p${i}`,
        resource: { resourceType: 'Patient', id: `bench-p${i}`, managingOrganization: { reference: 'Organization/bench-msp' } },
      })),
    ),
  );
  const { accessToken } = await auth.sessions.login('bench', 'bench-password');
  server.on('request', createApp({ store, auth, fhirBodyLimit: '50mb', logger }));
  return {
    store,
    url,
    authorization: `Bearer ${accessToken}`,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (schema) await store.db.exec(`DROP SCHEMA ${schema} CASCADE`);
      await store.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function inParallel<T>(items: T[], workers: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** POSTs every body from a separate process (tests/bench/load-client.ts); returns the seconds taken. */
async function load(url: string, authorization: string, bodies: unknown[], gzip: boolean, concurrency: number): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 'load-client.ts')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  child.stdin.end(JSON.stringify({ url, authorization, bodies: bodies.map((b) => JSON.stringify(b)), gzip, concurrency }));
  let out = '';
  for await (const chunk of child.stdout) out += chunk;
  const result = JSON.parse(out) as { seconds: number; statuses: Record<string, number> };
  const failed = Object.entries(result.statuses).filter(([status]) => Number(status) >= 300);
  if (failed.length > 0) throw new Error(`POST ${url}: unexpected statuses ${JSON.stringify(result.statuses)}`);
  return result.seconds;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

// ------------------------------------------------------------------ ingest

async function ingest(hub: Hub, backend: string): Promise<Record<string, string>> {
  const exams: Bundle[] = Array.from({ length: EXAMS }, (_, i) =>
    generateExam({
      patientId: `bench-p${i % PATIENTS}`,
      performerId: `bench-gp${i % PRACTITIONERS}`,
      deviceSerial: `EV-${1000 + (i % 50)}`,
      time: new Date(START + i * 3_600_000).toISOString().replace('.000Z', 'Z'),
      rhythm: EVALISE_RHYTHMS[i % EVALISE_RHYTHMS.length]!,
    }),
  );
  const perExam = exams[0]!.entry!.length;
  const examBytes = Buffer.byteLength(JSON.stringify(exams[0]));

  const examRate = (EXAMS * perExam) / (await load(hub.url, hub.authorization, exams, true, CONCURRENCY));

  // Telesurveillance sync: a home device sends its readings as transaction bundles of 100.
  const vitalsBundles: Bundle[] = Array.from({ length: VITALS_BUNDLES }, (_, b) => ({
    resourceType: 'Bundle',
    type: 'transaction',
    entry: Array.from({ length: 100 }, (_, k) => ({ resource: vitalObservation(20_000_000 + b * 100 + k), request: { method: 'POST' as const, url: 'Observation' } })),
  }));
  const vitalsRate = (VITALS_BUNDLES * 100) / (await load(hub.url, hub.authorization, vitalsBundles, true, CONCURRENCY));

  const singles: Observation[] = Array.from({ length: SINGLES }, (_, i) => vitalObservation(10_000_000 + i));
  const singleRate = SINGLES / (await load(`${hub.url}/Observation`, hub.authorization, singles, false, 8));

  // The ceiling: the same JSON rows inserted into a bare table (no index, no validation, no HTTP),
  // with the same column compression as resource_version (lz4 where the build has it).
  await hub.store.db.exec('DROP TABLE IF EXISTS bench_bare; CREATE TABLE bench_bare (id text, content text)');
  await hub.store.db
    .exec('ALTER TABLE bench_bare ALTER COLUMN content SET COMPRESSION lz4')
    .catch(() => undefined);
  let t: number;
  const examRows = exams.map((b) => b.entry!.map((e, k) => [`${k}-${Math.random()}`, JSON.stringify(e.resource as Resource)]));
  t = performance.now();
  await inParallel(examRows, CONCURRENCY, async (rows) => {
    await hub.store.db.transaction(async (tx) => {
      await tx.query('INSERT INTO bench_bare (id, content) SELECT * FROM unnest($1::text[], $2::text[])', [rows.map((r) => r[0]), rows.map((r) => r[1])]);
    });
  });
  const bareExamRate = (EXAMS * perExam) / ((performance.now() - t) / 1000);
  const singleRows = singles.map((o, i) => [`s${i}`, JSON.stringify(o)]);
  t = performance.now();
  await inParallel(singleRows, 8, async (row) => void (await hub.store.db.query('INSERT INTO bench_bare (id, content) VALUES ($1, $2)', row)));
  const bareSingleRate = SINGLES / ((performance.now() - t) / 1000);
  await hub.store.db.exec('DROP TABLE bench_bare');

  return {
    backend,
    'exam bundles (res/s)': fmt(examRate),
    'bare INSERT, same rows (rows/s)': fmt(bareExamRate),
    'exam % of bare': `${((100 * examRate) / bareExamRate).toFixed(0)} %`,
    'vitals bundles of 100 (res/s)': fmt(vitalsRate),
    'single Observation (res/s)': fmt(singleRate),
    'bare single INSERT (rows/s)': fmt(bareSingleRate),
    'single % of bare': `${((100 * singleRate) / bareSingleRate).toFixed(0)} %`,
    'exam size': `${perExam} resources, ${(examBytes / 1024).toFixed(0)} KiB JSON`,
  };
}

function vitalObservation(i: number): Observation {
  const v = VITALS[i % VITALS.length]!;
  const patient = i % PATIENTS;
  // Spread evenly over three years (golden-ratio sequence), whatever the number loaded.
  const t = START + Math.floor(((i * 0.6180339887498949) % 1) * SPAN_MS);
  return {
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: 'http://loinc.org', code: v.code }] },
    subject: { reference: `Patient/bench-p${patient}` },
    effectiveDateTime: new Date(t).toISOString(),
    identifier: [{ system: 'urn:hub:bench', value: String(i) }],
    valueQuantity: { value: Math.round((v.base + ((i % 97) / 97) * v.spread) * 10) / 10, unit: v.unit, system: 'http://unitsofmeasure.org', code: v.unit },
  };
}

function task(i: number): Task {
  const statuses = ['requested', 'accepted', 'in-progress', 'completed', 'completed', 'completed'] as const;
  return {
    resourceType: 'Task',
    status: statuses[i % statuses.length]!,
    intent: 'order',
    code: { coding: [{ system: 'https://hub.example/act', code: 'teleexpertise' }] },
    for: { reference: `Patient/bench-p${i % PATIENTS}` },
    owner: { reference: `Practitioner/bench-spec${i % PRACTITIONERS}` },
    authoredOn: new Date(START + i * 600_000).toISOString(),
  };
}

// ------------------------------------------------------------------ search

/** Fills the store up to `size` Observations with in-process bulk writes (the loader is not what is measured). */
async function fillTo(store: FhirStore, size: number, loaded: { n: number }): Promise<void> {
  const BATCH = 1000;
  const t = performance.now();
  while (loaded.n < size) {
    const n = Math.min(BATCH, size - loaded.n);
    const start = loaded.n;
    await store.db.transaction((tx) =>
      store.repo.applyWrites(tx, Array.from({ length: n }, (_, k) => ({ kind: 'create' as const, resource: vitalObservation(start + k) }))),
    );
    loaded.n += n;
    if (loaded.n % 100_000 === 0) process.stderr.write(`  loaded ${fmt(loaded.n)} Observations (${fmt(loaded.n / ((performance.now() - t) / 1000))}/s)\n`);
  }
  await store.db.exec('ANALYZE');
}

async function timeQueries(hub: Hub, make: (i: number) => string): Promise<[number, number, number, number]> {
  const times: number[] = [];
  let results = 0;
  for (let i = 0; i < QUERIES; i++) {
    const url = `${hub.url}/${make(i)}`;
    const t = performance.now();
    const res = await fetch(url, { headers: { Authorization: hub.authorization } });
    const body = (await res.json()) as Bundle;
    times.push(performance.now() - t);
    if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
    results += body.entry?.length ?? 0;
  }
  times.sort((a, b) => a - b);
  return [percentile(times, 50), percentile(times, 95), percentile(times, 99), results / QUERIES];
}

async function searches(hub: Hub, backend: string): Promise<Record<string, string>[]> {
  const rows: Record<string, string>[] = [];
  await hub.store.db.transaction((tx) =>
    hub.store.repo.applyWrites(tx, Array.from({ length: 5000 }, (_, i) => ({ kind: 'create' as const, resource: task(i) }))),
  );
  const loaded = { n: 0 };
  for (const size of SIZES) {
    await fillTo(hub.store, size, loaded);
    const queries: [string, (i: number) => string][] = [
      ["a patient's latest vitals", (i) => `Observation?subject=Patient/bench-p${(i * 37) % PATIENTS}&category=vital-signs&_sort=-date&_count=10`],
      [
        'one code over a week',
        (i) => {
          const day = new Date(START + ((i * 86_400_000 * 5) % (SPAN_MS - 8 * 86_400_000)));
          const end = new Date(day.getTime() + 7 * 86_400_000);
          return `Observation?code=http://loinc.org|8867-4&date=ge${day.toISOString().slice(0, 10)}&date=lt${end.toISOString().slice(0, 10)}&_count=50`;
        },
      ],
      ['a specialist\'s Task worklist', (i) => `Task?owner=Practitioner/bench-spec${i % PRACTITIONERS}&status=requested,accepted&_sort=-authored-on&_count=20`],
      ['$lastn vitals of a patient', (i) => `Observation/$lastn?patient=bench-p${(i * 53) % PATIENTS}&category=vital-signs&max=1`],
    ];
    for (const [name, make] of queries) {
      const [p50, p95, p99, avg] = await timeQueries(hub, make);
      rows.push({
        backend,
        Observations: fmt(size),
        search: name,
        p50: `${p50.toFixed(1)} ms`,
        p95: `${p95.toFixed(1)} ms`,
        p99: `${p99.toFixed(1)} ms`,
        'results/query': avg.toFixed(1),
      });
    }
  }
  return rows;
}

async function main(): Promise<void> {
  const ingestRows: Record<string, string>[] = [];
  const searchRows: Record<string, string>[] = [];
  for (const backend of BACKENDS) {
    if (backend === 'postgres') {
      const client = new pg.Client({ connectionString: DATABASE_URL });
      await client.connect().catch((err: Error) => {
        throw new Error(`PostgreSQL at ${DATABASE_URL} is unreachable (${err.message}); set BENCH_DATABASE_URL or BENCH_BACKENDS=pglite`);
      });
      await client.end();
    }
    process.stderr.write(`${backend}: ingest\n`);
    const hub = await startHub(backend);
    try {
      ingestRows.push(await ingest(hub, backend));
      console.table(ingestRows.slice(-1));
      process.stderr.write(`${backend}: search\n`);
      searchRows.push(...(await searches(hub, backend)));
      console.table(searchRows.filter((r) => r.backend === backend));
    } finally {
      await hub.close();
    }
  }
  console.log('\nIngest (targets with PostgreSQL: >= 2,000 resources/s, >= 40 % of bare INSERT)');
  console.table(ingestRows);
  console.log("Search latency over HTTP (target: p95 < 20 ms for a patient's latest vitals at 1M)");
  console.table(searchRows);
}

await main();
