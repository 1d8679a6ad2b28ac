/**
 * The uploader's durable outbox: an exam handed to the uploader is on disk (fsync'd file, rename,
 * fsync'd folder) before `send` or `watch` reports it queued, so a crash, a reboot or a dead
 * battery loses nothing. One folder per state, one file per exam, so a GP (or support on the
 * phone) can see where an exam is with a file manager:
 *
 *   <home>/outbox/<id>.json.gz      exam waiting to be delivered (the exact bytes sent, gzip)
 *   <home>/outbox/<id>.state.json   attempts, next attempt, last error
 *   <home>/sent/<id>.json           receipt: when, after how many attempts, the server's locations
 *   <home>/rejected/<id>.json       exam the server refused, as it was handed over
 *   <home>/rejected/<id>.outcome.json   the server's OperationOutcome
 *   <home>/rejected/<id>.txt        why, in plain words
 *   <home>/tmp/                     files being written (cleared at start)
 *
 * The id is a hash of the exam's content, so handing the same export over twice queues it once.
 */
import { createHash } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';

export type ExamState = 'pending' | 'sent' | 'rejected';

export interface PendingExam {
  id: string;
  /** Where the exam came from (a file name), for messages. */
  source: string;
  /** A short description: patient, time, rhythm... as found in the bundle. */
  label: string;
  enqueuedAt: string;
  /** Size of the exam as JSON, and as sent (gzip). */
  bytes: number;
  gzipBytes: number;
  attempts: number;
  /** Epoch ms before which the sender leaves this exam alone (backoff). */
  nextAttemptAt: number;
  lastError?: string;
}

export interface SentReceipt {
  id: string;
  source: string;
  label: string;
  enqueuedAt: string;
  sentAt: string;
  attempts: number;
  /** Locations the server answered for each entry of the transaction (Device, Observations, report). */
  locations: string[];
}

export interface RejectedExam {
  id: string;
  source: string;
  label: string;
  rejectedAt: string;
  status: number;
  message: string;
}

export type EnqueueResult = { id: string; state: ExamState; queued: boolean };

/** An exam file that cannot be queued at all: not JSON, or not a transaction Bundle. */
export class InvalidExamFile extends Error {
  constructor(
    readonly source: string,
    reason: string,
  ) {
    super(`${source}: ${reason}`);
    this.name = 'InvalidExamFile';
  }
}

const ID_RE = /^[0-9a-f]{24}$/;

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes a file so that after this resolves it survives a crash or a power cut, whole or not at all. */
async function writeDurably(tmpDir: string, target: string, data: string | Uint8Array): Promise<void> {
  const tmp = path.join(tmpDir, `${path.basename(target)}.${process.pid}.${Date.now().toString(36)}.part`);
  const handle = await fs.open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, target);
  await fsyncDir(path.dirname(target));
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as T;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

interface BundleLike {
  resourceType?: unknown;
  type?: unknown;
  entry?: { resource?: { resourceType?: string; subject?: { reference?: string }; effectiveDateTime?: string; code?: { text?: string } } }[];
}

/** Checks what the uploader can check alone (the server checks the rest) and describes the exam. */
function describe(source: string, text: string): { minified: string; label: string } {
  let bundle: BundleLike;
  try {
    bundle = JSON.parse(text) as BundleLike;
  } catch (err) {
    throw new InvalidExamFile(source, `not valid JSON (${(err as Error).message})`);
  }
  if (bundle === null || typeof bundle !== 'object' || bundle.resourceType !== 'Bundle') {
    throw new InvalidExamFile(source, 'not a FHIR Bundle (resourceType must be "Bundle")');
  }
  if (bundle.type !== 'transaction') throw new InvalidExamFile(source, `Bundle.type must be "transaction", found ${JSON.stringify(bundle.type)}`);
  if (!Array.isArray(bundle.entry) || bundle.entry.length === 0) throw new InvalidExamFile(source, 'the Bundle has no entry');
  const report = bundle.entry.find((e) => e.resource?.resourceType === 'DiagnosticReport')?.resource;
  const first = report ?? bundle.entry.find((e) => e.resource?.resourceType === 'Observation')?.resource;
  const label = [first?.subject?.reference, first?.effectiveDateTime].filter(Boolean).join(' ') || path.basename(source);
  return { minified: JSON.stringify(bundle), label };
}

