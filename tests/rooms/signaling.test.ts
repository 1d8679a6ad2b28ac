import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent, Bundle, DocumentReference, Encounter, Appointment, Consent } from '@medplum/fhirtypes';
import type { JoinResult, PeerSummary, TransportInfo, ConsumerInfo } from '../../server/rooms/protocol.js';
import { backends, type TestHub } from '../fhir/harness.js';
import { CLIENT_DTLS_PARAMETERS, opusRtpParameters } from '../sfu/support.js';
import { read, search, startAccessHub, update } from '../access/support.js';
import { RoomClient, USER, bookConsultation, ticket } from './support.js';

const backend = backends()[0]!;

describe('teleconsultation rooms (socket.io /rooms)', () => {
  let hub: TestHub;
  const clients: RoomClient[] = [];
  const connect = async (username: string) => {
    const client = await RoomClient.connect(hub, await hub.login(username));
    clients.push(client);
    return client;
  };
  const ticketFor = async (username: string, appointmentId: string) => {
    const response = await ticket(hub, await hub.login(username), { appointment: `Appointment/${appointmentId}` });
    expect(response.status, JSON.stringify(response.body)).toBe(201);
    return response.body;
  };

  beforeAll(async () => {
    hub = await startAccessHub(backend, { rooms: { graceMs: 800 } });
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await hub?.close();
  });

  it('issues a host ticket to the doctor leading the consultation and a guest ticket to the nursing home, and none to others', async () => {
    const { appointment } = await bookConsultation(hub);
    const doctor = await ticketFor(USER.geriatrician, appointment.id!);
    expect(doctor).toMatchObject({ role: 'host', kind: 'teleconsultation', roomId: `appointment:${appointment.id}` });
    expect(doctor.expiresIn).toBeGreaterThan(0);
    const nurse = await ticketFor(USER.ehpadNurse, appointment.id!);
    expect(nurse.role).toBe('guest');

    // Another team cannot even see the appointment: 404, not 403.
    const outsider = await ticket(hub, await hub.login(USER.gpTende), { appointment: `Appointment/${appointment.id}` });
    expect(outsider.status).toBe(404);
    expect(outsider.body.error).toMatchObject({ code: 'not-found', field: 'appointment' });
    // A malformed request names the field.
    const bad = await ticket(hub, await hub.login(USER.geriatrician), { appointment: 'Patient/x' });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'invalid-request', field: 'appointment' });
    // No access token, no ticket.
    expect((await ticket(hub, undefined as unknown as string, { appointment: `Appointment/${appointment.id}` })).status).toBe(401);
  });

  it('refuses a ticket before the room opens and once the patient withdrew consent', async () => {
    const later = await bookConsultation(hub, { start: new Date(Date.now() + 3 * 3_600_000) });
    const early = await ticket(hub, await hub.login(USER.geriatrician), { appointment: `Appointment/${later.appointment.id}` });
    expect(early.status).toBe(409);
    expect(early.body.error?.code).toBe('too-early');

    const { patient, appointment } = await bookConsultation(hub);
    const nurse = await hub.clientAs(USER.ehpadNurse);
    const consents = await search(nurse, 'Consent', { patient: `Patient/${patient.id}` });
    const given = consents.entry![0]!.resource as Consent;
    await update(nurse, { ...given, status: 'inactive' });
    const refused = await ticket(hub, await hub.login(USER.geriatrician), { appointment: `Appointment/${appointment.id}` });
    expect(refused.status).toBe(422);
    expect(refused.body.error).toMatchObject({ code: 'consent-required', field: 'appointment' });
    expect(refused.body.error?.message).toContain('teleconsultation');
  });

  it('refuses to join without a valid room token, with another user’s token, or with an access token', async () => {
    const { appointment } = await bookConsultation(hub);
    const doctorTicket = await ticketFor(USER.geriatrician, appointment.id!);
    const nurse = await connect(USER.ehpadNurse);
    const missing = await nurse.request('join', {});
    expect(missing).toMatchObject({ ok: false, error: { code: 'invalid-argument', field: 'roomToken' } });
    const forged = await nurse.request('join', { roomToken: `${doctorTicket.roomToken.slice(0, -4)}AAAA` });
    expect(forged).toMatchObject({ ok: false, error: { code: 'unauthorized', field: 'roomToken' } });
    const stolen = await nurse.request('join', { roomToken: doctorTicket.roomToken });
    expect(stolen).toMatchObject({ ok: false, error: { code: 'forbidden', field: 'roomToken' } });
    const accessToken = await nurse.request('join', { roomToken: await hub.login(USER.ehpadNurse) });
    expect(accessToken).toMatchObject({ ok: false, error: { code: 'unauthorized', field: 'roomToken' } });
    // Nothing else works before joining.
    expect(await nurse.request('createTransport', { direction: 'send' })).toMatchObject({ ok: false, error: { code: 'not-joined' } });
  });

  it('lets no account disabled since its socket connected into a room', async () => {
    const { appointment } = await bookConsultation(hub);
    const nurseTicket = await ticketFor(USER.ehpadNurse, appointment.id!);
    const nurse = await connect(USER.ehpadNurse);
    const account = (await hub.auth.accounts.byUsername(USER.ehpadNurse))!;
    await hub.auth.accounts.setDisabled(account.id, true);
    try {
      expect(await nurse.request('join', { roomToken: nurseTicket.roomToken })).toMatchObject({ ok: false, error: { code: 'unauthorized' } });
    } finally {
      await hub.auth.accounts.setDisabled(account.id, false);
    }
  });

  it('holds the nursing home in the waiting room until the doctor admits it, then lets media flow between them', async () => {
    const { appointment } = await bookConsultation(hub);
    const nurse = await connect(USER.ehpadNurse);
    const waiting = await nurse.ok<JoinResult>('join', { roomToken: (await ticketFor(USER.ehpadNurse, appointment.id!)).roomToken });
    expect(waiting).toMatchObject({ state: 'waiting', role: 'guest', resumed: false });
    expect(waiting.routerRtpCapabilities).toBeUndefined();
    expect(await nurse.request('createTransport', { direction: 'send' })).toMatchObject({ ok: false, error: { code: 'waiting' } });

    const doctor = await connect(USER.geriatrician);
    const joined = await doctor.ok<JoinResult>('join', { roomToken: (await ticketFor(USER.geriatrician, appointment.id!)).roomToken });
    expect(joined).toMatchObject({ state: 'admitted', role: 'host' });
    expect(joined.routerRtpCapabilities).toBeDefined();
    const queue = await doctor.next<{ waiting: PeerSummary[] }>('waitingRoom', (u) => u.waiting.length === 1);
    expect(queue.waiting[0]).toMatchObject({ displayName: expect.any(String), state: 'waiting' });
    // Only a host admits.
    expect(await nurse.request('admit', { peerId: queue.waiting[0]!.peerId })).toMatchObject({ ok: false, error: { code: 'forbidden' } });

    await doctor.ok('admit', { peerId: queue.waiting[0]!.peerId });
    const admitted = await nurse.next<{ routerRtpCapabilities: unknown }>('admitted');
    expect(admitted.routerRtpCapabilities).toBeDefined();
    await doctor.next('peerJoined');

    // The nurse sends audio; the doctor is told and consumes it, paused until resumed.
    const send = await nurse.ok<TransportInfo>('createTransport', { direction: 'send' });
    expect(send.iceCandidates).toBeDefined();
    await nurse.ok('connectTransport', { transportId: send.id, dtlsParameters: CLIENT_DTLS_PARAMETERS });
    const { producerId } = await nurse.ok<{ producerId: string }>('produce', { transportId: send.id, kind: 'audio', rtpParameters: opusRtpParameters(1111), source: 'mic' });
    const announced = await doctor.next<{ producerId: string; kind: string; source: string }>('newProducer');
    expect(announced).toMatchObject({ producerId, kind: 'audio', source: 'mic' });
    const recv = await doctor.ok<TransportInfo>('createTransport', { direction: 'recv' });
    const consumer = await doctor.ok<ConsumerInfo>('consume', { producerId, rtpCapabilities: joined.routerRtpCapabilities, transportId: recv.id });
    expect(consumer).toMatchObject({ producerId, kind: 'audio', paused: true });
    await doctor.ok('resumeConsumer', { consumerId: consumer.id });

    // Each touches only its own objects.
    expect(await doctor.request('connectTransport', { transportId: send.id, dtlsParameters: CLIENT_DTLS_PARAMETERS })).toMatchObject({ ok: false, error: { code: 'not-owner' } });
    expect(await nurse.request('resumeConsumer', { consumerId: consumer.id })).toMatchObject({ ok: false, error: { code: 'not-owner' } });
    // Every message is checked, naming the field.
    expect(await nurse.request('createTransport', { direction: 'sideways' })).toMatchObject({ ok: false, error: { code: 'invalid-argument', field: 'direction' } });
    expect(await nurse.request('produce', { transportId: send.id, kind: 'audio', source: 'mic' })).toMatchObject({ ok: false, error: { field: 'rtpParameters' } });

    // The nurse stops her microphone: the doctor's consumer closes and he is told.
    await nurse.ok('closeProducer', { producerId });
    expect(await doctor.next<{ consumerId: string }>('consumerClosed')).toEqual({ consumerId: consumer.id });
  });

  it('keeps a participant whose connection dropped for the grace period: coming back resumes its media objects', async () => {
    const { appointment } = await bookConsultation(hub);
    const doctor = await connect(USER.geriatrician);
    await doctor.ok('join', { roomToken: (await ticketFor(USER.geriatrician, appointment.id!)).roomToken });
    const send = await doctor.ok<TransportInfo>('createTransport', { direction: 'send' });
    doctor.close();
    await new Promise((r) => setTimeout(r, 200));

    const again = await connect(USER.geriatrician);
    const resumed = await again.ok<JoinResult>('join', { roomToken: (await ticketFor(USER.geriatrician, appointment.id!)).roomToken });
    expect(resumed.resumed).toBe(true);
    // The transport made before the drop is still there (an ICE restart on it works).
    expect(await again.request('restartIce', { transportId: send.id })).toMatchObject({ ok: true });

    // Past the grace period, a dropped participant is gone and the others are told.
    const nurse = await connect(USER.ehpadNurse);
    await nurse.ok('join', { roomToken: (await ticketFor(USER.ehpadNurse, appointment.id!)).roomToken });
    const peer = (await again.next<{ waiting: PeerSummary[] }>('waitingRoom', (u) => u.waiting.length === 1)).waiting[0]!;
    await again.ok('admit', { peerId: peer.peerId });
    await nurse.next('admitted');
    nurse.close();
    expect(await again.next<{ peerId: string }>('peerLeft', undefined, 5_000)).toEqual({ peerId: peer.peerId });
  });

  it('lets a reloaded page join fresh: the place is kept (no second waiting room), the old media objects close', async () => {
    const { appointment } = await bookConsultation(hub);
    const doctor = await connect(USER.geriatrician);
    await doctor.ok('join', { roomToken: (await ticketFor(USER.geriatrician, appointment.id!)).roomToken });
    const nurse = await connect(USER.ehpadNurse);
    await nurse.ok('join', { roomToken: (await ticketFor(USER.ehpadNurse, appointment.id!)).roomToken });
    const peer = (await doctor.next<{ waiting: PeerSummary[] }>('waitingRoom', (u) => u.waiting.length === 1)).waiting[0]!;
    await doctor.ok('admit', { peerId: peer.peerId });
    await nurse.next('admitted');
    const send = await nurse.ok<TransportInfo>('createTransport', { direction: 'send' });
    const { producerId } = await nurse.ok<{ producerId: string }>('produce', { transportId: send.id, kind: 'audio', rtpParameters: opusRtpParameters(3333), source: 'mic' });
    await doctor.next('newProducer');

    // The nurse reloads her page: a new connection, a fresh join.
    const reloaded = await connect(USER.ehpadNurse);
    const result = await reloaded.ok<JoinResult>('join', { roomToken: (await ticketFor(USER.ehpadNurse, appointment.id!)).roomToken, fresh: true });
    expect(result).toMatchObject({ state: 'admitted', resumed: false });
    expect(result.routerRtpCapabilities).toBeDefined();
    expect(await nurse.next<{ code: string }>('removed')).toMatchObject({ code: 'replaced' });
    expect(await doctor.next<{ producerId: string }>('producerClosed')).toMatchObject({ producerId });
    expect(await reloaded.request('restartIce', { transportId: send.id })).toMatchObject({ ok: false, error: { code: 'not-found' } });
    expect(await reloaded.request('createTransport', { direction: 'send' })).toMatchObject({ ok: true });
  });

  it('ends with a report: an Encounter (class VR), the report as a DocumentReference, the appointment fulfilled and an AuditEvent, once', async () => {
    const { patient, appointment } = await bookConsultation(hub);
    const doctor = await connect(USER.geriatrician);
    const nurse = await connect(USER.ehpadNurse);
    await nurse.ok('join', { roomToken: (await ticketFor(USER.ehpadNurse, appointment.id!)).roomToken });
    await doctor.ok('join', { roomToken: (await ticketFor(USER.geriatrician, appointment.id!)).roomToken });
    const peer = (await doctor.next<{ waiting: PeerSummary[] }>('waitingRoom', (u) => u.waiting.length === 1)).waiting[0]!;
    await doctor.ok('admit', { peerId: peer.peerId });
    await nurse.next('admitted');

    expect(await nurse.request('end', { report: 'x' })).toMatchObject({ ok: false, error: { code: 'forbidden' } });
    expect(await doctor.request('end', { report: '   ' })).toMatchObject({ ok: false, error: { code: 'invalid-argument', field: 'report' } });
    const report = 'Chutes liées à une hypotension orthostatique. Arrêt de la tamsulosine, contrôle tensionnel couché-debout à J7.';
    const ended = await doctor.ok<{ encounter: string; report: string }>('end', { report });
    expect(ended.encounter).toMatch(/^Encounter\//);
    expect(ended.report).toMatch(/^DocumentReference\//);
    expect(await nurse.next<{ encounter: string }>('roomEnded')).toMatchObject({ encounter: ended.encounter });
    // Sent again (an answer lost on the way): the same record, nothing twice.
    expect(await doctor.ok('end', { report })).toEqual(ended);

    const gp = await hub.clientAs(USER.geriatrician);
    const encounter = await read<Encounter>(gp, 'Encounter', ended.encounter.split('/')[1]!);
    expect(encounter).toMatchObject({ status: 'finished', class: { code: 'VR' }, subject: { reference: `Patient/${patient.id}` }, appointment: [{ reference: `Appointment/${appointment.id}` }] });
    expect(encounter.period?.start && encounter.period.end).toBeTruthy();
    expect(encounter.participant?.map((p) => p.individual?.reference).sort()).toEqual(['Practitioner/pract-geriatre-chu', 'Practitioner/pract-ide-ehpad']);
    const doc = await read<DocumentReference>(gp, 'DocumentReference', ended.report.split('/')[1]!);
    expect(Buffer.from(doc.content[0]!.attachment.data!, 'base64').toString('utf8')).toBe(report);
    expect(doc.context?.encounter?.[0]?.reference).toBe(ended.encounter);
    expect(doc.author?.[0]?.reference).toBe('Practitioner/pract-geriatre-chu');
    expect((await read<Appointment>(gp, 'Appointment', appointment.id!)).status).toBe('fulfilled');
    expect((await search(gp, 'Encounter', { patient: `Patient/${patient.id}` })).entry).toHaveLength(1);

    // "Who accessed my record" is for the patient's care team: the nursing home.
    const careTeam = await hub.clientAs(USER.ehpadNurse);
    const audit = (await search(careTeam, 'AuditEvent', { patient: `Patient/${patient.id}`, _count: '200' })) as Bundle;
    const descriptions = (audit.entry ?? []).map((e) => (e.resource as AuditEvent).outcomeDesc ?? '');
    expect(descriptions.some((d) => d.startsWith(`Téléconsultation appointment:${appointment.id}`) && d.includes('Lacroix') && d.includes('Cazenave'))).toBe(true);
    expect(descriptions.filter((d) => d.startsWith('entrée dans la salle'))).toHaveLength(2);
  });
});

