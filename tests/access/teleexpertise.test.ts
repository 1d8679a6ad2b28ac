import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { Bundle, DiagnosticReport, Observation, Patient, ServiceRequest, Task } from '@medplum/fhirtypes';
import { backends, type TestHub } from '../fhir/harness.js';
import {
  ORG,
  PRACT,
  SPO2,
  USER,
  consent,
  create,
  createdIds,
  examEntries,
  expertiseRequest,
  expertiseTask,
  failure,
  idsOf,
  newPatient,
  notFoundOutcome,
  read,
  ref,
  search,
  sorted,
  startAccessHub,
  transaction,
  unique,
  update,
  vital,
} from './support.js';

/**
 * Tele-expertise opens the patient's file to the specialty pool it is addressed to, for as long as
 * it is open; what the specialist wrote stays readable to them afterwards.
 */
describe.each(backends())('access through a tele-expertise request on $name', (backend) => {
  let hub: TestHub;
  let gp: Client;
  let cardiologist: Client;
  let pulmonologist: Client;
  let patient: Patient;
  let examIds: string[];
  let request: ServiceRequest;
  let task: Task;
  let report: DiagnosticReport;

  beforeAll(async () => {
    hub = await startAccessHub(backend);
    gp = await hub.clientAs(USER.gpTende);
    cardiologist = await hub.clientAs(USER.cardiologist);
    pulmonologist = await hub.clientAs(USER.pulmonologist);
    patient = await create(gp, newPatient(ORG.mspTende, unique('Lanteri'), 'Marcel'));
    examIds = createdIds(await transaction(gp, examEntries(patient.id!, PRACT.gpTende)));
  });
  afterAll(async () => {
    await hub?.close();
  });

  async function cannotReach(client: Client): Promise<void> {
    expect(await failure(read(client, 'Patient', patient.id!))).toEqual({ status: 404, outcome: notFoundOutcome(`Patient/${patient.id}`) });
    for (const id of examIds) {
      expect(await failure(read(client, 'Observation', id))).toEqual({ status: 404, outcome: notFoundOutcome(`Observation/${id}`) });
    }
    const found = await search(client, 'Observation', { subject: `Patient/${patient.id}`, _total: 'accurate' });
    expect(found.total).toBe(0);
    expect(found.entry ?? []).toEqual([]);
  }

  it('keeps the patient hidden from the cardiologist before any request, even once the patient has consented', async () => {
    await cannotReach(cardiologist);
    await create(gp, consent(patient.id!, 'teleexpertise', { organizationId: ORG.mspTende }));
    await cannotReach(cardiologist);
  });

  it('lets the cardiologist read the patient and the exam once a request and its Task are addressed to the cardiology pool', async () => {
    const response = await transaction(gp, [
      { fullUrl: 'urn:uuid:5b0c1f5e-7a53-4c1e-9f57-0d2f6f6c1a01', resource: expertiseRequest(patient.id!, PRACT.gpTende, ORG.cardiology, { supportingInfo: examIds.map((id) => ref('Observation', id)) }), request: { method: 'POST', url: 'ServiceRequest' } },
      { fullUrl: 'urn:uuid:5b0c1f5e-7a53-4c1e-9f57-0d2f6f6c1a02', resource: expertiseTask(patient.id!, PRACT.gpTende, ORG.cardiology, 'urn:uuid:5b0c1f5e-7a53-4c1e-9f57-0d2f6f6c1a01'), request: { method: 'POST', url: 'Task' } },
    ]);
    const [requestId, taskId] = createdIds(response);
    request = await read<ServiceRequest>(gp, 'ServiceRequest', requestId!);
    task = await read<Task>(gp, 'Task', taskId!);
    expect(task.focus).toEqual(ref('ServiceRequest', requestId!));

    // The request is on the cardiology pool's worklist.
    const worklist = await search(cardiologist, 'Task', { owner: `Organization/${ORG.cardiology}`, status: 'requested' });
    expect(idsOf(worklist)).toEqual([task.id]);
    expect((await read<Patient>(cardiologist, 'Patient', patient.id!)).id).toBe(patient.id);
    const exam = await search(cardiologist, 'Observation', { subject: `Patient/${patient.id}`, _total: 'accurate' });
    expect(exam.total).toBe(examIds.length);
    expect(idsOf(exam)).toEqual(sorted(examIds));
    for (const id of examIds) expect((await read<Observation>(cardiologist, 'Observation', id)).id).toBe(id);
    const latest = (await cardiologist.operation({ name: '$lastn', resourceType: 'Observation', method: 'GET', input: { patient: `Patient/${patient.id}` } })) as unknown as Bundle;
    expect(idsOf(latest)).toEqual(sorted(examIds));
    // Only the pool it is addressed to: the pulmonologist still cannot.
    await cannotReach(pulmonologist);
  });

  it('lets the cardiologist write the opinion and complete the Task while the request is open', async () => {
    report = await create(cardiologist, {
      resourceType: 'DiagnosticReport',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '11524-6', display: 'EKG study' }] },
      subject: ref('Patient', patient.id!),
      basedOn: [ref('ServiceRequest', request.id!)],
      performer: [ref('Practitioner', PRACT.cardiologist)],
      result: examIds.map((id) => ref('Observation', id)),
      issued: new Date().toISOString(),
      conclusion: 'Rythme sinusal régulier, pas de trouble de conduction. Pas d’indication à une consultation urgente.',
    });
    task = await update(cardiologist, {
      ...task,
      status: 'completed',
      owner: ref('Practitioner', PRACT.cardiologist),
      output: [{ type: { text: 'Avis' }, valueReference: ref('DiagnosticReport', report.id!) }],
    });
    expect(task.status).toBe('completed');
    // The GP reads the opinion in the patient's record.
    expect((await read<DiagnosticReport>(gp, 'DiagnosticReport', report.id!)).conclusion).toBe(report.conclusion);
  });

  it('closes the file to the cardiologist once the Task and the request are completed, but leaves them the report they wrote', async () => {
    request = await update(gp, { ...request, status: 'completed' });
    expect(request.status).toBe('completed');
    await cannotReach(cardiologist);
    // Nothing more can be added to the record either.
    expect(await failure(create(cardiologist, vital(patient.id!, PRACT.cardiologist, SPO2)))).toEqual({
      status: 404,
      outcome: notFoundOutcome(`Patient/${patient.id}`),
    });
    // What they wrote stays readable to them.
    expect(await read<DiagnosticReport>(cardiologist, 'DiagnosticReport', report.id!)).toEqual(report);
    const reports = await search(cardiologist, 'DiagnosticReport', { subject: `Patient/${patient.id}`, _total: 'accurate' });
    expect(reports.total).toBe(1);
    expect(idsOf(reports)).toEqual([report.id]);
    // The GP keeps everything.
    expect((await read<Patient>(gp, 'Patient', patient.id!)).id).toBe(patient.id);
    expect((await search(gp, 'Observation', { subject: `Patient/${patient.id}`, _total: 'accurate' })).total).toBe(examIds.length);
  });
});
