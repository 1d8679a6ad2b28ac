/**
 * Drains the outbox: each exam is POSTed as its gzip'd transaction Bundle through fhir-kit-client.
 * A link that drops, stalls or resets costs a retry after an exponential backoff with jitter,
 * never a duplicate: every entry of an exam is a conditional create on its identifier, so the
 * server answers a resent exam with the resources it already holds. An exam the server refuses
 * (validation, unknown patient) goes to rejected/ with the reason, and is not retried.
 */
import { gunzipSync } from 'node:zlib';
import { Client } from 'fhir-kit-client';
import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import type { Outbox, PendingExam } from './outbox.js';
import { LoginRefused, type Session } from './session.js';

export interface BackoffPolicy {
  /** First retry after about this long. */
  baseMs: number;
  /** Retries never wait longer than this. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 2_000, maxMs: 5 * 60_000 };

/**
 * Exponential backoff with "equal jitter": half the delay is fixed, half random, so a valley's
 * uploaders that lost the link together do not all come back in the same second, and none
 * retries immediately.
 */
export function backoffDelay(attempts: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(attempts, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export interface ProgressListener {
  /** An exam starts going out; `queuedBytesAfter` is what the exams after it weigh (for time left). */
  start(exam: PendingExam, index: number, count: number, queuedBytesAfter: number): void;
  /** More of its bytes were handed to the network. */
  bytes(sent: number, total: number): void;
  /** The attempt ended. */
  end(outcome: DeliveryOutcome, exam: PendingExam): void;
}

export type DeliveryOutcome =
  | { kind: 'sent'; locations: string[] }
  | { kind: 'rejected'; status: number; message: string; outcome: unknown }
  | { kind: 'retry'; error: string; retryInMs: number };

export interface SenderOptions {
  /** The hub's FHIR base, e.g. https://hub.example/fhir/R4 */
  fhirBaseUrl: string;
  session: Session;
  outbox: Outbox;
  /** An attempt is abandoned when no byte moved for this long (a stalled satellite link). */
  idleTimeoutMs?: number;
  backoff?: BackoffPolicy;
  progress?: ProgressListener;
  random?: () => number;
}

export interface DrainSummary {
  sent: number;
  rejected: number;
  /** Still in the outbox (only when draining stopped early). */
  pending: number;
}

const CHUNK = 16 * 1024;

/** Statuses that say "this exam, as it is, will never be accepted": retrying cannot help. */
const PERMANENT = new Set([400, 403, 404, 405, 410, 413, 415, 422]);

interface HttpError {
  response?: { status?: number; data?: unknown };
}

function networkReason(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e.name === 'AbortError' || e.name === 'TimeoutError') return e.message || 'délai dépassé';
  const code = e.cause?.code;
  return [e.message, code ?? e.cause?.message].filter(Boolean).join(': ');
}

/** The OperationOutcome's reasons, one line each, in words a GP can act on. */
export function rejectionMessage(exam: PendingExam, status: number, outcome: unknown): string {
  const issues = (outcome as OperationOutcome | undefined)?.issue ?? [];
  const reasons = issues.length
    ? issues.map((i) => `  - ${i.diagnostics ?? i.details?.text ?? i.code}${i.expression?.length ? ` [${i.expression.join(', ')}]` : ''}`)
    : [`  - ${typeof outcome === 'string' ? outcome : JSON.stringify(outcome)}`];
  return [
    `Examen refusé par le serveur (HTTP ${status}) : ${exam.label}`,
    `Fichier : ${exam.source}`,
    `Il ne sera pas renvoyé tel quel. Raisons données par le serveur :`,
    ...reasons,
    `Corrigez l'examen sur l'appareil et exportez-le de nouveau, ou contactez le support avec l'identifiant ${exam.id}.`,
    `(Exam rejected by the hub; it will not be retried. The reasons above come from the server.)`,
  ].join('\n');
}

export class Sender {
  private readonly client: Client;
  private readonly idleTimeoutMs: number;
  private readonly backoff: BackoffPolicy;
  private readonly random: () => number;

  constructor(private readonly options: SenderOptions) {
    this.client = new Client({ baseUrl: options.fhirBaseUrl });
    this.idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.random = options.random ?? Math.random;
  }

  /**
   * Sends every pending exam, waiting out backoffs, until the outbox is empty or `signal` aborts;
   * exams queued meanwhile are picked up too.
   * Throws LoginRefused when the hub refuses the credentials (exams stay queued).
   */
  async drain(signal?: AbortSignal, recheckMs = Number.POSITIVE_INFINITY): Promise<DrainSummary> {
    const summary: DrainSummary = { sent: 0, rejected: 0, pending: 0 };
    // A start (after a crash, a reboot, the GP plugging the link back) tries everything once
    // at once: the backoff was about the link as it was, not as it is now.
    let firstPass = true;
    for (;;) {
      const pending = await this.options.outbox.pending();
      summary.pending = pending.length;
      if (pending.length === 0 || signal?.aborted) return summary;
      const now = Date.now();
      const due = firstPass ? pending : pending.filter((e) => e.nextAttemptAt <= now);
      firstPass = false;
      if (due.length === 0) {
        const wake = Math.min(...pending.map((e) => e.nextAttemptAt));
        // recheckMs: a watcher's new exams must not wait for an old exam's backoff.
        await sleep(Math.min(wake - now, recheckMs), signal);
        continue;
      }
      let after = due.reduce((sum, e) => sum + e.gzipBytes, 0);
      for (const [i, exam] of due.entries()) {
        if (signal?.aborted) break;
        after -= exam.gzipBytes;
        const outcome = await this.deliver(exam, { index: i, count: due.length, queuedBytesAfter: after }, signal);
        if (outcome.kind === 'sent') summary.sent++;
        if (outcome.kind === 'rejected') summary.rejected++;
      }
    }
  }

  /** One attempt at one exam; its result is recorded in the outbox before this returns. */
  async deliver(
    exam: PendingExam,
    place: { index: number; count: number; queuedBytesAfter: number } = { index: 0, count: 1, queuedBytesAfter: 0 },
    signal?: AbortSignal,
  ): Promise<DeliveryOutcome> {
    const { outbox, progress } = this.options;
    const gz = await outbox.payload(exam.id);
    progress?.start(exam, place.index, place.count, place.queuedBytesAfter);
    let outcome: DeliveryOutcome;
    try {
      const response = await this.post(gz, signal);
      outcome = this.accepted(gz, response, exam.attempts);
    } catch (err) {
      if (err instanceof LoginRefused) throw err;
      outcome = this.failed(exam, err);
    }
    if (outcome.kind === 'sent') await outbox.markSent(exam, outcome.locations);
    else if (outcome.kind === 'rejected') await outbox.markRejected(exam, outcome.status, outcome.outcome, outcome.message);
    else await outbox.recordFailure(exam, outcome.error, Date.now() + outcome.retryInMs);
    progress?.end(outcome, exam);
    return outcome;
  }

  private async post(gz: Buffer, signal?: AbortSignal): Promise<Bundle> {
    const token = await this.options.session.accessToken();
    try {
      return await this.postOnce(gz, token, signal);
    } catch (err) {
      if ((err as HttpError).response?.status !== 401) throw err;
      // Revoked or rotated under us: one new session, one more try.
      this.options.session.invalidate();
      return this.postOnce(gz, await this.options.session.accessToken(), signal);
    }
  }

  /**
   * The body is streamed in chunks so progress shows bytes handed to the network, and a watchdog
   * aborts the request when nothing moved for idleTimeoutMs (a stall holds a connection open
   * forever otherwise). fhir-kit-client passes request options through to fetch; the body given
   * there (the gzip stream) replaces its own JSON serialisation.
   */
  private async postOnce(gz: Buffer, token: string, signal?: AbortSignal): Promise<Bundle> {
    const controller = new AbortController();
    const onAbort = () => controller.abort(new DOMException('arrêt demandé', 'AbortError'));
    signal?.addEventListener('abort', onAbort, { once: true });
    let watchdog: NodeJS.Timeout | undefined;
    const idle = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(
        () => controller.abort(new DOMException(`aucun échange depuis ${Math.round(this.idleTimeoutMs / 1000)} s (liaison bloquée)`, 'TimeoutError')),
        this.idleTimeoutMs,
      );
    };
    let offset = 0;
    const body = new ReadableStream<Uint8Array>({
      pull: (ctrl) => {
        idle();
        if (offset >= gz.length) {
          ctrl.close();
          return;
        }
        const chunk = gz.subarray(offset, Math.min(gz.length, offset + CHUNK));
        offset += chunk.length;
        ctrl.enqueue(new Uint8Array(chunk));
        this.options.progress?.bytes(offset, gz.length);
      },
    });
    idle();
    try {
      this.client.bearerToken = token;
      const options = {
        headers: { 'content-type': 'application/fhir+json', 'content-encoding': 'gzip', 'x-upload-agent': 'telehub-evalise' },
        body,
        duplex: 'half',
        keepalive: false,
        signal: controller.signal,
      };
      type TransactionParams = Parameters<Client['transaction']>[0];
      const response = await this.client.transaction({ body: {} as TransactionParams['body'], options: options as TransactionParams['options'] });
      return response as unknown as Bundle;
    } finally {
      clearTimeout(watchdog);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** A 2xx is only a delivery if every entry of the exam came back created or found. */
  private accepted(gz: Buffer, response: Bundle, attempts: number): DeliveryOutcome {
    const sentEntries = (JSON.parse(gunzipSync(gz).toString('utf8')) as Bundle).entry?.length ?? 0;
    const entries = response.entry ?? [];
    const ok = entries.every((e) => /^20[01]/.test(e.response?.status ?? ''));
    if (response.type !== 'transaction-response' || entries.length !== sentEntries || !ok) {
      return {
        kind: 'retry',
        error: `réponse inattendue du serveur (${entries.length}/${sentEntries} entrées)`,
        retryInMs: backoffDelay(attempts, this.backoff, this.random),
      };
    }
    return { kind: 'sent', locations: entries.map((e) => e.response?.location ?? '') };
  }

  private failed(exam: PendingExam, err: unknown): DeliveryOutcome {
    const status = (err as HttpError).response?.status;
    const retryInMs = backoffDelay(exam.attempts, this.backoff, this.random);
    if (status === undefined) return { kind: 'retry', error: networkReason(err), retryInMs };
    const data = (err as HttpError).response?.data;
    if (PERMANENT.has(status)) return { kind: 'rejected', status, message: rejectionMessage(exam, status, data), outcome: data };
    const text = (data as OperationOutcome | undefined)?.issue?.[0]?.diagnostics ?? '';
    return { kind: 'retry', error: `HTTP ${status}${text ? ` ${text}` : ''}`, retryInMs };
  }
}

/** Waits `ms`, or less if `signal` aborts first (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, Math.max(0, ms));
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
