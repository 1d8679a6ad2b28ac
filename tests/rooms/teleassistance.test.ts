import { io } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Flag, Patient } from '@medplum/fhirtypes';
import type { JoinResult, PeerSummary } from '../../server/rooms/protocol.js';
import type { QueueEntry } from '../../server/rooms/routes.js';
import { backends, type TestHub } from '../fhir/harness.js';
import { api, create, newPatient, search, startAccessHub } from '../access/support.js';
import { ORG, PRACT, RoomClient, USER, ticket } from './support.js';

const backend = backends()[0]!;

describe('teleassistance: calls, the regulator’s queue and the room', () => {
  let hub: TestHub;
  let patient: Patient;
  const clients: RoomClient[] = [];

  beforeAll(async () => {
    hub = await startAccessHub(backend, { rooms: true });
    // A patient the SAMU correspondent takes care of on the spot.
    patient = await create(await hub.clientAs(USER.samuCorrespondent), newPatient(ORG.samu, 'Randonneur'));
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await hub?.close();
  });

  const call = async (body: unknown) => api<QueueEntry & { error?: { code: string; field?: string } }>(hub, 'POST', '/api/teleassistance/calls', await hub.login(USER.samuCorrespondent), body);

  it('puts an emergency call first in the regulator’s queue and tells the regulators at once', async () => {
    // The regulator's screen is connected (default namespace: organization rooms).
    const regulatorSocket = io(hub.rootUrl, { auth: { token: await hub.login(USER.regulator) }, transports: ['websocket'], forceNew: true, reconnection: false });
    const calls: QueueEntry[] = [];
    regulatorSocket.on('teleassistanceCall', (entry: QueueEntry) => calls.push(entry));
    await new Promise<void>((resolve, reject) => {
      regulatorSocket.once('connect', () => resolve());
      regulatorSocket.once('connect_error', reject);
    });
    try {
      // Consent was collected for the routine call; the emergency goes ahead without it.
      await create(await hub.clientAs(USER.samuCorrespondent), {
        resourceType: 'Consent',
        status: 'active',
        scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'treatment' }] },
        category: [{ coding: [{ system: 'https://hub.example/act', code: 'teleassistance' }] }],
        patient: { reference: `Patient/${patient.id}` },
        policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
      });
      const routine = await call({ patient: `Patient/${patient.id}`, reason: 'Entorse de cheville, avis sur immobilisation' });
      expect(routine.status, JSON.stringify(routine.body)).toBe(201);
      expect(routine.body).toMatchObject({ priority: 'urgent', emergency: false });
      // A second patient, unconscious: no consent can be collected.
      const unconscious = await create(await hub.clientAs(USER.samuCorrespondent), newPatient(ORG.samu, 'Inconscient'));
      const emergency = await call({ patient: `Patient/${unconscious.id}`, reason: 'Douleur thoracique, sus-décalage ST sur l’ECG', emergency: true });
      expect(emergency.status).toBe(201);
      expect(emergency.body).toMatchObject({ priority: 'stat', emergency: true });

      const queue = await api<{ queue: QueueEntry[] }>(hub, 'GET', '/api/teleassistance/queue', await hub.login(USER.regulator));
      expect(queue.status).toBe(200);
      const ours = queue.body.queue.filter((e) => e.patient === `Patient/${patient.id}` || e.patient === `Patient/${unconscious.id}`);
      expect(ours.map((e) => e.serviceRequest)).toEqual([emergency.body.serviceRequest, routine.body.serviceRequest]);
      for (let i = 0; i < 50 && calls.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      expect(calls.map((c) => c.serviceRequest)).toEqual([routine.body.serviceRequest, emergency.body.serviceRequest]);

      // The emergency went ahead without consent: a Flag says so to the care team.
      const flags = await search(await hub.clientAs(USER.samuCorrespondent), 'Flag', { patient: `Patient/${unconscious.id}` });
      expect((flags.entry ?? []).map((e) => (e.resource as Flag).code.coding?.[0]?.code)).toContain('consent-not-collected');
    } finally {
      regulatorSocket.disconnect();
    }
  });

  it('takes a call resent after a lost answer (same requestId) once', async () => {
    const requestId = crypto.randomUUID();
    const body = { patient: `Patient/${patient.id}`, reason: 'Plaie du cuir chevelu', requestId };
    const first = await call(body);
    expect(first.status).toBe(201);
    const again = await call(body);
    expect(again.status).toBe(200);
    expect(again.body.serviceRequest).toBe(first.body.serviceRequest);
    const queue = await api<{ queue: QueueEntry[] }>(hub, 'GET', '/api/teleassistance/queue', await hub.login(USER.regulator));
    expect(queue.body.queue.filter((e) => e.reason === 'Plaie du cuir chevelu')).toHaveLength(1);
    expect((await call({ ...body, requestId: 'x' })).body.error).toMatchObject({ field: 'requestId' });
  });

  it('pushes a call addressed to a named doctor to that doctor, and lists it in their queue', async () => {
    const cardiologist = io(hub.rootUrl, { auth: { token: await hub.login(USER.cardiologist) }, transports: ['websocket'], forceNew: true, reconnection: false });
    const pushed: QueueEntry[] = [];
    cardiologist.on('teleassistanceCall', (entry: QueueEntry) => pushed.push(entry));
    await new Promise<void>((resolve, reject) => {
      cardiologist.once('connect', () => resolve());
      cardiologist.once('connect_error', reject);
    });
    try {
      const named = await call({ patient: `Patient/${patient.id}`, reason: 'Avis cardiologique en direct', performer: `Practitioner/${PRACT.cardiologist}` });
      expect(named.status, JSON.stringify(named.body)).toBe(201);
      for (let i = 0; i < 50 && pushed.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(pushed.map((e) => e.serviceRequest)).toEqual([named.body.serviceRequest]);
      const queue = await api<{ queue: QueueEntry[] }>(hub, 'GET', '/api/teleassistance/queue', await hub.login(USER.cardiologist));
      expect(queue.body.queue.map((e) => e.serviceRequest)).toEqual([named.body.serviceRequest]);
    } finally {
      cardiologist.disconnect();
    }
  });

  it('names the field of a bad call', async () => {
    const bad = await call({ patient: 'Bob', reason: 'x' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ field: 'patient' });
    // A patient outside the correspondent's care: not found.
    const other = await call({ patient: 'Patient/patient-001', reason: 'Malaise' });
    expect(other.status).toBe(404);
  });

  it('lets the regulator lead the room and the correspondent wait to be admitted; others get no ticket', async () => {
    const created = await call({ patient: `Patient/${patient.id}`, reason: 'Détresse respiratoire', emergency: true });
    const sr = created.body.serviceRequest;
    const regulatorTicket = await ticket(hub, await hub.login(USER.regulator), { serviceRequest: sr });
    expect(regulatorTicket.status, JSON.stringify(regulatorTicket.body)).toBe(201);
    expect(regulatorTicket.body).toMatchObject({ role: 'host', kind: 'teleassistance', roomId: `teleassistance:${sr.split('/')[1]}` });
    const correspondentTicket = await ticket(hub, await hub.login(USER.samuCorrespondent), { serviceRequest: sr });
    expect(correspondentTicket.body.role).toBe('guest');
    expect((await ticket(hub, await hub.login(USER.gpTende), { serviceRequest: sr })).status).toBe(404);

    const regulator = await RoomClient.connect(hub, await hub.login(USER.regulator));
    const correspondent = await RoomClient.connect(hub, await hub.login(USER.samuCorrespondent));
    clients.push(regulator, correspondent);
    expect(await correspondent.ok<JoinResult>('join', { roomToken: correspondentTicket.body.roomToken })).toMatchObject({ state: 'waiting', kind: 'teleassistance' });
    await regulator.ok('join', { roomToken: regulatorTicket.body.roomToken });
    const waiting = (await regulator.next<{ waiting: PeerSummary[] }>('waitingRoom', (u) => u.waiting.length === 1)).waiting[0]!;
    await regulator.ok('admit', { peerId: waiting.peerId });
    await correspondent.next('admitted');
    // The correspondent streams vitals over a DataChannel: a send transport with SCTP.
    const send = await correspondent.ok<{ id: string; sctpParameters?: unknown }>('createTransport', { direction: 'send', sctp: true });
    expect(send.sctpParameters).toBeDefined();
    const { dataProducerId } = await correspondent.ok<{ dataProducerId: string }>('produceData', { transportId: send.id, sctpStreamParameters: { streamId: 0, ordered: true } });
    const announced = await regulator.next<{ dataProducerId: string; source: string }>('newDataProducer');
    expect(announced).toMatchObject({ dataProducerId, source: 'vitals' });
    await regulator.ok('createTransport', { direction: 'recv', sctp: true });
    const dc = await regulator.ok<{ dataProducerId: string; label: string }>('consumeData', { dataProducerId });
    expect(dc).toMatchObject({ dataProducerId, label: 'vitals' });

    const ended = await regulator.ok<{ encounter: string }>('end', { report: 'Thrombolyse préhospitalière décidée, transfert héliporté vers le CHU.' });
    expect(ended.encounter).toMatch(/^Encounter\//);
    const status = (await search(await hub.clientAs(USER.samuCorrespondent), 'ServiceRequest', { _id: sr.split('/')[1]! })).entry?.[0]?.resource as { status?: string };
    expect(status.status).toBe('completed');
  });
});
