import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { UserContext } from '../../fhir/access.js';
import type { Principal } from '../../server/auth/principal.js';
import { ConsultationRoom, RoomError } from '../../server/rooms/consultation-room.js';
import type { FinishedSession } from '../../server/rooms/records.js';
import { RoomRegistry } from '../../sfu/room-registry.js';
import { WorkerPool } from '../../sfu/worker-pool.js';

/**
 * The room state machine on its own, over a real mediasoup room: waiting → admitted → left,
 * hosts and guests, the grace period, and what `end` hands to the record writer (the writer
 * itself is tested over socket.io against the store, in signaling.test.ts).
 */
const person = (id: string, name: string, practitionerId: string): { principal: Principal; access: UserContext } => ({
  principal: { accountId: id, username: id, displayName: name, role: 'specialist', practitionerId },
  access: { kind: 'user', accountId: id, username: id, role: 'specialist', practitionerId },
});
const DOCTOR = person('acc-doctor', 'Dr Lacroix', 'pract-doctor');
const NURSE = person('acc-nurse', 'Marie Cazenave', 'pract-nurse');
const OTHER = person('acc-other', 'Dr Autre', 'pract-other');

describe('ConsultationRoom (the room state machine)', () => {
  let pool: WorkerPool;
  let registry: RoomRegistry;
  let counter = 0;
  beforeAll(async () => {
    pool = await WorkerPool.create({ numWorkers: 1, rtcMinPort: 52000, rtcMaxPort: 52999, logger: { info: () => {}, error: () => {} } });
    registry = new RoomRegistry({ pool });
  });
  afterAll(() => {
    registry?.close();
    pool?.close();
  });

  async function openRoom(graceMs = 60_000) {
    const roomId = `unit-${++counter}`;
    const media = await registry.openRoom(roomId);
    const events: { to: string; event: string; payload: unknown }[] = [];
    const sessions: FinishedSession[] = [];
    let closed = 0;
    const room = new ConsultationRoom({
      identity: { roomId, kind: 'teleconsultation', basedOn: 'Appointment/a1', patientId: 'p1' },
      media,
      notify: (to, event, payload) => events.push({ to, event, payload }),
      graceMs,
      finish: async (session) => {
        sessions.push(session);
        return { encounter: 'Encounter/e1', report: 'DocumentReference/d1' };
      },
      onClosed: () => closed++,
    });
    const eventsOf = (to: string, event: string) => events.filter((e) => e.to === to && e.event === event).map((e) => e.payload);
    return { room, media, events, eventsOf, sessions, closed: () => closed };
  }

  const thrownBy = (f: () => unknown): RoomError => {
    try {
      f();
    } catch (err) {
      if (err instanceof RoomError) return err;
      throw err;
    }
    throw new Error('expected a RoomError');
  };

  it('admits a host at once and holds a guest in the waiting room, with no media peer, until a host admits it', async () => {
    const { room, media, eventsOf } = await openRoom();
    const guest = room.join(NURSE.principal, NURSE.access, 'guest');
    expect(guest).toMatchObject({ state: 'waiting', resumed: false, producers: [] });
    expect(media.findPeer(NURSE.principal.accountId)).toBeUndefined();
    expect(thrownBy(() => room.peer(NURSE.principal.accountId)).code).toBe('waiting');

    const host = room.join(DOCTOR.principal, DOCTOR.access, 'host');
    expect(host.state).toBe('admitted');
    expect(eventsOf(DOCTOR.principal.accountId, 'waitingRoom').at(-1)).toEqual({ waiting: [expect.objectContaining({ peerId: NURSE.principal.accountId })] });

    expect(thrownBy(() => room.admit(NURSE.principal.accountId, DOCTOR.principal.accountId)).code).toBe('forbidden');
    expect(thrownBy(() => room.admit(DOCTOR.principal.accountId, 'nobody')).field).toBe('peerId');
    room.admit(DOCTOR.principal.accountId, NURSE.principal.accountId);
    expect(media.findPeer(NURSE.principal.accountId)).toBeDefined();
    expect(eventsOf(NURSE.principal.accountId, 'admitted')).toHaveLength(1);
    expect(eventsOf(DOCTOR.principal.accountId, 'peerJoined')).toEqual([expect.objectContaining({ peerId: NURSE.principal.accountId, state: 'admitted' })]);
    expect(eventsOf(DOCTOR.principal.accountId, 'waitingRoom').at(-1)).toEqual({ waiting: [] });
  });

  it('removes a participant with its media and tells it; the last one out closes the room', async () => {
    const { room, media, eventsOf, closed } = await openRoom();
    room.join(DOCTOR.principal, DOCTOR.access, 'host');
    room.join(NURSE.principal, NURSE.access, 'guest');
    room.admit(DOCTOR.principal.accountId, NURSE.principal.accountId);
    expect(thrownBy(() => room.remove(DOCTOR.principal.accountId, DOCTOR.principal.accountId)).field).toBe('peerId');
    room.remove(DOCTOR.principal.accountId, NURSE.principal.accountId);
    expect(media.findPeer(NURSE.principal.accountId)).toBeUndefined();
    expect(eventsOf(NURSE.principal.accountId, 'removed')).toHaveLength(1);
    expect(eventsOf(DOCTOR.principal.accountId, 'peerLeft')).toEqual([{ peerId: NURSE.principal.accountId }]);
    room.leave(DOCTOR.principal.accountId);
    expect(closed()).toBe(1);
    expect(room.closed).toBe(true);
    expect(media.closed).toBe(true);
    expect(thrownBy(() => room.join(OTHER.principal, OTHER.access, 'host')).code).toBe('room-closed');
  });

  it('keeps a dropped participant through the grace period and lets it resume; after it, the participant is gone', async () => {
    const { room, media, eventsOf } = await openRoom(150);
    room.join(DOCTOR.principal, DOCTOR.access, 'host');
    room.join(NURSE.principal, NURSE.access, 'guest');
    room.admit(DOCTOR.principal.accountId, NURSE.principal.accountId);
    room.disconnected(NURSE.principal.accountId);
    expect(room.join(NURSE.principal, NURSE.access, 'guest')).toMatchObject({ resumed: true, state: 'admitted' });
    await new Promise((r) => setTimeout(r, 300));
    expect(media.findPeer(NURSE.principal.accountId)).toBeDefined();

    room.disconnected(NURSE.principal.accountId);
    await new Promise((r) => setTimeout(r, 300));
    expect(media.findPeer(NURSE.principal.accountId)).toBeUndefined();
    expect(eventsOf(DOCTOR.principal.accountId, 'peerLeft')).toEqual([{ peerId: NURSE.principal.accountId }]);
  });

  it('ends once, with who attended and when, and closes the room for everyone', async () => {
    const { room, eventsOf, sessions } = await openRoom();
    room.join(DOCTOR.principal, DOCTOR.access, 'host');
    room.join(NURSE.principal, NURSE.access, 'guest');
    room.join(OTHER.principal, OTHER.access, 'guest');
    room.admit(DOCTOR.principal.accountId, NURSE.principal.accountId);
    room.remove(DOCTOR.principal.accountId, OTHER.principal.accountId); // never admitted: not an attendee
    await expect(room.end(NURSE.principal.accountId, 'x')).rejects.toMatchObject({ code: 'forbidden' });
    const [first, second] = await Promise.all([room.end(DOCTOR.principal.accountId, 'Compte rendu'), room.end(DOCTOR.principal.accountId, 'Compte rendu')]);
    expect(first).toEqual(second);
    expect(sessions).toHaveLength(1);
    const session = sessions[0]!;
    expect(session).toMatchObject({ roomId: room.identity.roomId, basedOn: 'Appointment/a1', patientId: 'p1', report: 'Compte rendu', author: DOCTOR.access });
    expect(session.attendance.map((a) => [a.practitionerId, a.role])).toEqual([
      ['pract-doctor', 'host'],
      ['pract-nurse', 'guest'],
    ]);
    expect(Date.parse(session.endedAt)).toBeGreaterThanOrEqual(Date.parse(session.startedAt));
    expect(eventsOf(NURSE.principal.accountId, 'roomEnded')).toEqual([{ encounter: 'Encounter/e1', reason: 'consultation terminée' }]);
    expect(room.closed).toBe(true);
  });

  it('tells everyone why when the room closes without a record (the hub stopping, the media lost)', async () => {
    const { room, eventsOf, sessions } = await openRoom();
    room.join(DOCTOR.principal, DOCTOR.access, 'host');
    room.join(NURSE.principal, NURSE.access, 'guest');
    room.close('hub-stopping');
    expect(eventsOf(DOCTOR.principal.accountId, 'roomEnded')).toEqual([{ reason: 'hub-stopping' }]);
    expect(eventsOf(NURSE.principal.accountId, 'roomEnded')).toEqual([{ reason: 'hub-stopping' }]);
    expect(sessions).toHaveLength(0);
  });
});
