import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { AuditEvent, Flag, Patient } from '@medplum/fhirtypes';
import { backends, type TestHub } from '../fhir/harness.js';
import {
  ORG,
  PRACT,
  USER,
  api,
  create,
  createdIds,
  examEntries,
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
} from './support.js';

const BTG = { system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'BTG' };
const REASON = 'Appel au 15 : douleur thoracique, patient inconscient chez lui à Tende';

interface Grant {
  grantId: string;
  expiresAt: string;
}
interface ApiErrorBody {
  error: { code: string; message: string; field?: string };
}

const isBtg = (codings: { system?: string; code?: string }[] | undefined) => (codings ?? []).some((c) => c.system === BTG.system && c.code === BTG.code);

/**
 * Break-the-glass: the SAMU regulator opens time-limited emergency access to a patient they do not
 * care for, with a stated reason; the access is audited and flagged on the patient for the care team.
 */
describe.each(backends())('emergency access by the regulator on $name', (backend) => {
  let hub: TestHub;
  let gp: Client;
  let regulator: Client;
  let regulatorToken: string;
  let patient: Patient;
  let examIds: string[];

  beforeAll(async () => {
    hub = await startAccessHub(backend);
    gp = await hub.clientAs(USER.gpTende);
    regulatorToken = await hub.login(USER.regulator);
    regulator = await hub.clientAs(USER.regulator);
    patient = await create(gp, newPatient(ORG.mspTende, unique('Giordano'), 'Paul'));
    examIds = createdIds(await transaction(gp, examEntries(patient.id!, PRACT.gpTende)));
  });
  afterAll(async () => {
    await hub?.close();
  });

  const btgFlags = async () => ((await search(gp, 'Flag', { patient: `Patient/${patient.id}` })).entry ?? []).map((e) => e.resource as Flag).filter((f) => isBtg(f.code.coding));

  it('refuses emergency access to anyone but a regulator (403) and a request without a reason (400 naming "reason"), opening nothing', async () => {
    for (const username of [USER.gpVesubie, USER.samuCorrespondent, USER.cardiologist, USER.admin]) {
      const token = await hub.login(username);
      const refused = await api<ApiErrorBody>(hub, 'POST', '/api/emergency-access', token, { patientId: patient.id, reason: REASON });
      expect({ username, status: refused.status, code: refused.body?.error?.code }).toEqual({ username, status: 403, code: 'forbidden' });
    }
    const noReason = await api<ApiErrorBody>(hub, 'POST', '/api/emergency-access', regulatorToken, { patientId: patient.id });
    expect(noReason.status).toBe(400);
    expect(noReason.body.error.field).toBe('reason');
    expect(noReason.body.error.message).toContain('reason');
    const noToken = await api(hub, 'POST', '/api/emergency-access', undefined, { patientId: patient.id, reason: REASON });
    expect(noToken.status).toBe(401);

    expect(await failure(read(regulator, 'Patient', patient.id!))).toEqual({ status: 404, outcome: notFoundOutcome(`Patient/${patient.id}`) });
    expect(await btgFlags()).toEqual([]);
  });

  it('opens the record to the regulator for the time asked, flags it for the care team and audits it as break-the-glass', async () => {
    const before = Date.now();
    const opened = await api<Grant>(hub, 'POST', '/api/emergency-access', regulatorToken, { patientId: patient.id, reason: REASON, minutes: 30 });
    expect(opened.status).toBe(201);
    expect(Object.keys(opened.body).sort()).toEqual(['expiresAt', 'grantId']);
    expect(opened.body.grantId).toMatch(/^[0-9a-f-]{36}$/);
    const expires = Date.parse(opened.body.expiresAt);
    expect(expires).toBeGreaterThanOrEqual(before + 30 * 60_000 - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 30 * 60_000 + 1000);

    // The regulator now reads the patient and the exam.
    expect((await read<Patient>(regulator, 'Patient', patient.id!)).id).toBe(patient.id);
    const exam = await search(regulator, 'Observation', { subject: `Patient/${patient.id}`, _total: 'accurate' });
    expect(exam.total).toBe(examIds.length);
    expect(idsOf(exam)).toEqual(sorted(examIds));

    // The care team sees a break-the-glass Flag on the patient.
    const flags = await btgFlags();
    expect(flags).toHaveLength(1);
    expect(flags[0]).toMatchObject({
      status: 'active',
      subject: ref('Patient', patient.id!),
      author: ref('Practitioner', PRACT.regulator),
      period: { end: new Date(expires).toISOString() },
    });
    expect(flags[0]!.code.text).toContain(REASON);

    // The audit trail records the opening and the reads under emergency (purpose BTG).
    const audit = await search(gp, 'AuditEvent', { patient: `Patient/${patient.id}`, agent: `Practitioner/${PRACT.regulator}`, _sort: 'date', _count: '100' });
    const events = (audit.entry ?? []).map((e) => e.resource as AuditEvent);
    const summary = events.map((e) => ({ subtype: e.subtype?.[0]?.code, outcome: e.outcome, btg: isBtg(e.purposeOfEvent?.[0]?.coding) }));
    expect(summary).toEqual([
      { subtype: 'read', outcome: '4', btg: false }, // refused before emergency access: attempts are traced too
      { subtype: 'operation', outcome: '0', btg: true }, // break-the-glass itself
      { subtype: 'read', outcome: '0', btg: true },
      { subtype: 'search-type', outcome: '0', btg: true },
    ]);
    expect(events[1]!.outcomeDesc).toContain(REASON);
  });

  it('closes the record again to the regulator once the access has expired', async () => {
    // Time passes: the grant's expiry is moved to the past, as the clock would.
    const moved = await hub.store.db.query(`UPDATE access_grant SET expires_at = now() - interval '1 second' WHERE patient_id = $1 RETURNING id`, [patient.id]);
    expect(moved).toHaveLength(1);
    expect(await failure(read(regulator, 'Patient', patient.id!))).toEqual({ status: 404, outcome: notFoundOutcome(`Patient/${patient.id}`) });
    const exam = await search(regulator, 'Observation', { subject: `Patient/${patient.id}`, _total: 'accurate' });
    expect(exam.total).toBe(0);
  });

  it('answers 404 naming "patientId" for a patient that does not exist', async () => {
    const missing = await api<ApiErrorBody>(hub, 'POST', '/api/emergency-access', regulatorToken, { patientId: 'patient-inconnu', reason: REASON });
    expect(missing.status).toBe(404);
    expect(missing.body.error.field).toBe('patientId');
  });
});
