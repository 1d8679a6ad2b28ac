import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'fhir-kit-client';
import type { Bundle, Observation, Patient } from '@medplum/fhirtypes';
import { backends, startTestHub, type TestHub } from './harness.js';
import { body, clockPast, create, failure, followed, followedPatient, httpResponse, patientRef, put, read, search, unique } from './support.js';

describe.each(backends())('FHIR create, read, update, delete and history on $name', (backend) => {
  let hub: TestHub;
  let client: Client;
  beforeAll(async () => {
    hub = await startTestHub(backend);
    client = hub.client;
  });
  afterAll(async () => {
    await hub?.close();
  });

  const patient = (family: string): Patient => followed({ name: [{ family, given: ['Jeanne'] }], birthDate: '1941-06-12' });
  /**
   * A reading of a patient the GP follows. Deletions are checked on readings: a deleted Patient is
   * followed by no one any more, so it leaves the GP's reach (404), while a deleted reading of a
   * patient still in their care is answered as FHIR says (410, history, vread).
   */
  const reading = async (text: string): Promise<Observation> =>
    create(client, { resourceType: 'Observation', status: 'final', code: { text }, subject: patientRef(await followedPatient(client)) });

  it('creates a resource with 201, a server id, version 1, an ETag and a Location to that version', async () => {
    const created = await create(client, patient('Martin'));
    const response = httpResponse(created);
    expect(response.status).toBe(201);
    expect(created.id).toMatch(/^[A-Za-z0-9\-.]{1,64}$/);
    expect(created.meta?.versionId).toBe('1');
    expect(Number.isNaN(Date.parse(created.meta!.lastUpdated!))).toBe(false);
    expect(response.headers.get('etag')).toBe('W/"1"');
    expect(response.headers.get('location')).toBe(`${hub.baseUrl}/Patient/${created.id}/_history/1`);
    expect(response.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
  });

  it('reads back exactly what was created, with an ETag for the current version', async () => {
    const created = await create(client, patient('Bernard'));
    const readBack = await read<Patient>(client, 'Patient', created.id!);
    expect(readBack).toEqual(created);
    expect(httpResponse(readBack).headers.get('etag')).toBe('W/"1"');
  });

  it('reads a missing resource as 404 with an OperationOutcome', async () => {
    const { status, outcome } = await failure(client.read({ resourceType: 'Patient', id: 'does-not-exist' }));
    expect(status).toBe(404);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue[0]!.code).toBe('not-found');
  });

  it('updates a resource to version 2 and keeps version 1 readable with vread', async () => {
    const created = await create(client, patient('Thomas'));
    const updated = await put(client, { ...created, name: [{ family: 'Thomas-Petit' }] });
    expect(httpResponse(updated).status).toBe(200);
    expect(httpResponse(updated).headers.get('etag')).toBe('W/"2"');
    expect(updated.meta?.versionId).toBe('2');
    expect(updated.name).toEqual([{ family: 'Thomas-Petit' }]);

    const v1 = (await client.vread({ resourceType: 'Patient', id: created.id!, version: '1' })) as unknown as Patient;
    expect(v1).toEqual(created);
    const v2 = (await client.vread({ resourceType: 'Patient', id: created.id!, version: '2' })) as unknown as Patient;
    expect(v2).toEqual(updated);
    expect((await failure(client.vread({ resourceType: 'Patient', id: created.id!, version: '3' }))).status).toBe(404);
  });

  it('refuses an update whose If-Match names a stale version with 412 and changes nothing', async () => {
    const created = await create(client, patient('Robert'));
    await put(client, { ...created, name: [{ family: 'Robert-2' }] });
    const { status, outcome } = await failure(put(client, { ...created, name: [{ family: 'Robert-stale' }] }, { 'If-Match': 'W/"1"' }));
    expect(status).toBe(412);
    expect(outcome.resourceType).toBe('OperationOutcome');
    const current = await read<Patient>(client, 'Patient', created.id!);
    expect(current.meta?.versionId).toBe('2');
    expect(current.name).toEqual([{ family: 'Robert-2' }]);
  });

  it('applies an update whose If-Match names the current version with 200', async () => {
    const created = await create(client, patient('Richard'));
    const updated = await put(client, { ...created, name: [{ family: 'Richard-2' }] }, { 'If-Match': 'W/"1"' });
    expect(httpResponse(updated).status).toBe(200);
    expect(updated.meta?.versionId).toBe('2');
    expect((await read<Patient>(client, 'Patient', created.id!)).name).toEqual([{ family: 'Richard-2' }]);
  });

  it('creates a resource with a client-chosen id on PUT with 201 and a Location', async () => {
    const id = unique('client-id');
    const created = await put(client, { ...patient('Petit'), id });
    const response = httpResponse(created);
    expect(response.status).toBe(201);
    expect(response.headers.get('location')).toBe(`${hub.baseUrl}/Patient/${id}/_history/1`);
    expect(created.id).toBe(id);
    expect(created.meta?.versionId).toBe('1');
    expect((await read<Patient>(client, 'Patient', id)).name).toEqual([{ family: 'Petit', given: ['Jeanne'] }]);
  });

  it('refuses a PUT whose body id differs from the URL id with 400', async () => {
    const { status } = await failure(
      client.update({ resourceType: 'Patient', id: unique('url-id'), body: body({ ...patient('Durand'), id: unique('other-id') }) }),
    );
    expect(status).toBe(400);
  });

  it('deletes a resource: reads then answer 410 and the history keeps every version including the deletion', async () => {
    const created = await reading('Moreau');
    await put(client, { ...created, code: { text: 'Moreau-2' } });
    const deleted = await client.delete({ resourceType: 'Observation', id: created.id! });
    expect(httpResponse(deleted).status).toBe(204);

    const gone = await failure(client.read({ resourceType: 'Observation', id: created.id! }));
    expect(gone.status).toBe(410);
    expect(gone.outcome.issue[0]!.code).toBe('deleted');

    const history = (await client.history({ resourceType: 'Observation', id: created.id! })) as unknown as Bundle<Observation>;
    expect(history.type).toBe('history');
    expect(history.entry!.map((e) => e.response?.etag)).toEqual(['W/"3"', 'W/"2"', 'W/"1"']);
    expect(history.entry![0]!.request).toEqual({ method: 'DELETE', url: `Observation/${created.id}` });
    expect(history.entry![0]!.resource).toBeUndefined();
    expect(history.entry![1]!.resource!.code).toEqual({ text: 'Moreau-2' });
    expect(history.entry![2]!.resource).toEqual(created);

    const v1 = (await client.vread({ resourceType: 'Observation', id: created.id!, version: '1' })) as unknown as Observation;
    expect(v1).toEqual(created);
    expect((await search(client, 'Observation', { _id: created.id! })).entry).toEqual([]);
  });

  it('recreates a deleted resource with PUT as a new version after the deletion', async () => {
    const id = unique('again');
    const subject = patientRef(await followedPatient(client));
    const at = (text: string): Observation => ({ resourceType: 'Observation', id, status: 'final', code: { text }, subject });
    await put(client, at('Simon'));
    await client.delete({ resourceType: 'Observation', id });
    const recreated = await put(client, at('Simon-bis'));
    expect(httpResponse(recreated).status).toBe(201);
    expect(recreated.meta?.versionId).toBe('3');
    expect((await read<Observation>(client, 'Observation', id)).code.text).toBe('Simon-bis');
  });

  // A resource that never existed answers 404, as another team's record does: a 204 there would
  // let anyone tell foreign records (404) from free ids.
  it('deletes idempotently: deleting again answers 204 and adds no version; deleting what never existed answers 404', async () => {
    const created = await reading('Fontaine');
    await client.delete({ resourceType: 'Observation', id: created.id! });
    const again = await client.delete({ resourceType: 'Observation', id: created.id! });
    expect(httpResponse(again).status).toBe(204);
    const history = (await client.history({ resourceType: 'Observation', id: created.id! })) as unknown as Bundle;
    expect(history.entry!.map((e) => e.response?.etag)).toEqual(['W/"2"', 'W/"1"']);
    expect((await failure(client.delete({ resourceType: 'Patient', id: unique('never') }))).status).toBe(404);
  });

  it('answers the history of a resource that never existed with 404', async () => {
    expect((await failure(client.history({ resourceType: 'Patient', id: unique('never') }))).status).toBe(404);
  });

  it('answers a patch of a missing resource with 404 and of a deleted one with 410', async () => {
    const jsonPatch = [{ op: 'add' as const, path: '/gender', value: 'female' }];
    expect((await failure(client.patch({ resourceType: 'Patient', id: unique('never'), jsonPatch }))).status).toBe(404);
    const created = await create(client, patient('Chevalier'));
    await client.delete({ resourceType: 'Patient', id: created.id! });
    expect((await failure(client.patch({ resourceType: 'Patient', id: created.id!, jsonPatch }))).status).toBe(410);
  });

  it('answers with no body but the Location and ETag when the client prefers return=minimal', async () => {
    const response = await fetch(`${hub.baseUrl}/Patient`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', prefer: 'return=minimal' },
      body: JSON.stringify(patient('Minimal')),
    });
    expect(response.status).toBe(201);
    expect(await response.text()).toBe('');
    const location = response.headers.get('location')!;
    expect(location).toMatch(new RegExp(`^${hub.baseUrl}/Patient/[A-Za-z0-9\-.]+/_history/1$`));
    expect(response.headers.get('etag')).toBe('W/"1"');
    const id = location.split('/').at(-3)!;
    expect((await read<Patient>(client, 'Patient', id)).name).toEqual([{ family: 'Minimal', given: ['Jeanne'] }]);
  });

  it('answers with an OperationOutcome when the client prefers return=OperationOutcome', async () => {
    const created = await create(client, patient('Issue'));
    const response = await fetch(`${hub.baseUrl}/Patient/${created.id}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/fhir+json', prefer: 'return=OperationOutcome' },
      body: JSON.stringify({ ...created, gender: 'female' }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('etag')).toBe('W/"2"');
    const outcome = (await response.json()) as { resourceType: string; issue: { severity: string }[] };
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue[0]!.severity).toBe('information');
  });

  it('accepts If-Match with a strong or weak ETag of the current version', async () => {
    const created = await create(client, patient('Etag'));
    const weak = await put(client, { ...created, gender: 'male' }, { 'If-Match': 'W/"1"' });
    const strong = await put(client, { ...weak, gender: 'female' }, { 'If-Match': '"2"' });
    expect(strong.meta?.versionId).toBe('3');
  });

  it('lists the type history newest first across resources of that type only', async () => {
    const hubForHistory = await startTestHub(backend);
    try {
      const c = hubForHistory.client;
      // Each write on a later millisecond than the one before, so the expected order is total.
      const a = await create(c, patient('Alpha'));
      await clockPast(a.meta?.lastUpdated);
      const b = await create(c, patient('Beta'));
      await clockPast(b.meta?.lastUpdated);
      const a2 = await put(c, { ...a, name: [{ family: 'Alpha-2' }] });
      await clockPast(a2.meta?.lastUpdated);
      await create(c, { resourceType: 'Observation', status: 'final', code: { text: 'not a patient' }, subject: patientRef(a) });
      const history = (await c.history({ resourceType: 'Patient' })) as unknown as Bundle<Patient>;
      expect(history.entry!.map((e) => `${e.resource!.id}@${e.resource!.meta!.versionId}`)).toEqual([`${a.id}@2`, `${b.id}@1`, `${a.id}@1`]);
    } finally {
      await hubForHistory.close();
    }
  });

  it('patches a resource with JSON Patch to a new version', async () => {
    const created = await create(client, patient('Laurent'));
    const patched = (await client.patch({
      resourceType: 'Patient',
      id: created.id!,
      jsonPatch: [
        { op: 'test', path: '/name/0/family', value: 'Laurent' },
        { op: 'replace', path: '/name/0/family', value: 'Laurent-Girard' },
        { op: 'add', path: '/gender', value: 'female' },
        { op: 'remove', path: '/birthDate' },
      ],
    })) as unknown as Patient;
    expect(httpResponse(patched).status).toBe(200);
    expect(patched.meta?.versionId).toBe('2');
    expect(patched.name).toEqual([{ family: 'Laurent-Girard', given: ['Jeanne'] }]);
    expect(patched.gender).toBe('female');
    expect(patched.birthDate).toBeUndefined();
    expect(await read<Patient>(client, 'Patient', created.id!)).toEqual(patched);
  });

  it('refuses a JSON Patch whose test operation fails with 422 and changes nothing', async () => {
    const created = await create(client, patient('Lefebvre'));
    const { status, outcome } = await failure(
      client.patch({
        resourceType: 'Patient',
        id: created.id!,
        jsonPatch: [
          { op: 'replace', path: '/name/0/family', value: 'Changed' },
          { op: 'test', path: '/birthDate', value: '1900-01-01' },
        ],
      }),
    );
    expect(status).toBe(422);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(await read<Patient>(client, 'Patient', created.id!)).toEqual(created);
    const history = (await client.history({ resourceType: 'Patient', id: created.id! })) as unknown as Bundle;
    expect(history.entry).toHaveLength(1);
  });

  it('refuses a JSON Patch that would make the resource invalid with 400 and changes nothing', async () => {
    const created = await create(client, patient('Garcia'));
    const { status } = await failure(
      client.patch({ resourceType: 'Patient', id: created.id!, jsonPatch: [{ op: 'replace', path: '/birthDate', value: 'yesterday' }] }),
    );
    expect(status).toBe(400);
    expect(await read<Patient>(client, 'Patient', created.id!)).toEqual(created);
  });

  it('refuses a JSON Patch that changes the id or the resourceType with 422 and changes nothing', async () => {
    const created = await create(client, patient('Mercier'));
    for (const op of [
      { op: 'replace' as const, path: '/id', value: unique('other') },
      { op: 'replace' as const, path: '/resourceType', value: 'Practitioner' },
    ]) {
      const { status } = await failure(client.patch({ resourceType: 'Patient', id: created.id!, jsonPatch: [op] }));
      expect({ path: op.path, status }).toEqual({ path: op.path, status: 422 });
    }
    expect(await read<Patient>(client, 'Patient', created.id!)).toEqual(created);
  });

  it('refuses a JSON Patch with a stale If-Match with 412 and changes nothing', async () => {
    const created = await create(client, patient('Roux'));
    await put(client, { ...created, gender: 'female' });
    const { status } = await failure(
      client.patch({
        resourceType: 'Patient',
        id: created.id!,
        jsonPatch: [{ op: 'add', path: '/gender', value: 'male' }],
        options: { headers: { 'If-Match': 'W/"1"' } },
      }),
    );
    expect(status).toBe(412);
    const current = await read<Patient>(client, 'Patient', created.id!);
    expect(current.gender).toBe('female');
    expect(current.meta?.versionId).toBe('2');
  });
});
