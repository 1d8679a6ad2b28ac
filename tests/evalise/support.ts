import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bundle } from '@medplum/fhirtypes';
import { demoPassword } from '../../server/auth/demo-accounts.js';
import { DEMO_IDS } from '../../fhir/demo/demo-data.js';
import { EVALISE_RHYTHMS, generateExam } from '../../fhir/evalise/synthetic.js';
import type { TestHub } from '../fhir/harness.js';
import { followedPatient } from '../fhir/support.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'client', 'evalise', 'cli.ts');

export const GP = 'dr.pastorelli';

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(os.tmpdir(), `evalise-${prefix}-`));
}

/** The uploader's environment as a GP would set it, with short delays so tests do not wait minutes. */
export function uploaderEnv(serverUrl: string, outbox: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    EVALISE_SERVER: serverUrl,
    EVALISE_USER: GP,
    EVALISE_PASSWORD: demoPassword(GP),
    EVALISE_OUTBOX: outbox,
    EVALISE_IDLE_TIMEOUT_SECONDS: '3',
    EVALISE_BACKOFF_BASE_MS: '200',
    EVALISE_BACKOFF_MAX_MS: '2000',
    EVALISE_SCAN_INTERVAL_MS: '300',
    ...extra,
  };
}

export interface Run {
  child: ChildProcess;
  output: () => string;
  exit: Promise<number | null>;
}

/**
 * Starts the uploader as `npm run evalise -- <args>` does, in one process (node with tsx's loader;
 * the tsx binary would put a second process between us and the uploader, and a SIGKILL meant to
 * simulate a crash would leave the real uploader running).
 */
export function runUploader(args: string[], env: NodeJS.ProcessEnv): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => out, exit };
}

export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * `count` exams as the e-valise of the GP of Tende exports them, for patients the MSP of Tende
 * follows (created here), written as files in a new export folder.
 */
export async function exportExams(hub: TestHub, count: number, options: { patients?: number; serial?: string } = {}): Promise<{ dir: string; exams: Bundle[]; patientIds: string[] }> {
  const patientIds: string[] = [];
  for (let i = 0; i < (options.patients ?? 5); i++) {
    patientIds.push((await followedPatient(hub.client, { name: [{ family: `Valise-${i}` }] })).id!);
  }
  const dir = tempDir('export');
  const exams: Bundle[] = [];
  const start = Date.parse('2025-06-02T08:00:00Z');
  for (let i = 0; i < count; i++) {
    const exam = generateExam({
      patientId: patientIds[i % patientIds.length]!,
      performerId: DEMO_IDS.practitioners.gpTende,
      deviceSerial: options.serial ?? 'EV-06-TENDE-01',
      time: new Date(start + i * 17 * 60_000).toISOString().replace('.000Z', 'Z'),
      rhythm: EVALISE_RHYTHMS[i % EVALISE_RHYTHMS.length]!,
    });
    exams.push(exam);
    writeFileSync(path.join(dir, `exam-${String(i).padStart(3, '0')}.json`), JSON.stringify(exam, null, 2));
  }
  return { dir, exams, patientIds };
}

/** The identifier values an exam's entries are conditionally created on. */
export function identifiersOf(exam: Bundle): { type: string; system: string; value: string }[] {
  return (exam.entry ?? []).map((e) => {
    const r = e.resource as { resourceType: string; identifier?: { system?: string; value?: string }[] };
    return { type: r.resourceType, system: r.identifier![0]!.system!, value: r.identifier![0]!.value! };
  });
}
