/**
 * One consultation or teleassistance session as the people in it see it: who is in the waiting
 * room, who is admitted, who leads (the host: the doctor), and the media room (sfu/) of the
 * admitted. Knows nothing of socket.io: it tells each participant what happened through
 * `notify`, and signaling turns that into socket events.
 *
 * - A guest (the nursing home's nurse and resident, the assisted correspondent) waits until a
 *   host admits them; only then does it get a Peer in the media room. A host is admitted at once.
 * - A participant whose connection drops keeps its place and its media objects for `graceMs`:
 *   coming back (same account, new socket) resumes where it was. A transient ICE
 *   'disconnected' closes nothing (the client restarts ICE on the same transports).
 * - The host ends the session with a report: the record goes into the FHIR store (records.ts)
 *   and the room closes for everyone.
 */
import type { Room as MediaRoom } from '../../sfu/room.js';
import type { Peer } from '../../sfu/peer.js';
import type { UserContext } from '../../fhir/access.js';
import type { Principal } from '../auth/principal.js';
import type { DataProducerSummary, JoinResult, LinkProfile, PeerState, PeerSummary, ProducerSummary, RoomKind, RoomRole, ServerToClient } from './protocol.js';
import type { FinishedSession } from './records.js';

export class RoomError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'RoomError';
  }
}

export type Notify = <E extends keyof ServerToClient>(accountId: string, event: E, payload: Parameters<ServerToClient[E]>[0]) => void;

export interface Participant {
  accountId: string;
  displayName: string;
  role: RoomRole;
  state: PeerState;
  principal: Principal;
  access: UserContext;
  linkProfile: LinkProfile;
  joinedAt: string;
  admittedAt?: string;
  leftAt?: string;
  /** Connected right now (a socket is attached). */
  connected: boolean;
  graceTimer?: NodeJS.Timeout;
}

export interface RoomIdentity {
  roomId: string;
  kind: RoomKind;
  basedOn: string;
  patientId: string;
}

export interface ConsultationRoomOptions {
  identity: RoomIdentity;
  media: MediaRoom;
  notify: Notify;
  /** How long a dropped participant keeps its place and media objects. */
  graceMs: number;
  /** Writes the record of the session (Encounter, report, audit). */
  finish: (session: FinishedSession) => Promise<{ encounter: string; report: string }>;
  onClosed: () => void;
}

export class ConsultationRoom {
  readonly identity: RoomIdentity;
  readonly media: MediaRoom;
  readonly #participants = new Map<string, Participant>();
  /** Everyone who was admitted at some point, for the Encounter. */
  readonly #attendance: { accountId: string; practitionerId?: string; displayName: string; role: RoomRole; start: string; end?: string }[] = [];
  readonly #options: ConsultationRoomOptions;
  #startedAt?: string;
  #ended?: Promise<{ encounter: string; report: string }>;
  #closed = false;

