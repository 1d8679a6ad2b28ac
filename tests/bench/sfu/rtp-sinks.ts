import dgram from 'node:dgram';
import type { AddressInfo } from 'node:net';

/**
 * UDP sockets standing in for the receivers of mediasoup's PlainTransport consumers: they count
 * RTP packets and bytes per SSRC (each consumer has its own) and drop the payload. Several sockets
 * share the load so that no single kernel buffer overflows before mediasoup does.
 */
export class RtpSinks {
  readonly ports: readonly number[];
  readonly #sockets: dgram.Socket[];
  readonly #slots = new Map<number, number>();
  #packets = new Float64Array(1024);
  #bytes = new Float64Array(1024);
  #next = 0;
  /** RTCP (sender reports) and RTP of SSRCs nobody registered. */
  rtcp = 0;
  unknown = 0;

  static async open(count: number): Promise<RtpSinks> {
    const sockets = await Promise.all(
      Array.from({ length: count }, async () => {
        const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
        await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
        return socket;
      }),
    );
    return new RtpSinks(sockets);
  }

  private constructor(sockets: dgram.Socket[]) {
    this.#sockets = sockets;
    this.ports = sockets.map((socket) => (socket.address() as AddressInfo).port);
    for (const socket of sockets) socket.on('message', (message) => this.#count(message));
  }

  /** The sink port for the n-th receiving transport (round robin). */
  portFor(n: number): number {
    return this.ports[n % this.ports.length]!;
  }

  /** Starts counting packets of this SSRC; returns the counter's slot. */
  watch(ssrc: number): number {
    const known = this.#slots.get(ssrc >>> 0);
    if (known !== undefined) return known;
    const slot = this.#next;
    this.#next += 1;
    if (slot >= this.#packets.length) {
      const packets = new Float64Array(this.#packets.length * 2);
      packets.set(this.#packets);
      this.#packets = packets;
      const bytes = new Float64Array(this.#bytes.length * 2);
      bytes.set(this.#bytes);
      this.#bytes = bytes;
    }
    this.#slots.set(ssrc >>> 0, slot);
    return slot;
  }

  packets(slot: number): number {
    return this.#packets[slot] ?? 0;
  }

  bytes(slot: number): number {
    return this.#bytes[slot] ?? 0;
  }

  close(): void {
    for (const socket of this.#sockets) socket.close();
  }

  #count(message: Buffer): void {
    if (message.length < 12) return;
    const second = message[1]!;
    // RTCP packet types 192-223 occupy the second byte where RTP has marker + payload type (RFC 5761).
    if (second >= 192 && second <= 223) {
      this.rtcp += 1;
      return;
    }
    const slot = this.#slots.get(message.readUInt32BE(8));
    if (slot === undefined) {
      this.unknown += 1;
      return;
    }
    this.#packets[slot]! += 1;
    this.#bytes[slot]! += message.length;
  }
}
