import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { Bundle, Observation } from '@medplum/fhirtypes';
import { backends, startTestHub, type TestHub } from './harness.js';
import { failure, followedPatient, matchIds, put, sorted, unique } from './support.js';

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const VITAL_SIGNS = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] };
const HEART_RATE = { coding: [{ system: LOINC, code: '8867-4' }] };
// SpO2 carries two LOINC codes (DESIGN.md): one Observation, two codings.
const SPO2 = { coding: [{ system: LOINC, code: '2708-6' }, { system: LOINC, code: '59408-5' }] };
const BLOOD_PRESSURE = { coding: [{ system: LOINC, code: '85354-9' }] };
const mmHg = (code: string, value: number) => ({ code: { coding: [{ system: LOINC, code }] }, valueQuantity: { value, unit: 'mmHg', system: UCUM, code: 'mm[Hg]' } });

describe.each(backends())('the latest Observations per code (Observation lastn operation) on $name', (backend) => {
  let hub: TestHub;
  let client: Client;
  beforeAll(async () => {
    hub = await startTestHub(backend);
    client = hub.client;
  });
  afterAll(async () => {
    await hub?.close();
  });

  async function lastn(params: Record<string, string>): Promise<Bundle<Observation>> {
    return (await client.operation({ name: '$lastn', resourceType: 'Observation', method: 'GET', input: params })) as unknown as Bundle<Observation>;
  }

  /** One patient's readings over four days; the ids say which code and day each reading is. */
  async function recordReadings(u: string): Promise<string> {
    const patient = `${u}-patient`;
    await followedPatient(client, { id: patient });
    await followedPatient(client, { id: `${u}-other` });
    const reading = (id: string, code: Observation['code'], day: number, value: number, subject = patient): Observation => ({
      resourceType: 'Observation',
      id: `${u}-${id}`,
      status: 'final',
      category: [VITAL_SIGNS],
      code,
      subject: { reference: `Patient/${subject}` },
      effectiveDateTime: `2024-05-0${day}T08:00:00Z`,
      // Each code in its own UCUM unit; a blood pressure panel holds its values in components (DESIGN.md).
      ...(code === BLOOD_PRESSURE
        ? { component: [mmHg('8480-6', value), mmHg('8462-4', value - 40)] }
        : { valueQuantity: code === SPO2 ? { value, unit: '%', system: UCUM, code: '%' } : { value, unit: '/min', system: UCUM, code: '/min' } }),
    });
    // Written out of time order, so the store cannot rely on insertion order.
    for (const obs of [
      reading('hr-3', HEART_RATE, 3, 80),
      reading('hr-1', HEART_RATE, 1, 72),
      reading('hr-4', HEART_RATE, 4, 85),
      reading('hr-2', HEART_RATE, 2, 75),
      reading('spo2-2', SPO2, 2, 95),
      reading('spo2-1', SPO2, 1, 97),
      reading('spo2-3', SPO2, 3, 94),
      reading('bp-1', BLOOD_PRESSURE, 1, 120),
      // Another patient's later readings must not count.
      reading('other-hr-9', HEART_RATE, 9, 60, `${u}-other`),
    ]) {
      await put(client, obs);
    }
    return patient;
  }

  const ids = (u: string, bundle: Bundle) => sorted(matchIds(bundle).map((id) => id.slice(u.length + 1)));

  it('returns the latest 2 Observations of each code for a patient', async () => {
    const u = unique('lastn');
    const patient = await recordReadings(u);
    const bundle = await lastn({ patient, max: '2' });
    expect(bundle.type).toBe('searchset');
    expect(ids(u, bundle)).toEqual(sorted(['hr-4', 'hr-3', 'spo2-3', 'spo2-2', 'bp-1']));
    expect(bundle.total).toBe(5);
    expect(bundle.entry!.every((e) => e.search?.mode === 'match')).toBe(true);
  });

  it('returns the latest Observation of each code when max is not given', async () => {
    const u = unique('lastn');
    const patient = await recordReadings(u);
    expect(ids(u, await lastn({ patient }))).toEqual(sorted(['hr-4', 'spo2-3', 'bp-1']));
  });

  it('returns every Observation of a code when max exceeds their number', async () => {
    const u = unique('lastn');
    const patient = await recordReadings(u);
    expect(ids(u, await lastn({ patient: `Patient/${patient}`, max: '10', code: `${LOINC}|8867-4` }))).toEqual(sorted(['hr-1', 'hr-2', 'hr-3', 'hr-4']));
  });

  it('filters by code and category before taking the latest', async () => {
    const u = unique('lastn');
    const patient = await recordReadings(u);
    expect(ids(u, await lastn({ patient, max: '2', code: `${LOINC}|2708-6,${LOINC}|85354-9` }))).toEqual(sorted(['spo2-3', 'spo2-2', 'bp-1']));
    expect(ids(u, await lastn({ patient, max: '2', category: 'vital-signs', date: 'le2024-05-02' }))).toEqual(sorted(['hr-2', 'hr-1', 'spo2-2', 'spo2-1', 'bp-1']));
    expect(ids(u, await lastn({ patient, category: 'laboratory' }))).toEqual([]);
  });

  it('ignores deleted Observations and uses the current version of updated ones', async () => {
    const u = unique('lastn');
    const patient = await recordReadings(u);
    await client.delete({ resourceType: 'Observation', id: `${u}-hr-4` });
    // hr-1 moves to the latest day.
    const hr1 = (await client.read({ resourceType: 'Observation', id: `${u}-hr-1` })) as unknown as Observation;
    await put(client, { ...hr1, effectiveDateTime: '2024-05-06T08:00:00Z' });
    const bundle = await lastn({ patient, max: '2', code: `${LOINC}|8867-4` });
    expect(matchIds(bundle)).toEqual([`${u}-hr-1`, `${u}-hr-3`]);
  });

  it('refuses an invalid max with 400', async () => {
    for (const max of ['0', '-1', 'two', '1.5']) {
      const { status, outcome } = await failure(lastn({ patient: 'x', max }));
      expect({ max, status }).toEqual({ max, status: 400 });
      expect(outcome.resourceType).toBe('OperationOutcome');
    }
  });
});
