/**
 * The socket.io side of a room (server/rooms/protocol.ts): one connection to the `/rooms`
 * namespace, authenticated with the access token (fresh at every reconnection), and requests
 * that resolve with the `data` of their Ack or reject with a RoomRequestError carrying its code.
 */
import { io, type Socket } from 'socket.io-client';
import type { Ack, ClientToServer, RequestName, RequestOf, Responses, ServerToClient } from '../../../../server/rooms/protocol.js';

export class RoomRequestError extends Error {
  constructor(
    readonly request: string,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'RoomRequestError';
  }
}

/** How long a request may wait for its ack: a satellite round trip is ~600 ms, a mediasoup call a few ms. */
const REQUEST_TIMEOUT_MS = 15_000;

export type RoomSocket = Socket<ServerToClient, ClientToServer>;

/** The untyped emit-with-ack the typed socket wraps (socket.io's generic types do not survive a request name chosen at run time). */
type RawTimedEmit = (name: string, body: unknown, ack: (err: Error | null, response: unknown) => void) => void;

export class Signaling {
  readonly socket: RoomSocket;

  constructor(accessToken: () => Promise<string>) {
    this.socket = io('/rooms', {
      auth: (cb: (data: object) => void) => {
        accessToken().then(
          (token) => cb({ token }),
          () => cb({}),
        );
      },
      // WebSocket first (one round trip less on a long link), long polling where a proxy blocks it.
      transports: ['websocket', 'polling'],
      tryAllTransports: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5_000,
      autoConnect: false,
    });
  }

  connect(): void {
    this.socket.connect();
  }

  async request<N extends RequestName>(name: N, body: RequestOf<N>, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Responses[N]> {
    const timed = this.socket.timeout(timeoutMs);
    const emit = timed.emit.bind(timed) as unknown as RawTimedEmit;
    return new Promise<Responses[N]>((resolve, reject) => {
      emit(name, body, (err, response) => {
        if (err) {
          reject(new RoomRequestError(name, 'timeout', `${name}: no answer from the hub within ${Math.round(timeoutMs / 1000)} s`));
          return;
        }
        const ack = response as Ack<Responses[N]> | undefined;
        if (ack && ack.ok === true) resolve(ack.data);
        else if (ack && ack.ok === false) reject(new RoomRequestError(name, ack.error.code, ack.error.message, ack.error.field));
        else reject(new RoomRequestError(name, 'bad-response', `${name}: the hub answered something that is not an Ack`));
      });
    });
  }

  close(): void {
    this.socket.removeAllListeners();
    this.socket.disconnect();
  }
}
