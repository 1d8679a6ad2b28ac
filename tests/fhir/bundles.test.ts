import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { Bundle, BundleEntry, DiagnosticReport, Observation, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { backends, startTestHub, type TestHub } from './harness.js';
import { body, count, create, failure, followed, followedPatient, httpResponse, matchIds, patientRef, put, read, search, sorted, unique } from './support.js';

const INS_NIR = 'urn:oid:1.2.250.1.213.1.4.8';
const LOINC = 'http://loinc.org';
const DEVICE_READING = 'urn:test:e-valise:reading';

/** Type and id from a response location (…/Type/id/_history/n). */
function locationOf(entry: BundleEntry): { type: string; id: string; version: string } {
  const m = /\/([A-Za-z]+)\/([^/]+)\/_history\/(\d+)$/.exec(entry.response?.location ?? '');
  if (!m) throw new Error(`no location in ${JSON.stringify(entry.response)}`);
  return { type: m[1]!, id: m[2]!, version: m[3]! };
}

/** An e-valise exam as the uploader sends it: patient and readings, each conditional on its identifier. */
function examBundle(nir: string, readingKeys: string[]): Bundle {
  const patientUrn = `urn:uuid:${randomUUID()}`;
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        fullUrl: patientUrn,
        resource: followed({ identifier: [{ system: INS_NIR, value: nir }], name: [{ family: 'Valise' }] }),
        request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${INS_NIR}|${nir}` },
      },
      ...readingKeys.map(
        (key, i): BundleEntry => ({
          fullUrl: `urn:uuid:${randomUUID()}`,
          resource: {
            resourceType: 'Observation',
            identifier: [{ system: DEVICE_READING, value: key }],
            status: 'final',
            code: { coding: [{ system: LOINC, code: '8867-4' }] },
            subject: { reference: patientUrn },
            effectiveDateTime: `2024-04-0${i + 1}T09:00:00Z`,
            valueQuantity: { value: 70 + i, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
          },
          request: { method: 'POST', url: 'Observation', ifNoneExist: `identifier=${DEVICE_READING}|${key}` },
        }),
      ),
    ],
  };
}

describe.each(backends())('FHIR transaction and batch bundles on $name', (backend) => {
  let hub: TestHub;
  let client: Client;
  beforeAll(async () => {
    hub = await startTestHub(backend);
    client = hub.client;
  });
  afterAll(async () => {
    await hub?.close();
  });

  const transaction = async (bundle: Bundle) => (await client.transaction({ body: body(bundle) })) as unknown as Bundle;
  const batch = async (bundle: Bundle) => (await client.batch({ body: body(bundle) })) as unknown as Bundle;

  /** Counts of every type the bundles below write, to prove that a failed bundle wrote nothing. */
  async function storedCounts(): Promise<Record<string, number>> {
    const types = ['Patient', 'Observation', 'DiagnosticReport', 'Encounter'];
    return Object.fromEntries(await Promise.all(types.map(async (t) => [t, await count(client, t)] as const)));
  }

  it('rewrites urn:uuid references to the ids it assigns, in every element that holds a reference', async () => {
    const nir = unique('nir');
    const patientUrn = 'urn:uuid:6f1c3a52-7c1e-4b8e-9d1a-2f0e5d1b7a01';
    const encounterUrn = 'urn:uuid:6f1c3a52-7c1e-4b8e-9d1a-2f0e5d1b7a02';
    const obsUrn = 'urn:uuid:6f1c3a52-7c1e-4b8e-9d1a-2f0e5d1b7a03';
    const response = await transaction({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        {
          fullUrl: obsUrn,
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: LOINC, code: '2708-6' }] },
            subject: { reference: patientUrn },
            encounter: { reference: encounterUrn },
            valueQuantity: { value: 97, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
          },
          request: { method: 'POST', url: 'Observation' },
        },
        {
          resource: {
            resourceType: 'DiagnosticReport',
            status: 'final',
            code: { text: 'Bilan e-valise' },
            subject: { reference: patientUrn },
            result: [{ reference: obsUrn }],
          },
          request: { method: 'POST', url: 'DiagnosticReport' },
        },
        {
          fullUrl: encounterUrn,
          resource: {
            resourceType: 'Encounter',
            status: 'finished',
            class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'VR' },
            subject: { reference: patientUrn },
          },
          request: { method: 'POST', url: 'Encounter' },
        },
        {
          fullUrl: patientUrn,
          resource: followed({ identifier: [{ system: INS_NIR, value: nir }] }),
          request: { method: 'POST', url: 'Patient' },
        },
      ],
    });
    expect(response.type).toBe('transaction-response');
    expect(response.entry!.map((e) => e.response?.status)).toEqual(['201 Created', '201 Created', '201 Created', '201 Created']);
    const [obsLoc, reportLoc, encounterLoc, patientLoc] = response.entry!.map(locationOf);
    expect([obsLoc!.type, reportLoc!.type, encounterLoc!.type, patientLoc!.type]).toEqual(['Observation', 'DiagnosticReport', 'Encounter', 'Patient']);

    const patient = await read<Patient>(client, 'Patient', patientLoc!.id);
    expect(patient.identifier).toEqual([{ system: INS_NIR, value: nir }]);
    const obs = await read<Observation>(client, 'Observation', obsLoc!.id);
    expect(obs.subject).toEqual({ reference: `Patient/${patientLoc!.id}` });
    expect(obs.encounter).toEqual({ reference: `Encounter/${encounterLoc!.id}` });
    const report = await read<DiagnosticReport>(client, 'DiagnosticReport', reportLoc!.id);
    expect(report.subject).toEqual({ reference: `Patient/${patientLoc!.id}` });
    expect(report.result).toEqual([{ reference: `Observation/${obsLoc!.id}` }]);
    // The rewritten references are indexed: searches by the new ids find them.
    expect(matchIds(await search(client, 'Observation', { subject: `Patient/${patientLoc!.id}` }))).toEqual([obsLoc!.id]);
    expect(matchIds(await search(client, 'DiagnosticReport', { result: `Observation/${obsLoc!.id}` }))).toEqual([reportLoc!.id]);
  });

  it('stores nothing of a transaction with one invalid entry and answers 400 naming that entry', async () => {
    const before = await storedCounts();
    const { status, outcome } = await failure(
      client.transaction({
        body: body({
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            { fullUrl: 'urn:uuid:a1', resource: followed({ name: [{ family: 'Valide' }] }), request: { method: 'POST', url: 'Patient' } },
            {
              resource: { resourceType: 'Observation', status: 'final', code: { text: 'x' }, subject: { reference: 'urn:uuid:a1' }, effectiveDateTime: 'hier' },
              request: { method: 'POST', url: 'Observation' },
            },
            {
              resource: { resourceType: 'Encounter', status: 'finished', class: { code: 'VR' }, subject: { reference: 'urn:uuid:a1' } },
              request: { method: 'POST', url: 'Encounter' },
            },
          ],
        }),
      }),
    );
    expect(status).toBe(400);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue.flatMap((i) => i.expression ?? [])).toEqual(['Bundle.entry[1].resource.Observation.effective[x]']);
    expect(await storedCounts()).toEqual(before);
  });

  it('stores nothing of a transaction whose entry fails at write time with a stale If-Match, and answers 412', async () => {
    const target = await followedPatient(client, { name: [{ family: 'Cible' }] });
    const current = await put(client, { ...target, name: [{ family: 'Cible-2' }] });
    const before = await storedCounts();
    const { status, outcome } = await failure(
      client.transaction({
        body: body({
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            { resource: followed({ name: [{ family: 'Nouveau' }] }), request: { method: 'POST', url: 'Patient' } },
            { resource: { resourceType: 'Encounter', status: 'finished', class: { code: 'VR' }, subject: patientRef(target) }, request: { method: 'POST', url: 'Encounter' } },
            {
              resource: { ...target, name: [{ family: 'Écrasé' }] },
              request: { method: 'PUT', url: `Patient/${target.id}`, ifMatch: 'W/"1"' },
            },
          ],
        }),
      }),
    );
    expect(status).toBe(412);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(await storedCounts()).toEqual(before);
    expect(await read<Patient>(client, 'Patient', target.id!)).toEqual(current);
  });

  it('stores nothing of a transaction whose delete and update precede an entry that fails at write time', async () => {
    const toDelete = await followedPatient(client, { name: [{ family: 'ÀSupprimer' }] });
    const toUpdate = await followedPatient(client, { name: [{ family: 'ÀModifier' }] });
    const toPatch = await followedPatient(client, { name: [{ family: 'ÀPatcher' }], gender: 'female' });
    const before = await storedCounts();
    const failingPatch = [{ op: 'test', path: '/gender', value: 'male' }];
    const { status, outcome } = await failure(
      client.transaction({
        body: body({
          resourceType: 'Bundle',
          type: 'transaction',
          entry: [
            { request: { method: 'DELETE', url: `Patient/${toDelete.id}` } },
            { resource: { ...toUpdate, gender: 'female' }, request: { method: 'PUT', url: `Patient/${toUpdate.id}` } },
            { resource: followed({ name: [{ family: 'Nouveau' }] }), request: { method: 'POST', url: 'Patient' } },
            {
              resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from(JSON.stringify(failingPatch)).toString('base64') },
              request: { method: 'PATCH', url: `Patient/${toPatch.id}` },
            },
          ],
        }),
      }),
    );
    expect(status).toBe(422);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(await storedCounts()).toEqual(before);
    expect(await read<Patient>(client, 'Patient', toDelete.id!)).toEqual(toDelete);
    expect(await read<Patient>(client, 'Patient', toUpdate.id!)).toEqual(toUpdate);
    expect(await read<Patient>(client, 'Patient', toPatch.id!)).toEqual(toPatch);
  });

  it('applies DELETE, POST, PUT, PATCH and GET entries of one transaction and answers in entry order', async () => {
    const edited = await followedPatient(client, { name: [{ family: 'Édité' }] });
    const patched = await followedPatient(client, { name: [{ family: 'Patché' }] });
    // A deleted Patient leaves the GP's care (404): the deletion is checked on a reading of a followed patient.
    const doomed = await create(client, { resourceType: 'Observation', status: 'final', code: { text: 'Supprimé' }, subject: patientRef(edited) });
    const putId = unique('put');
    const response = await transaction({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { request: { method: 'GET', url: `Patient/${edited.id}` } },
        { resource: { ...edited, gender: 'male' }, request: { method: 'PUT', url: `Patient/${edited.id}`, ifMatch: 'W/"1"' } },
        { resource: followed({ id: putId }), request: { method: 'PUT', url: `Patient/${putId}` } },
        { request: { method: 'DELETE', url: `Observation/${doomed.id}` } },
        {
          resource: { resourceType: 'Binary', contentType: 'application/json-patch+json', data: Buffer.from(JSON.stringify([{ op: 'add', path: '/gender', value: 'other' }])).toString('base64') },
          request: { method: 'PATCH', url: `Patient/${patched.id}` },
        },
        { resource: followed({ name: [{ family: 'Créé' }] }), request: { method: 'POST', url: 'Patient' } },
      ],
    });
    expect(response.entry!.map((e) => e.response?.status.split(' ')[0])).toEqual(['200', '200', '201', '204', '200', '201']);
    expect(response.entry![1]!.response?.etag).toBe('W/"2"');
    expect((await failure(client.read({ resourceType: 'Observation', id: doomed.id! }))).status).toBe(410);
    expect((await read<Patient>(client, 'Patient', edited.id!)).gender).toBe('male');
    expect((await read<Patient>(client, 'Patient', patched.id!)).gender).toBe('other');
    expect((await read<Patient>(client, 'Patient', putId)).meta?.versionId).toBe('1');
    expect((await read<Patient>(client, 'Patient', locationOf(response.entry![5]!).id)).name).toEqual([{ family: 'Créé' }]);
  });

  it('applies the good entries of a batch and reports the bad one with an OperationOutcome in its response', async () => {
    const target = await followedPatient(client, { name: [{ family: 'Lot' }] });
    await put(client, { ...target, gender: 'female' });
    const family = unique('Lot');
    const response = await batch({
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { resource: followed({ name: [{ family }] }), request: { method: 'POST', url: 'Patient' } },
        { resource: followed({ name: [{ family }], birthDate: 'demain' }), request: { method: 'POST', url: 'Patient' } },
        { resource: followed({ name: [{ family }] }), request: { method: 'POST', url: 'Patient' } },
        { resource: { ...target, gender: 'male' }, request: { method: 'PUT', url: `Patient/${target.id}`, ifMatch: 'W/"1"' } },
        { request: { method: 'GET', url: `Patient/${target.id}` } },
        { request: { method: 'GET', url: `Patient/${unique('missing')}` } },
      ],
    });
    expect(response.type).toBe('batch-response');
    const statuses = response.entry!.map((e) => e.response!.status.split(' ')[0]);
    expect(statuses).toEqual(['201', '400', '201', '412', '200', '404']);
    for (const i of [1, 3, 5]) {
      const outcome = response.entry![i]!.response!.outcome as OperationOutcome;
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(outcome.issue[0]!.severity).toBe('error');
    }
    expect((response.entry![1]!.response!.outcome as OperationOutcome).issue.flatMap((i) => i.expression ?? [])).toEqual([
      'Bundle.entry[1].resource.Patient.birthDate',
    ]);
    const created = [locationOf(response.entry![0]!).id, locationOf(response.entry![2]!).id];
    expect(sorted(matchIds(await search(client, 'Patient', { 'family:exact': family })))).toEqual(sorted(created));
    expect((await read<Patient>(client, 'Patient', target.id!)).gender).toBe('female');
    expect((response.entry![4]!.resource as Patient).gender).toBe('female');
  });

  it('creates nothing twice when the same exam transaction with conditional creates is sent again', async () => {
    const nir = unique('nir');
    const keys = [unique('r'), unique('r'), unique('r')];
    const first = await transaction(examBundle(nir, keys));
    expect(first.entry!.map((e) => e.response?.status)).toEqual(['201 Created', '201 Created', '201 Created', '201 Created']);
    const before = await storedCounts();

    const again = await transaction(examBundle(nir, keys));
    expect(again.entry!.map((e) => e.response?.status)).toEqual(['200 OK', '200 OK', '200 OK', '200 OK']);
    expect(again.entry!.map((e) => locationOf(e).id)).toEqual(first.entry!.map((e) => locationOf(e).id));
    expect(await storedCounts()).toEqual(before);

    const patientId = locationOf(first.entry![0]!).id;
    const readings = await search(client, 'Observation', { subject: `Patient/${patientId}`, _count: '100' });
    expect(sorted(matchIds(readings))).toEqual(sorted(first.entry!.slice(1).map((e) => locationOf(e).id)));
    expect(readings.entry!.every((e) => e.resource!.meta!.versionId === '1')).toBe(true);
  });

  it('links new readings of a resent exam to the patient created the first time', async () => {
    const nir = unique('nir');
    const first = await transaction(examBundle(nir, [unique('r')]));
    const patientId = locationOf(first.entry![0]!).id;
    const more = await transaction(examBundle(nir, [unique('r'), unique('r')]));
    expect(more.entry!.map((e) => e.response?.status)).toEqual(['200 OK', '201 Created', '201 Created']);
    expect(locationOf(more.entry![0]!).id).toBe(patientId);
    for (const entry of more.entry!.slice(1)) {
      expect((await read<Observation>(client, 'Observation', locationOf(entry).id)).subject).toEqual({ reference: `Patient/${patientId}` });
    }
    expect(await count(client, 'Patient', { identifier: `${INS_NIR}|${nir}` })).toBe(1);
  });

  it('creates one resource for two entries of one transaction with the same If-None-Exist, and points references to either at it', async () => {
    const nir = unique('nir');
    const patientEntry = (fullUrl: string): BundleEntry => ({
      fullUrl,
      resource: followed({ identifier: [{ system: INS_NIR, value: nir }] }),
      request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${INS_NIR}|${nir}` },
    });
    const reading = (subject: string): BundleEntry => ({
      resource: { resourceType: 'Observation', status: 'final', code: { text: 'pouls' }, subject: { reference: subject } },
      request: { method: 'POST', url: 'Observation' },
    });
    const response = await transaction({
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [patientEntry('urn:uuid:first'), reading('urn:uuid:first'), patientEntry('urn:uuid:second'), reading('urn:uuid:second')],
    });
    expect(response.entry!.map((e) => e.response?.status)).toEqual(['201 Created', '201 Created', '200 OK', '201 Created']);
    const patientId = locationOf(response.entry![0]!).id;
    expect(locationOf(response.entry![2]!).id).toBe(patientId);
    expect(await count(client, 'Patient', { identifier: `${INS_NIR}|${nir}` })).toBe(1);
    for (const i of [1, 3]) {
      expect((await read<Observation>(client, 'Observation', locationOf(response.entry![i]!).id)).subject).toEqual({ reference: `Patient/${patientId}` });
    }
  });

  it('creates nothing twice when the same exam transaction is sent several times at once', async () => {
    const nir = unique('nir');
    const keys = [unique('r'), unique('r')];
    const before = await storedCounts();
    const responses = await Promise.all(Array.from({ length: 6 }, () => transaction(examBundle(nir, keys))));
    const created = responses.flatMap((r) => r.entry!.filter((e) => e.response?.status === '201 Created'));
    expect(created).toHaveLength(3);
    const after = await storedCounts();
    expect(after).toEqual({ ...before, Patient: before.Patient! + 1, Observation: before.Observation! + 2 });
    const ids = new Set(responses.map((r) => r.entry!.map((e) => locationOf(e).id).join(',')));
    expect(ids.size).toBe(1);
  });

  it('answers a transaction with an unknown method or a PUT without id with 400 and stores nothing', async () => {
    const before = await storedCounts();
    for (const request of [{ method: 'PUT', url: 'Patient' }, { method: 'HEAD', url: 'Patient/1' }, { method: 'DELETE', url: 'Patient' }]) {
      const { status } = await failure(
        client.transaction({
          body: body({
            resourceType: 'Bundle',
            type: 'transaction',
            entry: [
              { resource: followed(), request: { method: 'POST', url: 'Patient' } },
              { resource: followed(), request: request as BundleEntry['request'] },
            ],
          }),
        }),
      );
      expect({ request, status }).toEqual({ request, status: 400 });
    }
    expect(await storedCounts()).toEqual(before);
  });

  it('returns the HTTP status 200 for the bundle response itself', async () => {
    const response = await transaction({ resourceType: 'Bundle', type: 'transaction', entry: [] });
    expect(httpResponse(response).status).toBe(200);
    expect(response.entry).toEqual([]);
  });
});
