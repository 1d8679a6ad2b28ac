import dgram from 'node:dgram';
import { performance } from 'node:perf_hooks';
import type { RtpRecording } from './rtp-recording.js';

/** One producer's copy of a recording: its own SSRC, sequence numbers, timestamps and start phase. */
export interface StreamCopy {
  readonly kind: 'audio' | 'video';
  readonly ssrc: number;
  readonly port: number;
  /** Packets and bytes sent so far. */
  sent: number;
  sentBytes: number;
  /** Packets never sent because the bench process fell more than 500 ms behind: a saturated load generator. */
  skipped: number;
}

interface Cursor extends StreamCopy {
  readonly recording: RtpRecording;
  /** performance.now() (ms) at which loop 0 started; before now for a copy starting mid-loop. */
  origin: number;
  readonly seqBase: number;
  readonly tsBase: number;
  readonly pictureIdBase: number;
  loop: number;
  index: number;
  /** performance.now() (ms) at which packet `index` of loop `loop` is due. */
  due: number;
}

const GOLDEN = (Math.sqrt(5) - 1) / 2;

/**
 * Replays in-memory recordings to many mediasoup PlainTransports at once, from one UDP socket:
 * each producer gets its own copy, rewritten to its own SSRC (bytes 8-11), with sequence numbers,
 * timestamps and VP8 picture ids that keep increasing across loops, as a live encoder's would.
 *
 * Copies start at spread-out points of the loop (golden-ratio phases), so that a hundred producers
 * do not send their key frames, or their frames at all, in the same millisecond: real senders are
 * not synchronised, and a synchronised burst would measure socket buffers rather than mediasoup.
 */
export class RtpReplayer {
  readonly #socket: dgram.Socket;
  readonly #host: string;
  readonly #cursors: Cursor[] = [];
  #timer: NodeJS.Timeout | undefined;
  #phase = 0;
  #pausedAt: number | undefined;
  /** How late packets left, in ms, since the last call to lateness(). */
  #lateMax = 0;
  #lateSum = 0;
  #lateCount = 0;

  static async open(host = '127.0.0.1'): Promise<RtpReplayer> {
    const socket = dgram.createSocket({ type: 'udp4', sendBufferSize: 4 * 1024 * 1024 });
    await new Promise<void>((resolve) => socket.bind(0, host, resolve));
    return new RtpReplayer(socket, host);
  }

  private constructor(socket: dgram.Socket, host: string) {
    this.#socket = socket;
    this.#host = host;
    // mediasoup answers with RTCP (receiver reports, PLI): read and dropped, as ffmpeg would.
    socket.on('message', () => {});
  }

  get copies(): readonly StreamCopy[] {
    return this.#cursors;
  }

  /** Starts sending a copy of `recording` with this SSRC to 127.0.0.1:port. */
  add(recording: RtpRecording, ssrc: number, port: number): StreamCopy {
    this.#phase = (this.#phase + GOLDEN) % 1;
    const offsetSeconds = this.#phase * recording.periodSeconds;
    const now = performance.now();
    let index = recording.packets.findIndex((packet) => packet.at >= offsetSeconds);
    if (index < 0) index = 0;
    const origin = now - offsetSeconds * 1000;
    const cursor: Cursor = {
      kind: recording.kind,
      ssrc: ssrc >>> 0,
      port,
      sent: 0,
      sentBytes: 0,
      skipped: 0,
      recording,
      origin,
      seqBase: Math.floor(Math.random() * 0x10000),
      tsBase: Math.floor(Math.random() * 0x100000000),
      pictureIdBase: Math.floor(Math.random() * 0x8000),
      loop: 0,
      index,
      due: origin + (recording.packets[index]?.at ?? 0) * 1000,
    };
    this.#cursors.push(cursor);
    return cursor;
  }

  /** Stops sending to these copies (their producers are about to close). */
  remove(copies: readonly StreamCopy[]): void {
    const gone = new Set(copies);
    for (let i = this.#cursors.length - 1; i >= 0; i -= 1) if (gone.has(this.#cursors[i]!)) this.#cursors.splice(i, 1);
  }

  /**
   * Stops sending without losing the place: resume() shifts every copy by the time paused, so
   * nothing is skipped and nothing bursts. The benchmark pauses to let in-flight packets drain
   * before it counts them.
   */
  pause(): void {
    this.#pausedAt ??= performance.now();
  }

  resume(): void {
    if (this.#pausedAt === undefined) return;
    const shift = performance.now() - this.#pausedAt;
    this.#pausedAt = undefined;
    for (const cursor of this.#cursors) {
      cursor.origin += shift;
      cursor.due += shift;
    }
  }

  /** Mean and worst delay of packets behind their due time since the last call, in ms. */
  lateness(): { meanMs: number; maxMs: number } {
    const result = { meanMs: this.#lateCount > 0 ? this.#lateSum / this.#lateCount : 0, maxMs: this.#lateMax };
    this.#lateMax = 0;
    this.#lateSum = 0;
    this.#lateCount = 0;
    return result;
  }

  start(): void {
    if (this.#timer) return;
    // 1 ms ticks: every packet leaves within about a millisecond of its due time, without a busy loop.
    this.#timer = setInterval(() => this.#tick(), 1);
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#cursors.length = 0;
    this.#socket.close();
  }

  #tick(): void {
    if (this.#pausedAt !== undefined) return;
    const now = performance.now();
    for (const cursor of this.#cursors) {
      // A copy that fell far behind (the process stalled) skips ahead rather than bursting.
      if (now - cursor.due > 500) this.#skipTo(cursor, now);
      if (cursor.due > now) continue;
      const late = now - cursor.due;
      this.#lateSum += late;
      this.#lateCount += 1;
      if (late > this.#lateMax) this.#lateMax = late;
      while (cursor.due <= now) this.#send(cursor);
    }
  }

  #send(cursor: Cursor): void {
    const { recording } = cursor;
    const packet = recording.packets[cursor.index]!;
    const loops = cursor.loop;
    const data = Buffer.allocUnsafe(packet.data.length);
    packet.data.copy(data);
    data.writeUInt16BE((cursor.seqBase + loops * recording.packets.length + cursor.index) & 0xffff, 2);
    data.writeUInt32BE((cursor.tsBase + loops * recording.periodTicks + packet.tsOffset) >>> 0, 4);
    data.writeUInt32BE(cursor.ssrc, 8);
    if (packet.pictureIdOffset >= 0) {
      const id = cursor.pictureIdBase + loops * recording.framesPerPeriod + packet.pictureId;
      if (packet.pictureIdBits === 15) data.writeUInt16BE(0x8000 | (id & 0x7fff), packet.pictureIdOffset);
      else data[packet.pictureIdOffset] = id & 0x7f;
    }
    this.#socket.send(data, cursor.port, this.#host);
    cursor.sent += 1;
    cursor.sentBytes += data.length;
    this.#advance(cursor);
  }

  #advance(cursor: Cursor): void {
    const { recording } = cursor;
    cursor.index += 1;
    if (cursor.index >= recording.packets.length) {
      cursor.index = 0;
      cursor.loop += 1;
    }
    const at = cursor.loop * recording.periodSeconds + recording.packets[cursor.index]!.at;
    cursor.due = cursor.origin + at * 1000;
  }

  #skipTo(cursor: Cursor, now: number): void {
    while (cursor.due < now) {
      cursor.skipped += 1;
      this.#advance(cursor);
    }
  }
}
