import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { Bundle, Organization, Patient, Practitioner } from '@medplum/fhirtypes';
import { DEMO_IDS } from '../../fhir/demo/demo-data.js';
import { backends, type TestHub } from '../fhir/harness.js';
import {
  ORG,
  PRACT,
  USER,
  consent,
  create,
  createdIds,
  examEntries,
  failure,
  idsOf,
  newPatient,
  notFoundOutcome,
  read,
  search,
  sorted,
  startAccessHub,
  transaction,
  unique,
} from './support.js';

/** The administrator manages accounts and the directory, and reads no clinical data. */
describe.each(backends())('what the administrator reaches on $name', (backend) => {
  let hub: TestHub;
  let admin: Client;
  let gp: Client;
  let patient: Patient;
  let examIds: string[];

  beforeAll(async () => {
    hub = await startAccessHub(backend);
    admin = await hub.clientAs(USER.admin);
    gp = await hub.clientAs(USER.gpTende);
    patient = await create(gp, newPatient(ORG.mspTende, unique('Ferrero')));
    examIds = createdIds(await transaction(gp, examEntries(patient.id!, PRACT.gpTende)));
    await create(gp, consent(patient.id!, 'telesurveillance'));
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('answers the administrator 404 for a patient and their Observations, whoever follows them', async () => {
    for (const id of [patient.id!, DEMO_IDS.patients[0], DEMO_IDS.patients[8]]) {
      expect(await failure(read(admin, 'Patient', id))).toEqual({ status: 404, outcome: notFoundOutcome(`Patient/${id}`) });
    }
    for (const id of examIds) {
      expect(await failure(read(admin, 'Observation', id))).toEqual({ status: 404, outcome: notFoundOutcome(`Observation/${id}`) });
    }
    expect(await failure(admin.vread({ resourceType: 'Patient', id: patient.id!, version: '1' }))).toEqual({
      status: 404,
      outcome: notFoundOutcome(`Patient/${patient.id}/_history/1`),
    });
    expect(await failure(admin.history({ resourceType: 'Patient', id: patient.id! }))).toEqual({ status: 404, outcome: notFoundOutcome(`Patient/${patient.id}`) });
  });

  it('finds no clinical data at all in the administrator’s searches', async () => {
    for (const type of ['Patient', 'Observation', 'CareTeam', 'Consent', 'AuditEvent', 'ServiceRequest', 'Flag']) {
      const bundle = await search(admin, type, { _total: 'accurate' });
      expect({ type, total: bundle.total, entries: bundle.entry ?? [] }).toEqual({ type, total: 0, entries: [] });
    }
    const lastn = (await admin.operation({ name: '$lastn', resourceType: 'Observation', method: 'GET', input: { patient: `Patient/${patient.id}` } })) as unknown as Bundle;
    expect(lastn.entry ?? []).toEqual([]);
    const history = (await admin.history({ resourceType: 'Patient' })) as unknown as Bundle;
    expect(history.entry ?? []).toEqual([]);
    // The GP, for comparison, finds their patient.
    expect(idsOf(await search(gp, 'Patient', { _id: patient.id! }))).toEqual([patient.id]);
  });

  it('lets the administrator read the directory: organizations, practitioners and their roles', async () => {
    const organizations = await search(admin, 'Organization', { _total: 'accurate', _count: '100' });
    expect(idsOf(organizations)).toEqual(sorted(Object.values(ORG)));
    const cardiology = await read<Organization>(admin, 'Organization', ORG.cardiology);
    expect(cardiology.name).toBe('CHU de Nice — Service de cardiologie');
    const practitioners = await search(admin, 'Practitioner', { _total: 'accurate', _count: '100' });
    expect(idsOf(practitioners)).toEqual(sorted(Object.values(PRACT)));
    expect((await read<Practitioner>(admin, 'Practitioner', PRACT.gpTende)).name![0]!.family).toBe('Pastorelli');
    const roles = await search(admin, 'PractitionerRole', { organization: `Organization/${ORG.mspTende}` });
    expect(idsOf(roles)).toEqual([DEMO_IDS.practitionerRoles.gpTende]);
  });

  it('lets the administrator add to the directory, but not write clinical data', async () => {
    const msp = await create<Organization>(admin, {
      resourceType: 'Organization',
      active: true,
      name: 'MSP de Breil-sur-Roya',
      type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/organization-type', code: 'prov' }] }],
    });
    expect((await read<Organization>(gp, 'Organization', msp.id!)).name).toBe('MSP de Breil-sur-Roya');
    const refused = await failure(create(admin, newPatient(ORG.chu, unique('Intrus'))));
    expect(refused.status).toBe(403);
    expect(refused.outcome.issue).toEqual([{ severity: 'error', code: 'forbidden', diagnostics: 'administrators read and write no clinical data' }]);
    expect((await search(gp, 'Patient', { _total: 'accurate', _count: '0' })).total).toBe(5); // the four demo patients of Tende and theirs
  });
});
