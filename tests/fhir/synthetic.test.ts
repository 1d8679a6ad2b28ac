import { validateResource } from '@medplum/core';
import type { Bundle, DiagnosticReport, Observation, Resource } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, it } from 'vitest';
import { SUPPORTED_TYPES, loadDefinitions } from '../../fhir/definitions.js';
import {
  ECG_LEADS,
  EVALISE_CODES,
  EVALISE_RHYTHMS,
  examObservationCount,
  generateExam,
  type EvaliseExamOptions,
  type EvaliseRhythm,
} from '../../fhir/evalise/synthetic.js';

beforeAll(() => loadDefinitions());

const BASE: Omit<EvaliseExamOptions, 'rhythm'> = {
  patientId: 'patient-001',
  performerId: 'pract-gp-tende',
  deviceSerial: 'EV-06-TENDE-01',
  time: '2025-03-14T09:30:00+01:00',
};

function exam(rhythm: EvaliseRhythm, extra: Partial<EvaliseExamOptions> = {}): Bundle {
  return generateExam({ ...BASE, rhythm, ...extra });
}

const resourcesOf = (b: Bundle): Resource[] => (b.entry ?? []).map((e) => e.resource!);
const observations = (b: Bundle): Observation[] => resourcesOf(b).filter((r): r is Observation => r.resourceType === 'Observation');
const observationWithCode = (b: Bundle, code: string): Observation =>
  observations(b).find((o) => o.code.coding?.some((c) => c.code === code))!;

function leadSamples(b: Bundle, lead: (typeof ECG_LEADS)[number]): number[] {
  const ecg = observationWithCode(b, EVALISE_CODES.ecg.code);
  const component = ecg.component!.find((c) => c.code.coding?.[0]?.code === EVALISE_CODES.leads[lead].code)!;
  return component.valueSampledData!.data!.split(' ').map(Number);
}

/** R peaks: local maxima above 60 % of the signal's range over the median, at least 250 ms apart. */
function rPeaks(samples: number[], sampleRateHz: number): number[] {
  const sorted = [...samples].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const top = sorted[Math.floor(sorted.length * 0.995)]!;
  const threshold = median + 0.6 * (top - median);
  const half = Math.round(0.25 * sampleRateHz);
  const peaks: number[] = [];
  for (let i = 0; i < samples.length; i++) {
    if (samples[i]! < threshold) continue;
    let isMax = true;
    for (let j = Math.max(0, i - half); j <= Math.min(samples.length - 1, i + half) && isMax; j++) {
      if (samples[j]! > samples[i]! || (samples[j] === samples[i] && j < i)) isMax = false;
    }
    if (isMax) peaks.push(i);
  }
  return peaks;
}

function rrIntervals(peaks: number[], sampleRateHz: number): number[] {
  return peaks.slice(1).map((p, i) => (p - peaks[i]!) / sampleRateHz);
}

