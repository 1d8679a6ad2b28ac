import type { Server as HttpServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import type { Logger } from 'pino';
import { createClient } from 'redis';
import { Server, type Socket } from 'socket.io';
import { socketAuthenticate, type AuthenticatedSocketData } from './auth/middleware.js';
import type { Principal } from './auth/principal.js';
import type { Auth } from './auth/services.js';
import { isAllowedOrigin } from './cors.js';
import type { RoomRegistry } from '../sfu/room-registry.js';
import type { FhirStore } from '../fhir/store.js';
import type { QueueEntry } from './rooms/routes.js';
import { RoomSignaling } from './rooms/signaling.js';
import type { RoomTickets } from './rooms/tickets.js';

export interface ClientToServerEvents {
  /** Who the hub sees behind this connection. */
  whoami(ack: (principal: Principal) => void): void;
}
export interface ServerToClientEvents {
  /** To the assisting organization (regulators, SAMU): a teleassistance call came in; emergencies come first. */
  teleassistanceCall(entry: QueueEntry): void;
}
export interface InterServerEvents {}

export type HubSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, AuthenticatedSocketData>;
export type HubIo = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, AuthenticatedSocketData>;

/** Rooms every connection joins, so that notifications can address a person, an organization or a role on any node. */
export const rooms = {
  account: (id: string) => `account:${id}`,
  organization: (id: string) => `organization:${id}`,
  role: (role: string) => `role:${role}`,
  practitioner: (id: string) => `practitioner:${id}`,
  practitionerRole: (id: string) => `practitioner-role:${id}`,
};

export interface RealtimeOptions {
  auth: Pick<Auth, 'keyRing' | 'accounts'>;
  corsOrigins: readonly string[];
  /** Set: fan out through Redis so that several hub nodes share rooms. Unset: in-process. */
  redisUrl?: string;
  logger: Logger;
  /** Consultation and teleassistance rooms (namespace /rooms); without them the namespace does not exist. */
  rooms?: { registry: RoomRegistry; tickets: RoomTickets; store: FhirStore; graceMs?: number };
}

/**
 * The hub's socket.io server, on the same HTTP server as the API. Only authenticated professionals
 * connect (access token in the handshake); each joins its account, organization and role rooms.
 */
export class Realtime {
  private constructor(
    readonly io: HubIo,
    private readonly closeAdapter: () => Promise<void>,
    readonly rooms: RoomSignaling | undefined,
  ) {}

  static async attach(server: HttpServer, options: RealtimeOptions): Promise<Realtime> {
    const io: HubIo = new Server(server, {
      // WebSockets are not subject to CORS: the origin is checked at the handshake for every transport.
      allowRequest: (req, callback) => callback(null, isAllowedOrigin(req.headers.origin, options.corsOrigins, req.headers.host)),
      cors: { origin: [...options.corsOrigins] },
    });
    let closeAdapter = async () => {};
    if (options.redisUrl) {
      const pub = createClient({ url: options.redisUrl });
      const sub = pub.duplicate();
      pub.on('error', (err: unknown) => options.logger.error({ err }, 'Redis (socket.io publish) failed'));
      sub.on('error', (err: unknown) => options.logger.error({ err }, 'Redis (socket.io subscribe) failed'));
      await Promise.all([pub.connect(), sub.connect()]);
      io.adapter(createAdapter(pub, sub));
      closeAdapter = async () => {
        await Promise.all([pub.close(), sub.close()]);
      };
    }
    io.use(socketAuthenticate(options.auth.keyRing, options.auth.accounts));
    io.on('connection', (socket: HubSocket) => {
      const { principal } = socket.data;
      void socket.join([
        rooms.account(principal.accountId),
        rooms.role(principal.role),
        ...(principal.organizationId ? [rooms.organization(principal.organizationId)] : []),
        ...(principal.practitionerId ? [rooms.practitioner(principal.practitionerId)] : []),
        ...(principal.practitionerRoleId ? [rooms.practitionerRole(principal.practitionerRoleId)] : []),
      ]);
      socket.on('whoami', (ack) => {
        if (typeof ack === 'function') ack(principal);
      });
    });
    const signaling = options.rooms
      ? new RoomSignaling(io as unknown as Server, { auth: options.auth, logger: options.logger, ...options.rooms })
      : undefined;
    return new Realtime(io, closeAdapter, signaling);
  }

  /**
   * A teleassistance call for whoever it is addressed to (`Organization/…`, `Practitioner/…`,
   * `PractitionerRole/…`): their connected screens update the queue (on every node, through Redis).
   */
  teleassistanceCall(performer: string, entry: QueueEntry): void {
    const [type, id] = performer.split('/');
    if (!id) return;
    const room = type === 'Organization' ? rooms.organization(id) : type === 'Practitioner' ? rooms.practitioner(id) : type === 'PractitionerRole' ? rooms.practitionerRole(id) : undefined;
    if (room) this.io.to(room).emit('teleassistanceCall', entry);
  }

  /** Disconnects every client and closes socket.io, then Redis. socket.io also closes the HTTP server it is attached to. */
  async close(): Promise<void> {
    this.rooms?.close();
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
    await this.closeAdapter();
  }
}
