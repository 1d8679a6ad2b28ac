import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bundle, Observation, OperationOutcome } from '@medplum/fhirtypes';
import { backends, startTestHub, type TestHub } from '../fhir/harness.js';
import { count, search } from '../fhir/support.js';
import { exportExams, identifiersOf, runUploader, tempDir, uploaderEnv, waitFor } from './support.js';

/** How many resources of `type` carry this identifier (conditional creates must keep it at one). */
async function stored(hub: TestHub, type: string, system: string, value: string): Promise<number> {
  return count(hub.client, type, { identifier: `${system}|${value}` });
}

async function storedOnce(hub: TestHub, exam: Bundle): Promise<boolean> {
  for (const id of identifiersOf(exam)) {
    if ((await stored(hub, id.type, id.system, id.value)) !== 1) return false;
  }
  return true;
}

function status(outbox: string): { pending: { id: string; attempts: number; lastError?: string }[]; sent: { id: string }[]; rejected: { id: string; status: number; message: string }[] } {
  const read = (dir: string, suffix: string) => (existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith(suffix)) : []);
  return {
    pending: read(path.join(outbox, 'outbox'), '.state.json').map((n) => JSON.parse(readFileSync(path.join(outbox, 'outbox', n), 'utf8'))),
    sent: read(path.join(outbox, 'sent'), '.json').map((n) => JSON.parse(readFileSync(path.join(outbox, 'sent', n), 'utf8'))),
    rejected: read(path.join(outbox, 'rejected'), '.txt').map((n) => {
      const text = readFileSync(path.join(outbox, 'rejected', n), 'utf8');
      return JSON.parse(text.slice(text.indexOf('\n\n{') + 2));
    }),
  };
}

