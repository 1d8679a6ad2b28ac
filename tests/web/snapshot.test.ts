import type { Observation } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadDefinitions } from '../../fhir/definitions.js';
import { checkPlausibility } from '../../fhir/evalise/plausibility.js';
import { validate } from '../../fhir/validation.js';
import { SNAPSHOT_IDENTIFIER_SYSTEM, snapshotBundle, type SnapshotInput } from '../../client/web/src/teleassistance/snapshot.js';
import { EvaliseSimulator } from '../../client/web/src/teleassistance/vitals.js';

beforeAll(() => loadDefinitions());

const START = Date.parse('2026-03-02T09:30:00Z');

function tenSecondsOfEcg(): number[] {
  const sim = new EvaliseSimulator({ rateHz: 250, startMs: START, seed: 11 });
  return sim.next(START + 10_000)!.ecg!.samples;
}

const INPUT: SnapshotInput = {
  snapshotId: '3f1c7a52-9a0e-4c1e-b8e2-5d2f1e0c9a10',
  subject: 'Patient/patient-005',
  basedOn: 'ServiceRequest/sr-1',
  performer: 'Practitioner/pract-regulateur-samu',
  effective: '2026-03-02T09:30:10.000Z',
  spo2: 96,
  heartRate: 72,
  ecg: { lead: 'II', rateHz: 250, samples: tenSecondsOfEcg() },
};

describe('a teleassistance snapshot', () => {
  it('is a transaction of SpO2, heart rate and a one-lead ECG that the hub finds valid and plausible', () => {
    const bundle = snapshotBundle(INPUT);
    expect(bundle.type).toBe('transaction');
    const observations = bundle.entry!.map((e) => e.resource as Observation);
    expect(observations.map((o) => o.code.coding![0]!.code)).toEqual(['2708-6', '8867-4', '131328']);
    for (const [i, o] of observations.entries()) {
      expect(() => validate(o, 'Observation'), `entry ${i}`).not.toThrow();
      expect(checkPlausibility(o, `Bundle.entry[${i}]`)).toEqual([]);
      expect(o).toMatchObject({ status: 'final', subject: { reference: 'Patient/patient-005' }, effectiveDateTime: INPUT.effective });
    }
    const [spo2, heartRate, ecg] = observations as [Observation, Observation, Observation];
    expect(spo2.valueQuantity).toEqual({ value: 96, unit: '%', system: 'http://unitsofmeasure.org', code: '%' });
    expect(spo2.category![0]!.coding![0]!.code).toBe('vital-signs');
    expect(heartRate.valueQuantity).toEqual({ value: 72, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' });
    expect(ecg.category![0]!.coding![0]!.code).toBe('procedure');
    const lead = ecg.component![0]!;
    expect(lead.code.coding![0]!.code).toBe('131330');
    expect(lead.valueSampledData).toMatchObject({ origin: { value: 0, code: 'uV', system: 'http://unitsofmeasure.org' }, period: 4, dimensions: 1 });
    expect(lead.valueSampledData!.data!.split(' ')).toHaveLength(2500);
  });

  it('is a set of conditional creates on the snapshot id, so a resent snapshot is stored once', () => {
    const first = snapshotBundle(INPUT);
    const again = snapshotBundle(INPUT);
    expect(again).toEqual(first);
    for (const entry of first.entry!) {
      const identifier = (entry.resource as Observation).identifier![0]!;
      expect(identifier.system).toBe(SNAPSHOT_IDENTIFIER_SYSTEM);
      expect(identifier.value!.startsWith(INPUT.snapshotId)).toBe(true);
      expect(new URLSearchParams(entry.request!.ifNoneExist!).get('identifier')).toBe(`${SNAPSHOT_IDENTIFIER_SYSTEM}|${identifier.value}`);
      expect(entry.fullUrl).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    }
    expect(new Set(first.entry!.map((e) => e.fullUrl)).size).toBe(3);
    expect(snapshotBundle({ ...INPUT, snapshotId: '0b6f3a11-2c47-4d0e-9f7e-1a2b3c4d5e6f' }).entry![0]!.request!.ifNoneExist).not.toBe(first.entry![0]!.request!.ifNoneExist);
  });

  it('refuses what the hub would refuse: no patient, an unknown lead, an absurd rate, nothing to save', () => {
    expect(() => snapshotBundle({ ...INPUT, subject: '' })).toThrow('Patient');
    expect(() => snapshotBundle({ ...INPUT, ecg: { lead: 'X', rateHz: 250, samples: [1] } })).toThrow('lead');
    expect(() => snapshotBundle({ ...INPUT, ecg: { lead: 'II', rateHz: 50, samples: [1] } })).toThrow('Hz');
    const { spo2: _s, heartRate: _h, ecg: _e, ...nothing } = INPUT;
    expect(() => snapshotBundle(nothing)).toThrow('nothing to save');
  });
});
