import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { Bundle, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { backends, startTestHub, type TestHub } from './harness.js';
import { body, count, create, failure, followed, followedPatient, put, read } from './support.js';

const FHIR_JSON = { 'content-type': 'application/fhir+json' };

/** Everything a failed request could have written: current resources and versions of both types used. */
async function storedState(client: Client): Promise<{ patients: number; observations: number; patientVersions: number; observationVersions: number }> {
  const versions = async (resourceType: string) =>
    ((await client.history({ resourceType })) as unknown as Bundle).entry?.length ?? 0;
  return {
    patients: await count(client, 'Patient'),
    observations: await count(client, 'Observation'),
    patientVersions: await versions('Patient'),
    observationVersions: await versions('Observation'),
  };
}

describe.each(backends())('FHIR error responses on $name', (backend) => {
  let hub: TestHub;
  let client: Client;
  let existing: Patient;
  beforeAll(async () => {
    hub = await startTestHub(backend, { bodyLimit: '10kb' });
    client = hub.client;
    existing = await followedPatient(client, { name: [{ family: 'Existant' }] });
  });
  afterAll(async () => {
    await hub?.close();
  });

  async function raw(method: string, path: string, init: { headers?: Record<string, string>; body?: string | Buffer } = {}) {
    const response = await fetch(`${hub.baseUrl}/${path}`, { method, headers: init.headers, body: init.body });
    const text = await response.text();
    return { status: response.status, contentType: response.headers.get('content-type'), outcome: JSON.parse(text) as OperationOutcome };
  }

  it('answers malformed JSON with 400 and an OperationOutcome', async () => {
    const before = await storedState(client);
    const { status, contentType, outcome } = await raw('POST', 'Patient', { headers: FHIR_JSON, body: '{"resourceType": "Patient", "name": [' });
    expect(status).toBe(400);
    expect(contentType).toMatch(/^application\/fhir\+json/);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue[0]!.severity).toBe('error');
    expect(outcome.issue[0]!.diagnostics).toMatch(/malformed JSON/);
    expect(await storedState(client)).toEqual(before);
  });

  it('answers malformed JSON in a transaction with 400 and an OperationOutcome', async () => {
    const { status, outcome } = await raw('POST', '', { headers: FHIR_JSON, body: '{"resourceType": "Bundle", "type": "transaction", ' });
    expect(status).toBe(400);
    expect(outcome.resourceType).toBe('OperationOutcome');
  });

  it('answers a request without a body with 400', async () => {
    const { status, outcome } = await raw('POST', 'Patient', { headers: FHIR_JSON });
    expect(status).toBe(400);
    expect(outcome.resourceType).toBe('OperationOutcome');
  });

  it('answers a JSON body that is not an object with 400', async () => {
    const { status, outcome } = await raw('POST', 'Patient', { headers: FHIR_JSON, body: '[{"resourceType": "Patient"}]' });
    expect(status).toBe(400);
    expect(outcome.resourceType).toBe('OperationOutcome');
  });

  it('answers an invalid resource with 400 and one issue naming the path of each problem', async () => {
    const before = await storedState(client);
    const { status, outcome } = await failure(
      client.create({ resourceType: 'Patient', body: { resourceType: 'Patient', birthDate: '12/06/1941', nickname: 'Jeannot' } }),
    );
    expect(status).toBe(400);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue.every((i) => i.severity === 'error')).toBe(true);
    expect(outcome.issue.map((i) => i.expression).sort()).toEqual([['Patient.birthDate'], ['Patient.nickname']]);
    expect(await storedState(client)).toEqual(before);
  });

  it('names nested paths of problems in an invalid Observation', async () => {
    const { status, outcome } = await failure(
      client.create({
        resourceType: 'Observation',
        body: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: '8867-4', colour: 'red' }] },
          effectiveDateTime: '2024-13-45T99:00:00Z',
        },
      }),
    );
    expect(status).toBe(400);
    const paths = outcome.issue.flatMap((i) => i.expression ?? []).sort();
    expect(paths).toEqual(['Observation.code.coding[0].colour', 'Observation.effective[x]'].sort());
  });

  it('refuses an update that makes a stored resource invalid with 400 and keeps the stored version', async () => {
    const { status } = await failure(put(client, { ...existing, birthDate: 'not-a-date' }));
    expect(status).toBe(400);
    expect(await read<Patient>(client, 'Patient', existing.id!)).toEqual(existing);
  });

  it('answers every interaction on an unknown resource type with 404 and an OperationOutcome', async () => {
    const before = await storedState(client);
    const answers = await Promise.all([
      failure(client.read({ resourceType: 'Spaceship', id: '1' })),
      failure(client.search({ resourceType: 'Spaceship', searchParams: { name: 'x' } })),
      failure(client.create({ resourceType: 'Spaceship', body: { resourceType: 'Spaceship' } })),
      failure(client.update({ resourceType: 'Spaceship', id: '1', body: { resourceType: 'Spaceship', id: '1' } })),
      failure(client.delete({ resourceType: 'Spaceship', id: '1' })),
      failure(client.history({ resourceType: 'Spaceship' })),
      // A known FHIR type that this hub does not store is unknown here too.
      failure(client.create({ resourceType: 'RiskAssessment', body: { resourceType: 'RiskAssessment', status: 'final', subject: { reference: 'Patient/x' } } })),
    ]);
    for (const { status, outcome } of answers) {
      expect(status).toBe(404);
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(outcome.issue[0]!.severity).toBe('error');
    }
    expect(await storedState(client)).toEqual(before);
  });

  it('answers a body whose resourceType differs from the URL type with 400', async () => {
    const before = await storedState(client);
    const observation = { resourceType: 'Observation', status: 'final', code: { text: 'pouls' } };
    const onCreate = await failure(client.create({ resourceType: 'Patient', body: observation }));
    expect(onCreate.status).toBe(400);
    expect(onCreate.outcome.issue[0]!.expression).toEqual(['resourceType']);
    const onUpdate = await failure(client.update({ resourceType: 'Patient', id: existing.id!, body: { ...observation, id: existing.id! } }));
    expect(onUpdate.status).toBe(400);
    expect(onUpdate.outcome.issue[0]!.expression).toEqual(['resourceType']);
    expect(await storedState(client)).toEqual(before);
    expect(await read<Patient>(client, 'Patient', existing.id!)).toEqual(existing);
  });

  it('answers a body over the size limit with 413 and stores nothing', async () => {
    const before = await storedState(client);
    const big: Patient = followed({ name: [{ family: 'Grand', given: ['x'.repeat(12 * 1024)] }] });
    const { status, outcome } = await raw('POST', 'Patient', { headers: FHIR_JSON, body: JSON.stringify(big) });
    expect(status).toBe(413);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue[0]!.code).toBe('too-costly');
    expect(await storedState(client)).toEqual(before);
  });

  it('applies the size limit to the decoded body of a gzip request', async () => {
    const before = await storedState(client);
    const big: Patient = followed({ name: [{ family: 'Grand', given: ['y'.repeat(64 * 1024)] }] });
    const compressed = gzipSync(JSON.stringify(big));
    expect(compressed.length).toBeLessThan(10 * 1024);
    const { status } = await raw('POST', 'Patient', { headers: { ...FHIR_JSON, 'content-encoding': 'gzip' }, body: compressed });
    expect(status).toBe(413);
    expect(await storedState(client)).toEqual(before);
  });

  it('accepts a body just under the size limit', async () => {
    const small: Patient = followed({ name: [{ family: 'Juste', given: ['z'.repeat(8 * 1024)] }] });
    const created = await create(client, small);
    expect(created.name).toEqual(small.name);
  });

  it('answers an unsupported Content-Encoding with 415 and stores nothing', async () => {
    const before = await storedState(client);
    const { status, outcome } = await raw('POST', 'Patient', {
      headers: { ...FHIR_JSON, 'content-encoding': 'compress' },
      body: JSON.stringify(followed()),
    });
    expect(status).toBe(415);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(await storedState(client)).toEqual(before);
  });

  it('answers an invalid id with 400', async () => {
    const { status } = await failure(
      client.update({ resourceType: 'Patient', id: 'bad_id!', body: body({ resourceType: 'Patient', id: 'bad_id!' }) }),
    );
    expect(status).toBe(400);
  });

  it('answers a Bundle that is neither a transaction nor a batch with 400', async () => {
    const { status, outcome } = await failure(
      client.transaction({ body: { resourceType: 'Bundle', type: 'collection', entry: [{ resource: { resourceType: 'Patient' } }] } }),
    );
    expect(status).toBe(400);
    expect(outcome.issue[0]!.expression).toEqual(['Bundle.type']);
  });

  it('answers a PATCH that is not a JSON Patch with 415', async () => {
    const { status, outcome } = await raw('PATCH', `Patient/${existing.id}`, {
      headers: FHIR_JSON,
      body: JSON.stringify({ resourceType: 'Patient', id: existing.id, gender: 'female' }),
    });
    expect(status).toBe(415);
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(await read<Patient>(client, 'Patient', existing.id!)).toEqual(existing);
  });
});