export class Outbox {
  readonly dirs: { outbox: string; sent: string; rejected: string; tmp: string };

  private constructor(readonly home: string) {
    this.dirs = {
      outbox: path.join(home, 'outbox'),
      sent: path.join(home, 'sent'),
      rejected: path.join(home, 'rejected'),
      tmp: path.join(home, 'tmp'),
    };
  }

  /** Opens (creating if needed) an outbox and finishes what a crash interrupted. */
  static async open(home: string): Promise<Outbox> {
    const box = new Outbox(path.resolve(home));
    for (const dir of Object.values(box.dirs)) await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    await box.recover();
    return box;
  }

  /**
   * After a crash: an exam whose receipt or rejection was written but whose outbox copy was not
   * yet removed leaves the outbox now. (Half-written files in tmp/ are dropped by the sender that
   * takes the lock: another process may be writing there right now.)
   */
  private async recover(): Promise<void> {
    for (const name of await fs.readdir(this.dirs.outbox)) {
      const id = name.split('.')[0]!;
      if (!ID_RE.test(id)) continue;
      const payload = path.join(this.dirs.outbox, `${id}.json.gz`);
      const done = (await exists(path.join(this.dirs.sent, `${id}.json`))) || (await exists(path.join(this.dirs.rejected, `${id}.txt`)));
      if (done || !(await exists(payload))) await this.removeFromOutbox(id);
    }
  }

  static idOf(minifiedJson: string): string {
    return createHash('sha256').update(minifiedJson).digest('hex').slice(0, 24);
  }

  /** Queues one exam; durably on disk when this resolves. Already queued, sent or rejected: nothing changes. */
  async enqueue(source: string, text: string, options: { retryRejected?: boolean } = {}): Promise<EnqueueResult> {
    const { minified, label } = describe(source, text);
    const id = Outbox.idOf(minified);
    let state = await this.stateOf(id);
    if (state === 'rejected' && options.retryRejected) {
      // The GP hands the same exam over again (the patient has since joined the care team...):
      // the refusal is kept beside it as history, and the exam goes back into the outbox.
      await fs.rename(path.join(this.dirs.rejected, `${id}.txt`), path.join(this.dirs.rejected, `${id}.${Date.now()}.txt.old`));
      await fsyncDir(this.dirs.rejected);
      state = undefined;
    }
    if (state) return { id, state, queued: false };
    const gz = gzipSync(minified, { level: 9 });
    const pending: PendingExam = {
      id,
      source,
      label,
      enqueuedAt: new Date().toISOString(),
      bytes: Buffer.byteLength(minified),
      gzipBytes: gz.length,
      attempts: 0,
      nextAttemptAt: 0,
    };
    // The payload first: a crash between the two writes leaves a payload without state, which
    // pending() reads as a fresh exam; the other order could leave a state with nothing to send.
    await writeDurably(this.dirs.tmp, path.join(this.dirs.outbox, `${id}.json.gz`), gz);
    await writeDurably(this.dirs.tmp, path.join(this.dirs.outbox, `${id}.state.json`), JSON.stringify(pending, null, 2));
    return { id, state: 'pending', queued: true };
  }

  async stateOf(id: string): Promise<ExamState | undefined> {
    if (await exists(path.join(this.dirs.sent, `${id}.json`))) return 'sent';
    if (await exists(path.join(this.dirs.rejected, `${id}.txt`))) return 'rejected';
    if (await exists(path.join(this.dirs.outbox, `${id}.json.gz`))) return 'pending';
    return undefined;
  }

