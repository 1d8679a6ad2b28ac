import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'fhir-kit-client';
import type { AuditEvent, Bundle, Observation, Patient } from '@medplum/fhirtypes';
import { SYSTEM } from '../../fhir/access.js';
import { backends, type TestHub } from '../fhir/harness.js';
import {
  ORG,
  PRACT,
  SPO2,
  USER,
  api,
  consent,
  create,
  createdIds,
  examEntries,
  expertiseRequest,
  expertiseTask,
  failure,
  idsOf,
  newPatient,
  read,
  search,
  sorted,
  startAccessHub,
  transaction,
  unique,
  update,
  vital,
} from './support.js';

const DCM = 'http://dicom.nema.org/resources/ontology/DCM';

/** The facts of an AuditEvent a reviewer looks at. */
interface Line {
  type: string;
  subtype: string;
  action: string;
  agent: string;
  outcome: string;
  /** Entities named (what), sorted. */
  what: string[];
  /** The query of a search or operation, decoded. */
  query?: string;
}

function line(e: AuditEvent): Line {
  const query = e.entity?.find((x) => x.query)?.query;
  return {
    type: e.type.code!,
    subtype: e.subtype![0]!.code!,
    action: e.action!,
    agent: e.agent[0]!.who?.reference ?? `display:${e.agent[0]!.who?.display}`,
    outcome: e.outcome!,
    what: sorted((e.entity ?? []).filter((x) => x.what?.reference).map((x) => x.what!.reference!)),
    ...(query ? { query: Buffer.from(query, 'base64').toString('utf8') } : {}),
  };
}

const rest = (subtype: string, action: string, agent: string, outcome: string, what: string[], query?: string): Line => ({
  type: 'rest',
  subtype,
  action,
  agent: `Practitioner/${agent}`,
  outcome,
  what: sorted(what),
  ...(query !== undefined ? { query } : {}),
});

const events = (bundle: Bundle) => (bundle.entry ?? []).map((e) => e.resource as AuditEvent);
const pause = () => new Promise((resolve) => setTimeout(resolve, 3));

/**
 * One day of activity in a fresh hub, and the exact audit trail it leaves: one AuditEvent per
 * login (DICOM 110114) and per REST interaction (read, vread, history, search, operation, create,
 * update, patch, delete, and one per transaction bundle), denied accesses included.
 */