  constructor(options: ConsultationRoomOptions) {
    this.#options = options;
    this.identity = options.identity;
    this.media = options.media;
    const { media, notify } = options;
    media.on('newproducer', (p) => {
      const summary: ProducerSummary = { peerId: p.peerId, producerId: p.id, kind: p.kind, source: p.source, paused: p.paused };
      for (const other of this.#admitted()) if (other.accountId !== p.peerId) notify(other.accountId, 'newProducer', summary);
    });
    media.on('producerclosed', ({ peerId, producerId }) => {
      for (const other of this.#admitted()) if (other.accountId !== peerId) notify(other.accountId, 'producerClosed', { peerId, producerId });
    });
    media.on('newdataproducer', (d) => {
      const summary: DataProducerSummary = { peerId: d.peerId, dataProducerId: d.id, label: d.label, source: 'vitals' };
      for (const other of this.#admitted()) if (other.accountId !== d.peerId) notify(other.accountId, 'newDataProducer', summary);
    });
    media.on('closed', () => this.#close('media-closed'));
  }

  get closed(): boolean {
    return this.#closed;
  }

  participant(accountId: string): Participant | undefined {
    return this.#participants.get(accountId);
  }

  /** Enters the room, or comes back to it (another socket, after a drop): `resumed` says which. */
  join(principal: Principal, access: UserContext, role: RoomRole, options: { fresh?: boolean } = {}): JoinResult {
    this.#assertOpen();
    const existing = this.#participants.get(principal.accountId);
    if (existing) {
      clearTimeout(existing.graceTimer);
      existing.graceTimer = undefined;
      existing.connected = true;
      if (!options.fresh) return this.#joinResult(existing, true);
      // A new page: same place in the room, new media objects (the old ones close, the others are told).
      if (existing.state === 'admitted' && this.media.findPeer(existing.accountId)) {
        this.media.leave(existing.accountId);
        this.media.join(existing.accountId, { displayName: existing.displayName, role: existing.role });
        this.#wire(existing);
      }
      return this.#joinResult(existing, false);
    }
    const now = new Date().toISOString();
    const participant: Participant = {
      accountId: principal.accountId,
      displayName: principal.displayName ?? principal.username,
      role,
      state: 'waiting',
      principal,
      access,
      linkProfile: 'normal',
      joinedAt: now,
      connected: true,
    };
    this.#participants.set(principal.accountId, participant);
    if (role === 'host') this.#admit(participant);
    else this.#waitingChanged();
    return this.#joinResult(participant, false);
  }

  /** A host lets a waiting guest in. */
  admit(byAccountId: string, peerId: string): PeerSummary {
    this.#requireHost(byAccountId, 'admit');
    const guest = this.#participants.get(peerId);
    if (!guest) throw new RoomError('not-found', `no participant '${peerId}' in this room`, 'peerId');
    if (guest.state === 'admitted') return this.#summary(guest);
    this.#admit(guest);
    this.#options.notify(guest.accountId, 'admitted', {
      routerRtpCapabilities: this.media.rtpCapabilities,
      peers: this.#peerSummaries(),
      producers: this.#producers(guest.accountId),
      dataProducers: this.#dataProducers(guest.accountId),
    });
    this.#waitingChanged();
    return this.#summary(guest);
  }

  /** A host sends a participant away (waiting or admitted): its media objects close. */
  remove(byAccountId: string, peerId: string): { peerId: string } {
    this.#requireHost(byAccountId, 'remove');
    if (peerId === byAccountId) throw new RoomError('invalid-argument', 'a host leaves with leave or end, not remove', 'peerId');
    const p = this.#participants.get(peerId);
    if (!p) throw new RoomError('not-found', `no participant '${peerId}' in this room`, 'peerId');
    this.#depart(p);
    this.#options.notify(peerId, 'removed', { code: 'removed-by-host', reason: 'retiré par le médecin' });
    return { peerId };
  }

  leave(accountId: string): void {
    const p = this.#participants.get(accountId);
    if (p) this.#depart(p);
  }

  /** The participant's connection dropped: keep its place for the grace period. */
  disconnected(accountId: string): void {
    const p = this.#participants.get(accountId);
    if (!p || this.#closed) return;
    p.connected = false;
    clearTimeout(p.graceTimer);
    p.graceTimer = setTimeout(() => {
      if (!p.connected) this.#depart(p);
    }, this.#options.graceMs);
    p.graceTimer.unref?.();
  }

  /** The media Peer of an admitted participant; a waiting one may do nothing but leave. */
  peer(accountId: string): Peer {
    this.#assertOpen();
    const p = this.#participants.get(accountId);
    if (!p) throw new RoomError('not-joined', 'join the room first', 'roomToken');
    if (p.state !== 'admitted') throw new RoomError('waiting', 'you are in the waiting room: the doctor has not admitted you yet');
    return this.media.getPeer(accountId);
  }

  setLinkProfile(accountId: string, profile: LinkProfile): void {
    const p = this.#participants.get(accountId);
    if (p) p.linkProfile = profile;
  }

  /** pause/resume of a producer, told to the others. */
  producerStateChanged(accountId: string, producerId: string, paused: boolean): void {
    for (const other of this.#admitted()) {
      if (other.accountId !== accountId) this.#options.notify(other.accountId, paused ? 'producerPaused' : 'producerResumed', { producerId, peerId: accountId });
    }
  }

  /** The host ends the session with the report: stored once, even if `end` is sent again. */
  end(byAccountId: string, report: string, title?: string): Promise<{ encounter: string; report: string }> {
    if (this.#ended) return this.#ended;
    let host: Participant;
    try {
      host = this.#requireHost(byAccountId, 'end');
    } catch (err) {
      return Promise.reject(err);
    }
    const endedAt = new Date().toISOString();
    const session: FinishedSession = {
      ...this.identity,
      startedAt: this.#startedAt ?? host.joinedAt,
      endedAt,
      attendance: this.#attendance.map(({ accountId: _a, ...a }) => a),
      report,
      ...(title ? { title } : {}),
      author: host.access,
    };
    this.#ended = this.#options.finish(session).then(
      (result) => {
        for (const p of this.#participants.values()) this.#options.notify(p.accountId, 'roomEnded', { encounter: result.encounter, reason: 'consultation terminée' });
        this.#close('ended');
        return result;
      },
      (err: unknown) => {
        // Nothing was stored: the host may try again.
        this.#ended = undefined;
        throw err;
      },
    );
    return this.#ended;
  }

  /** Closes without a record (the hub shutting down, the media room lost). */
  close(reason = 'closed'): void {
    this.#close(reason);
  }

  // ------------------------------------------------------------------------------------------

  #admit(p: Participant): void {
    const now = new Date().toISOString();
    this.media.join(p.accountId, { displayName: p.displayName, role: p.role });
    p.state = 'admitted';
    p.admittedAt = now;
    this.#startedAt ??= now;
    this.#attendance.push({ accountId: p.accountId, ...(p.principal.practitionerId ? { practitionerId: p.principal.practitionerId } : {}), displayName: p.displayName, role: p.role, start: now });
    this.#wire(p);
    for (const other of this.#admitted()) if (other.accountId !== p.accountId) this.#options.notify(other.accountId, 'peerJoined', this.#summary(p));
  }

  /** What happens to a participant's media objects is told to that participant. */
  #wire(p: Participant): void {
    const peer = this.media.getPeer(p.accountId);
    const notify = this.#options.notify;
    peer.on('consumerclosed', ({ consumerId }) => notify(p.accountId, 'consumerClosed', { consumerId }));
    peer.on('dataconsumerclosed', ({ dataConsumerId }) => notify(p.accountId, 'dataConsumerClosed', { dataConsumerId }));
    peer.on('reconnect-required', () => notify(p.accountId, 'reconnectRequired', { reason: 'media-server-restarted', routerRtpCapabilities: this.media.rtpCapabilities }));
  }

  #depart(p: Participant): void {
    clearTimeout(p.graceTimer);
    if (!this.#participants.delete(p.accountId)) return;
    p.leftAt = new Date().toISOString();
    const record = [...this.#attendance].reverse().find((a) => a.accountId === p.accountId && !a.end);
    if (record) record.end = p.leftAt;
    if (p.state === 'admitted') {
      if (!this.media.closed && this.media.findPeer(p.accountId)) this.media.leave(p.accountId);
      for (const other of this.#admitted()) this.#options.notify(other.accountId, 'peerLeft', { peerId: p.accountId });
    } else this.#waitingChanged();
    // Nobody left: the room closes (nothing to record without a host's `end`).
    if (this.#participants.size === 0) this.#close('empty');
  }

  #close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#participants.values()) {
      clearTimeout(p.graceTimer);
      // Ended by the host: already told, with the Encounter. Otherwise say why the room is gone.
      if (reason !== 'ended' && reason !== 'empty') this.#options.notify(p.accountId, 'roomEnded', { reason });
    }
    if (!this.media.closed) this.media.close();
    this.#options.onClosed();
  }

  #requireHost(accountId: string, action: string): Participant {
    this.#assertOpen();
    const p = this.#participants.get(accountId);
    if (!p) throw new RoomError('not-joined', 'join the room first', 'roomToken');
    if (p.role !== 'host') throw new RoomError('forbidden', `only the doctor leading the session can ${action}`);
    return p;
  }

  #assertOpen(): void {
    if (this.#closed) throw new RoomError('room-closed', 'this session has ended');
  }

  #admitted(): Participant[] {
    return [...this.#participants.values()].filter((p) => p.state === 'admitted');
  }

  #summary(p: Participant): PeerSummary {
    return { peerId: p.accountId, displayName: p.displayName, role: p.role, state: p.state };
  }

  #peerSummaries(): PeerSummary[] {
    return [...this.#participants.values()].map((p) => this.#summary(p));
  }

  #producers(except: string): ProducerSummary[] {
    return this.media.roster().filter((r) => r.id !== except).flatMap((r) => r.producers.map((p) => ({ peerId: r.id, producerId: p.id, kind: p.kind, source: p.source, paused: p.paused })));
  }

  #dataProducers(except: string): DataProducerSummary[] {
    return this.media.roster().filter((r) => r.id !== except).flatMap((r) => r.dataProducers.map((d) => ({ peerId: r.id, dataProducerId: d.id, label: d.label, source: 'vitals' as const })));
  }

  #waitingChanged(): void {
    const waiting = [...this.#participants.values()].filter((p) => p.state === 'waiting').map((p) => this.#summary(p));
    for (const host of this.#participants.values()) if (host.role === 'host') this.#options.notify(host.accountId, 'waitingRoom', { waiting });
  }

  #joinResult(p: Participant, resumed: boolean): JoinResult {
    const admitted = p.state === 'admitted';
    if (admitted && p.role === 'host') this.#waitingChanged();
    return {
      peerId: p.accountId,
      role: p.role,
      state: p.state,
      kind: this.identity.kind,
      ...(admitted ? { routerRtpCapabilities: this.media.rtpCapabilities } : {}),
      peers: this.#peerSummaries(),
      producers: admitted ? this.#producers(p.accountId) : [],
      dataProducers: admitted ? this.#dataProducers(p.accountId) : [],
      resumed,
    };
  }
}
