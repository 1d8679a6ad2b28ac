/**
 * npm run bench:evalise: what one 12-lead e-valise exam costs on a satellite link.
 *
 *  1. payload: the exam as JSON (pretty, as a device exports it; minified), and gzip'd as the
 *     uploader sends it;
 *  2. delivery time over an emulated 512 kbit/s, 600 ms RTT link (tests/support/link-emulator.ts;
 *     tc netem is not available on these machines): from the uploader picking the exam to the
 *     hub's acknowledgement, for the first exam of a session (login included) and for the next
 *     ones, and the same exam sent as plain JSON for comparison. Target: under 5 s.
 *  3. the same link with faults (resets mid-upload, lost answers, stalls): mean time per exam
 *     delivered, retries included.
 *
 * The uploader's real code (Outbox + Sender) runs in this process against a real hub on PGlite
 * (BENCH_BACKEND=postgres for PostgreSQL at TEST_DATABASE_URL).
 *   BENCH_EXAMS (default 10), BENCH_FAULTY_EXAMS (default 20), BENCH_BACKEND (pglite|postgres)
 */
import { gzipSync } from 'node:zlib';
import { performance } from 'node:perf_hooks';
import type { Bundle } from '@medplum/fhirtypes';
import { Outbox } from '../../client/evalise/outbox.js';
import { Sender } from '../../client/evalise/sender.js';
import { Session } from '../../client/evalise/session.js';
import { DEMO_IDS } from '../../fhir/demo/demo-data.js';
import { EVALISE_RHYTHMS, generateExam } from '../../fhir/evalise/synthetic.js';
import { demoPassword } from '../../server/auth/demo-accounts.js';
import { startTestHub, type TestHub } from '../fhir/harness.js';
import { followedPatient } from '../fhir/support.js';
import { LinkEmulator, type LinkProfile } from '../support/link-emulator.js';
import { tempDir, GP } from '../evalise/support.js';

const EXAMS = Number(process.env.BENCH_EXAMS ?? 10);
const FAULTY_EXAMS = Number(process.env.BENCH_FAULTY_EXAMS ?? 20);
const BACKEND = process.env.BENCH_BACKEND ?? 'pglite';
const RTT_MS = 600;
const SATELLITE: LinkProfile = { latencyMs: RTT_MS / 2, bandwidthBitsPerSecond: 512_000 };

const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

let examCounter = 0;
function exam(patientId: string): Bundle {
  const i = examCounter++;
  return generateExam({
    patientId,
    performerId: DEMO_IDS.practitioners.gpTende,
    deviceSerial: 'EV-06-BENCH-01',
    time: new Date(Date.parse('2025-09-01T08:00:00Z') + i * 60_000).toISOString().replace('.000Z', 'Z'),
    rhythm: EVALISE_RHYTHMS[i % EVALISE_RHYTHMS.length]!,
  });
}

async function uploader(link: LinkEmulator): Promise<{ outbox: Outbox; sender: Sender }> {
  const outbox = await Outbox.open(tempDir('bench-outbox'));
  const session = new Session(link.url, { username: GP, password: demoPassword(GP) }, 30_000);
  const sender = new Sender({ fhirBaseUrl: `${link.url}/fhir/R4`, session, outbox, idleTimeoutMs: 5_000, backoff: { baseMs: 500, maxMs: 4_000 } });
  return { outbox, sender };
}