  /** Exams waiting, oldest first. */
  async pending(): Promise<PendingExam[]> {
    const list: PendingExam[] = [];
    for (const name of await fs.readdir(this.dirs.outbox)) {
      if (!name.endsWith('.json.gz')) continue;
      const id = name.slice(0, -'.json.gz'.length);
      if (!ID_RE.test(id)) continue;
      const state = await readJson<PendingExam>(path.join(this.dirs.outbox, `${id}.state.json`));
      if (state) {
        list.push(state);
      } else {
        // Crashed between the two writes of enqueue(): the payload is whole (renamed after fsync).
        const stat = await fs.stat(path.join(this.dirs.outbox, name));
        list.push({ id, source: name, label: name, enqueuedAt: stat.mtime.toISOString(), bytes: 0, gzipBytes: stat.size, attempts: 0, nextAttemptAt: 0 });
      }
    }
    return list.sort((a, b) => a.enqueuedAt.localeCompare(b.enqueuedAt) || a.id.localeCompare(b.id));
  }

  async payload(id: string): Promise<Buffer> {
    return fs.readFile(path.join(this.dirs.outbox, `${id}.json.gz`));
  }

  async recordFailure(exam: PendingExam, error: string, nextAttemptAt: number): Promise<PendingExam> {
    const updated: PendingExam = { ...exam, attempts: exam.attempts + 1, lastError: error, nextAttemptAt };
    await writeDurably(this.dirs.tmp, path.join(this.dirs.outbox, `${exam.id}.state.json`), JSON.stringify(updated, null, 2));
    return updated;
  }

  /** The receipt is durable before the exam leaves the outbox; recover() finishes a move a crash cut short. */
  async markSent(exam: PendingExam, locations: string[]): Promise<SentReceipt> {
    const receipt: SentReceipt = {
      id: exam.id,
      source: exam.source,
      label: exam.label,
      enqueuedAt: exam.enqueuedAt,
      sentAt: new Date().toISOString(),
      attempts: exam.attempts + 1,
      locations,
    };
    await writeDurably(this.dirs.tmp, path.join(this.dirs.sent, `${exam.id}.json`), JSON.stringify(receipt, null, 2));
    await this.removeFromOutbox(exam.id);
    return receipt;
  }

  async markRejected(exam: PendingExam, status: number, outcome: unknown, message: string): Promise<void> {
    const original = gunzipSync(await this.payload(exam.id)).toString('utf8');
    await writeDurably(this.dirs.tmp, path.join(this.dirs.rejected, `${exam.id}.json`), JSON.stringify(JSON.parse(original), null, 2));
    await writeDurably(this.dirs.tmp, path.join(this.dirs.rejected, `${exam.id}.outcome.json`), JSON.stringify(outcome ?? null, null, 2));
    const record: RejectedExam = { id: exam.id, source: exam.source, label: exam.label, rejectedAt: new Date().toISOString(), status, message };
    // The .txt is written last: its presence is what marks the exam rejected.
    await writeDurably(this.dirs.tmp, path.join(this.dirs.rejected, `${exam.id}.txt`), `${message}\n\n${JSON.stringify(record, null, 2)}\n`);
    await this.removeFromOutbox(exam.id);
  }

  /**
   * A file that can never be queued (not JSON, not a transaction Bundle) goes to rejected/ with
   * the reason, so `watch` reports it once instead of on every scan.
   */
  async rejectFile(source: string, text: string, reason: string): Promise<string> {
    const id = Outbox.idOf(text);
    if (await this.stateOf(id)) return id;
    await writeDurably(this.dirs.tmp, path.join(this.dirs.rejected, `${id}.json`), text);
    const message = [
      `Fichier refusé par l'uploader avant envoi : ${source}`,
      `Raison : ${reason}`,
      `Exportez l'examen de nouveau depuis l'appareil ; s'il est encore refusé, contactez le support avec l'identifiant ${id}.`,
    ].join('\n');
    const record: RejectedExam = { id, source, label: path.basename(source), rejectedAt: new Date().toISOString(), status: 0, message };
    await writeDurably(this.dirs.tmp, path.join(this.dirs.rejected, `${id}.txt`), `${message}\n\n${JSON.stringify(record, null, 2)}\n`);
    return id;
  }

