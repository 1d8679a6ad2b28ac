import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { Appointment, CarePlan, Flag, Resource, ServiceRequest } from '@medplum/fhirtypes';
import { ACT_SYSTEM, type TelemedicineAct } from '../../fhir/consent.js';
import { backends, type TestHub } from '../fhir/harness.js';
import {
  ORG,
  PRACT,
  USER,
  act,
  consent,
  create,
  expertiseRequest,
  failure,
  httpStatus,
  idsOf,
  newPatient,
  ref,
  search,
  startAccessHub,
  unique,
} from './support.js';

const DAY = 24 * 3600_000;
const at = (offsetMs: number) => new Date(Date.now() + offsetMs).toISOString();

function teleconsultation(patientId: string): Appointment {
  return {
    resourceType: 'Appointment',
    status: 'booked',
    serviceType: [act('teleconsultation')],
    description: 'Téléconsultation gériatrique depuis l’EHPAD',
    start: at(DAY),
    end: at(DAY + 30 * 60_000),
    participant: [
      { actor: ref('Patient', patientId), status: 'accepted' },
      { actor: ref('Practitioner', PRACT.ehpadNurse), status: 'accepted' },
      { actor: ref('Practitioner', PRACT.geriatrician), status: 'needs-action' },
    ],
  };
}

function telesurveillance(patientId: string): CarePlan {
  return {
    resourceType: 'CarePlan',
    status: 'active',
    intent: 'plan',
    category: [act('telesurveillance')],
    title: 'Télésurveillance de l’insuffisance cardiaque',
    subject: ref('Patient', patientId),
    author: ref('Practitioner', PRACT.gpTende),
    period: { start: at(0) },
  };
}

function teleassistance(patientId: string, requester: string, priority: ServiceRequest['priority']): ServiceRequest {
  return {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    priority,
    category: [act('teleassistance')],
    code: { text: 'Assistance d’un urgentiste pendant la prise en charge' },
    subject: ref('Patient', patientId),
    requester: ref('Practitioner', requester),
    performer: [ref('Organization', ORG.samu)],
    authoredOn: at(0),
  };
}

interface ActCase {
  act: TelemedicineAct;
  /** Who starts the act (and registered the patient, and collects the consent). */
  user: 'gpTende' | 'ehpadNurse';
  organizationId: string;
  start: (patientId: string) => Resource;
  path: string;
}

const CASES: ActCase[] = [
  { act: 'teleexpertise', user: 'gpTende', organizationId: ORG.mspTende, start: (p) => expertiseRequest(p, PRACT.gpTende, ORG.cardiology), path: 'ServiceRequest.category' },
  { act: 'teleconsultation', user: 'ehpadNurse', organizationId: ORG.ehpad, start: teleconsultation, path: 'Appointment.serviceType' },
  { act: 'telesurveillance', user: 'gpTende', organizationId: ORG.mspTende, start: telesurveillance, path: 'CarePlan.category' },
  { act: 'teleassistance', user: 'gpTende', organizationId: ORG.mspTende, start: (p) => teleassistance(p, PRACT.gpTende, 'routine'), path: 'ServiceRequest.category' },
];

