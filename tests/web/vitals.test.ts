import { describe, expect, it } from 'vitest';
import { EvaliseSimulator, VitalsMonitor, parseVitalsMessage, type VitalsMessage } from '../../client/web/src/teleassistance/vitals.js';

const START = Date.parse('2026-03-02T09:30:00Z');

/** Runs the simulator on a jittery 100 ms timer for `seconds` and returns every message. */
function run(sim: EvaliseSimulator, seconds: number, jitterMs = 30): VitalsMessage[] {
  const messages: VitalsMessage[] = [];
  let now = START;
  let tick = 0;
  while (now < START + seconds * 1000) {
    tick += 1;
    now = START + tick * 100 + Math.round(Math.sin(tick * 1.7) * jitterMs);
    const message = sim.next(Math.min(now, START + seconds * 1000));
    if (message) messages.push(message);
  }
  return messages;
}

describe('the e-valise simulator', () => {
  it('sends exactly the samples the clock says were taken, whatever the timer jitter, numbered in order', () => {
    const messages = run(new EvaliseSimulator({ rateHz: 250, startMs: START, seed: 7 }), 10);
    const samples = messages.flatMap((m) => m.ecg!.samples);
    expect(samples).toHaveLength(2500);
    expect(messages.map((m) => m.seq)).toEqual(messages.map((_, i) => i));
    // t is the device time of each message's first sample: contiguous from one message to the next.
    let index = 0;
    for (const m of messages) {
      expect(m.t).toBe(Math.round(START + index * 4));
      index += m.ecg!.samples.length;
    }
  });

  it('draws a lead II in sinus rhythm near 72/min with an SpO2 near 96 %', () => {
    const messages = run(new EvaliseSimulator({ rateHz: 500, startMs: START, seed: 3 }), 10, 0);
    const samples = messages.flatMap((m) => m.ecg!.samples);
    expect(samples).toHaveLength(5000);
    // R peaks: local maxima above 800 µV.
    const peaks = samples.filter((v, i) => v > 800 && v >= (samples[i - 1] ?? -Infinity) && v > (samples[i + 1] ?? -Infinity));
    expect(peaks.length).toBeGreaterThanOrEqual(11);
    expect(peaks.length).toBeLessThanOrEqual(13);
    expect(Math.min(...samples)).toBeGreaterThan(-600);
    expect(Math.max(...samples)).toBeLessThan(1600);
    for (const m of messages) {
      expect(m.ecg!.lead).toBe('II');
      expect(m.spo2).toBeGreaterThanOrEqual(95);
      expect(m.spo2).toBeLessThanOrEqual(97);
      expect(m.heartRate).toBeGreaterThan(65);
      expect(m.heartRate).toBeLessThan(80);
    }
  });

  it('sends nothing before a sample was taken, and refuses a rate outside 100–2000 Hz', () => {
    const sim = new EvaliseSimulator({ startMs: START });
    expect(sim.next(START)).toBeUndefined();
    expect(sim.next(START + 3)).toBeUndefined();
    expect(sim.next(START + 4)?.ecg?.samples).toHaveLength(1);
    expect(() => new EvaliseSimulator({ startMs: START, rateHz: 50 })).toThrow('rateHz');
  });
});

describe('the doctor-side vitals monitor', () => {
  const message = (seq: number, extra: Partial<VitalsMessage> = {}): VitalsMessage => ({
    seq,
    t: START + seq * 100,
    spo2: 96,
    heartRate: 72,
    ecg: { lead: 'II', rateHz: 250, samples: Array.from({ length: 25 }, (_, i) => seq * 25 + i) },
    ...extra,
  });

  it('counts messages, skipped seq numbers, late ones and the largest delay', () => {
    const monitor = new VitalsMonitor(10);
    monitor.receive(message(0), START + 150);
    monitor.receive(message(1), START + 260);
    monitor.receive(message(4), START + 560); // 2 and 3 lost
    monitor.receive(message(3), START + 570); // late
    monitor.receive(message(5, { spo2: 94, heartRate: 90 }), START + 650);
    const s = monitor.summary;
    expect(s).toMatchObject({ received: 5, firstSeq: 0, lastSeq: 5, missing: 2, outOfOrder: 1, spo2: 94, heartRate: 90, ecgRateHz: 250, ecgLead: 'II' });
    expect(s.maxDelayMs).toBe(160); // message 4: 560 - 400
    expect(s.lastDelayMs).toBe(150);
    // Transit: after the last sample of the message (96 ms after its first at 250 Hz).
    expect(s.maxTransitMs).toBe(64);
  });

  it('keeps the last 10 s of ECG, oldest first', () => {
    const monitor = new VitalsMonitor(10);
    for (let seq = 0; seq < 150; seq++) monitor.receive(message(seq), START + seq * 100 + 120);
    const strip = monitor.recentEcg(10)!;
    expect(strip.samples).toHaveLength(2500);
    expect(strip.samples[0]).toBe(150 * 25 - 2500);
    expect(strip.samples.at(-1)).toBe(150 * 25 - 1);
    expect(monitor.recentEcg(2)!.samples).toHaveLength(500);
    expect(strip.endMs).toBe(START + 149 * 100 + 96);
  });

  it('parses only well-formed messages from the DataChannel', () => {
    expect(parseVitalsMessage(JSON.stringify(message(3)))).toEqual(message(3));
    for (const bad of ['', 'not json', '[]', '{"seq":-1,"t":1}', '{"seq":1.5,"t":1}', '{"seq":1}', 42, new ArrayBuffer(4)]) {
      expect(parseVitalsMessage(bad)).toBeUndefined();
    }
    // A malformed ECG part is dropped, the rest of the message kept.
    expect(parseVitalsMessage(JSON.stringify({ seq: 1, t: 5, spo2: 97, ecg: { lead: 'II', rateHz: 250, samples: ['x'] } }))).toEqual({ seq: 1, t: 5, spo2: 97 });
  });
});