  async sent(): Promise<SentReceipt[]> {
    const list: SentReceipt[] = [];
    for (const name of await fs.readdir(this.dirs.sent)) {
      if (!name.endsWith('.json')) continue;
      const receipt = await readJson<SentReceipt>(path.join(this.dirs.sent, name));
      if (receipt) list.push(receipt);
    }
    return list.sort((a, b) => a.sentAt.localeCompare(b.sentAt));
  }

  async rejected(): Promise<RejectedExam[]> {
    const list: RejectedExam[] = [];
    for (const name of await fs.readdir(this.dirs.rejected)) {
      if (!name.endsWith('.txt')) continue;
      const text = await fs.readFile(path.join(this.dirs.rejected, name), 'utf8');
      const json = text.slice(text.indexOf('\n\n{') + 2);
      try {
        list.push(JSON.parse(json) as RejectedExam);
      } catch {
        list.push({ id: name.slice(0, -4), source: name, label: name, rejectedAt: '', status: 0, message: text.split('\n')[0] ?? '' });
      }
    }
    return list.sort((a, b) => a.rejectedAt.localeCompare(b.rejectedAt));
  }

  /**
   * Only one sender drains an outbox at a time (two would send every exam twice: harmless for
   * the server, wasteful on a satellite link). The lock file holds the owner's pid; a lock left by
   * a process that no longer runs (killed, rebooted) is taken over.
   * Returns a release function, or the pid of the live owner.
   */
  async lock(): Promise<{ release: () => Promise<void> } | { heldBy: number }> {
    const file = path.join(this.home, 'sender.lock');
    // The lock appears whole or not at all: written aside, then hard-linked into place (link fails
    // if the name exists), so no other process can read it empty and take it for a stale one.
    const mine = path.join(this.dirs.tmp, `sender.lock.${process.pid}.${Date.now().toString(36)}.part`);
    const handle = await fs.open(mine, 'w', 0o600);
    try {
      await handle.writeFile(String(process.pid));
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          await fs.link(mine, file);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
          const owner = Number((await fs.readFile(file, 'utf8').catch(() => '')).trim());
          if (owner > 0 && owner !== process.pid && processRuns(owner)) return { heldBy: owner };
          // Stale (its owner is gone): moved away under a name of our own, so of two processes
          // finding it stale only one removes it, and never a lock another has just taken.
          const stale = `${file}.stale.${process.pid}`;
          await fs.rename(file, stale).then(
            () => fs.rm(stale, { force: true }),
            (e: NodeJS.ErrnoException) => {
              if (e.code !== 'ENOENT') throw e;
            },
          );
          continue;
        }
        await fsyncDir(this.home);
        // Files a crashed sender left half-written: their exam was never reported queued or done.
        for (const name of await fs.readdir(this.dirs.tmp)) {
          const pid = Number(/\.(\d+)\.[a-z0-9]+\.part$/.exec(name)?.[1] ?? 0);
          if (pid !== process.pid && !(pid > 0 && processRuns(pid))) await fs.rm(path.join(this.dirs.tmp, name), { force: true });
        }
        return {
          release: async () => {
            const owner = Number((await fs.readFile(file, 'utf8').catch(() => '')).trim());
            if (owner === process.pid) await fs.rm(file, { force: true });
          },
        };
      }
      throw new Error(`cannot take the lock ${file}`);
    } finally {
      await fs.rm(mine, { force: true });
    }
  }

  private async removeFromOutbox(id: string): Promise<void> {
    await fs.rm(path.join(this.dirs.outbox, `${id}.state.json`), { force: true });
    await fs.rm(path.join(this.dirs.outbox, `${id}.json.gz`), { force: true });
    await fsyncDir(this.dirs.outbox);
  }
}
