import { createWorker } from 'mediasoup';
import type {
  Consumer,
  MediaKind,
  PlainTransport,
  Producer,
  Router,
  RtpParameters,
  Transport,
  Worker,
} from 'mediasoup/lib/types.js';
import type { Peer } from '../../../sfu/peer.js';
import { RoomRegistry } from '../../../sfu/room-registry.js';
import { DEFAULT_MEDIA_CODECS, WorkerPool } from '../../../sfu/worker-pool.js';
import { AUDIO_PAYLOAD_TYPE, VIDEO_PAYLOAD_TYPE, type Recordings } from './rtp-recording.js';
import type { RtpReplayer, StreamCopy } from './rtp-replayer.js';
import type { RtpSinks } from './rtp-sinks.js';

/** One consumer's stream: what was sent for its producer, and what reached its sink. */
export interface Forwarding {
  readonly kind: MediaKind;
  readonly copy: StreamCopy;
  readonly sinkSlot: number;
  readonly producer: Producer;
  readonly consumer: Consumer;
}

/** A worker forwarding media, grown step by step and measured between steps. */
export interface Topology {
  readonly label: string;
  readonly workerPid: number;
  readonly forwardings: readonly Forwarding[];
  /** Rooms of three (0 for the fan-out). */
  readonly rooms: number;
  close(): Promise<void>;
}

const LISTEN_IP = '127.0.0.1';
/** The bench keeps its workers apart from the test suites' port ranges (40000-51999). */
export const BENCH_RTC_PORTS = { rtcMinPort: 20000, rtcMaxPort: 29999 } as const;

let nextSsrc = 0x10000000;
function newSsrc(): number {
  nextSsrc += 1;
  return nextSsrc;
}

/** What ffmpeg's VP8 RTP output announces: payload type 101, one SSRC, NACK/PLI as a browser would. */
export function vp8RtpParameters(ssrc: number): RtpParameters {
  return {
    codecs: [
      {
        mimeType: 'video/VP8',
        clockRate: 90000,
        payloadType: VIDEO_PAYLOAD_TYPE,
        rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }],
      },
    ],
    encodings: [{ ssrc }],
    rtcp: { cname: `bench-${ssrc}`, reducedSize: true },
  };
}

/** What ffmpeg's Opus RTP output announces: payload type 100, stereo, one SSRC. */
export function opusRtpParameters(ssrc: number): RtpParameters {
  return {
    codecs: [
      {
        mimeType: 'audio/opus',
        clockRate: 48000,
        channels: 2,
        payloadType: AUDIO_PAYLOAD_TYPE,
        parameters: { 'sprop-stereo': 1 },
        rtcpFeedback: [],
      },
    ],
    encodings: [{ ssrc }],
    rtcp: { cname: `bench-${ssrc}`, reducedSize: true },
  };
}

function rtpParametersOf(kind: MediaKind, ssrc: number): RtpParameters {
  return kind === 'video' ? vp8RtpParameters(ssrc) : opusRtpParameters(ssrc);
}

function consumerSsrc(consumer: { rtpParameters: RtpParameters }): number {
  const ssrc = consumer.rtpParameters.encodings?.[0]?.ssrc;
  if (ssrc === undefined) throw new Error('consumer without an SSRC');
  return ssrc;
}

interface Media {
  recordings: Recordings;
  replayer: RtpReplayer;
  sinks: RtpSinks;
}

/**
 * The engine alone: one worker, one router, one VP8 and one Opus producer on a plain transport,
 * each fanned out to PlainTransport consumers (one transport each, as N separate receivers) —
 * half the consumers video, half audio, the same mix as rooms of three.
 */
export class BareFanout implements Topology {
  readonly label: string;
  readonly rooms = 0;
  readonly forwardings: Forwarding[] = [];
  readonly #worker: Worker;
  readonly #router: Router;
  readonly #media: Media;
  readonly #sources: Array<{ kind: MediaKind; producer: Producer; copy: StreamCopy }>;
  readonly #transports: Transport[] = [];

  static async create(media: Media, kinds: readonly MediaKind[]): Promise<BareFanout> {
    const worker = await createWorker({ logLevel: 'warn', ...BENCH_RTC_PORTS });
    const router = await worker.createRouter({ mediaCodecs: [...DEFAULT_MEDIA_CODECS] });
    const send = await router.createPlainTransport({ listenIp: LISTEN_IP, comedia: true, rtcpMux: true });
    const sources = [];
    for (const kind of kinds) {
      const ssrc = newSsrc();
      const producer = await send.produce({ kind, rtpParameters: rtpParametersOf(kind, ssrc) });
      const copy = media.replayer.add(kind === 'video' ? media.recordings.video : media.recordings.audio, ssrc, send.tuple.localPort);
      sources.push({ kind, producer, copy });
    }
    return new BareFanout(worker, router, media, sources);
  }

