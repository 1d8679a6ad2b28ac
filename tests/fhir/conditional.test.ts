import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { Observation, Patient } from '@medplum/fhirtypes';
import { backends, startTestHub, type TestHub } from './harness.js';
import { body, count, failure, followed, followedPatient, httpResponse, matchIds, read, search, unique } from './support.js';

const INS_NIR = 'urn:oid:1.2.250.1.213.1.4.8';

describe.each(backends())('FHIR conditional create and update on $name', (backend) => {
  let hub: TestHub;
  let client: Client;
  beforeAll(async () => {
    hub = await startTestHub(backend);
    client = hub.client;
  });
  afterAll(async () => {
    await hub?.close();
  });

  const patient = (nir: string, family = 'Garnier'): Patient => followed({ identifier: [{ system: INS_NIR, value: nir }], name: [{ family }] });

  async function createIfNoneExist<T extends Patient | Observation>(resource: T, condition: string): Promise<{ status: number; resource: T }> {
    const result = await client.create({ resourceType: resource.resourceType, body: body(resource), options: { headers: { 'If-None-Exist': condition } } });
    return { status: httpResponse(result).status, resource: result as unknown as T };
  }

  it('creates on the first If-None-Exist call and returns the existing resource with 200 on the second', async () => {
    const nir = unique('nir');
    const condition = `identifier=${INS_NIR}|${nir}`;
    const first = await createIfNoneExist(patient(nir), condition);
    expect(first.status).toBe(201);
    const second = await createIfNoneExist(patient(nir, 'Autre-Nom'), condition);
    expect(second.status).toBe(200);
    expect(second.resource).toEqual(first.resource);
    expect(httpResponse(second.resource).headers.get('location')).toBe(`${hub.baseUrl}/Patient/${first.resource.id}/_history/1`);
    expect(await count(client, 'Patient', { identifier: `${INS_NIR}|${nir}` })).toBe(1);
    expect((await read<Patient>(client, 'Patient', first.resource.id!)).name).toEqual([{ family: 'Garnier' }]);
  });

  it('accepts the condition written as a relative URL with the type', async () => {
    const nir = unique('nir');
    const first = await createIfNoneExist(patient(nir), `Patient?identifier=${INS_NIR}|${nir}`);
    const second = await createIfNoneExist(patient(nir), `Patient?identifier=${INS_NIR}|${nir}`);
    expect([first.status, second.status]).toEqual([201, 200]);
    expect(second.resource.id).toBe(first.resource.id);
  });

  it('creates exactly one resource from 20 identical concurrent If-None-Exist creates', async () => {
    const nir = unique('nir');
    const condition = `identifier=${INS_NIR}|${nir}`;
    const results = await Promise.all(Array.from({ length: 20 }, () => createIfNoneExist(patient(nir), condition)));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200)).toHaveLength(19);
    expect(new Set(results.map((r) => r.resource.id)).size).toBe(1);
    const found = await search(client, 'Patient', { identifier: `${INS_NIR}|${nir}` });
    expect(matchIds(found)).toEqual([results[0]!.resource.id]);
    expect(found.entry![0]!.resource!.meta!.versionId).toBe('1');
  });

  it('creates exactly one resource from concurrent creates whose conditions list the same parameters in different orders', async () => {
    const nir = unique('nir');
    const value = `${INS_NIR}|${nir}`;
    const conditions = [`identifier=${value}&family=Garnier`, `family=Garnier&identifier=${value}`];
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => createIfNoneExist(patient(nir), conditions[i % 2]!)));
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(new Set(results.map((r) => r.resource.id)).size).toBe(1);
    expect(await count(client, 'Patient', { identifier: value })).toBe(1);
  });

  it('refuses a conditional create whose condition matches two resources with 412 and creates nothing', async () => {
    const family = unique('Jumeau');
    await followedPatient(client, { name: [{ family }] });
    await followedPatient(client, { name: [{ family }] });
    const before = await count(client, 'Patient');
    const { status, outcome } = await failure(createIfNoneExist(followed({ name: [{ family }] }), `family:exact=${family}`));
    expect(status).toBe(412);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(await count(client, 'Patient')).toBe(before);
  });

  it('refuses a conditional create with an invalid condition with 400 and creates nothing', async () => {
    const before = await count(client, 'Patient');
    const { status } = await failure(createIfNoneExist(patient(unique('nir')), 'colour=red'));
    expect(status).toBe(400);
    expect(await count(client, 'Patient')).toBe(before);
  });

  it('makes a conditional update create the resource when nothing matches and update it when one matches', async () => {
    const nir = unique('nir');
    const searchParams = { identifier: `${INS_NIR}|${nir}` };
    const created = (await client.update({ resourceType: 'Patient', searchParams, body: body(patient(nir, 'Premier')) })) as unknown as Patient;
    expect(httpResponse(created).status).toBe(201);
    expect(created.meta?.versionId).toBe('1');
    const updated = (await client.update({ resourceType: 'Patient', searchParams, body: body(patient(nir, 'Second')) })) as unknown as Patient;
    expect(httpResponse(updated).status).toBe(200);
    expect(updated.id).toBe(created.id);
    expect(updated.meta?.versionId).toBe('2');
    expect((await read<Patient>(client, 'Patient', created.id!)).name).toEqual([{ family: 'Second' }]);
  });

  it('refuses a conditional update that matches two resources with 412 and changes neither', async () => {
    const family = unique('Double');
    const a = await followedPatient(client, { name: [{ family }] });
    const b = await followedPatient(client, { name: [{ family }] });
    const { status } = await failure(
      client.update({ resourceType: 'Patient', searchParams: { 'family:exact': family }, body: body(followed({ gender: 'male' })) }),
    );
    expect(status).toBe(412);
    expect(await read<Patient>(client, 'Patient', a.id!)).toEqual(a);
    expect(await read<Patient>(client, 'Patient', b.id!)).toEqual(b);
  });

  it('creates one resource from 10 concurrent PUTs to the same new client id, one version per request', async () => {
    const id = unique('resent');
    const results = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const result = await client.update({ resourceType: 'Patient', id, body: body({ ...patient(id, `Envoi${i}`), id }) });
        return { status: httpResponse(result).status, resource: result as unknown as Patient };
      }),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200)).toHaveLength(9);
    expect(results.map((r) => Number(r.resource.meta!.versionId)).sort((x, y) => x - y)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    expect((await read<Patient>(client, 'Patient', id)).meta?.versionId).toBe('10');
  });

  it('gives each of 10 concurrent updates of one resource its own version', async () => {
    const created = await followedPatient(client, patient(unique('nir')));
    const results = await Promise.all(
      Array.from({ length: 10 }, async (_, i) => (await client.update({ resourceType: 'Patient', id: created.id!, body: body({ ...created, gender: i % 2 ? 'male' : 'female' }) })) as unknown as Patient),
    );
    expect(results.map((r) => Number(r.meta!.versionId)).sort((x, y) => x - y)).toEqual(Array.from({ length: 10 }, (_, i) => i + 2));
    const history = (await client.history({ resourceType: 'Patient', id: created.id! })) as unknown as { entry: unknown[] };
    expect(history.entry).toHaveLength(11);
  });

  it('serialises 20 concurrent conditional updates on one condition into one resource with 20 versions', async () => {
    const nir = unique('nir');
    const searchParams = { identifier: `${INS_NIR}|${nir}` };
    const results = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const result = await client.update({ resourceType: 'Patient', searchParams, body: body(patient(nir, `Version${i}`)) });
        return { status: httpResponse(result).status, resource: result as unknown as Patient };
      }),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200)).toHaveLength(19);
    expect(new Set(results.map((r) => r.resource.id)).size).toBe(1);
    expect(results.map((r) => Number(r.resource.meta!.versionId)).sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await count(client, 'Patient', searchParams)).toBe(1);
  });
});