describe('a room whose media worker dies', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startAccessHub(backend, { rooms: { workers: 2 } });
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('is rebuilt on the other worker and its participants are told to reconnect; they can send again', async () => {
    const { appointment } = await bookConsultation(hub);
    const tokenOf = async (user: string) => (await ticket(hub, await hub.login(user), { appointment: `Appointment/${appointment.id}` })).body.roomToken;
    const doctor = await RoomClient.connect(hub, await hub.login(USER.geriatrician));
    try {
      await doctor.ok('join', { roomToken: await tokenOf(USER.geriatrician) });
      const before = await doctor.ok<TransportInfo>('createTransport', { direction: 'send' });
      const media = hub.rooms!.registry.getRoom(`appointment:${appointment.id}`);
      const pid = media.workerPid!;
      process.kill(pid, 'SIGKILL');
      const told = await doctor.next<{ reason: string; routerRtpCapabilities: unknown }>('reconnectRequired', undefined, 15_000);
      expect(told.reason).toBe('media-server-restarted');
      expect(told.routerRtpCapabilities).toBeDefined();
      expect(media.workerPid).toBeDefined();
      expect(media.workerPid).not.toBe(pid);
      // The old transport died with the worker; a new one works, and so does producing on it.
      expect(await doctor.request('connectTransport', { transportId: before.id, dtlsParameters: CLIENT_DTLS_PARAMETERS })).toMatchObject({ ok: false, error: { code: 'not-found' } });
      const after = await doctor.ok<TransportInfo>('createTransport', { direction: 'send' });
      await doctor.ok('produce', { transportId: after.id, kind: 'audio', rtpParameters: opusRtpParameters(2222), source: 'mic' });
    } finally {
      doctor.close();
    }
  });
});
