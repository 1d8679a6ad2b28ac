/**
 * Room signaling over socket.io (namespace `/rooms`, protocol.ts). The connection is
 * authenticated with the access token like every socket of the hub; `join` then needs a room
 * token bound to that same account. Every request is validated at the door (zod; the field at
 * fault is named) and acknowledged with `{ ok, data }` or `{ ok: false, error }`; a peer only
 * reaches its own media objects (sfu/ refuses another's ids with 'not-owner').
 */
import type { Namespace, Server, Socket } from 'socket.io';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { SfuError } from '../../sfu/errors.js';
import type { RoomRegistry } from '../../sfu/room-registry.js';
import { auditEvent } from '../../fhir/audit.js';
import type { FhirStore } from '../../fhir/store.js';
import { socketAuthenticate, type AuthenticatedSocketData } from '../auth/middleware.js';
import type { Auth } from '../auth/services.js';
import { ApiError } from '../errors.js';
import { ConsultationRoom, RoomError, type Notify } from './consultation-room.js';
import { LINK_PROFILES, requests, type Ack, type EndResult, type RequestName, type Responses, type RoomError as WireError, type ServerToClient } from './protocol.js';
import { storeSessionRecord } from './records.js';
import type { RoomTickets } from './tickets.js';

type RoomSocket = Socket<Record<string, never>, ServerToClient, Record<string, never>, AuthenticatedSocketData & { roomId?: string }>;

export interface RoomSignalingOptions {
  auth: Pick<Auth, 'keyRing' | 'accounts'>;
  tickets: RoomTickets;
  registry: RoomRegistry;
  store: FhirStore;
  logger: Logger;
  /** How long a participant whose connection dropped keeps its place. Default 60 s. */
  graceMs?: number;
}

const SFU_STATUS: Record<string, string> = {
  'not-owner': 'not-owner',
  'peer-not-found': 'not-found',
  'transport-not-found': 'not-found',
  'producer-not-found': 'not-found',
  'consumer-not-found': 'not-found',
  'data-producer-not-found': 'not-found',
  'data-consumer-not-found': 'not-found',
};

function wireError(err: unknown): WireError | undefined {
  if (err instanceof RoomError) return { code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) };
  if (err instanceof SfuError) return { code: SFU_STATUS[err.code] ?? err.code, message: err.message, ...(err.field ? { field: err.field } : {}) };
  if (err instanceof ApiError) return { code: err.code, message: err.message, ...(err.field ? { field: err.field } : {}) };
  return undefined;
}

function zodError(error: z.ZodError): WireError {
  const issue = error.issues[0]!;
  const field = issue.path.join('.') || undefined;
  return { code: 'invalid-argument', message: field && !issue.message.startsWith(field) ? `${field}: ${issue.message}` : issue.message, ...(field ? { field } : {}) };
}

export class RoomSignaling {
  readonly namespace: Namespace;
  readonly #rooms = new Map<string, ConsultationRoom>();
  readonly #opening = new Map<string, Promise<ConsultationRoom>>();
  /** The socket each account uses in each room: `${roomId}|${accountId}` → socket id. */
  readonly #sockets = new Map<string, string>();
  readonly #options: RoomSignalingOptions;
  /** Rooms ended in the last hour and what their `end` answered: a retried `end` gets the same answer. */
  readonly #ended = new Map<string, { result: EndResult; at: number }>();

