/**
 * Synthetic but physiologically shaped e-valise exams: a 12-lead ECG, SpO2, blood pressure and
 * heart rate, packed as the FHIR transaction Bundle the uploader sends (DESIGN.md, "FHIR
 * modelling"). Everything is deterministic for a given seed, so tests, demos and benchmarks can
 * replay the same exam; resending the same exam must not duplicate anything, hence conditional
 * creates on identifiers built from device serial + patient + code + time.
 */
import { createHash } from 'node:crypto';
import type {
  Bundle,
  BundleEntry,
  CodeableConcept,
  Device,
  DiagnosticReport,
  Identifier,
  Observation,
  ObservationComponent,
  Patient,
  Practitioner,
  Reference,
} from '@medplum/fhirtypes';

// ---------------------------------------------------------------------------------------------
// Codes
// ---------------------------------------------------------------------------------------------

export const ECG_LEADS = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'] as const;
export type EcgLeadName = (typeof ECG_LEADS)[number];

const MDC = 'urn:oid:2.16.840.1.113883.6.24';

export const EVALISE_CODES = {
  systems: {
    mdc: MDC,
    loinc: 'http://loinc.org',
    ucum: 'http://unitsofmeasure.org',
    observationCategory: 'http://terminology.hl7.org/CodeSystem/observation-category',
    diagnosticServiceSection: 'http://terminology.hl7.org/CodeSystem/v2-0074',
    /** Identifier of one reading: `${deviceSerial}|${patientId}|${code}|${time}`. */
    reading: 'urn:hub:evalise-reading',
    /** Identifier of the exam report, built like a reading's with the report code. */
    exam: 'urn:hub:evalise-exam',
    device: 'urn:hub:evalise-device',
  },
  ecg: { system: MDC, code: '131328', display: 'MDC_ECG_ELEC_POTL' },
  leads: {
    I: { system: MDC, code: '131329', display: 'MDC_ECG_ELEC_POTL_I' },
    II: { system: MDC, code: '131330', display: 'MDC_ECG_ELEC_POTL_II' },
    III: { system: MDC, code: '131389', display: 'MDC_ECG_ELEC_POTL_III' },
    aVR: { system: MDC, code: '131390', display: 'MDC_ECG_ELEC_POTL_AVR' },
    aVL: { system: MDC, code: '131391', display: 'MDC_ECG_ELEC_POTL_AVL' },
    aVF: { system: MDC, code: '131392', display: 'MDC_ECG_ELEC_POTL_AVF' },
    V1: { system: MDC, code: '131331', display: 'MDC_ECG_ELEC_POTL_V1' },
    V2: { system: MDC, code: '131332', display: 'MDC_ECG_ELEC_POTL_V2' },
    V3: { system: MDC, code: '131333', display: 'MDC_ECG_ELEC_POTL_V3' },
    V4: { system: MDC, code: '131334', display: 'MDC_ECG_ELEC_POTL_V4' },
    V5: { system: MDC, code: '131335', display: 'MDC_ECG_ELEC_POTL_V5' },
    V6: { system: MDC, code: '131336', display: 'MDC_ECG_ELEC_POTL_V6' },
  } satisfies Record<EcgLeadName, { system: string; code: string; display: string }>,
  spo2: { system: 'http://loinc.org', code: '2708-6', display: 'Oxygen saturation in Arterial blood' },
  spo2PulseOximetry: { system: 'http://loinc.org', code: '59408-5', display: 'Oxygen saturation in Arterial blood by Pulse oximetry' },
  bloodPressure: { system: 'http://loinc.org', code: '85354-9', display: 'Blood pressure panel with all children optional' },
  systolic: { system: 'http://loinc.org', code: '8480-6', display: 'Systolic blood pressure' },
  diastolic: { system: 'http://loinc.org', code: '8462-4', display: 'Diastolic blood pressure' },
  heartRate: { system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' },
  ekgReport: { system: 'http://loinc.org', code: '11524-6', display: 'EKG study' },
} as const;

export type EvaliseRhythm = 'sinus' | 'afib' | 'stemi' | 'hypoxia' | 'hypertension';
export const EVALISE_RHYTHMS: readonly EvaliseRhythm[] = ['sinus', 'afib', 'stemi', 'hypoxia', 'hypertension'];

export interface EvaliseExamOptions {
  patientId: string;
  performerId: string;
  deviceSerial: string;
  /** When the exam was taken: an ISO 8601 instant with seconds and a time zone. */
  time: string;
  rhythm: EvaliseRhythm;
  /** Defaults to a hash of the other options, so the same exam always comes out the same. */
  seed?: number;
  durationSeconds?: number;
  sampleRateHz?: number;
}

/** Observations in one exam: ECG, SpO2, blood pressure, heart rate. */
export function examObservationCount(): number {
  return 4;
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------------------------

export type Random = () => number;

/** mulberry32: small, fast, good enough for waveforms, and identical on every platform. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(rand: Random): number {
  const u = 1 - rand();
  const v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

// ---------------------------------------------------------------------------------------------
// ECG synthesis
// ---------------------------------------------------------------------------------------------

/**
 * Leads that are recorded independently. The other four limb leads are computed from I and II
 * (Einthoven and Goldberger), as an electrocardiograph does, so the 12 leads stay consistent.
 */
const BASE_LEADS = ['I', 'II', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'] as const;
type BaseLead = (typeof BASE_LEADS)[number];
type LeadAmplitudes = Record<BaseLead, number>;

/** One deflection of the beat: a Gaussian centred `center` s after the R peak, amplitude in mV per lead. */
interface Deflection {
  center: number;
  width: number;
  amplitude: LeadAmplitudes;
}

interface RhythmModel {
  /** Mean RR interval, s. */
  meanRr: number;
  nextRr: (rand: Random, t: number, previous: number) => number;
  hasP: boolean;
  p: LeadAmplitudes;
  q: LeadAmplitudes;
  r: LeadAmplitudes;
  s: LeadAmplitudes;
  t: LeadAmplitudes;
  /** ST-segment shift, mV per lead (elevation > 0). */
  st: LeadAmplitudes;
  /** Fibrillatory waves of atrial fibrillation, mV per lead. */
  fibrillation?: LeadAmplitudes;
}

const lead = (I: number, II: number, V1: number, V2: number, V3: number, V4: number, V5: number, V6: number): LeadAmplitudes => ({
  I, II, V1, V2, V3, V4, V5, V6,
});
const scale = (a: LeadAmplitudes, f: Partial<LeadAmplitudes>): LeadAmplitudes =>
  Object.fromEntries(BASE_LEADS.map((l) => [l, a[l] * (f[l] ?? 1)])) as LeadAmplitudes;
const NONE = lead(0, 0, 0, 0, 0, 0, 0, 0);

// Normal adult morphology, frontal axis about +55°, R-wave progression V1 → V5, transition in V3.
const NORMAL = {
  p: lead(0.07, 0.14, 0.06, 0.08, 0.09, 0.1, 0.09, 0.08),
  q: lead(-0.06, -0.05, 0, 0, 0, -0.04, -0.09, -0.08),
  r: lead(0.75, 1.15, 0.22, 0.45, 0.85, 1.35, 1.45, 1.15),
  s: lead(-0.12, -0.2, -0.95, -1.35, -0.85, -0.45, -0.2, -0.1),
  t: lead(0.22, 0.3, -0.05, 0.45, 0.5, 0.45, 0.35, 0.25),
};

/** Sinus rhythm: respiratory sinus arrhythmia (a few % at ~0.24 Hz) plus a little jitter. */
function sinusRr(meanRr: number, arrhythmia: number): RhythmModel['nextRr'] {
  return (rand, t) => meanRr * (1 + arrhythmia * Math.sin(2 * Math.PI * 0.24 * t)) + 0.008 * gaussian(rand);
}

/** A frontal-plane vector of magnitude `mv` at `angleDeg`, seen by leads I (0°) and II (60°). */
function frontal(mv: number, angleDeg: number): { I: number; II: number } {
  const rad = (angleDeg * Math.PI) / 180;
  return { I: mv * Math.cos(rad), II: mv * Math.cos(rad - Math.PI / 3) };
}

function rhythmModel(rhythm: EvaliseRhythm, rand: Random): RhythmModel {
  const jitter = (base: number, spread: number) => base + spread * (rand() * 2 - 1);
  switch (rhythm) {
    case 'sinus': {
      const meanRr = 60 / jitter(70, 4);
      return { meanRr, nextRr: sinusRr(meanRr, 0.04), hasP: true, ...NORMAL, st: NONE };
    }
    case 'afib': {
      // Irregularly irregular ventricular response around 90/min, no P waves, f waves best seen in V1 and inferior leads.
      const meanRr = 60 / jitter(92, 6);
      return {
        meanRr,
        nextRr: (r) => Math.min(1.4, Math.max(0.36, meanRr * Math.exp(0.24 * gaussian(r)))),
        hasP: false,
        ...NORMAL,
        st: NONE,
        fibrillation: lead(0.015, 0.05, 0.09, 0.05, 0.03, 0.02, 0.02, 0.015),
      };
    }
    case 'stemi': {
      // Inferior STEMI (right coronary): ST vector towards +110°, so III > aVF > II and mirror depression in aVL;
      // hyperacute inferior T waves; reciprocal depression V1–V3 (posterior extension).
      const meanRr = 60 / jitter(86, 5);
      const st = frontal(0.35, 110);
      const tWave = frontal(0.5, 95);
      return {
        meanRr,
        nextRr: sinusRr(meanRr, 0.015),
        hasP: true,
        ...NORMAL,
        t: { ...NORMAL.t, I: tWave.I, II: tWave.II },
        st: lead(st.I, st.II, -0.1, -0.15, -0.1, 0, 0.03, 0.04),
      };
    }
    case 'hypoxia': {
      // Sinus tachycardia with blunted variability; peaked P waves (P pulmonale) as in chronic respiratory disease.
      const meanRr = 60 / jitter(114, 5);
      return {
        meanRr,
        nextRr: sinusRr(meanRr, 0.01),
        hasP: true,
        ...NORMAL,
        p: scale(NORMAL.p, { I: 0.9, II: 1.8, V1: 1.6, V2: 1.4 }),
        st: NONE,
      };
    }
    case 'hypertension': {
      // Left ventricular hypertrophy voltage: Sokolow–Lyon SV1 + RV5 ≈ 3.8 mV; flattened lateral T waves.
      const meanRr = 60 / jitter(76, 4);
      return {
        meanRr,
        nextRr: sinusRr(meanRr, 0.03),
        hasP: true,
        ...NORMAL,
        r: scale(NORMAL.r, { I: 1.3, V5: 1.6, V6: 1.5, V4: 1.3 }),
        s: scale(NORMAL.s, { V1: 1.6, V2: 1.5, V3: 1.2 }),
        t: scale(NORMAL.t, { I: 0.6, V5: 0.4, V6: 0.3 }),
        st: lead(-0.03, 0, 0, 0, 0, 0, -0.05, -0.05),
      };
    }
  }
}

export interface SynthesizedEcg {
  sampleRateHz: number;
  /** Samples per lead in µV, integers. */
  leads: Record<EcgLeadName, Int32Array>;
  /** R-peak times, s from the start of the strip. */
  rPeaks: number[];
  /** Mean ventricular rate over the strip, beats per minute. */
  heartRate: number;
}

/**
 * A 12-lead ECG strip. Each beat is a sum of Gaussians (P, Q, R, S, a two-part asymmetric T) with
 * an ST plateau between J point and T; T moves with the preceding RR (Bazett). On top: baseline
 * wander (breathing and electrode drift), 50 Hz mains pick-up and white noise.
 */
export function synthesizeEcg(rhythm: EvaliseRhythm, options: { durationSeconds: number; sampleRateHz: number; seed: number }): SynthesizedEcg {
  const { durationSeconds, sampleRateHz } = options;
  const rand = seededRandom(options.seed);
  const model = rhythmModel(rhythm, rand);
  const n = Math.round(durationSeconds * sampleRateHz);
  const dt = 1 / sampleRateHz;

  // Beat times, starting before the strip so the first samples are mid-rhythm rather than flat.
  const beats: { time: number; rr: number; gain: number }[] = [];
  let time = -model.meanRr * rand();
  let rr = model.meanRr;
  while (time < durationSeconds + 1) {
    beats.push({ time, rr, gain: 1 + 0.03 * gaussian(rand) });
    rr = model.nextRr(rand, time, rr);
    time += rr;
  }

  const base: Record<BaseLead, Float64Array> = Object.fromEntries(BASE_LEADS.map((l) => [l, new Float64Array(n)])) as Record<
    BaseLead,
    Float64Array
  >;

  for (const beat of beats) {
    const prOffset = model.meanRr < 0.6 ? -0.15 : -0.165;
    const tCenter = 0.4 * Math.sqrt(beat.rr) - 0.12;
    // Breathing moves the heart: QRS amplitude swings by a few percent.
    const breath = 1 + 0.05 * Math.sin(2 * Math.PI * 0.24 * beat.time);
    const deflections: Deflection[] = [
      { center: -0.028, width: 0.009, amplitude: model.q },
      { center: 0, width: 0.0105, amplitude: scale(model.r, uniform(breath * beat.gain)) },
      { center: 0.03, width: 0.011, amplitude: scale(model.s, uniform(breath * beat.gain)) },
      { center: tCenter, width: 0.045, amplitude: model.t },
      { center: tCenter - 0.06, width: 0.06, amplitude: scale(model.t, uniform(0.3)) },
    ];
    if (model.hasP) {
      deflections.push({ center: prOffset, width: 0.022, amplitude: model.p });
      // V1's P is biphasic: the left atrium's late negative part.
      deflections.push({ center: prOffset + 0.035, width: 0.015, amplitude: { ...NONE, V1: -0.05 } });
    }
    const from = Math.max(0, Math.floor((beat.time - 0.35) * sampleRateHz));
    const to = Math.min(n - 1, Math.ceil((beat.time + 0.75) * sampleRateHz));
    for (let i = from; i <= to; i++) {
      const rel = i * dt - beat.time;
      const stShape = sigmoid((rel - 0.045) / 0.006) * (1 - sigmoid((rel - tCenter - 0.04) / 0.03));
      for (const l of BASE_LEADS) {
        let v = model.st[l] * stShape;
        for (const d of deflections) {
          const a = d.amplitude[l];
          if (a === 0) continue;
          const z = (rel - d.center) / d.width;
          if (z > -6 && z < 6) v += a * Math.exp(-0.5 * z * z);
        }
        base[l][i]! += v;
      }
    }
  }

  for (const l of BASE_LEADS) {
    const signal = base[l];
    const breathPhase = 2 * Math.PI * rand();
    const driftPhase = 2 * Math.PI * rand();
    const mainsPhase = 2 * Math.PI * rand();
    const breathAmp = 0.04 + 0.06 * rand();
    const driftAmp = 0.03 + 0.05 * rand();
    const fib = model.fibrillation?.[l] ?? 0;
    // f waves: ~6 Hz (≈ 360/min) whose frequency and amplitude wander slowly.
    let fibPhase = 2 * Math.PI * rand();
    let fibFreq = 5.5 + rand();
    for (let i = 0; i < n; i++) {
      const t = i * dt;
      let v = signal[i]!;
      v += breathAmp * Math.sin(2 * Math.PI * 0.24 * t + breathPhase);
      v += driftAmp * Math.sin(2 * Math.PI * 0.05 * t + driftPhase);
      v += 0.005 * Math.sin(2 * Math.PI * 50 * t + mainsPhase);
      v += 0.012 * gaussian(rand);
      if (fib !== 0) {
        fibFreq = Math.min(7.5, Math.max(4.5, fibFreq + 0.02 * gaussian(rand)));
        fibPhase += 2 * Math.PI * fibFreq * dt;
        v += fib * (0.75 + 0.25 * Math.sin(2 * Math.PI * 0.3 * t)) * (Math.sin(fibPhase) + 0.35 * Math.sin(2 * fibPhase + 1));
      }
      signal[i] = v;
    }
  }

  const toMicrovolts = (mv: (i: number) => number): Int32Array => {
    const out = new Int32Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.round(mv(i) * 1000);
    return out;
  };
  const I = base.I;
  const II = base.II;
  const leads: Record<EcgLeadName, Int32Array> = {
    I: toMicrovolts((i) => I[i]!),
    II: toMicrovolts((i) => II[i]!),
    III: toMicrovolts((i) => II[i]! - I[i]!),
    aVR: toMicrovolts((i) => -(I[i]! + II[i]!) / 2),
    aVL: toMicrovolts((i) => I[i]! - II[i]! / 2),
    aVF: toMicrovolts((i) => II[i]! - I[i]! / 2),
    V1: toMicrovolts((i) => base.V1[i]!),
    V2: toMicrovolts((i) => base.V2[i]!),
    V3: toMicrovolts((i) => base.V3[i]!),
    V4: toMicrovolts((i) => base.V4[i]!),
    V5: toMicrovolts((i) => base.V5[i]!),
    V6: toMicrovolts((i) => base.V6[i]!),
  };

  const rPeaks = beats.map((b) => b.time).filter((t) => t >= 0 && t < durationSeconds);
  const intervals = rPeaks.slice(1).map((t, i) => t - rPeaks[i]!);
  const meanRr = intervals.length > 0 ? intervals.reduce((a, b) => a + b, 0) / intervals.length : model.meanRr;
  return { sampleRateHz, leads, rPeaks, heartRate: Math.round(60 / meanRr) };
}

function uniform(f: number): Partial<LeadAmplitudes> {
  return Object.fromEntries(BASE_LEADS.map((l) => [l, f]));
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

// ---------------------------------------------------------------------------------------------
// Vital signs
// ---------------------------------------------------------------------------------------------

export interface VitalSigns {
  spo2: number;
  systolic: number;
  diastolic: number;
}

function vitalSigns(rhythm: EvaliseRhythm, rand: Random): VitalSigns {
  const around = (mean: number, spread: number) => Math.round(mean + spread * (rand() * 2 - 1));
  const v: VitalSigns = (() => {
    switch (rhythm) {
      case 'sinus':
        return { spo2: around(97.5, 1.5), systolic: around(124, 6), diastolic: around(78, 4) };
      case 'afib':
        return { spo2: around(95, 1), systolic: around(138, 8), diastolic: around(86, 5) };
      case 'stemi':
        return { spo2: around(94, 1), systolic: around(108, 6), diastolic: around(68, 4) };
      case 'hypoxia':
        return { spo2: around(86, 2), systolic: around(132, 6), diastolic: around(82, 4) };
      case 'hypertension':
        return { spo2: around(96.5, 1), systolic: around(175, 4), diastolic: around(105, 3) };
    }
  })();
  return { ...v, spo2: Math.min(100, v.spo2) };
}

// ---------------------------------------------------------------------------------------------
// FHIR bundle
// ---------------------------------------------------------------------------------------------

const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** The identifier value of one reading (DESIGN.md): device serial, patient, code, time. */
export function readingIdentifierValue(deviceSerial: string, patientId: string, code: string, time: string): string {
  return `${deviceSerial}|${patientId}|${code}|${time}`;
}

/** A conditional-create query on an identifier; the value holds '|' and ':' and is percent-encoded. */
export function identifierCondition(identifier: Identifier): string {
  return `identifier=${identifier.system}|${encodeURIComponent(identifier.value ?? '')}`;
}

/** Name-based UUID (v5 layout), so a regenerated exam has the same fullUrls. */
function stableUuid(name: string): string {
  const h = createHash('sha1').update(`telemedicine-hub/evalise/${name}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `urn:uuid:${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** Marks generated data as test data, so it is never mistaken for a real patient's exam. */
const SYNTHETIC_META = {
  security: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'HTEST', display: 'test health data' }],
};

function category(code: 'vital-signs' | 'procedure'): CodeableConcept[] {
  const display = code === 'vital-signs' ? 'Vital Signs' : 'Procedure';
  return [{ coding: [{ system: EVALISE_CODES.systems.observationCategory, code, display }] }];
}

function quantity(value: number, unit: string, code: string) {
  return { value, unit, system: EVALISE_CODES.systems.ucum, code };
}

function validateOptions(o: EvaliseExamOptions): { durationSeconds: number; sampleRateHz: number } {
  const durationSeconds = o.durationSeconds ?? 10;
  const sampleRateHz = o.sampleRateHz ?? 500;
  const fail = (field: string, why: string): never => {
    throw new Error(`generateExam: ${field} ${why}`);
  };
  if (!o.patientId) fail('patientId', 'is required');
  if (!o.performerId) fail('performerId', 'is required');
  if (!o.deviceSerial) fail('deviceSerial', 'is required');
  if (!ISO_INSTANT.test(o.time) || Number.isNaN(Date.parse(o.time))) fail('time', `must be an ISO 8601 instant with a time zone, got "${o.time}"`);
  if (!EVALISE_RHYTHMS.includes(o.rhythm)) fail('rhythm', `must be one of ${EVALISE_RHYTHMS.join(', ')}`);
  if (!(durationSeconds > 0 && durationSeconds <= 300)) fail('durationSeconds', 'must be in (0, 300]');
  if (!(sampleRateHz >= 100 && sampleRateHz <= 2000)) fail('sampleRateHz', 'must be in [100, 2000]');
  return { durationSeconds, sampleRateHz };
}

/**
 * One e-valise exam as a transaction Bundle: the Device (created once, matched by serial), four
 * Observations and the DiagnosticReport grouping them, each created only if its identifier is new.
 */
export function generateExam(options: EvaliseExamOptions): Bundle {
  const { durationSeconds, sampleRateHz } = validateOptions(options);
  const { patientId, performerId, deviceSerial, time, rhythm } = options;
  const seed = options.seed ?? fnv1a(`${deviceSerial}|${patientId}|${time}|${rhythm}`);
  const rand = seededRandom(seed);

  const ecg = synthesizeEcg(rhythm, { durationSeconds, sampleRateHz, seed: Math.floor(rand() * 2 ** 32) });
  const vitals = vitalSigns(rhythm, rand);

  const subject: Reference<Patient> = { reference: `Patient/${patientId}` };
  const performer: Reference<Practitioner>[] = [{ reference: `Practitioner/${performerId}` }];
  const deviceIdentifier: Identifier = { system: EVALISE_CODES.systems.device, value: deviceSerial };
  const deviceUrl = stableUuid(`device|${deviceSerial}`);
  const readingIdentifier = (code: string): Identifier => ({
    system: EVALISE_CODES.systems.reading,
    value: readingIdentifierValue(deviceSerial, patientId, code, time),
  });

  const device: Device = {
    resourceType: 'Device',
    meta: SYNTHETIC_META,
    identifier: [deviceIdentifier],
    status: 'active',
    serialNumber: deviceSerial,
    deviceName: [{ name: 'e-valise', type: 'user-friendly-name' }],
    modelNumber: 'EV-12',
    type: { text: 'Valise de télémédecine : ECG 12 dérivations, tensiomètre, oxymètre de pouls' },
  };

  const common = (code: string) => ({
    resourceType: 'Observation' as const,
    meta: SYNTHETIC_META,
    identifier: [readingIdentifier(code)],
    status: 'final' as const,
    subject,
    effectiveDateTime: time,
    issued: time,
    performer,
    device: { reference: deviceUrl },
  });

  const period = Math.round((1000 / sampleRateHz) * 1e6) / 1e6;
  const ecgObservation: Observation = {
    ...common(EVALISE_CODES.ecg.code),
    category: category('procedure'),
    code: { coding: [{ ...EVALISE_CODES.ecg }], text: 'ECG 12 dérivations' },
    component: ECG_LEADS.map(
      (name): ObservationComponent => ({
        code: { coding: [{ ...EVALISE_CODES.leads[name] }], text: name },
        valueSampledData: {
          origin: quantity(0, 'uV', 'uV'),
          period,
          factor: 1,
          dimensions: 1,
          data: ecg.leads[name].join(' '),
        },
      }),
    ),
  };

  const spo2: Observation = {
    ...common(EVALISE_CODES.spo2.code),
    category: category('vital-signs'),
    code: { coding: [{ ...EVALISE_CODES.spo2 }, { ...EVALISE_CODES.spo2PulseOximetry }], text: 'SpO2' },
    valueQuantity: quantity(vitals.spo2, '%', '%'),
  };

  const bloodPressure: Observation = {
    ...common(EVALISE_CODES.bloodPressure.code),
    category: category('vital-signs'),
    code: { coding: [{ ...EVALISE_CODES.bloodPressure }], text: 'Pression artérielle' },
    component: [
      { code: { coding: [{ ...EVALISE_CODES.systolic }] }, valueQuantity: quantity(vitals.systolic, 'mmHg', 'mm[Hg]') },
      { code: { coding: [{ ...EVALISE_CODES.diastolic }] }, valueQuantity: quantity(vitals.diastolic, 'mmHg', 'mm[Hg]') },
    ],
  };

  const heartRate: Observation = {
    ...common(EVALISE_CODES.heartRate.code),
    category: category('vital-signs'),
    code: { coding: [{ ...EVALISE_CODES.heartRate }], text: 'Fréquence cardiaque' },
    valueQuantity: quantity(ecg.heartRate, 'beats/minute', '/min'),
  };

  const observations = [ecgObservation, spo2, bloodPressure, heartRate];
  const observationUrls = observations.map((o) => stableUuid(o.identifier![0]!.value!));

  const reportIdentifier: Identifier = {
    system: EVALISE_CODES.systems.exam,
    value: readingIdentifierValue(deviceSerial, patientId, EVALISE_CODES.ekgReport.code, time),
  };
  const report: DiagnosticReport = {
    resourceType: 'DiagnosticReport',
    meta: SYNTHETIC_META,
    identifier: [reportIdentifier],
    status: 'final',
    category: [{ coding: [{ system: EVALISE_CODES.systems.diagnosticServiceSection, code: 'EC', display: 'Electrocardiac' }] }],
    code: { coding: [{ ...EVALISE_CODES.ekgReport }], text: 'Examen e-valise : ECG 12 dérivations et constantes' },
    subject,
    effectiveDateTime: time,
    issued: time,
    performer,
    result: observationUrls.map((reference) => ({ reference })),
  };

  const entries: BundleEntry[] = [
    { fullUrl: deviceUrl, resource: device, request: { method: 'POST', url: 'Device', ifNoneExist: identifierCondition(deviceIdentifier) } },
    ...observations.map(
      (o, i): BundleEntry => ({
        fullUrl: observationUrls[i]!,
        resource: o,
        request: { method: 'POST', url: 'Observation', ifNoneExist: identifierCondition(o.identifier![0]!) },
      }),
    ),
    {
      fullUrl: stableUuid(reportIdentifier.value!),
      resource: report,
      request: { method: 'POST', url: 'DiagnosticReport', ifNoneExist: identifierCondition(reportIdentifier) },
    },
  ];
  return { resourceType: 'Bundle', type: 'transaction', entry: entries };
}