/** Queues one exam and delivers it; the time is from the start of the attempt to the hub's acknowledgement. */
async function deliverOne(outbox: Outbox, sender: Sender, bundle: Bundle): Promise<number> {
  await outbox.enqueue('bench', JSON.stringify(bundle));
  const [pending] = await outbox.pending();
  const t0 = performance.now();
  const outcome = await sender.deliver(pending!);
  if (outcome.kind !== 'sent') throw new Error(`bench exam not delivered: ${JSON.stringify(outcome)}`);
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const hub: TestHub = await startTestHub(BACKEND === 'postgres' ? { name: 'postgres', databaseUrl: process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' } : { name: 'pglite' });
  const patient = (await followedPatient(hub.client, { name: [{ family: 'Banc' }] })).id!;
  const port = Number(new URL(hub.rootUrl).port);

  // 1. Payload
  const sample = exam(patient);
  const pretty = Buffer.from(JSON.stringify(sample, null, 2));
  const minified = Buffer.from(JSON.stringify(sample));
  const gz9 = gzipSync(minified, { level: 9 });
  const gzPretty = gzipSync(pretty, { level: 9 });
  console.log('\n# e-valise exam payload (12-lead ECG 10 s at 500 Hz, SpO2, BP, HR, Device, DiagnosticReport)\n');
  console.log('| form | size | at 512 kbit/s |');
  console.log('|---|---|---|');
  for (const [name, size] of [
    ['JSON as exported (pretty)', pretty.length],
    ['JSON minified', minified.length],
    ['gzip -9 of the pretty export', gzPretty.length],
    ['gzip -9 minified (what the uploader sends)', gz9.length],
  ] as const) {
    console.log(`| ${name} | ${kib(size)} (${((size / pretty.length) * 100).toFixed(0)} %) | ${secs((size * 8 * 1000) / 512_000)} |`);
  }

  // 2. Clean satellite link
  const link = await LinkEmulator.start({ targetHost: '127.0.0.1', targetPort: port, profile: SATELLITE });
  const { outbox, sender } = await uploader(link);
  const first = await deliverOne(outbox, sender, exam(patient));
  const warm: number[] = [];
  for (let i = 0; i < EXAMS; i++) warm.push(await deliverOne(outbox, sender, exam(patient)));

  // The same exam uncompressed, as a client without gzip would send it.
  const plainTimes: number[] = [];
  const token = await hub.login(GP);
  for (let i = 0; i < 3; i++) {
    const body = JSON.stringify(exam(patient));
    const t0 = performance.now();
    const response = await fetch(`${link.url}/fhir/R4`, { method: 'POST', headers: { 'content-type': 'application/fhir+json', authorization: `Bearer ${token}` }, body });
    await response.text();
    if (response.status !== 200) throw new Error(`plain upload: HTTP ${response.status}`);
    plainTimes.push(performance.now() - t0);
  }
  await link.close();

  console.log(`\n# Delivery over an emulated satellite link: 512 kbit/s, ${RTT_MS} ms RTT (${BACKEND})\n`);
  console.log('The emulator completes TCP handshakes locally: a new connection on a real link costs one more RTT,');
  console.log(`added in the "real link" column where a connection is opened (the first exam: login + upload).\n`);
  console.log('| delivery | measured | real link estimate | target |');
  console.log('|---|---|---|---|');
  console.log(`| first exam of a session (login, then upload, gzip) | ${secs(first)} | ${secs(first + RTT_MS)} | < 5 s |`);
  console.log(`| next exams, gzip (p50 / max of ${EXAMS}) | ${secs(percentile(warm, 50))} / ${secs(Math.max(...warm))} | same (connection kept alive) | < 5 s |`);
  console.log(`| same exam as plain JSON (p50 of 3) | ${secs(percentile(plainTimes, 50))} | | |`);

  // 3. Faulty satellite link
  const faulty = await LinkEmulator.start({
    targetHost: '127.0.0.1',
    targetPort: port,
    // Faults are drawn per connection and the uploader keeps its connection alive, so a fault
    // lands somewhere in the first ~4 exams a connection carries.
    profile: { ...SATELLITE, resetProbability: 0.5, resetWithinBytes: 320_000, responseResetProbability: 0.2, stallProbability: 0.25, stallMs: 20_000, seed: 7 },
  });
  const bad = await uploader(faulty);
  for (let i = 0; i < FAULTY_EXAMS; i++) await bad.outbox.enqueue(`bench-${i}`, JSON.stringify(exam(patient)));
  const t0 = performance.now();
  const summary = await bad.sender.drain();
  const total = performance.now() - t0;
  const attempts = (await bad.outbox.sent()).reduce((n, r) => n + r.attempts, 0);
  const stats = faulty.stats();
  await faulty.close();
  console.log(`\n# Same link with faults: ${FAULTY_EXAMS} exams, per connection: 50 % reset within its first 320 KB uploaded, 20 % first answer lost, 25 % stall of 20 s (the uploader gives up after 5 s idle)\n`);
  console.log('| delivered | attempts | resets / lost answers / stalls | total | mean per exam |');
  console.log('|---|---|---|---|---|');
  console.log(`| ${summary.sent} of ${FAULTY_EXAMS} | ${attempts} | ${stats.resets} / ${stats.responseResets} / ${stats.stalls} | ${secs(total)} | ${secs(total / Math.max(1, summary.sent))} |`);

  await hub.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