  private constructor(
    worker: Worker,
    router: Router,
    media: Media,
    sources: Array<{ kind: MediaKind; producer: Producer; copy: StreamCopy }>,
  ) {
    this.#worker = worker;
    this.#router = router;
    this.#media = media;
    this.#sources = sources;
    this.label = sources.length === 1 ? `bare fan-out (${sources[0]!.kind} only)` : 'bare fan-out';
  }

  get workerPid(): number {
    return this.#worker.pid;
  }

  /** Adds consumers, alternating between the sources, until there are `total`. */
  async growTo(total: number): Promise<void> {
    while (this.forwardings.length < total) {
      const source = this.#sources[this.forwardings.length % this.#sources.length]!;
      const transport: PlainTransport = await this.#router.createPlainTransport({
        listenIp: LISTEN_IP,
        comedia: false,
        rtcpMux: true,
      });
      this.#transports.push(transport);
      await transport.connect({ ip: LISTEN_IP, port: this.#media.sinks.portFor(this.#transports.length) });
      const consumer = await transport.consume({
        producerId: source.producer.id,
        rtpCapabilities: this.#router.rtpCapabilities,
      });
      this.forwardings.push({
        kind: source.kind,
        copy: source.copy,
        sinkSlot: this.#media.sinks.watch(consumerSsrc(consumer)),
        producer: source.producer,
        consumer,
      });
    }
  }

  async close(): Promise<void> {
    this.#media.replayer.remove(this.#sources.map((source) => source.copy));
    this.#worker.close();
  }
}

/**
 * Rooms of three on one worker, made with mediasoup calls only, doing what sfu/'s Peer does
 * (plain send transport with comedia, two producers; plain receive transport, four consumers
 * created paused then resumed): the engine's cost for the hub's very topology.
 */
export class EngineRooms implements Topology {
  readonly label = 'engine rooms of 3 (mediasoup API only)';
  readonly forwardings: Forwarding[] = [];
  readonly #worker: Worker;
  readonly #media: Media;
  readonly #copies: StreamCopy[] = [];
  #rooms = 0;
  #receivers = 0;

  static async create(media: Media): Promise<EngineRooms> {
    return new EngineRooms(await createWorker({ logLevel: 'warn', ...BENCH_RTC_PORTS }), media);
  }

  private constructor(worker: Worker, media: Media) {
    this.#worker = worker;
    this.#media = media;
  }

  get workerPid(): number {
    return this.#worker.pid;
  }

  get rooms(): number {
    return this.#rooms;
  }

  async growTo(rooms: number): Promise<void> {
    while (this.#rooms < rooms) {
      await this.#addRoom();
      this.#rooms += 1;
    }
  }

  async #addRoom(): Promise<void> {
    const router = await this.#worker.createRouter({ mediaCodecs: [...DEFAULT_MEDIA_CODECS] });
    const senders: Array<Array<{ kind: MediaKind; producer: Producer; copy: StreamCopy }>> = [];
    for (let p = 0; p < 3; p += 1) {
      const send = await router.createPlainTransport({ listenIp: LISTEN_IP, comedia: true, rtcpMux: true });
      const produced = [];
      for (const kind of ['audio', 'video'] as const) {
        const ssrc = newSsrc();
        const producer = await send.produce({ kind, rtpParameters: rtpParametersOf(kind, ssrc) });
        const recording = kind === 'video' ? this.#media.recordings.video : this.#media.recordings.audio;
        const copy = this.#media.replayer.add(recording, ssrc, send.tuple.localPort);
        this.#copies.push(copy);
        produced.push({ kind, producer, copy });
      }
      senders.push(produced);
    }
    for (let p = 0; p < 3; p += 1) {
      const recv = await router.createPlainTransport({ listenIp: LISTEN_IP, comedia: false, rtcpMux: true });
      this.#receivers += 1;
      await recv.connect({ ip: LISTEN_IP, port: this.#media.sinks.portFor(this.#receivers) });
      for (const [q, produced] of senders.entries()) {
        if (q === p) continue;
        for (const { kind, producer, copy } of produced) {
          const consumer = await recv.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities, paused: true });
          const sinkSlot = this.#media.sinks.watch(consumerSsrc(consumer));
          await consumer.resume();
          this.forwardings.push({ kind, copy, producer, consumer, sinkSlot });
        }
      }
    }
  }

  async close(): Promise<void> {
    this.#media.replayer.remove(this.#copies);
    this.#worker.close();
  }
}