/** The consent of the patient to each telemedicine act (décret 2010-1229) is checked before the act starts. */
describe.each(backends())('consent to telemedicine acts on $name', (backend) => {
  let hub: TestHub;
  const clients = {} as Record<ActCase['user'] | 'gpVesubie', Client>;

  beforeAll(async () => {
    hub = await startAccessHub(backend);
    clients.gpTende = await hub.clientAs(USER.gpTende);
    clients.ehpadNurse = await hub.clientAs(USER.ehpadNurse);
    clients.gpVesubie = await hub.clientAs(USER.gpVesubie);
  });
  afterAll(async () => {
    await hub?.close();
  });

  async function refusal(client: Client, resource: Resource, patientId: string, c: ActCase): Promise<void> {
    const refused = await failure(create(client, resource));
    expect(refused.status).toBe(422);
    expect(refused.outcome.resourceType).toBe('OperationOutcome');
    expect(refused.outcome.issue).toHaveLength(1);
    const issue = refused.outcome.issue![0]!;
    expect(issue).toMatchObject({ severity: 'error', code: 'business-rule', expression: [c.path] });
    expect(issue.diagnostics).toContain(`Patient/${patientId}`);
    expect(issue.diagnostics).toContain(c.act);
    expect(issue.diagnostics).toContain(`${ACT_SYSTEM}|${c.act}`);
  }

  for (const c of CASES) {
    it(`refuses to start a ${c.act} without an active Consent of the patient, with a 422 naming the act and the patient, and accepts it once the patient has consented`, async () => {
      const client = clients[c.user];
      const patient = await create(client, newPatient(c.organizationId, unique('Cazaux')));
      const pid = patient.id!;
      const type = c.start(pid).resourceType;
      const stored = async () => (await search(client, type, { patient: `Patient/${pid}`, _total: 'accurate' })).total;

      await refusal(client, c.start(pid), pid, c);
      // Consents that do not count: to another act, inactive, ended, not yet begun, or rejected.
      const other = CASES.find((o) => o.act !== c.act)!.act;
      await create(client, consent(pid, other));
      await refusal(client, c.start(pid), pid, c);
      await create(client, consent(pid, c.act, { status: 'inactive' }));
      await refusal(client, c.start(pid), pid, c);
      await create(client, consent(pid, c.act, { period: { start: at(-30 * DAY), end: at(-DAY) } }));
      await refusal(client, c.start(pid), pid, c);
      await create(client, consent(pid, c.act, { period: { start: at(DAY), end: at(30 * DAY) } }));
      await refusal(client, c.start(pid), pid, c);
      await create(client, consent(pid, c.act, { status: 'rejected' }));
      await refusal(client, c.start(pid), pid, c);
      expect(await stored()).toBe(0);

      // An active Consent whose period covers today.
      await create(client, consent(pid, c.act, { period: { start: at(-DAY), end: at(365 * DAY) } }));
      const started = await client.create({ resourceType: type, body: c.start(pid) as never });
      expect(httpStatus(started)).toBe(201);
      expect(await stored()).toBe(1);
      // No emergency Flag for an act started with consent.
      expect((await search(client, 'Flag', { patient: `Patient/${pid}` })).entry ?? []).toEqual([]);
    });
  }

  it('refuses to turn an existing request into a tele-expertise without consent, by update or by patch', async () => {
    const gp = clients.gpTende;
    const patient = await create(gp, newPatient(ORG.mspTende, unique('Cassini'), 'Élodie'));
    const pid = patient.id!;
    // A request that starts no act (no act category) needs no consent.
    const { category: _category, ...plain } = expertiseRequest(pid, PRACT.gpTende, ORG.cardiology);
    const draft = await create<ServiceRequest>(gp, plain);
    const teleexpertise = CASES[0]!;
    // Adding the act afterwards starts it: the consent rule applies as on creation.
    await refusalOf(gp.update({ resourceType: 'ServiceRequest', id: draft.id!, body: { ...draft, category: [act('teleexpertise')] } as never }), pid, teleexpertise);
    await refusalOf(
      gp.patch({ resourceType: 'ServiceRequest', id: draft.id!, jsonPatch: [{ op: 'add', path: '/category', value: [act('teleexpertise')] }] }),
      pid,
      teleexpertise,
    );
    const now = (await search(gp, 'ServiceRequest', { _id: draft.id! })).entry![0]!.resource as ServiceRequest;
    expect(now.category).toBeUndefined();
    expect(now.meta!.versionId).toBe('1');
  });

  async function refusalOf(request: Promise<unknown>, patientId: string, c: ActCase): Promise<void> {
    const refused = await failure(request);
    expect({ status: refused.status, code: refused.outcome.issue?.[0]?.code }).toEqual({ status: 422, code: 'business-rule' });
    expect(refused.outcome.issue![0]!.diagnostics).toContain(`Patient/${patientId}`);
    expect(refused.outcome.issue![0]!.diagnostics).toContain(c.act);
  }

  it('lets an emergency teleassistance (priority stat) proceed without consent and flags the patient', async () => {
    const gp = clients.gpVesubie;
    const patient = await create(gp, newPatient(ORG.mspVesubie, unique('Raiberti'), 'Joseph'));
    const pid = patient.id!;
    // Urgent is not an emergency: consent is still required.
    await refusal(gp, teleassistance(pid, PRACT.gpVesubie, 'urgent'), pid, CASES[3]!);

    const request = await create(gp, teleassistance(pid, PRACT.gpVesubie, 'stat'));
    expect(request.priority).toBe('stat');
    expect(idsOf(await search(gp, 'ServiceRequest', { patient: `Patient/${pid}` }))).toEqual([request.id]);
    const flags = await search(gp, 'Flag', { patient: `Patient/${pid}`, _total: 'accurate' });
    expect(flags.total).toBe(1);
    const flag = flags.entry![0]!.resource as Flag;
    expect(flag.status).toBe('active');
    expect(flag.subject).toEqual(ref('Patient', pid));
    expect(flag.code.coding).toEqual([{ system: ACT_SYSTEM, code: 'consent-not-collected', display: 'Consentement non recueilli (urgence)' }]);
    expect(flag.code.text).toContain('teleassistance');
    expect(Date.parse(flag.period!.start!)).toBeLessThanOrEqual(Date.now());
  });
});
