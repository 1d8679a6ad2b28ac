/**
 * Picks up what the e-valise exports into a folder. Polling, not fs.watch: export folders live on
 * USB mass storage, SMB shares and FUSE mounts where change notifications are missing or
 * duplicated, and a scan every second costs nothing next to a satellite upload. A file is taken
 * only once it has stopped changing (the device may still be writing it). The export folder is
 * never modified: what was queued is known by content, so a restart rescans harmlessly.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { InvalidExamFile, type Outbox } from './outbox.js';

export interface ScanEvents {
  queued(file: string, id: string): void;
  invalid(file: string, reason: string): void;
  /** Already delivered or refused earlier: nothing queued (said so the GP is not left guessing). */
  known?(file: string, id: string, state: 'sent' | 'rejected' | 'pending'): void;
}

interface Seen {
  size: number;
  mtimeMs: number;
  /** Scans that found it unchanged. */
  stable: number;
  done: boolean;
}

/** Files an export folder holds that look like exams (hidden and temporary files are skipped). */
export async function examFiles(target: string): Promise<string[]> {
  const stat = await fs.stat(target);
  if (stat.isFile()) return [target];
  const names = (await fs.readdir(target)).filter((n) => n.toLowerCase().endsWith('.json') && !n.startsWith('.')).sort();
  return names.map((n) => path.join(target, n));
}

/** Queues one file; a file that cannot be an exam is set aside in rejected/ with the reason. */
export async function queueFile(outbox: Outbox, file: string, events: ScanEvents, options: { retryRejected?: boolean } = {}): Promise<void> {
  const text = await fs.readFile(file, 'utf8');
  try {
    const { id, queued, state } = await outbox.enqueue(file, text, options);
    if (queued) events.queued(file, id);
    else events.known?.(file, id, state);
  } catch (err) {
    if (!(err instanceof InvalidExamFile)) throw err;
    await outbox.rejectFile(file, text, err.message);
    events.invalid(file, err.message);
  }
}

export class FolderScanner {
  private readonly seen = new Map<string, Seen>();

  constructor(
    private readonly dir: string,
    private readonly outbox: Outbox,
    private readonly events: ScanEvents,
    /** Scans a file must stay unchanged before it is read. */
    private readonly stableScans = 1,
  ) {}

  /** One pass over the folder; returns how many exams were newly queued. */
  async scan(): Promise<number> {
    let queued = 0;
    const present = new Set<string>();
    for (const file of await examFiles(this.dir)) {
      present.add(file);
      const stat = await fs.stat(file).catch(() => undefined);
      if (!stat?.isFile()) continue;
      const before = this.seen.get(file);
      if (!before || before.size !== stat.size || before.mtimeMs !== stat.mtimeMs) {
        this.seen.set(file, { size: stat.size, mtimeMs: stat.mtimeMs, stable: 0, done: false });
        continue;
      }
      if (before.done) continue;
      before.stable++;
      if (before.stable < this.stableScans) continue;
      let wasQueued = false;
      // A file gone between the listing and the read (the device tidying up) is simply not taken.
      const gone = await queueFile(this.outbox, file, {
        queued: (f, id) => {
          wasQueued = true;
          this.events.queued(f, id);
        },
        invalid: (f, reason) => this.events.invalid(f, reason),
      }).then(
        () => false,
        (err: unknown) => {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
          throw err;
        },
      );
      if (gone) continue;
      before.done = true;
      if (wasQueued) queued++;
    }
    for (const file of this.seen.keys()) if (!present.has(file)) this.seen.delete(file);
    return queued;
  }
}
