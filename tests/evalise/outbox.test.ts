import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Outbox, InvalidExamFile, type PendingExam } from '../../client/evalise/outbox.js';
import { ProgressBar, bar, formatBytes, formatDuration } from '../../client/evalise/progress.js';
import { backoffDelay, rejectionMessage } from '../../client/evalise/sender.js';
import { tempDir } from './support.js';

const exam = (n: number) => JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [{ resource: { resourceType: 'Observation', subject: { reference: `Patient/p${n}` }, effectiveDateTime: '2025-01-01T00:00:00Z' } }] });

describe('the uploader outbox', () => {
  it('queues an exam once, whatever its formatting, and keeps it across a reopen', async () => {
    const home = tempDir('box');
    const box = await Outbox.open(home);
    const first = await box.enqueue('a.json', exam(1));
    const pretty = await box.enqueue('b.json', JSON.stringify(JSON.parse(exam(1)), null, 2));
    expect(first.queued).toBe(true);
    expect(pretty).toEqual({ id: first.id, state: 'pending', queued: false });
    const reopened = await Outbox.open(home);
    const pending = await reopened.pending();
    expect(pending.map((p) => p.id)).toEqual([first.id]);
    expect(pending[0]!.label).toBe('Patient/p1 2025-01-01T00:00:00Z');
  });

  it('refuses what is not a transaction Bundle, naming the file', async () => {
    const box = await Outbox.open(tempDir('box'));
    await expect(box.enqueue('x.json', '{')).rejects.toThrow(InvalidExamFile);
    await expect(box.enqueue('x.json', '{"resourceType":"Bundle","type":"batch","entry":[{}]}')).rejects.toThrow('x.json: Bundle.type must be "transaction"');
    expect(await box.pending()).toEqual([]);
  });

  it('finishes after a crash what was cut short: half-written files dropped, a delivered exam leaves the outbox, a payload without state is still sent', async () => {
    const home = tempDir('box');
    const box = await Outbox.open(home);
    const delivered = await box.enqueue('a.json', exam(1));
    const waiting = await box.enqueue('b.json', exam(2));
    const orphan = await box.enqueue('c.json', exam(3));
    // Crash 1: while writing a file (only tmp/ holds it). Another live process's file stays.
    writeFileSync(path.join(home, 'tmp', 'x.json.gz.4194000.k2x9.part'), 'half');
    writeFileSync(path.join(home, 'tmp', `y.json.gz.${process.ppid}.k2x9.part`), 'being written');
    // Crash 2: after the receipt, before the outbox copy was removed.
    writeFileSync(path.join(home, 'sent', `${delivered.id}.json`), JSON.stringify({ id: delivered.id, sentAt: '2025-01-01T00:00:00Z' }));
    // Crash 3: between the payload and its state.
    const { rmSync } = await import('node:fs');
    rmSync(path.join(home, 'outbox', `${orphan.id}.state.json`));

    const reopened = await Outbox.open(home);
    expect(readdirSync(path.join(home, 'tmp'))).toHaveLength(2); // opening (status) touches nothing there
    const lock = await reopened.lock();
    expect(readdirSync(path.join(home, 'tmp'))).toEqual([`y.json.gz.${process.ppid}.k2x9.part`]);
    if ('release' in lock) await lock.release();
    expect(existsSync(path.join(home, 'outbox', `${delivered.id}.json.gz`))).toBe(false);
    expect((await reopened.pending()).map((p) => p.id).sort()).toEqual([waiting.id, orphan.id].sort());
    expect(await reopened.stateOf(delivered.id)).toBe('sent');
  });

  it('queues a refused exam again only when it is handed over by hand, keeping the refusal as history', async () => {
    const home = tempDir('box');
    const box = await Outbox.open(home);
    const { id } = await box.enqueue('a.json', exam(7));
    const [pending] = await box.pending();
    await box.markRejected(pending!, 404, { resourceType: 'OperationOutcome', issue: [] }, 'refusé');
    expect(await box.enqueue('a.json', exam(7))).toEqual({ id, state: 'rejected', queued: false });
    expect(await box.enqueue('a.json', exam(7), { retryRejected: true })).toEqual({ id, state: 'pending', queued: true });
    expect((await box.pending()).map((p) => p.id)).toEqual([id]);
    expect(await box.rejected()).toEqual([]);
    expect(readdirSync(path.join(home, 'rejected')).some((n) => n.startsWith(`${id}.`) && n.endsWith('.txt.old'))).toBe(true);
  });

  it('lets one sender at a time drain it, and takes over the lock of a dead one', async () => {
    const home = tempDir('box');
    const box = await Outbox.open(home);
    const mine = await box.lock();
    expect('release' in mine).toBe(true);
    // A lock left by a process that no longer exists (pid far above any pid_max default).
    const other = await Outbox.open(home);
    if ('release' in mine) await mine.release();
    writeFileSync(path.join(home, 'sender.lock'), '4194000');
    const taken = await other.lock();
    expect('release' in taken).toBe(true);
    // A lock held by a live process (the test runner's parent) is respected.
    writeFileSync(path.join(home, 'sender.lock'), String(process.ppid));
    expect(await box.lock()).toEqual({ heldBy: process.ppid });
  });
});

