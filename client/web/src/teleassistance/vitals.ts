/**
 * Teleassistance vitals (protocol.ts VitalsMessage) on both ends of the DataChannel: the e-valise
 * simulator on the correspondent's side, and what the remote doctor's side keeps of the stream
 * (latest values, the last seconds of ECG, order, gaps and delay). Pure: no DOM, no timers, so
 * the tests drive it with their own clock.
 */
import type { VitalsMessage } from '../../../../server/rooms/protocol.js';

export type { VitalsMessage };

/** One message every 100 ms (protocol.ts). */
export const VITALS_INTERVAL_MS = 100;
export const VITALS_LABEL = 'vitals';
export const VITALS_PROTOCOL = 'hub-vitals/1';

/** Small deterministic PRNG (mulberry32): the same seed gives the same strip. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The waves of one beat of lead II, in µV, at an offset (s) from the R peak; width is the Gaussian σ (s). */
const BEAT_WAVES = [
  { name: 'P', at: -0.2, amplitude: 150, width: 0.025 },
  { name: 'Q', at: -0.035, amplitude: -120, width: 0.009 },
  { name: 'R', at: 0, amplitude: 1200, width: 0.011 },
  { name: 'S', at: 0.035, amplitude: -280, width: 0.011 },
  { name: 'T', at: 0.26, amplitude: 320, width: 0.05 },
] as const;

export interface EvaliseSimulatorOptions {
  /** ECG sampling rate: 250 to 500 Hz on the e-valise. */
  rateHz?: number;
  heartRate?: number;
  spo2?: number;
  seed?: number;
  /** Device clock (epoch ms) of the first sample. */
  startMs: number;
}

/**
 * A pulse oximeter and lead II of an ECG in sinus rhythm: P-QRS-T beats with a little heart-rate
 * variability, baseline wander and noise. `next(now)` returns the samples taken since the last
 * call, so the sample count follows the clock exactly whatever the timer's jitter.
 */
export class EvaliseSimulator {
  readonly rateHz: number;
  readonly #startMs: number;
  readonly #random: () => number;
  readonly #meanRrS: number;
  readonly #spo2: number;
  #seq = 0;
  #emitted = 0;
  /** R peaks (s from start) generated so far; the last one is ahead of the samples taken. */
  #beats: number[] = [];

  constructor(options: EvaliseSimulatorOptions) {
    this.rateHz = options.rateHz ?? 250;
    if (!(this.rateHz >= 100 && this.rateHz <= 2000)) throw new Error('rateHz must be between 100 and 2000');
    this.#startMs = options.startMs;
    this.#random = random(options.seed ?? 1);
    this.#meanRrS = 60 / (options.heartRate ?? 72);
    this.#spo2 = options.spo2 ?? 96;
    this.#beats = [0.3];
  }

