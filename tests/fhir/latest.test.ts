import type { Observation } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backends, startTestHub, type TestHub } from './harness.js';
import { allPages, create, followedPatient, matchIds, patientRef, search } from './support.js';

/**
 * "The latest values of a patient" (subject + _sort=-date) is served by the patient-keyed date
 * index: these tests pin its order, its paging and its treatment of readings without a date.
 */
describe.each(backends())("a patient's latest readings on $name", (backend) => {
  let hub: TestHub;
  const expected: { id: string; date?: string }[] = [];
  let patientId = '';

  const reading = (subject: string, date?: string, code = '8867-4'): Observation => ({
    resourceType: 'Observation',
    status: 'final',
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
    code: { coding: [{ system: 'http://loinc.org', code }] },
    subject: patientRef(subject),
    ...(date ? { effectiveDateTime: date } : {}),
    valueQuantity: code === '2708-6' ? { value: 97, unit: '%', system: 'http://unitsofmeasure.org', code: '%' } : { value: 70, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  });

  beforeAll(async () => {
    hub = await startTestHub(backend);
    const patient = await followedPatient(hub.client);
    const other = await followedPatient(hub.client);
    patientId = patient.id!;
    // 23 dated readings, three of them sharing one instant, and two without a date.
    for (let i = 0; i < 20; i++) {
      const date = new Date(Date.UTC(2026, 0, 1 + ((i * 7) % 20), 8)).toISOString();
      expected.push({ id: (await create(hub.client, reading(patientId, date))).id!, date });
    }
    for (let i = 0; i < 3; i++) expected.push({ id: (await create(hub.client, reading(patientId, '2026-02-01T09:00:00.000Z'))).id!, date: '2026-02-01T09:00:00.000Z' });
    for (let i = 0; i < 2; i++) expected.push({ id: (await create(hub.client, reading(patientId))).id! });
    await create(hub.client, reading(other.id!, '2026-03-01T09:00:00.000Z'));
    await create(hub.client, reading(patientId, '2026-03-02T09:00:00.000Z', '2708-6')); // another code, filtered out below
    // Newest first; equal dates by id; readings without a date last, by id.
    expected.sort((a, b) => (a.date && b.date ? b.date.localeCompare(a.date) || a.id.localeCompare(b.id) : a.date ? -1 : b.date ? 1 : a.id.localeCompare(b.id)));
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('returns the newest readings first, ties by id, on the first page', async () => {
    const page = await search(hub.client, 'Observation', { subject: `Patient/${patientId}`, code: '8867-4', _sort: '-date', _count: '10' });
    expect(matchIds(page)).toEqual(expected.slice(0, 10).map((e) => e.id));
  });

  it('pages through every reading exactly once, those without a date last, with next links', async () => {
    const first = await search(hub.client, 'Observation', { subject: `Patient/${patientId}`, code: '8867-4', _sort: '-date', _count: '4' });
    const pages = await allPages(hub.client, first);
    expect(pages.flatMap(matchIds)).toEqual(expected.map((e) => e.id));
    expect(pages).toHaveLength(Math.ceil(expected.length / 4));
  });

  it('gives the same order with the patient parameter and with category as a filter', async () => {
    const first = await search(hub.client, 'Observation', { patient: patientId, category: 'vital-signs', code: '8867-4', _sort: '-date', _count: '7' });
    const pages = await allPages(hub.client, first);
    expect(pages.flatMap(matchIds)).toEqual(expected.map((e) => e.id));
  });
});
