import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';
import { backends, startTestHub, type TestHub } from './harness.js';
import { failure, httpResponse } from './support.js';

/** The resource types the hub stores (DESIGN.md): the CapabilityStatement must list exactly these. */
const STORED_TYPES = [
  'Appointment',
  'AuditEvent',
  'Binary',
  'CarePlan',
  'CareTeam',
  'Communication',
  'Consent',
  'Device',
  'DiagnosticReport',
  'DocumentReference',
  'Encounter',
  'Flag',
  'Observation',
  'Organization',
  'Patient',
  'Practitioner',
  'PractitionerRole',
  'ServiceRequest',
  'Task',
];

describe.each(backends())('FHIR CapabilityStatement on $name', (backend) => {
  let hub: TestHub;
  let client: Client;
  let statement: CapabilityStatement;
  beforeAll(async () => {
    hub = await startTestHub(backend);
    client = hub.client;
    statement = (await client.capabilityStatement()) as unknown as CapabilityStatement;
  });
  afterAll(async () => {
    await hub?.close();
  });

  const resource = (type: string): CapabilityStatementRestResource => {
    const found = statement.rest![0]!.resource!.find((r) => r.type === type);
    if (!found) throw new Error(`${type} is not in the CapabilityStatement`);
    return found;
  };
  const params = (type: string) => Object.fromEntries((resource(type).searchParam ?? []).map((p) => [p.name, p.type]));

  it('describes an R4 JSON server with one rest entry', async () => {
    expect(httpResponse(statement).status).toBe(200);
    expect(statement.resourceType).toBe('CapabilityStatement');
    expect(statement.fhirVersion).toBe('4.0.1');
    expect(statement.kind).toBe('instance');
    expect(statement.format).toContain('application/fhir+json');
    expect(statement.patchFormat).toEqual(['application/json-patch+json']);
    expect(statement.implementation?.url).toBe(hub.baseUrl);
    expect(statement.rest).toHaveLength(1);
    expect(statement.rest![0]!.mode).toBe('server');
    expect(statement.rest![0]!.interaction?.map((i) => i.code).sort()).toEqual(['batch', 'transaction']);
  });

  it('lists exactly the 19 stored resource types, each once', () => {
    const types = statement.rest![0]!.resource!.map((r) => r.type);
    expect(types).toHaveLength(19);
    expect([...types].sort()).toEqual(STORED_TYPES);
  });

  it('declares the REST interactions of every type', () => {
    for (const type of STORED_TYPES) {
      const r = resource(type);
      expect({ type, interactions: r.interaction?.map((i) => i.code).sort() }).toEqual({
        type,
        interactions: ['create', 'delete', 'history-instance', 'history-type', 'patch', 'read', 'search-type', 'update', 'vread'],
      });
      expect(r.versioning).toBe('versioned-update');
      expect(r.conditionalCreate).toBe(true);
      expect(r.updateCreate).toBe(true);
    }
  });

  it('declares the Observation search parameters the hub relies on, with their types, and $lastn', () => {
    expect(params('Observation')).toMatchObject({
      _id: 'token',
      _lastUpdated: 'date',
      code: 'token',
      category: 'token',
      subject: 'reference',
      patient: 'reference',
      date: 'date',
      identifier: 'token',
      'value-quantity': 'quantity',
      _profile: 'uri',
    });
    expect(resource('Observation').operation).toEqual([{ name: 'lastn', definition: 'http://hl7.org/fhir/OperationDefinition/Observation-lastn' }]);
    expect(resource('Observation').searchInclude).toContain('Observation:subject');
    expect(resource('Patient').operation).toBeUndefined();
  });

  it('declares the Patient and DocumentReference parameters used for identity and documents', () => {
    expect(params('Patient')).toMatchObject({ identifier: 'token', name: 'string', family: 'string', given: 'string', birthdate: 'date', gender: 'token' });
    expect(params('DocumentReference')).toMatchObject({ location: 'uri', subject: 'reference', patient: 'reference' });
  });

  it('declares no number parameter, since none of the stored types has one in R4 (a new type with one needs a number search test)', () => {
    const numbers = statement.rest![0]!.resource!.flatMap((r) => (r.searchParam ?? []).filter((p) => p.type === 'number').map((p) => `${r.type}.${p.name}`));
    expect(numbers).toEqual([]);
  });

  it('accepts a search on every declared parameter of every type', async () => {
    for (const type of STORED_TYPES) {
      const names = (resource(type).searchParam ?? []).map((p) => p.name).filter((n) => n !== '_id' && n !== '_lastUpdated');
      const query = names.map((n) => `${encodeURIComponent(n)}:missing=false`).join('&');
      const bundle = (await client.request(`${type}?${query}&_id=none`)) as unknown as { resourceType: string; entry?: unknown[] };
      expect({ type, resourceType: bundle.resourceType, entries: bundle.entry ?? [] }).toEqual({ type, resourceType: 'Bundle', entries: [] });
    }
  });

  it('does not answer for a type it does not declare', async () => {
    const { status } = await failure(client.request('RiskAssessment?_id=x'));
    expect(status).toBe(404);
  });
});