  /** The message for the samples taken up to `nowMs`, or undefined if none was taken yet. */
  next(nowMs: number): VitalsMessage | undefined {
    const due = Math.floor(((nowMs - this.#startMs) * this.rateHz) / 1000);
    if (due <= this.#emitted) return undefined;
    const first = this.#emitted;
    const samples: number[] = [];
    for (let i = first; i < due; i++) samples.push(this.#sample(i / this.rateHz));
    this.#emitted = due;
    const t = this.#startMs + (first * 1000) / this.rateHz;
    return {
      seq: this.#seq++,
      t: Math.round(t),
      spo2: this.#spo2 + Math.round((this.#random() - 0.5) * 1.6),
      heartRate: Math.round(60 / this.#currentRr()),
      ecg: { lead: 'II', rateHz: this.rateHz, samples },
    };
  }

  #currentRr(): number {
    const n = this.#beats.length;
    return n >= 2 ? this.#beats[n - 1]! - this.#beats[n - 2]! : this.#meanRrS;
  }

  #sample(timeS: number): number {
    // Keep the beats around timeS: the next one is generated when the last one is less than a beat ahead.
    while (this.#beats[this.#beats.length - 1]! < timeS + 1) {
      const rr = this.#meanRrS * (1 + (this.#random() - 0.5) * 0.06);
      this.#beats.push(this.#beats[this.#beats.length - 1]! + rr);
    }
    while (this.#beats.length > 3 && this.#beats[1]! < timeS - 1) this.#beats.shift();
    let value = 0;
    for (const r of this.#beats) {
      const offset = timeS - r;
      if (offset < -0.4 || offset > 0.6) continue;
      for (const w of BEAT_WAVES) {
        const x = (offset - w.at) / w.width;
        value += w.amplitude * Math.exp(-0.5 * x * x);
      }
    }
    const wander = 40 * Math.sin(2 * Math.PI * 0.25 * timeS);
    const noise = (this.#random() - 0.5) * 16;
    return Math.round(value + wander + noise);
  }
}

/** Parses a DataChannel message as a VitalsMessage; undefined when it is not one (never throws). */
export function parseVitalsMessage(data: unknown): VitalsMessage | undefined {
  if (typeof data !== 'string' || data.length > 65_536) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const m = value as Record<string, unknown>;
  if (!Number.isInteger(m.seq) || (m.seq as number) < 0 || typeof m.t !== 'number' || !Number.isFinite(m.t)) return undefined;
  const message: VitalsMessage = { seq: m.seq as number, t: m.t };
  if (typeof m.spo2 === 'number' && Number.isFinite(m.spo2)) message.spo2 = m.spo2;
  if (typeof m.heartRate === 'number' && Number.isFinite(m.heartRate)) message.heartRate = m.heartRate;
  const ecg = m.ecg as Record<string, unknown> | undefined;
  if (ecg && typeof ecg === 'object') {
    const { lead, rateHz, samples } = ecg;
    if (
      typeof lead === 'string' &&
      typeof rateHz === 'number' &&
      rateHz >= 100 &&
      rateHz <= 2000 &&
      Array.isArray(samples) &&
      samples.every((s) => typeof s === 'number' && Number.isFinite(s))
    ) {
      message.ecg = { lead: lead as NonNullable<VitalsMessage['ecg']>['lead'], rateHz, samples: samples as number[] };
    }
  }
  return message;
}

export interface VitalsSummary {
  received: number;
  firstSeq: number | undefined;
  lastSeq: number | undefined;
  /** Messages never received between the first and the last one (seq numbers skipped). */
  missing: number;
  /** Messages whose seq was not above the last one (late or duplicated). */
  outOfOrder: number;
  /** Receive time minus the device time of the message's first sample (includes the 100 ms the device batches). */
  lastDelayMs: number | undefined;
  maxDelayMs: number | undefined;
  /** Receive time minus the device time of the message's last sample: what the link and the hub add. */
  maxTransitMs: number | undefined;
  spo2: number | undefined;
  heartRate: number | undefined;
  ecgRateHz: number | undefined;
  ecgLead: string | undefined;
}

/**
 * The doctor's side of the vitals stream. Keeps the latest SpO2 and heart rate, the last
 * `keepSeconds` of ECG (for the strip and the snapshot), and counts order, gaps and delay.
 */
export class VitalsMonitor {
  readonly #keepSeconds: number;
  #summary: VitalsSummary = {
    received: 0,
    firstSeq: undefined,
    lastSeq: undefined,
    missing: 0,
    outOfOrder: 0,
    lastDelayMs: undefined,
    maxDelayMs: undefined,
    maxTransitMs: undefined,
    spo2: undefined,
    heartRate: undefined,
    ecgRateHz: undefined,
    ecgLead: undefined,
  };
  #ecg: number[] = [];
  /** Device time (epoch ms) of the last ECG sample kept. */
  #ecgEndMs: number | undefined;
  /** Total ECG samples received, for a strip that scrolls by what arrived. */
  #ecgTotal = 0;

  constructor(keepSeconds = 10) {
    this.#keepSeconds = keepSeconds;
  }

  receive(message: VitalsMessage, receivedAtMs: number): void {
    const s = this.#summary;
    s.received += 1;
    if (s.lastSeq !== undefined && message.seq <= s.lastSeq) {
      s.outOfOrder += 1;
      return;
    }
    if (s.lastSeq !== undefined) s.missing += message.seq - s.lastSeq - 1;
    s.firstSeq ??= message.seq;
    s.lastSeq = message.seq;
    const delay = receivedAtMs - message.t;
    s.lastDelayMs = delay;
    s.maxDelayMs = Math.max(s.maxDelayMs ?? delay, delay);
    if (message.spo2 !== undefined) s.spo2 = message.spo2;
    if (message.heartRate !== undefined) s.heartRate = message.heartRate;
    const ecg = message.ecg;
    if (ecg && ecg.samples.length > 0) {
      if (s.ecgRateHz !== ecg.rateHz || s.ecgLead !== ecg.lead) {
        this.#ecg = [];
        s.ecgRateHz = ecg.rateHz;
        s.ecgLead = ecg.lead;
      }
      this.#ecg.push(...ecg.samples);
      this.#ecgTotal += ecg.samples.length;
      const keep = Math.round(this.#keepSeconds * ecg.rateHz);
      if (this.#ecg.length > keep) this.#ecg.splice(0, this.#ecg.length - keep);
      this.#ecgEndMs = message.t + ((ecg.samples.length - 1) * 1000) / ecg.rateHz;
      const transit = receivedAtMs - this.#ecgEndMs;
      s.maxTransitMs = Math.max(s.maxTransitMs ?? transit, transit);
    } else {
      s.maxTransitMs = Math.max(s.maxTransitMs ?? delay, delay);
    }
  }

  get summary(): Readonly<VitalsSummary> {
    return { ...this.#summary };
  }

  get ecgTotal(): number {
    return this.#ecgTotal;
  }

  /** The last `seconds` of ECG samples (all that is kept when longer), oldest first. */
  recentEcg(seconds = this.#keepSeconds): { lead: string; rateHz: number; samples: number[]; endMs: number } | undefined {
    const { ecgRateHz, ecgLead } = this.#summary;
    if (ecgRateHz === undefined || ecgLead === undefined || this.#ecgEndMs === undefined || this.#ecg.length === 0) return undefined;
    const count = Math.min(this.#ecg.length, Math.round(seconds * ecgRateHz));
    return { lead: ecgLead, rateHz: ecgRateHz, samples: this.#ecg.slice(this.#ecg.length - count), endMs: this.#ecgEndMs };
  }
}