function coefficientOfVariation(values: number[]): number {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return Math.sqrt(variance) / mean;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** ST level: the signal 90 ms after each R peak minus the PR segment (75–55 ms before it), median over beats, µV. */
function stLevel(b: Bundle, lead: (typeof ECG_LEADS)[number], sampleRateHz = 500): number {
  const samples = leadSamples(b, lead);
  const peaks = rPeaks(leadSamples(b, 'V5'), sampleRateHz);
  const at = (i: number) => samples[Math.min(samples.length - 1, Math.max(0, i))]!;
  const mean = (from: number, to: number) => {
    let s = 0;
    for (let i = from; i <= to; i++) s += at(i);
    return s / (to - from + 1);
  };
  const ms = (x: number) => Math.round((x / 1000) * sampleRateHz);
  return median(peaks.filter((p) => p > ms(100) && p < samples.length - ms(120)).map((p) => mean(p + ms(86), p + ms(94)) - mean(p - ms(75), p - ms(55))));
}

describe('generateExam', () => {
  it.each(EVALISE_RHYTHMS)('builds a %s exam whose every resource passes R4 validation', (rhythm) => {
    const bundle = exam(rhythm);
    for (const r of resourcesOf(bundle)) expect(SUPPORTED_TYPES).toContain(r.resourceType);
    for (const r of [...resourcesOf(bundle), bundle]) {
      const issues = validateResource(r);
      expect(issues.filter((i) => i.severity === 'error' || i.severity === 'fatal'), r.resourceType).toEqual([]);
      // The only warnings allowed are about urn:uuid references, which the store resolves inside the transaction.
      for (const issue of issues) expect(issue.details?.text).toContain('urn:uuid:');
    }
  });

  it('returns a transaction of one Device, the exam Observations and a DiagnosticReport, all conditional creates', () => {
    const bundle = exam('sinus');
    expect(bundle.type).toBe('transaction');
    expect(resourcesOf(bundle).map((r) => r.resourceType)).toEqual([
      'Device',
      ...Array<string>(examObservationCount()).fill('Observation'),
      'DiagnosticReport',
    ]);
    for (const entry of bundle.entry!) {
      expect(entry.fullUrl).toMatch(/^urn:uuid:[0-9a-f-]{36}$/);
      expect(entry.request?.method).toBe('POST');
      expect(entry.request?.url).toBe(entry.resource!.resourceType);
      const [name, token] = [...new URLSearchParams(entry.request!.ifNoneExist!)][0]!;
      const identifier = (entry.resource as { identifier: { system: string; value: string }[] }).identifier[0]!;
      expect(name).toBe('identifier');
      expect(token).toBe(`${identifier.system}|${identifier.value}`);
    }
    expect(new Set(bundle.entry!.map((e) => e.fullUrl)).size).toBe(bundle.entry!.length);
  });

  it('builds reading identifiers from device serial, patient, code and time, unique within the exam', () => {
    const bundle = exam('sinus');
    const values = observations(bundle).map((o) => o.identifier![0]!);
    for (const id of values) {
      expect(id.system).toBe(EVALISE_CODES.systems.reading);
      const [serial, patient, code, time] = id.value!.split('|');
      expect([serial, patient, time]).toEqual([BASE.deviceSerial, BASE.patientId, BASE.time]);
      expect(observations(bundle).find((o) => o.identifier![0] === id)!.code.coding![0]!.code).toBe(code);
    }
    expect(new Set(values.map((v) => v.value)).size).toBe(values.length);
  });

  it('links the report to its observations, the patient, the performer and the device', () => {
    const bundle = exam('afib');
    const report = resourcesOf(bundle).find((r): r is DiagnosticReport => r.resourceType === 'DiagnosticReport')!;
    const observationUrls = bundle.entry!.filter((e) => e.resource!.resourceType === 'Observation').map((e) => e.fullUrl);
    expect(report.status).toBe('final');
    expect(report.code.coding?.[0]?.code).toBe('11524-6');
    expect(report.result?.map((r) => r.reference)).toEqual(observationUrls);
    expect(report.subject?.reference).toBe('Patient/patient-001');
    expect(report.performer?.[0]?.reference).toBe('Practitioner/pract-gp-tende');
    const deviceUrl = bundle.entry![0]!.fullUrl;
    for (const o of observations(bundle)) {
      expect(o.device?.reference).toBe(deviceUrl);
      expect(o.subject?.reference).toBe('Patient/patient-001');
    }
  });

  it('is deterministic for the same options and changes with the seed', () => {
    expect(JSON.stringify(exam('stemi'))).toBe(JSON.stringify(exam('stemi')));
    expect(leadSamples(exam('sinus', { seed: 1 }), 'II')).not.toEqual(leadSamples(exam('sinus', { seed: 2 }), 'II'));
  });

  it('rejects a time without a time zone, naming the field', () => {
    expect(() => exam('sinus', { time: '2025-03-14T09:30:00' })).toThrow(/time/);
  });
});

describe('the 12-lead ECG', () => {
  it.each([
    [10, 500],
    [5, 250],
  ])('has 12 leads of %s s × %s Hz integer samples in µV', (durationSeconds, sampleRateHz) => {
    const bundle = exam('sinus', { durationSeconds, sampleRateHz });
    const ecg = observationWithCode(bundle, '131328');
    expect(ecg.category?.[0]?.coding?.[0]?.code).toBe('procedure');
    expect(ecg.component!.map((c) => c.code.coding![0]!.code)).toEqual(ECG_LEADS.map((l) => EVALISE_CODES.leads[l].code));
    for (const c of ecg.component!) {
      const sd = c.valueSampledData!;
      expect(sd.period).toBe(1000 / sampleRateHz);
      expect(sd.dimensions).toBe(1);
      expect(sd.origin).toMatchObject({ value: 0, system: 'http://unitsofmeasure.org', code: 'uV' });
      const samples = sd.data!.split(' ');
      expect(samples).toHaveLength(durationSeconds * sampleRateHz);
      expect(samples.filter((s) => !/^-?[0-9]+$/.test(s))).toEqual([]);
    }
  });

  it('keeps the limb leads consistent: III = II - I and aVR + aVL + aVF = 0 (within rounding)', () => {
    const bundle = exam('stemi');
    const [I, II, III, aVR, aVL, aVF] = (['I', 'II', 'III', 'aVR', 'aVL', 'aVF'] as const).map((l) => leadSamples(bundle, l));
    for (let i = 0; i < I!.length; i += 7) {
      expect(Math.abs(III![i]! - (II![i]! - I![i]!))).toBeLessThanOrEqual(2);
      expect(Math.abs(aVR![i]! + aVL![i]! + aVF![i]!)).toBeLessThanOrEqual(2);
    }
  });

  it('shows an upright QRS in lead II and an inverted one in aVR', () => {
    const bundle = exam('sinus');
    const II = leadSamples(bundle, 'II');
    const aVR = leadSamples(bundle, 'aVR');
    const peaks = rPeaks(II, 500);
    expect(median(peaks.map((p) => II[p]!))).toBeGreaterThan(800);
    expect(median(peaks.map((p) => aVR[p]!))).toBeLessThan(-600);
  });

  it('has more irregular RR intervals in atrial fibrillation than in sinus rhythm (lead II R peaks)', () => {
    for (const seed of [1, 2, 3]) {
      const sinus = coefficientOfVariation(rrIntervals(rPeaks(leadSamples(exam('sinus', { seed }), 'II'), 500), 500));
      const afib = coefficientOfVariation(rrIntervals(rPeaks(leadSamples(exam('afib', { seed }), 'II'), 500), 500));
      expect(sinus).toBeLessThan(0.08);
      expect(afib).toBeGreaterThan(0.12);
      expect(afib).toBeGreaterThan(2 * sinus);
    }
  });

  it('shows inferior ST elevation with reciprocal depression in aVL in a STEMI, and none in sinus rhythm', () => {
    const stemi = exam('stemi');
    expect(stLevel(stemi, 'III')).toBeGreaterThan(200);
    expect(stLevel(stemi, 'aVF')).toBeGreaterThan(150);
    expect(stLevel(stemi, 'II')).toBeGreaterThan(100);
    expect(stLevel(stemi, 'aVL')).toBeLessThan(-100);
    const sinus = exam('sinus');
    for (const lead of ['II', 'III', 'aVF'] as const) expect(Math.abs(stLevel(sinus, lead))).toBeLessThan(100);
  });

  it('reports a heart rate matching the R peaks of the strip', () => {
    for (const rhythm of EVALISE_RHYTHMS) {
      const bundle = exam(rhythm);
      const rr = rrIntervals(rPeaks(leadSamples(bundle, 'V5'), 500), 500);
      const fromStrip = 60 / (rr.reduce((a, b) => a + b, 0) / rr.length);
      const reported = observationWithCode(bundle, '8867-4').valueQuantity!;
      expect(reported.code).toBe('/min');
      expect(Math.abs(reported.value! - fromStrip), rhythm).toBeLessThan(4);
    }
  });
});

describe('vital signs', () => {
  const seeds = [1, 2, 3, 4, 5, 6, 7, 8];

  it('keep SpO2 at or below 100 % and systolic above diastolic', () => {
    for (const rhythm of EVALISE_RHYTHMS) {
      for (const seed of seeds) {
        const bundle = exam(rhythm, { seed, durationSeconds: 2 });
        const spo2 = observationWithCode(bundle, '2708-6');
        expect(spo2.code.coding?.map((c) => c.code)).toEqual(['2708-6', '59408-5']);
        expect(spo2.valueQuantity).toMatchObject({ unit: '%', code: '%', system: 'http://unitsofmeasure.org' });
        expect(spo2.valueQuantity!.value!).toBeLessThanOrEqual(100);
        const bp = observationWithCode(bundle, '85354-9');
        const systolic = bp.component!.find((c) => c.code.coding?.[0]?.code === '8480-6')!.valueQuantity!;
        const diastolic = bp.component!.find((c) => c.code.coding?.[0]?.code === '8462-4')!.valueQuantity!;
        expect(systolic.code).toBe('mm[Hg]');
        expect(systolic.value!).toBeGreaterThan(diastolic.value!);
        for (const o of [spo2, bp]) expect(o.category?.[0]?.coding?.[0]?.code).toBe('vital-signs');
      }
    }
  });

  it('show desaturation with tachycardia in hypoxia and about 175/105 in hypertension', () => {
    for (const seed of seeds) {
      const hypoxia = exam('hypoxia', { seed, durationSeconds: 4 });
      expect(observationWithCode(hypoxia, '2708-6').valueQuantity!.value!).toBeGreaterThanOrEqual(84);
      expect(observationWithCode(hypoxia, '2708-6').valueQuantity!.value!).toBeLessThanOrEqual(88);
      expect(observationWithCode(hypoxia, '8867-4').valueQuantity!.value!).toBeGreaterThan(100);
      const hypertension = exam('hypertension', { seed, durationSeconds: 2 });
      const [sys, dia] = observationWithCode(hypertension, '85354-9').component!.map((c) => c.valueQuantity!.value!);
      expect(sys).toBeGreaterThanOrEqual(168);
      expect(dia).toBeGreaterThanOrEqual(100);
    }
  });
});