/** A TCP port on which nothing listens: the hub out of reach. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

// The uploader's behaviour does not depend on the storage; PostgreSQL and PGlite are both
// covered by the store's own exam tests, so these run on the embedded default.
const backend = backends()[0]!;

describe('e-valise uploader (npm run evalise)', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub(backend);
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('sends a folder of exams, each stored once, and sends nothing again when run twice', async () => {
    const { dir, exams } = await exportExams(hub, 3, { serial: 'EV-TEST-SEND' });
    const outbox = tempDir('outbox');
    const env = uploaderEnv(hub.rootUrl, outbox);

    const first = runUploader(['send', dir], env);
    expect(await first.exit, first.output()).toBe(0);
    expect(first.output()).toContain('3 reçu(s) par le serveur');
    for (const exam of exams) expect(await storedOnce(hub, exam)).toBe(true);
    const receipts = status(outbox).sent;
    expect(receipts).toHaveLength(3);
    expect(status(outbox).pending).toHaveLength(0);

    const again = runUploader(['send', dir], env);
    expect(await again.exit, again.output()).toBe(0);
    expect(again.output()).toContain('rien à envoyer');
    expect(again.output()).not.toContain('mis en file');
    for (const exam of exams) expect(await storedOnce(hub, exam)).toBe(true);
  });

  it('resending exams the hub already holds (a new outbox, as after a lost disk) stores nothing twice', async () => {
    const { dir, exams } = await exportExams(hub, 2, { serial: 'EV-TEST-RESEND' });
    for (const attempt of [1, 2]) {
      const run = runUploader(['send', dir], uploaderEnv(hub.rootUrl, tempDir(`outbox-${attempt}`)));
      expect(await run.exit, run.output()).toBe(0);
      expect(run.output()).toContain('2 reçu(s) par le serveur');
    }
    for (const exam of exams) expect(await storedOnce(hub, exam)).toBe(true);
  });

  it('puts an exam the hub refuses in rejected/ with its OperationOutcome and a plain message, stores nothing of it, and does not retry it', async () => {
    const { dir, exams } = await exportExams(hub, 2, { serial: 'EV-TEST-REJECT' });
    // The device reported an SpO2 of 104 % in the second exam.
    const bad = structuredClone(exams[1]!);
    const spo2 = bad.entry!.map((e) => e.resource).find((r): r is Observation => r?.resourceType === 'Observation' && r.code.coding?.[0]?.code === '2708-6')!;
    spo2.valueQuantity!.value = 104;
    writeFileSync(path.join(dir, 'exam-001.json'), JSON.stringify(bad));
    const outbox = tempDir('outbox');
    const env = uploaderEnv(hub.rootUrl, outbox);

    const run = runUploader(['send', dir], env);
    expect(await run.exit, run.output()).toBe(1);
    expect(run.output()).toContain('1 reçu(s) par le serveur, 1 refusé(s)');
    const { rejected, sent, pending } = status(outbox);
    expect(sent).toHaveLength(1);
    expect(pending).toHaveLength(0);
    expect(rejected).toHaveLength(1);
    const [r] = rejected;
    expect(r!.status).toBe(422);
    expect(r!.message).toContain('Examen refusé par le serveur (HTTP 422)');
    expect(r!.message).toMatch(/SpO2.*104/);
    expect(r!.message).toContain('exam-001.json');
    const outcome = JSON.parse(readFileSync(path.join(outbox, 'rejected', `${r!.id}.outcome.json`), 'utf8')) as OperationOutcome;
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue.some((i) => i.expression?.some((e) => e.startsWith('Bundle.entry[2].resource')))).toBe(true);
    const kept = JSON.parse(readFileSync(path.join(outbox, 'rejected', `${r!.id}.json`), 'utf8')) as Bundle;
    expect(kept).toEqual(bad);

    for (const id of identifiersOf(bad)) {
      if (id.type === 'Device') continue; // the device is shared with the accepted exam
      expect(await stored(hub, id.type, id.system, id.value), `${id.type} ${id.value}`).toBe(0);
    }
    expect(await storedOnce(hub, exams[0]!)).toBe(true);

    const again = runUploader(['send'], env);
    expect(await again.exit, again.output()).toBe(0);
    expect(again.output()).toContain('rien à envoyer');
    expect(status(outbox).rejected).toHaveLength(1);
  });

  it('sets aside a file that is not an exam before sending, with the reason', async () => {
    const dir = tempDir('export');
    writeFileSync(path.join(dir, 'broken.json'), '{"resourceType": "Bundle", "type": "transaction", "entry": [');
    writeFileSync(path.join(dir, 'not-a-bundle.json'), JSON.stringify({ resourceType: 'Patient' }));
    const outbox = tempDir('outbox');
    const run = runUploader(['send', dir], uploaderEnv(hub.rootUrl, outbox));
    expect(await run.exit, run.output()).toBe(1);
    expect(run.output()).toContain('broken.json: not valid JSON');
    expect(run.output()).toContain('not-a-bundle.json: not a FHIR Bundle');
    const { rejected, pending } = status(outbox);
    expect(pending).toHaveLength(0);
    expect(rejected.map((r) => r.status)).toEqual([0, 0]);
  });

  it('keeps the exams queued when the hub refuses the credentials, and says which setting to fix', async () => {
    const { dir } = await exportExams(hub, 1, { serial: 'EV-TEST-LOGIN', patients: 1 });
    const outbox = tempDir('outbox');
    const run = runUploader(['send', dir], uploaderEnv(hub.rootUrl, outbox, { EVALISE_PASSWORD: 'not-the-password' }));
    expect(await run.exit, run.output()).toBe(3);
    expect(run.output()).toContain('connexion refusée pour dr.pastorelli');
    expect(run.output()).toContain('EVALISE_PASSWORD');
    expect(status(outbox).pending).toHaveLength(1);

    const run2 = runUploader(['send'], uploaderEnv(hub.rootUrl, outbox));
    expect(await run2.exit, run2.output()).toBe(0);
    expect(status(outbox).sent).toHaveLength(1);
  });

  it('retries with backoff while the hub is out of reach, stops cleanly on SIGTERM, and delivers once the hub is back', async () => {
    const { dir, exams } = await exportExams(hub, 2, { serial: 'EV-TEST-OFFLINE', patients: 1 });
    const outbox = tempDir('outbox');
    const offline = runUploader(['send', dir], uploaderEnv(`http://127.0.0.1:${await closedPort()}`, outbox));
    await waitFor(() => status(outbox).pending.some((p) => p.attempts >= 3), 'three failed attempts are recorded', 30_000);
    const pending = status(outbox).pending;
    expect(pending).toHaveLength(2);
    expect(pending[0]!.lastError).toMatch(/ECONNREFUSED|fetch failed/);
    offline.child.kill('SIGTERM');
    expect(await offline.exit).toBe(130);
    expect(offline.output()).toContain('restent en file');

    const online = runUploader(['send'], uploaderEnv(hub.rootUrl, outbox));
    expect(await online.exit, online.output()).toBe(0);
    expect(status(outbox).sent).toHaveLength(2);
    for (const exam of exams) expect(await storedOnce(hub, exam)).toBe(true);
  });

  it('watch picks up an export only once the device has finished writing it', async () => {
    const { dir: source, exams } = await exportExams(hub, 1, { serial: 'EV-TEST-WATCH', patients: 1 });
    const dir = tempDir('watched');
    const outbox = tempDir('outbox');
    const watcher = runUploader(['watch', dir], uploaderEnv(hub.rootUrl, outbox));
    try {
      await waitFor(() => watcher.output().includes('surveillance de'), 'the watcher is running', 20_000);
      // The device writes the file in two parts, a few scans apart.
      const text = readFileSync(path.join(source, 'exam-000.json'), 'utf8');
      const target = path.join(dir, 'exam.json');
      writeFileSync(target, text.slice(0, 1000));
      await new Promise((r) => setTimeout(r, 150));
      writeFileSync(target, text);
      await waitFor(() => status(outbox).sent.length === 1, 'the exam is delivered', 30_000);
      expect(watcher.output()).not.toContain('refusé avant envoi');
      expect(status(outbox).rejected).toHaveLength(0);
      expect(await storedOnce(hub, exams[0]!)).toBe(true);
    } finally {
      watcher.child.kill('SIGTERM');
      expect(await watcher.exit).toBe(130);
    }
  });

  it('status tells what is queued, delivered and refused', async () => {
    const { dir } = await exportExams(hub, 1, { serial: 'EV-TEST-STATUS', patients: 1 });
    const outbox = tempDir('outbox');
    const env = uploaderEnv(hub.rootUrl, outbox);
    expect(await runUploader(['send', dir], env).exit).toBe(0);
    const run = runUploader(['status', '--json'], { ...env, EVALISE_PASSWORD: '' });
    expect(await run.exit, run.output()).toBe(0);
    const report = JSON.parse(run.output()) as { pending: unknown[]; sent: { locations: string[] }[]; rejected: unknown[] };
    expect(report.pending).toHaveLength(0);
    expect(report.rejected).toHaveLength(0);
    expect(report.sent).toHaveLength(1);
    expect(report.sent[0]!.locations).toHaveLength(6);
    const reportId = report.sent[0]!.locations.map((l) => /DiagnosticReport\/([^/]+)/.exec(l)?.[1]).find(Boolean);
    expect(reportId).toBeDefined();
    const text = runUploader(['status'], { ...env, EVALISE_PASSWORD: '' });
    expect(await text.exit).toBe(0);
    expect(text.output()).toContain('envoyés : 1');
    expect((await search(hub.client, 'DiagnosticReport', { _id: reportId! })).entry).toHaveLength(1);
  });

  it('explains a missing setting instead of failing later', async () => {
    const run = runUploader(['send', tempDir('empty')], { PATH: process.env.PATH, HOME: tempDir('home') });
    expect(await run.exit).toBe(2);
    expect(run.output()).toContain('EVALISE_USER');
    expect(run.output()).toContain('EVALISE_PASSWORD');
  });
});