  constructor(io: Server, options: RoomSignalingOptions) {
    this.#options = options;
    this.namespace = io.of('/rooms');
    this.namespace.use(socketAuthenticate(options.auth.keyRing, options.auth.accounts));
    this.namespace.on('connection', (socket) => this.#connected(socket as unknown as RoomSocket));
  }

  get rooms(): ConsultationRoom[] {
    return [...this.#rooms.values()];
  }

  room(roomId: string): ConsultationRoom | undefined {
    return this.#rooms.get(roomId);
  }

  close(): void {
    for (const room of this.#rooms.values()) room.close('hub-stopping');
  }

  #connected(socket: RoomSocket): void {
    const { principal } = socket.data;
    const handle = <N extends RequestName>(name: N, run: (request: z.output<(typeof requests)[N]>, room: ConsultationRoom | undefined) => Promise<Responses[N]> | Responses[N]) => {
      (socket as unknown as { on(event: string, listener: (raw: unknown, ack: unknown) => void): void }).on(name, async (raw: unknown, ack: unknown) => {
        // A request without an acknowledgement callback cannot be answered: ignore it.
        if (typeof ack !== 'function') return;
        const reply = ack as (response: Ack<Responses[N]>) => void;
        const parsed = requests[name].safeParse(raw ?? {});
        if (!parsed.success) return reply({ ok: false, error: zodError(parsed.error) });
        try {
          const roomId = socket.data.roomId;
          const room = roomId ? this.#rooms.get(roomId) : undefined;
          reply({ ok: true, data: await run(parsed.data as z.output<(typeof requests)[N]>, room) });
        } catch (err) {
          const error = wireError(err);
          if (!error) this.#options.logger.error({ err, request: name }, 'room request failed');
          reply({ ok: false, error: error ?? { code: 'internal-error', message: 'the hub could not complete the request' } });
        }
      });
    };
    const inRoom = (room: ConsultationRoom | undefined): ConsultationRoom => {
      if (!room || room.closed) throw new RoomError('not-joined', 'join a room first', 'roomToken');
      return room;
    };
    const me = principal.accountId;

    handle('join', async ({ roomToken, fresh }) => {
      const claims = await this.#options.tickets.verify(roomToken, principal);
      // The socket was authenticated at its handshake: an account disabled since then enters no room.
      if (!(await this.#options.auth.accounts.active(me))) throw new RoomError('unauthorized', 'this account is disabled', 'roomToken');
      if (socket.data.roomId && socket.data.roomId !== claims.roomId) throw new RoomError('invalid-state', 'this connection is already in another room: leave it first', 'roomToken');
      const room = await this.#open(claims);
      const previous = this.#sockets.get(`${claims.roomId}|${me}`);
      if (previous && previous !== socket.id) {
        // The same professional from another tab or device: the new connection takes over.
        const old = this.namespace.sockets.get(previous) as RoomSocket | undefined;
        if (old) {
          old.data.roomId = undefined;
          old.emit('removed', { code: 'replaced', reason: 'vous avez rejoint la salle depuis une autre connexion' });
        }
      }
      this.#sockets.set(`${claims.roomId}|${me}`, socket.id);
      socket.data.roomId = claims.roomId;
      const returning = !!room.participant(me);
      const result = room.join(principal, socket.data.access, claims.role, fresh ? { fresh } : {});
      // The connection dropped while the ticket was checked or the room opened: the 'disconnect'
      // handler found no room then, so start the grace period now, or the place is held forever.
      if (socket.disconnected) room.disconnected(me);
      if (!returning) await this.#audit(socket, claims.basedOn, claims.patientId, `entrée dans la salle ${claims.roomId} (${claims.role === 'host' ? 'médecin' : 'participant'})`);
      return result;
    });
    handle('admit', ({ peerId }, room) => inRoom(room).admit(me, peerId));
    handle('remove', ({ peerId }, room) => {
      const r = inRoom(room);
      const result = r.remove(me, peerId);
      const sid = this.#sockets.get(`${r.identity.roomId}|${peerId}`);
      this.#sockets.delete(`${r.identity.roomId}|${peerId}`);
      const removed = sid ? (this.namespace.sockets.get(sid) as RoomSocket | undefined) : undefined;
      if (removed) removed.data.roomId = undefined;
      return result;
    });
    handle('createTransport', ({ direction, sctp }, room) => {
      const peer = inRoom(room).peer(me);
      return peer.createWebRtcTransport({ direction, ...(sctp !== undefined ? { sctp } : {}) }).then(async (t) => {
        const p = inRoom(room).participant(me);
        if (p?.linkProfile === 'satellite' && direction === 'send') await peer.setMaxIncomingBitrate(LINK_PROFILES.satellite.maxIncomingBitrate);
        return { id: t.id, iceParameters: t.iceParameters, iceCandidates: t.iceCandidates, dtlsParameters: t.dtlsParameters, ...(t.sctpParameters ? { sctpParameters: t.sctpParameters } : {}) };
      });
    });
    handle('connectTransport', async ({ transportId, dtlsParameters }, room) => {
      await inRoom(room).peer(me).connectTransport(transportId, dtlsParameters as never);
      return {};
    });
    handle('restartIce', async ({ transportId }, room) => ({ iceParameters: await inRoom(room).peer(me).restartIce(transportId) }));
    handle('produce', async ({ transportId, kind, rtpParameters, source, paused }, room) => {
      const p = await inRoom(room).peer(me).produce(transportId, { kind, rtpParameters: rtpParameters as never, appData: { source }, ...(paused !== undefined ? { paused } : {}) });
      return { producerId: p.id };
    });
    handle('produceData', async ({ transportId, sctpStreamParameters, label, protocol }, room) => {
      const d = await inRoom(room).peer(me).produceData(transportId, { sctpStreamParameters: sctpStreamParameters as never, label, protocol });
      return { dataProducerId: d.id };
    });
    handle('consume', async ({ producerId, rtpCapabilities, transportId }, room) => {
      const r = inRoom(room);
      const c = await r.peer(me).consume(producerId, rtpCapabilities as never, transportId ? { transportId } : {});
      if (r.participant(me)?.linkProfile === 'satellite' && c.kind === 'video' && c.type === 'simulcast') {
        await r.peer(me).setConsumerPreferredLayers(c.id, { spatialLayer: 0 });
      }
      return { id: c.id, producerId: c.producerId, peerId: c.producerPeerId, kind: c.kind, source: c.source, rtpParameters: c.rtpParameters, type: c.type, paused: c.paused };
    });
    handle('consumeData', async ({ dataProducerId, transportId }, room) => {
      const d = await inRoom(room).peer(me).consumeData(dataProducerId, transportId ? { transportId } : {});
      return { id: d.id, dataProducerId: d.dataProducerId, peerId: d.producerPeerId, sctpStreamParameters: d.sctpStreamParameters, label: d.label, protocol: d.protocol };
    });
    handle('resumeConsumer', async ({ consumerId }, room) => {
      await inRoom(room).peer(me).resumeConsumer(consumerId);
      return {};
    });
    handle('pauseConsumer', async ({ consumerId }, room) => {
      await inRoom(room).peer(me).pauseConsumer(consumerId);
      return {};
    });
    handle('setPreferredLayers', async ({ consumerId, spatialLayer, temporalLayer }, room) => {
      await inRoom(room).peer(me).setConsumerPreferredLayers(consumerId, { spatialLayer, ...(temporalLayer !== undefined ? { temporalLayer } : {}) });
      return {};
    });
    handle('pauseProducer', async ({ producerId }, room) => {
      const r = inRoom(room);
      await r.peer(me).pauseProducer(producerId);
      r.producerStateChanged(me, producerId, true);
      return {};
    });
    handle('resumeProducer', async ({ producerId }, room) => {
      const r = inRoom(room);
      await r.peer(me).resumeProducer(producerId);
      r.producerStateChanged(me, producerId, false);
      return {};
    });
    handle('closeProducer', ({ producerId }, room) => {
      inRoom(room).peer(me).closeProducer(producerId);
      return {};
    });
    handle('setLinkProfile', async ({ profile }, room) => {
      const r = inRoom(room);
      r.setLinkProfile(me, profile);
      const { maxIncomingBitrate } = LINK_PROFILES[profile];
      const participant = r.participant(me);
      if (participant?.state === 'admitted') {
        const peer = r.peer(me);
        await peer.setMaxIncomingBitrate(maxIncomingBitrate);
        // Satellite: hold every incoming video to the lowest simulcast layer; normal: let it climb again.
        await peer.setVideoConsumersSpatialLayer(profile === 'satellite' ? 0 : 2);
      }
      return { profile, maxIncomingBitrate };
    });
    handle('leave', (_request, room) => {
      if (room) {
        room.leave(me);
        this.#sockets.delete(`${room.identity.roomId}|${me}`);
      }
      socket.data.roomId = undefined;
      return {};
    });
    handle('end', async ({ report, title }, room) => {
      const done = socket.data.roomId ? this.#ended.get(socket.data.roomId) : undefined;
      if (done && (!room || room.closed)) return done.result;
      const r = inRoom(room);
      const result = await r.end(me, report, title);
      const now = Date.now();
      for (const [id, e] of this.#ended) if (now - e.at > 3_600_000) this.#ended.delete(id);
      this.#ended.set(r.identity.roomId, { result, at: now });
      return result;
    });

    socket.on('disconnect', () => {
      const roomId = socket.data.roomId;
      if (!roomId) return;
      if (this.#sockets.get(`${roomId}|${me}`) !== socket.id) return;
      this.#rooms.get(roomId)?.disconnected(me);
    });
  }

  async #open(claims: { roomId: string; kind: ConsultationRoom['identity']['kind']; basedOn: string; patientId: string }): Promise<ConsultationRoom> {
    const existing = this.#rooms.get(claims.roomId);
    if (existing && !existing.closed) return existing;
    const opening = this.#opening.get(claims.roomId);
    if (opening) return opening;
    const promise = (async () => {
      const media = await this.#options.registry.openRoom(claims.roomId);
      const notify: Notify = (accountId, event, payload) => {
        const sid = this.#sockets.get(`${claims.roomId}|${accountId}`);
        const socket = sid ? this.namespace.sockets.get(sid) : undefined;
        (socket as unknown as { emit(event: string, payload: unknown): void } | undefined)?.emit(event, payload);
      };
      const room: ConsultationRoom = new ConsultationRoom({
        identity: { roomId: claims.roomId, kind: claims.kind, basedOn: claims.basedOn, patientId: claims.patientId },
        media,
        notify,
        graceMs: this.#options.graceMs ?? 60_000,
        finish: (session) => storeSessionRecord(this.#options.store, session),
        onClosed: () => {
          if (this.#rooms.get(claims.roomId) === room) this.#rooms.delete(claims.roomId);
          for (const key of [...this.#sockets.keys()]) if (key.startsWith(`${claims.roomId}|`)) this.#sockets.delete(key);
        },
      });
      this.#rooms.set(claims.roomId, room);
      return room;
    })().finally(() => this.#opening.delete(claims.roomId));
    this.#opening.set(claims.roomId, promise);
    return promise;
  }

  async #audit(socket: RoomSocket, basedOn: string, patientId: string, description: string): Promise<void> {
    await this.#options.store.repo.recordAuditEvent(
      auditEvent(socket.data.access, { interaction: 'operation', resources: [basedOn], patientIds: [patientId], outcome: 'success', description }),
    );
  }
}