describe('the sender lock across processes', () => {
  it('goes to exactly one of several uploaders started at the same moment (after a reboot)', async () => {
    const { spawn } = await import('node:child_process');
    const home = tempDir('box');
    // A stale lock from before the reboot: every starter finds it and must not both take over.
    writeFileSync(path.join(home, 'sender.lock'), '4194000');
    // Each uploader says whether it got the lock, then holds on until every one has answered.
    const script = `const { Outbox } = await import(${JSON.stringify(path.resolve('client/evalise/outbox.ts'))});
      const box = await Outbox.open(${JSON.stringify(home)});
      const lock = await box.lock();
      console.log('release' in lock ? 'got' : 'held');
      process.stdin.resume();
      await new Promise((r) => process.stdin.on('end', r));`;
    const children = Array.from({ length: 4 }, () => spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] }));
    const results = await Promise.all(
      children.map(
        (child) =>
          new Promise<string>((resolve, reject) => {
            let out = '';
            child.stdout!.on('data', (d: Buffer) => {
              out += d.toString();
              if (out.includes('\n')) resolve(out.trim());
            });
            child.on('exit', (code) => reject(new Error(`exit ${code} before answering`)));
          }),
      ),
    );
    for (const child of children) child.stdin!.end();
    await Promise.all(children.map((child) => new Promise((r) => (child.exitCode !== null ? r(null) : child.on('exit', r)))));
    expect(results.sort()).toEqual(['got', 'held', 'held', 'held']);
  });
});

describe('retry delays', () => {
  it('double from the base, stay between half and all of the ceiling, and never exceed the maximum', () => {
    const policy = { baseMs: 1000, maxMs: 60_000 };
    expect(backoffDelay(0, policy, () => 0)).toBe(500);
    expect(backoffDelay(0, policy, () => 1)).toBe(1000);
    expect(backoffDelay(3, policy, () => 0)).toBe(4000);
    expect(backoffDelay(3, policy, () => 1)).toBe(8000);
    expect(backoffDelay(50, policy, () => 1)).toBe(60_000);
    expect(backoffDelay(50, policy, () => 0)).toBe(30_000);
  });
});

describe('what the GP reads', () => {
  const pending: PendingExam = { id: 'abc', source: '/media/evalise/exam.json', label: 'Patient/p1 2025-01-01', enqueuedAt: '', bytes: 0, gzipBytes: 81_000, attempts: 0, nextAttemptAt: 0 };

  it('a refusal lists every reason the hub gave with its place in the exam', () => {
    const message = rejectionMessage(pending, 422, {
      resourceType: 'OperationOutcome',
      issue: [
        { severity: 'error', code: 'value', diagnostics: 'SpO2 104 % is above 100 %', expression: ['Bundle.entry[2].resource.valueQuantity.value'] },
        { severity: 'error', code: 'value', diagnostics: 'heart rate 0 /min' },
      ],
    });
    expect(message).toContain('Examen refusé par le serveur (HTTP 422) : Patient/p1 2025-01-01');
    expect(message).toContain('/media/evalise/exam.json');
    expect(message).toContain('  - SpO2 104 % is above 100 % [Bundle.entry[2].resource.valueQuantity.value]');
    expect(message).toContain('  - heart rate 0 /min');
    expect(message).toContain('abc');
  });

  it('the progress line shows the bar, bytes, rate and time left on a terminal', () => {
    let out = '';
    let now = 0;
    const stream = Object.assign(
      { write: (s: string) => ((out += s), true) },
      { isTTY: true, columns: 200 },
    ) as unknown as NodeJS.WritableStream & { isTTY: boolean; columns: number };
    const progress = new ProgressBar(stream, () => now);
    progress.start(pending, 0, 2, 81_000);
    now = 1000;
    progress.bytes(40_500, 81_000);
    const line = out.slice(out.lastIndexOf('\r'));
    expect(line).toContain('1/2');
    expect(line).toContain(bar(0.5));
    expect(line).toContain(`${formatBytes(40_500)}/${formatBytes(81_000)}`);
    expect(line).toContain(`${formatBytes(40_500)}/s`);
    // 40.5 KB of this exam and 81 KB queued after it, at 40.5 KB/s.
    expect(line).toContain(`reste ${formatDuration(3000)}`);
    progress.end({ kind: 'sent', locations: [] }, pending);
    expect(out).toContain('✓ 1/2 Patient/p1 2025-01-01 reçu par le serveur');
  });

  it('formats sizes and durations for people', () => {
    expect(formatBytes(512)).toBe('512 o');
    expect(formatBytes(81_300)).toBe('79 Ko');
    expect(formatDuration(65_000)).toBe('1 min 05 s');
    expect(formatDuration(3_725_000)).toBe('1 h 02 min');
  });
});
