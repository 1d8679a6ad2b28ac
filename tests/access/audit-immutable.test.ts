import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { AuditEvent, Bundle, Patient } from '@medplum/fhirtypes';
import { backends, type TestHub } from '../fhir/harness.js';
import { ORG, PRACT, SPO2, USER, create, failure, fhirBody, newPatient, read, ref, search, startAccessHub, total, transaction, unique, vital } from './support.js';

/** The audit trail is written by the hub only: no professional can add to it, change it or erase it. */
describe.each(backends())('the audit trail cannot be written through the API on $name', (backend) => {
  let hub: TestHub;
  let gp: Client;
  let admin: Client;
  let patient: Patient;
  /** An AuditEvent the GP may read: the record of their own read of their patient. */
  let event: AuditEvent;
  const marker = unique('forged');

  beforeAll(async () => {
    hub = await startAccessHub(backend);
    gp = await hub.clientAs(USER.gpTende);
    admin = await hub.clientAs(USER.admin);
    patient = await create(gp, newPatient(ORG.mspTende, unique('Abadie')));
    await read(gp, 'Patient', patient.id!);
    const trail = await search(gp, 'AuditEvent', { patient: `Patient/${patient.id}`, subtype: 'http://hl7.org/fhir/restful-interaction|read' });
    expect(trail.entry).toHaveLength(1);
    event = trail.entry![0]!.resource as AuditEvent;
  });
  afterAll(async () => {
    await hub?.close();
  });

  /** A made-up AuditEvent, as someone covering their tracks would write it. */
  const forged = (): AuditEvent => ({
    resourceType: 'AuditEvent',
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'read' }],
    action: 'R',
    recorded: new Date().toISOString(),
    outcome: '0',
    agent: [{ requestor: true, who: ref('Practitioner', PRACT.gpTende) }],
    source: { observer: { display: 'telemedicine-hub' } },
    entity: [{ what: ref('Patient', patient.id!), name: marker }],
  });

  const forbidden = (action: string) => ({
    status: 403,
    outcome: {
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'forbidden', diagnostics: `AuditEvent is written by the hub only and cannot be ${action}d through the API` }],
    },
  });

  async function unchanged(): Promise<void> {
    expect(await read<AuditEvent>(gp, 'AuditEvent', event.id!)).toEqual(event);
    const history = (await gp.history({ resourceType: 'AuditEvent', id: event.id! })) as unknown as Bundle;
    expect(history.entry).toHaveLength(1);
    const rows = await hub.store.db.query(`SELECT 1 FROM sp_string WHERE resource_type = 'AuditEvent' AND code = 'entity-name' AND exact = $1`, [marker]);
    expect(rows).toHaveLength(0);
    expect((await search(gp, 'AuditEvent', { 'entity-name': marker, _total: 'accurate' })).total).toBe(0);
  }

  it('answers 403 to creating an AuditEvent, by POST or by PUT on a new id, for a GP as for the administrator', async () => {
    expect(await failure(create(gp, forged()))).toEqual(forbidden('create'));
    expect(await failure(create(admin, forged()))).toEqual(forbidden('create'));
    const id = randomUUID();
    expect(await failure(gp.update({ resourceType: 'AuditEvent', id, body: fhirBody({ ...forged(), id }) }))).toEqual(forbidden('create'));
    await unchanged();
  });

  it('answers 403 to updating, patching or deleting an AuditEvent and leaves it as it was', async () => {
    expect(await failure(gp.update({ resourceType: 'AuditEvent', id: event.id!, body: fhirBody({ ...event, outcome: '4' }) }))).toEqual(forbidden('update'));
    expect(await failure(gp.patch({ resourceType: 'AuditEvent', id: event.id!, jsonPatch: [{ op: 'replace', path: '/outcome', value: '4' }] }))).toEqual(
      forbidden('update'),
    );
    expect(await failure(gp.patch({ resourceType: 'AuditEvent', id: event.id!, jsonPatch: [{ op: 'remove', path: '/entity' }] }))).toEqual(forbidden('update'));
    expect(await failure(gp.delete({ resourceType: 'AuditEvent', id: event.id! }))).toEqual(forbidden('delete'));
    await unchanged();
  });

  it('refuses a transaction that writes an AuditEvent with 403 and stores none of its entries', async () => {
    const readings = () => total(gp, 'Observation', { subject: `Patient/${patient.id}` });
    expect(await readings()).toBe(0);
    const entries = [
      { fullUrl: `urn:uuid:${randomUUID()}`, resource: vital(patient.id!, PRACT.gpTende, SPO2), request: { method: 'POST' as const, url: 'Observation' } },
      { fullUrl: `urn:uuid:${randomUUID()}`, resource: forged(), request: { method: 'POST' as const, url: 'AuditEvent' } },
    ];
    expect(await failure(transaction(gp, entries))).toEqual(forbidden('create'));
    expect(
      await failure(
        transaction(gp, [
          entries[0]!,
          { request: { method: 'PUT', url: `AuditEvent/${event.id}` }, resource: { ...event, outcome: '8' } },
        ]),
      ),
    ).toEqual(forbidden('update'));
    expect(await failure(transaction(gp, [entries[0]!, { request: { method: 'DELETE', url: `AuditEvent/${event.id}` } }]))).toEqual(forbidden('delete'));
    expect(await readings()).toBe(0);
    await unchanged();
  });

  it('answers 403 in the entry of a batch that writes an AuditEvent, while its other entries go through', async () => {
    const batch = await transaction(
      gp,
      [
        { resource: forged(), request: { method: 'POST', url: 'AuditEvent' } },
        { request: { method: 'DELETE', url: `AuditEvent/${event.id}` } },
        { resource: vital(patient.id!, PRACT.gpTende, SPO2), request: { method: 'POST', url: 'Observation' } },
      ],
      'batch',
    );
    const [post, del, obs] = batch.entry!;
    expect(post!.response).toEqual({ status: '403', outcome: forbidden('create').outcome });
    expect(del!.response).toEqual({ status: '403', outcome: forbidden('delete').outcome });
    expect(obs!.response!.status).toBe('201 Created');
    await unchanged();
  });
});
