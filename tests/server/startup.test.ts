import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Bundle, Observation, Resource } from '@medplum/fhirtypes';
import { Client } from 'fhir-kit-client';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { DEMO_IDS } from '../../fhir/demo/demo-data.js';
import { MIGRATIONS } from '../../fhir/migrations.js';
import { demoPassword } from '../../server/auth/demo-accounts.js';
import { AUTH_MIGRATIONS } from '../../server/auth/migrations.js';
import { DEFAULT_TEST_USER } from '../fhir/harness.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

interface HubProcess {
  child: ChildProcess;
  url: string;
}

/** Starts the hub as `npm start` does (tsx server/main.ts), on a free port, and waits for "hub listening". */
async function startHubProcess(env: Record<string, string>): Promise<HubProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const log = JSON.parse(line) as { msg?: string; port?: number };
        if (log.msg === 'hub listening' && log.port) resolve(log.port);
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => reject(new Error(`hub exited with ${code}: ${stderr}`)));
  });
  return { child, url: `http://127.0.0.1:${port}/fhir/R4` };
}

/** Logs the default test user in over HTTP and returns a FHIR client carrying the access token. */
async function loginClient(fhirUrl: string, token?: string): Promise<{ client: Client; token: string }> {
  if (!token) {
    const root = fhirUrl.replace(/\/fhir\/R4$/, '');
    const response = await fetch(`${root}/api/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: DEFAULT_TEST_USER, password: demoPassword(DEFAULT_TEST_USER) }),
    });
    expect(response.status).toBe(200);
    token = ((await response.json()) as { accessToken: string }).accessToken;
  }
  return { client: new Client({ baseUrl: fhirUrl, customHeaders: { Authorization: `Bearer ${token}` } }), token };
}

function kill(hub: HubProcess): Promise<void> {
  if (hub.child.exitCode !== null || hub.child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    hub.child.once('exit', () => resolve());
    hub.child.kill('SIGKILL');
  });
}

const observation = {
  resourceType: 'Observation' as const,
  status: 'final' as const,
  code: { coding: [{ system: 'http://loinc.org', code: '8867-4' }] },
  subject: { reference: `Patient/${DEMO_IDS.patients[0]}` },
  effectiveDateTime: '2026-11-01T08:00:00Z',
  valueQuantity: { value: 64, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
};

async function crashAndRestart(env: Record<string, string>): Promise<void> {
  const first = await startHubProcess(env);
  let second: HubProcess | undefined;
  try {
    const { client, token } = await loginClient(first.url);
    const patients = (await client.search({ resourceType: 'Patient', searchParams: { _total: 'accurate', _count: '0' } })) as { total?: number };
    // How many the GP sees depends on care-based access; what matters is that a restart changes nothing.
    const visible = patients.total;
    expect(visible).toBeGreaterThan(0);
    const org = await client.read({ resourceType: 'Organization', id: DEMO_IDS.organizations.chu });
    expect(org.id).toBe(DEMO_IDS.organizations.chu);
    // The demo's e-valise exam of the GP's patient: its report and four readings, the ECG whole.
    const examOf = async (c: typeof client) =>
      (await c.search({
        resourceType: 'DiagnosticReport',
        searchParams: { subject: `Patient/${DEMO_IDS.patients[0]}`, code: 'http://loinc.org|11524-6', _include: 'DiagnosticReport:result' },
      })) as unknown as Bundle;
    const exam = (await examOf(client)).entry!.map((e) => e.resource!);
    expect(exam.filter((r) => r.resourceType === 'DiagnosticReport')).toHaveLength(1);
    const readings = exam.filter((r): r is Observation => r.resourceType === 'Observation');
    expect(readings).toHaveLength(4);
    const ecg = readings.find((o) => o.code.coding?.[0]?.code === '131328')!;
    expect(ecg.component).toHaveLength(12);
    for (const lead of ecg.component!) expect(lead.valueSampledData!.data!.split(' ')).toHaveLength(5000);

    // Acknowledged writes, then a crash (SIGKILL: no shutdown hook runs).
    const created = (await Promise.all(
      Array.from({ length: 5 }, () => client.create({ resourceType: 'Observation', body: observation })),
    )) as unknown as Resource[];
    await kill(first);

    second = await startHubProcess(env);
    // The signing key lives in the database: a token issued before the crash is still good.
    const { client: again } = await loginClient(second.url, token);
    for (const c of created) {
      const read = (await again.read({ resourceType: 'Observation', id: c.id! })) as unknown as Resource;
      expect(read.meta?.versionId).toBe('1');
    }
    // Migrations ran again harmlessly, and demo data was not loaded a second time.
    const patient = (await again.read({ resourceType: 'Patient', id: DEMO_IDS.patients[0] })) as unknown as Resource;
    expect(patient.meta?.versionId).toBe('1');
    const total = (await again.search({ resourceType: 'Patient', searchParams: { _total: 'accurate', _count: '0' } })) as { total?: number };
    expect(total.total).toBe(visible);
    expect((await examOf(again)).entry).toHaveLength(5);
  } finally {
    await kill(first);
    if (second) await kill(second);
  }
}

describe('starting the hub', () => {
  const dirs: string[] = [];
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('starts on PGlite with demo data and keeps acknowledged writes across a crash', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'hub-data-'));
    dirs.push(dir);
    await crashAndRestart({ DATA_DIR: path.join(dir, 'data') });
  });

  it.runIf(!!process.env.TEST_DATABASE_URL)(
    'starts on PostgreSQL with the same schema and keeps acknowledged writes across a crash',
    async () => {
      const schema = `startup_${process.pid}_${Date.now().toString(36)}`;
      const admin = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
      await admin.connect();
      await admin.query(`CREATE SCHEMA ${schema}`);
      try {
        const url = new URL(process.env.TEST_DATABASE_URL!);
        url.searchParams.set('options', `-c search_path=${schema}`);
        await crashAndRestart({ DATABASE_URL: url.toString() });
        const versions = await admin.query(`SELECT component, version FROM ${schema}.schema_migration ORDER BY component, version`);
        expect(versions.rows.map((r: { component: string; version: number }) => `${r.component} ${r.version}`)).toEqual([
          ...AUTH_MIGRATIONS.map((m) => `auth ${m.version}`),
          ...MIGRATIONS.map((m) => `fhir ${m.version}`),
        ]);
        const accounts = await admin.query(`SELECT count(*)::int AS n FROM ${schema}.account`);
        expect(accounts.rows[0].n).toBe(10);
      } finally {
        await admin.query(`DROP SCHEMA ${schema} CASCADE`);
        await admin.end();
      }
    },
  );

  it('refuses a malformed DATABASE_URL with a message naming the variable', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts'], {
      cwd: ROOT,
      env: { ...process.env, PORT: '0', DATABASE_URL: 'mysql://nope' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).not.toBe(0);
    expect(stderr).toContain('DATABASE_URL');
  });
});
