/**
 * What the GP sees while exams go out: on a terminal, one line redrawn in place with a bar, the
 * bytes, the rate and the time left; in a log (no terminal: a service, a pipe) one line per
 * attempt, so the history stays readable.
 */
import type { DeliveryOutcome, ProgressListener } from './sender.js';
import type { PendingExam } from './outbox.js';

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} o`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10 * 1024 ? 1 : 0)} Ko`;
  return `${(n / 1024 / 1024).toFixed(1)} Mo`;
}

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

export function bar(fraction: number, width = 24): string {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

export class ProgressBar implements ProgressListener {
  private exam?: PendingExam;
  private label = '';
  private startedAt = 0;
  private sent = 0;
  private total = 0;
  private after = 0;
  /** Bytes per second, smoothed over attempts: a satellite link's rate is steady from one exam to the next. */
  private rate = 0;
  private lastDraw = 0;

  constructor(
    private readonly out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
    private readonly now: () => number = Date.now,
  ) {}

  start(exam: PendingExam, index: number, count: number, queuedBytesAfter: number): void {
    this.exam = exam;
    this.label = `${index + 1}/${count}`;
    this.startedAt = this.now();
    this.sent = 0;
    this.total = exam.gzipBytes;
    this.after = queuedBytesAfter;
    if (!this.out.isTTY) {
      const retry = exam.attempts > 0 ? `, tentative ${exam.attempts + 1}` : '';
      this.out.write(`envoi ${this.label} ${exam.label} (${formatBytes(exam.gzipBytes)}${retry})\n`);
    } else this.draw(true);
  }

  bytes(sent: number, total: number): void {
    this.sent = sent;
    this.total = total;
    const elapsed = (this.now() - this.startedAt) / 1000;
    if (elapsed > 0.2) this.rate = this.rate ? 0.7 * this.rate + 0.3 * (sent / elapsed) : sent / elapsed;
    if (this.out.isTTY) this.draw(false);
  }

  end(outcome: DeliveryOutcome, exam: PendingExam): void {
    const took = formatDuration(this.now() - this.startedAt);
    const prefix = this.out.isTTY ? '\r\x1b[2K' : '';
    if (outcome.kind === 'sent') {
      const elapsed = (this.now() - this.startedAt) / 1000;
      if (elapsed > 0) this.rate = this.rate ? 0.5 * this.rate + 0.5 * (exam.gzipBytes / elapsed) : exam.gzipBytes / elapsed;
      this.out.write(`${prefix}✓ ${this.label} ${exam.label} reçu par le serveur (${formatBytes(exam.gzipBytes)} en ${took})\n`);
    } else if (outcome.kind === 'rejected') {
      this.out.write(`${prefix}✗ ${this.label} ${exam.label} refusé (HTTP ${outcome.status}), voir rejected/${exam.id}.txt\n`);
    } else {
      this.out.write(`${prefix}… ${this.label} ${exam.label} : ${outcome.error} ; nouvel essai dans ${formatDuration(outcome.retryInMs)}\n`);
    }
    this.exam = undefined;
  }

  /** Time left for this exam and the ones queued after it, at the measured rate. */
  timeLeftMs(): number | undefined {
    if (!this.rate) return undefined;
    return ((this.total - this.sent + this.after) / this.rate) * 1000;
  }

  private draw(force: boolean): void {
    const t = this.now();
    if (!force && t - this.lastDraw < 100) return;
    this.lastDraw = t;
    if (!this.exam) return;
    const left = this.timeLeftMs();
    const waiting = this.total > 0 && this.sent >= this.total;
    const parts = [
      `⇪ ${this.label}`,
      bar(this.total ? this.sent / this.total : 0),
      `${formatBytes(this.sent)}/${formatBytes(this.total)}`,
      this.rate ? `${formatBytes(Math.round(this.rate))}/s` : '',
      waiting ? 'attente de la confirmation du serveur' : left !== undefined ? `reste ${formatDuration(left)}` : '',
    ].filter(Boolean);
    let line = parts.join('  ');
    const width = this.out.columns ?? 100;
    if (line.length >= width) line = line.slice(0, width - 1);
    this.out.write(`\r\x1b[2K${line}`);
  }
}