/**
 * Rooms of three through the hub's own objects, as signaling drives them: WorkerPool (one
 * worker), RoomRegistry.createRoom, Room.join, Peer.createPlainTransport/connectPlainTransport,
 * Peer.produce, Peer.consume + Peer.resumeConsumer. Peer exposes ids, not mediasoup objects, and
 * no RTP statistics: the producers and consumers are found through mediasoup's observer events
 * only to read their packet counts.
 */
export class HubRooms implements Topology {
  readonly label = 'hub rooms of 3 (sfu/)';
  readonly forwardings: Forwarding[] = [];
  readonly #pool: WorkerPool;
  readonly #registry: RoomRegistry;
  readonly #media: Media;
  readonly #copies: StreamCopy[] = [];
  readonly #producers = new Map<string, Producer>();
  readonly #consumers = new Map<string, Consumer>();
  #rooms = 0;
  #receivers = 0;

  static async create(media: Media): Promise<HubRooms> {
    const pool = await WorkerPool.create({
      numWorkers: 1,
      ...BENCH_RTC_PORTS,
      logger: { info: () => {}, error: (details, message) => console.error(`[sfu] ${message}`, details) },
    });
    return new HubRooms(pool, media);
  }

  private constructor(pool: WorkerPool, media: Media) {
    this.#pool = pool;
    this.#registry = new RoomRegistry({ pool });
    this.#media = media;
    for (const worker of pool.workers) {
      worker.observer.on('newrouter', (router: Router) =>
        router.observer.on('newtransport', (transport: Transport) => {
          transport.observer.on('newproducer', (producer: Producer) => this.#producers.set(producer.id, producer));
          transport.observer.on('newconsumer', (consumer: Consumer) => this.#consumers.set(consumer.id, consumer));
        }),
      );
    }
  }

  get workerPid(): number {
    const pid = this.#pool.workers[0]?.pid;
    if (pid === undefined) throw new Error('the pool has no worker left');
    return pid;
  }

  get rooms(): number {
    return this.#rooms;
  }

  async growTo(rooms: number): Promise<void> {
    while (this.#rooms < rooms) {
      await this.#addRoom(`capacity-${this.#rooms + 1}`);
      this.#rooms += 1;
    }
  }

  async #addRoom(roomId: string): Promise<void> {
    const room = await this.#registry.createRoom(roomId);
    const peers: Array<{ peer: Peer; produced: Array<{ kind: MediaKind; producerId: string; copy: StreamCopy }> }> = [];
    for (let p = 0; p < 3; p += 1) {
      const peer = room.join(`${roomId}-peer-${p + 1}`, { displayName: `Participant ${p + 1}`, role: 'participant' });
      const send = await peer.createPlainTransport({ direction: 'send', comedia: true });
      const produced = [];
      for (const kind of ['audio', 'video'] as const) {
        const ssrc = newSsrc();
        const params = await peer.produce(send.id, {
          kind,
          rtpParameters: rtpParametersOf(kind, ssrc),
          appData: { source: kind === 'video' ? 'webcam' : 'mic' },
        });
        const recording = kind === 'video' ? this.#media.recordings.video : this.#media.recordings.audio;
        const copy = this.#media.replayer.add(recording, ssrc, send.port);
        this.#copies.push(copy);
        produced.push({ kind, producerId: params.id, copy });
      }
      peers.push({ peer, produced });
    }
    for (const [p, { peer }] of peers.entries()) {
      const recv = await peer.createPlainTransport({ direction: 'recv' });
      this.#receivers += 1;
      await peer.connectPlainTransport(recv.id, { ip: LISTEN_IP, port: this.#media.sinks.portFor(this.#receivers) });
      for (const [q, { produced }] of peers.entries()) {
        if (q === p) continue;
        for (const { kind, producerId, copy } of produced) {
          const params = await peer.consume(producerId, room.rtpCapabilities, { transportId: recv.id });
          const sinkSlot = this.#media.sinks.watch(consumerSsrc(params));
          await peer.resumeConsumer(params.id);
          this.forwardings.push({
            kind,
            copy,
            producer: this.#found(this.#producers, producerId),
            consumer: this.#found(this.#consumers, params.id),
            sinkSlot,
          });
        }
      }
    }
  }

  #found<T>(map: Map<string, T>, id: string): T {
    const object = map.get(id);
    if (!object) throw new Error(`mediasoup object ${id} was not seen through the observer`);
    return object;
  }

  async close(): Promise<void> {
    this.#media.replayer.remove(this.#copies);
    this.#registry.close();
    this.#pool.close();
  }
}