describe.each(backends())('the audit trail of a day on $name', (backend) => {
  let hub: TestHub;

  beforeAll(async () => {
    // The hub logs its default user (the administrator) in while it starts: that login is audited
    // too, by the hub's own sink (server/auth/fhir-audit-sink.ts).
    hub = await startAccessHub(backend, { defaultUser: USER.admin });
  });
  afterAll(async () => {
    await hub?.close();
  });

  const clientWith = (token: string) => new Client({ baseUrl: hub.baseUrl, customHeaders: { Authorization: `Bearer ${token}` } });

  it('records exactly the logins and accesses of the day, found by patient ("who accessed my record") and by professional', async () => {
    const GP = PRACT.gpTende;
    const CARDIO = PRACT.cardiologist;

    // 08:00 — the GP mistypes their password, then logs in.
    expect((await api(hub, 'POST', '/api/auth/login', undefined, { username: USER.gpTende, password: 'pas-le-bon' })).status).toBe(401);
    await pause();
    const gp = clientWith(await hub.login(USER.gpTende));
    await pause();
    // Registers a patient and uploads the e-valise exam.
    const patient = await create(gp, newPatient(ORG.mspTende, unique('Baudoin'), 'Henri'));
    const P = `Patient/${patient.id}`;
    await pause();
    const obs = createdIds(await transaction(gp, examEntries(patient.id!, GP))).map((id) => `Observation/${id}`);
    await pause();
    // Looks at the readings, opens one.
    expect(idsOf(await search(gp, 'Observation', { subject: P }))).toHaveLength(3);
    await pause();
    await read(gp, 'Observation', obs[0]!.split('/')[1]!);
    await pause();
    // Checks its first version and its history, corrects two readings, enters one by mistake and deletes it.
    const [o1, o2, o3] = obs.map((r) => r.split('/')[1]!) as [string, string, string];
    await gp.vread({ resourceType: 'Observation', id: o1, version: '1' });
    await pause();
    await gp.history({ resourceType: 'Observation', id: o1 });
    await pause();
    await update(gp, { ...(await search(gp, 'Observation', { _id: o2 })).entry![0]!.resource!, status: 'amended' } as Observation);
    await pause();
    await gp.patch({ resourceType: 'Observation', id: o3, jsonPatch: [{ op: 'add', path: '/note', value: [{ text: 'Patient agité pendant la mesure' }] }] });
    await pause();
    const mistake = await create(gp, vital(patient.id!, GP, SPO2, '2026-03-01T08:00:00Z'));
    await pause();
    await gp.delete({ resourceType: 'Observation', id: mistake.id! });
    await pause();
    // The cardiologist logs in and tries to open that reading: refused.
    const cardio = clientWith(await hub.login(USER.cardiologist));
    await pause();
    expect((await failure(cardio.read({ resourceType: 'Observation', id: obs[0]!.split('/')[1]! }))).status).toBe(404);
    await pause();
    // The patient consents; the GP asks the cardiology pool for an opinion.
    const agreed = await create(gp, consent(patient.id!, 'teleexpertise'));
    await pause();
    const [requestId, taskId] = createdIds(
      await transaction(gp, [
        { fullUrl: 'urn:uuid:0a6b0f1e-3c1f-4b8e-9d7e-2f1a3b4c5d01', resource: expertiseRequest(patient.id!, GP, ORG.cardiology), request: { method: 'POST', url: 'ServiceRequest' } },
        { fullUrl: 'urn:uuid:0a6b0f1e-3c1f-4b8e-9d7e-2f1a3b4c5d02', resource: expertiseTask(patient.id!, GP, ORG.cardiology, 'urn:uuid:0a6b0f1e-3c1f-4b8e-9d7e-2f1a3b4c5d01'), request: { method: 'POST', url: 'Task' } },
      ]),
    );
    await pause();
    // The cardiologist now opens the patient and the latest readings.
    await read<Patient>(cardio, 'Patient', patient.id!);
    await pause();
    await cardio.operation({ name: '$lastn', resourceType: 'Observation', method: 'GET', input: { patient: P } });
    await pause();

    const day = [
      rest('create', 'C', GP, '0', [P]),
      rest('transaction', 'E', GP, '0', [P, ...obs]),
      rest('search-type', 'E', GP, '0', [P, ...obs], `Observation?${new URLSearchParams({ subject: P })}`),
      rest('read', 'R', GP, '0', [P, obs[0]!]),
      rest('vread', 'R', GP, '0', [P, obs[0]!]),
      rest('history-instance', 'R', GP, '0', [P, obs[0]!]),
      rest('search-type', 'E', GP, '0', [P, obs[1]!], `Observation?${new URLSearchParams({ _id: obs[1]!.split('/')[1]! })}`),
      rest('update', 'U', GP, '0', [P, obs[1]!]),
      rest('patch', 'U', GP, '0', [P, obs[2]!]),
      rest('create', 'C', GP, '0', [P, `Observation/${mistake.id}`]),
      rest('delete', 'D', GP, '0', [P, `Observation/${mistake.id}`]),
      rest('create', 'C', GP, '0', [P, `Consent/${agreed.id}`]),
      rest('transaction', 'E', GP, '0', [P, `ServiceRequest/${requestId}`, `Task/${taskId}`]),
      rest('read', 'R', CARDIO, '0', [P]),
      rest('operation', 'E', CARDIO, '0', [P, ...obs], `Observation/$lastn?${new URLSearchParams({ patient: P })}`),
    ];

    // "Who accessed my record": every access to the patient's data, by anyone.
    const byPatientQuery = { patient: P, _sort: 'date', _count: '100', _total: 'accurate' };
    const byPatient = await search(gp, 'AuditEvent', byPatientQuery);
    await pause();
    expect(byPatient.total).toBe(day.length);
    expect(events(byPatient).map(line)).toEqual(day);
    const q1 = rest('search-type', 'E', GP, '0', [P, ...events(byPatient).map((e) => `AuditEvent/${e.id}`)], `AuditEvent?${new URLSearchParams(byPatientQuery)}`);

    // What the GP did: their login, their accesses, and the audit query just made.
    const gpQuery = { agent: `Practitioner/${GP}`, _sort: 'date', _count: '100', _total: 'accurate' };
    const byGp = await search(gp, 'AuditEvent', gpQuery);
    await pause();
    const gpLogin: Line = { type: '110114', subtype: '110122', action: 'E', agent: `Practitioner/${GP}`, outcome: '0', what: [] };
    const gpDay = [gpLogin, ...day.filter((l) => l.agent === `Practitioner/${GP}`), q1];
    expect(byGp.total).toBe(gpDay.length);
    expect(events(byGp).map(line)).toEqual(gpDay);
    // An audit query names the AuditEvents it returned, and the patients they are about.
    const q2 = rest('search-type', 'E', GP, '0', [P, ...events(byGp).map((e) => `AuditEvent/${e.id}`)], `AuditEvent?${new URLSearchParams(gpQuery)}`);

    // What the cardiologist did, refusal included (outcome 4).
    const cardioQuery = { agent: `Practitioner/${CARDIO}`, _sort: 'date', _count: '100', _total: 'accurate' };
    const byCardio = await search(cardio, 'AuditEvent', cardioQuery);
    await pause();
    const cardioDay = [
      { type: '110114', subtype: '110122', action: 'E', agent: `Practitioner/${CARDIO}`, outcome: '0', what: [] },
      rest('read', 'R', CARDIO, '4', [obs[0]!]),
      ...day.filter((l) => l.agent === `Practitioner/${CARDIO}`),
    ];
    expect(byCardio.total).toBe(cardioDay.length);
    expect(events(byCardio).map(line)).toEqual(cardioDay);
    const q3 = rest('search-type', 'E', CARDIO, '0', [P, ...events(byCardio).map((e) => `AuditEvent/${e.id}`)], `AuditEvent?${new URLSearchParams(cardioQuery)}`);

    // The audit queries are accesses to the patient's data too: asked again, the record lists them.
    const again = await search(gp, 'AuditEvent', byPatientQuery);
    expect(again.total).toBe(day.length + 3);
    expect(events(again).map(line)).toEqual([...day, q1, q2, q3]);

    // Logins, failed ones included, are AuditEvents of type 110114 (no professional can read the failed one through the API).
    const logins = await hub.store.repo.search(SYSTEM, 'AuditEvent', [
      ['type', `${DCM}|110114`],
      ['_sort', 'date'],
      ['_count', '100'],
    ]);
    expect(
      events(logins).map((e) => ({ subtype: e.subtype![0]!.code, outcome: e.outcome, agent: line(e).agent, why: e.outcomeDesc })),
    ).toEqual([
      { subtype: '110122', outcome: '0', agent: `Practitioner/${PRACT.admin}`, why: undefined },
      { subtype: '110122', outcome: '4', agent: `display:${USER.gpTende}`, why: 'bad-password' },
      { subtype: '110122', outcome: '0', agent: `Practitioner/${GP}`, why: undefined },
      { subtype: '110122', outcome: '0', agent: `Practitioner/${CARDIO}`, why: undefined },
    ]);
  });

  it('records which patient a refused read of a Patient asked for', async () => {
    const gp = clientWith(await hub.login(USER.gpTende));
    const cardio = clientWith(await hub.login(USER.cardiologist));
    const patient = await create(gp, newPatient(ORG.mspTende, unique('Soulé'), 'Raymond'));
    expect((await failure(cardio.read({ resourceType: 'Patient', id: patient.id! }))).status).toBe(404);
    const refused = await search(cardio, 'AuditEvent', { agent: `Practitioner/${PRACT.cardiologist}`, outcome: '4', subtype: 'http://hl7.org/fhir/restful-interaction|read', _sort: '-date', _count: '1' });
    expect(refused.entry).toHaveLength(1);
    // As a refused read of an Observation names the Observation, a refused read of a Patient must name the Patient.
    expect(line(events(refused)[0]!).what).toEqual([`Patient/${patient.id}`]);
  });
});
