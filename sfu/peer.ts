import { EventEmitter } from 'node:events';
import net from 'node:net';
import type {
  Consumer,
  ConsumerLayers,
  ConsumerScore,
  ConsumerType,
  DataConsumer,
  DataProducer,
  DtlsParameters,
  DtlsState,
  IceCandidate,
  IceParameters,
  IceState,
  MediaKind,
  PlainTransport,
  Producer,
  ProducerScore,
  ProducerType,
  Router,
  RtpCapabilities,
  RtpParameters,
  SctpParameters,
  SctpStreamParameters,
  WebRtcTransport,
} from 'mediasoup/lib/types.js';
import { fromMediasoup, SfuError, type SfuErrorCode } from './errors.js';
import type { ObjectCounts } from './object-counts.js';
import type { TransportSettings } from './transport-settings.js';
import {
  copyParameters,
  optionalBoolean,
  optionalInteger,
  optionalLabel,
  requireId,
  requireInteger,
  requireOneOf,
  requireRecord,
} from './validation.js';

export const TRANSPORT_DIRECTIONS = ['send', 'recv'] as const;

/** Tracks one peer may send at once: microphone, camera, screen (and its sound), with room to spare. */
export const MAX_PRODUCERS_PER_PEER = 8;
/** A client sends media on one transport and receives on another, as mediasoup-client does. */
export type TransportDirection = (typeof TRANSPORT_DIRECTIONS)[number];

export const MEDIA_SOURCES = ['mic', 'webcam', 'screen'] as const;
/** What a producer carries, as the person sees it. */
export type MediaSource = (typeof MEDIA_SOURCES)[number];

const MEDIA_KINDS = ['audio', 'video'] as const satisfies readonly MediaKind[];
const DTLS_ROLES = ['auto', 'client', 'server'] as const;

/**
 * The peer's WebRTC connectivity, over all its WebRTC transports: 'failed' if one failed DTLS,
 * else 'disconnected' if one lost ICE, else 'connected' if one is connected, else 'new'.
 */
export type PeerConnectionState = 'new' | 'connected' | 'disconnected' | 'failed';

export type PeerCloseReason = 'left' | 'room-closed';

/** What mediasoup-client's `device.createSendTransport()` / `createRecvTransport()` need. */
export interface WebRtcTransportParams {
  id: string;
  direction: TransportDirection;
  iceParameters: IceParameters;
  iceCandidates: IceCandidate[];
  dtlsParameters: DtlsParameters;
  sctpParameters?: SctpParameters;
}

/** Where a plain RTP sender (gateway, benchmark) sends, or a plain receiver is fed from. */
export interface PlainTransportParams {
  id: string;
  direction: TransportDirection;
  ip: string;
  port: number;
  /** Set only without RTCP multiplexing. */
  rtcpPort?: number;
}

export interface ProducerParams {
  id: string;
  peerId: string;
  kind: MediaKind;
  source: MediaSource;
  type: ProducerType;
  paused: boolean;
}

/** What mediasoup-client's `recvTransport.consume()` needs, and what to show. */
export interface ConsumerParams {
  id: string;
  producerId: string;
  producerPeerId: string;
  source: MediaSource;
  kind: MediaKind;
  rtpParameters: RtpParameters;
  type: ConsumerType;
  /** Always true: the client resumes (resumeConsumer) once its side is ready, so no early packet is lost. */
  paused: boolean;
  producerPaused: boolean;
}

export interface DataProducerParams {
  id: string;
  peerId: string;
  label: string;
  protocol: string;
}

/** What mediasoup-client's `recvTransport.consumeData()` needs. */
export interface DataConsumerParams {
  id: string;
  dataProducerId: string;
  producerPeerId: string;
  label: string;
  protocol: string;
  sctpStreamParameters?: SctpStreamParameters;
}

export interface PeerInfo {
  id: string;
  displayName: string;
  role: string;
  joinedAt: Date;
  producers: ProducerParams[];
  dataProducers: DataProducerParams[];
}

export interface CreateWebRtcTransportOptions {
  direction: TransportDirection;
  /** Open SCTP as well, for DataChannels (live vitals). */
  sctp?: boolean;
}

export interface CreatePlainTransportOptions {
  direction: TransportDirection;
  /** Learn the remote address from the first packet received (a sender behind NAT). Default false. */
  comedia?: boolean;
  /** RTP and RTCP on one port. Default true. */
  rtcpMux?: boolean;
}

export interface PlainRemoteAddress {
  ip: string;
  port: number;
  rtcpPort?: number;
}

export interface ProduceOptions {
  kind: MediaKind;
  rtpParameters: RtpParameters;
  appData: { source: MediaSource };
  paused?: boolean;
}

export interface ConsumeOptions {
  /** The receiving transport; may be left out when the peer has exactly one. */
  transportId?: string;
}

export interface ProduceDataOptions {
  sctpStreamParameters: SctpStreamParameters;
  label?: string;
  protocol?: string;
}

export interface PeerEvents {
  /** One of this peer's consumers closed because its producer closed (another peer stopped it or left). */
  consumerclosed: [event: { consumerId: string; producerId: string }];
  /** The producer behind one of this peer's consumers paused. */
  consumerpaused: [event: { consumerId: string }];
  /** The producer behind one of this peer's consumers resumed. */
  consumerresumed: [event: { consumerId: string }];
  consumerlayerschange: [event: { consumerId: string; layers: ConsumerLayers | undefined }];
  consumerscore: [event: { consumerId: string; score: ConsumerScore }];
  producerscore: [event: { producerId: string; score: ProducerScore[] }];
  /** One of this peer's data consumers closed because its data producer closed. */
  dataconsumerclosed: [event: { dataConsumerId: string; dataProducerId: string }];
  transportstatechange: [
    event: { transportId: string; direction: TransportDirection; iceState: IceState; dtlsState: DtlsState },
  ];
  /**
   * The peer's connectivity changed. 'disconnected' closes nothing here: a satellite link drops
   * for seconds at a time and the client comes back with an ICE restart on the same transports.
   * Signaling starts its grace timer on 'disconnected', stops it on 'connected', and calls
   * room.leave() only when it runs out.
   */
  connectionstatechange: [state: PeerConnectionState];
  /**
   * The room's media server was replaced (its worker died): every transport, producer and
   * consumer of this peer is gone. The client creates its transports again and re-produces.
   */
  'reconnect-required': [event: { reason: 'media-server-restarted' }];
  closed: [reason: PeerCloseReason];
}

/** What a Peer needs from its room. Implemented by Room; nothing else creates peers. */
export interface PeerHost {
  readonly roomId: string;
  readonly settings: TransportSettings;
  /** Throws 'room-closed' once the room is closed. */
  assertOpen(): void;
  /** The room's router, after any rebuild in progress. */
  router(): Promise<Router>;
  findProducer(producerId: string): { producer: Producer; source: MediaSource; owner: Peer } | undefined;
  findDataProducer(dataProducerId: string): { dataProducer: DataProducer; owner: Peer } | undefined;
  /** The other peer owning an object with this id, if any. */
  ownerOf(objectId: string): Peer | undefined;
  producerOpened(producer: ProducerParams): void;
  producerClosed(owner: Peer, producerId: string): void;
  dataProducerOpened(dataProducer: DataProducerParams): void;
  dataProducerClosed(owner: Peer, dataProducerId: string): void;
  /** Receives the handles only the room may use. */
  register(peer: Peer, controls: PeerControls): void;
}

/** What a room does to its peers and a client cannot. */
export interface PeerControls {
  producer(producerId: string): { producer: Producer; source: MediaSource } | undefined;
  dataProducer(dataProducerId: string): DataProducer | undefined;
  owns(objectId: string): boolean;
  /** The room's router is gone: forget every transport (mediasoup has closed them), keep the identity. */
  dropMedia(): void;
  reconnectRequired(): void;
  close(reason: PeerCloseReason): void;
}

interface WebRtcEntry {
  type: 'webrtc';
  direction: TransportDirection;
  router: Router;
  transport: WebRtcTransport;
  iceState: IceState;
  dtlsState: DtlsState;
}

interface PlainEntry {
  type: 'plain';
  direction: TransportDirection;
  router: Router;
  transport: PlainTransport;
}

type TransportEntry = WebRtcEntry | PlainEntry;

interface OwnedProducer {
  producer: Producer;
  source: MediaSource;
}

interface OwnedConsumer {
  consumer: Consumer;
  producerPeerId: string;
  source: MediaSource;
}

interface OwnedDataConsumer {
  dataConsumer: DataConsumer;
  producerPeerId: string;
}

/** Anything mediasoup creates that can be closed again. */
interface Closable {
  readonly closed: boolean;
  close(): void;
}

function connectionStateOf(entries: Iterable<TransportEntry>): PeerConnectionState {
  const webRtc = [...entries].filter((entry): entry is WebRtcEntry => entry.type === 'webrtc');
  if (webRtc.some((entry) => entry.dtlsState === 'failed')) return 'failed';
  if (webRtc.some((entry) => entry.iceState === 'disconnected')) return 'disconnected';
  if (webRtc.some((entry) => entry.iceState === 'connected' || entry.iceState === 'completed')) return 'connected';
  return 'new';
}

/**
 * One participant of a room and every mediasoup object it owns: its transports and, on them, its
 * producers, consumers, data producers and data consumers. A peer only ever reaches its own
 * objects; an id of another peer's object is refused with 'not-owner'. Closing the peer closes
 * its transports, and mediasoup closes what lives on them.
 *
 * Created by Room.join(); arguments are checked as they come from a client.
 */
export class Peer extends EventEmitter<PeerEvents> {
  readonly id: string;
  readonly displayName: string;
  readonly role: string;
  readonly joinedAt = new Date();
  readonly #host: PeerHost;
  readonly #transports = new Map<string, TransportEntry>();
  readonly #producers = new Map<string, OwnedProducer>();
  readonly #consumers = new Map<string, OwnedConsumer>();
  readonly #dataProducers = new Map<string, DataProducer>();
  readonly #dataConsumers = new Map<string, OwnedDataConsumer>();
  /** Transports being created: they count against the limit before they exist. */
  #pendingTransports = 0;
  #connectionState: PeerConnectionState = 'new';
  #closed = false;

  constructor(host: PeerHost, profile: { id: string; displayName: string; role: string }) {
    super();
    this.#host = host;
    this.id = profile.id;
    this.displayName = profile.displayName;
    this.role = profile.role;
    host.register(this, {
      producer: (id) => this.#producers.get(id),
      dataProducer: (id) => this.#dataProducers.get(id),
      owns: (id) =>
        this.#transports.has(id) ||
        this.#producers.has(id) ||
        this.#consumers.has(id) ||
        this.#dataProducers.has(id) ||
        this.#dataConsumers.has(id),
      dropMedia: () => this.#dropMedia(),
      reconnectRequired: () => this.#emitIfOpen('reconnect-required', { reason: 'media-server-restarted' }),
      close: (reason) => this.#close(reason),
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  get connectionState(): PeerConnectionState {
    return this.#connectionState;
  }

  /** The roster entry other peers see, with what they can consume. */
  info(): PeerInfo {
    return {
      id: this.id,
      displayName: this.displayName,
      role: this.role,
      joinedAt: this.joinedAt,
      producers: [...this.#producers.values()].map(({ producer, source }) => this.#producerParams(producer, source)),
      dataProducers: [...this.#dataProducers.values()].map((dataProducer) => this.#dataProducerParams(dataProducer)),
    };
  }

  /** Objects this peer holds (routers belong to the room). */
  countObjects(): ObjectCounts {
    return {
      routers: 0,
      transports: this.#transports.size,
      producers: this.#producers.size,
      consumers: this.#consumers.size,
      dataProducers: this.#dataProducers.size,
      dataConsumers: this.#dataConsumers.size,
    };
  }

  // --- transports -------------------------------------------------------------------------

  async createWebRtcTransport(options: CreateWebRtcTransportOptions): Promise<WebRtcTransportParams> {
    this.#assertUsable();
    const input = requireRecord(options, 'options');
    const direction = requireOneOf(input.direction, TRANSPORT_DIRECTIONS, 'direction');
    const sctp = optionalBoolean(input.sctp, 'sctp') ?? false;
    return this.#withTransportSlot(async () => {
      const router = await this.#host.router();
      this.#assertUsable();
      const settings = this.#host.settings;
      let transport: WebRtcTransport;
      try {
        transport = await router.createWebRtcTransport({
          listenIps: settings.listenIps.map((listenIp) => ({ ...listenIp })),
          enableUdp: true,
          enableTcp: true,
          preferUdp: true,
          enableSctp: sctp,
          numSctpStreams: { ...settings.numSctpStreams },
          ...(settings.initialAvailableOutgoingBitrate !== undefined
            ? { initialAvailableOutgoingBitrate: settings.initialAvailableOutgoingBitrate }
            : {}),
          appData: { peerId: this.id, direction },
        });
      } catch (error) {
        throw this.#failed(error, router, 'options', 'creating a WebRTC transport');
      }
      this.#keepOrClose(transport, router, undefined, 'creating the transport');
      const entry: WebRtcEntry = {
        type: 'webrtc',
        direction,
        router,
        transport,
        iceState: transport.iceState,
        dtlsState: transport.dtlsState,
      };
      this.#adoptTransport(entry);
      if (settings.maxIncomingBitrate !== undefined) {
        // Without the cap the transport still works; a refusal here must not cost the peer its call.
        await transport.setMaxIncomingBitrate(settings.maxIncomingBitrate).catch(() => {});
        this.#keepOrClose(transport, router, undefined, 'capping the transport bitrate');
      }
      return {
        id: transport.id,
        direction,
        iceParameters: transport.iceParameters,
        iceCandidates: transport.iceCandidates,
        dtlsParameters: transport.dtlsParameters,
        ...(transport.sctpParameters ? { sctpParameters: transport.sctpParameters } : {}),
      };
    });
  }

  /** A plain RTP transport: for RTP gateways (SIP, carts without WebRTC) and the capacity benchmark. */
  async createPlainTransport(options: CreatePlainTransportOptions): Promise<PlainTransportParams> {
    this.#assertUsable();
    const input = requireRecord(options, 'options');
    const direction = requireOneOf(input.direction, TRANSPORT_DIRECTIONS, 'direction');
    const comedia = optionalBoolean(input.comedia, 'comedia') ?? false;
    const rtcpMux = optionalBoolean(input.rtcpMux, 'rtcpMux') ?? true;
    return this.#withTransportSlot(async () => {
      const router = await this.#host.router();
      this.#assertUsable();
      let transport: PlainTransport;
      try {
        transport = await router.createPlainTransport({
          listenIp: { ...this.#host.settings.plainListenIp },
          comedia,
          rtcpMux,
          appData: { peerId: this.id, direction },
        });
      } catch (error) {
        throw this.#failed(error, router, 'options', 'creating a plain transport');
      }
      this.#keepOrClose(transport, router, undefined, 'creating the transport');
      this.#adoptTransport({ type: 'plain', direction, router, transport });
      return {
        id: transport.id,
        direction,
        ip: transport.tuple.localIp,
        port: transport.tuple.localPort,
        ...(transport.rtcpTuple ? { rtcpPort: transport.rtcpTuple.localPort } : {}),
      };
    });
  }

  /** Completes DTLS with the client's parameters (mediasoup-client's transport 'connect' event). */
  async connectTransport(transportId: string, dtlsParameters: DtlsParameters): Promise<void> {
    const entry = this.#webRtcTransport(transportId, 'connectTransport');
    const input = requireRecord(dtlsParameters, 'dtlsParameters');
    const role = input.role === undefined ? undefined : requireOneOf(input.role, DTLS_ROLES, 'dtlsParameters.role');
    if (!Array.isArray(input.fingerprints) || input.fingerprints.length === 0) {
      throw new SfuError(
        'invalid-argument',
        'dtlsParameters.fingerprints must be a non-empty array',
        'dtlsParameters.fingerprints',
      );
    }
    const fingerprints = input.fingerprints.map((value: unknown, index) => {
      const field = `dtlsParameters.fingerprints[${index}]`;
      const fingerprint = requireRecord(value, field);
      if (typeof fingerprint.algorithm !== 'string' || typeof fingerprint.value !== 'string') {
        throw new SfuError('invalid-argument', `${field} must have a string algorithm and value`, field);
      }
      return { algorithm: fingerprint.algorithm, value: fingerprint.value };
    });
    try {
      await entry.transport.connect({ dtlsParameters: { ...(role ? { role } : {}), fingerprints } });
    } catch (error) {
      throw this.#failed(error, entry.router, 'dtlsParameters', 'connecting the transport');
    }
  }

  /** Tells a plain transport where to send (and, without comedia, where it receives from). */
  async connectPlainTransport(transportId: string, remote: PlainRemoteAddress): Promise<void> {
    const entry = this.#transport(transportId);
    if (entry.type !== 'plain') {
      throw new SfuError(
        'invalid-state',
        `transport '${entry.transport.id}' is a WebRTC transport; use connectTransport`,
        'transportId',
      );
    }
    const input = requireRecord(remote, 'remote');
    if (typeof input.ip !== 'string' || net.isIP(input.ip) === 0) {
      throw new SfuError('invalid-argument', 'remote.ip must be an IPv4 or IPv6 address', 'remote.ip');
    }
    const port = requireInteger(input.port, 'remote.port', 1, 65535);
    const rtcpPort = optionalInteger(input.rtcpPort, 'remote.rtcpPort', 1, 65535);
    try {
      await entry.transport.connect({ ip: input.ip, port, ...(rtcpPort !== undefined ? { rtcpPort } : {}) });
    } catch (error) {
      throw this.#failed(error, entry.router, 'remote', 'connecting the plain transport');
    }
  }

  /** New ICE credentials, for a client coming back after its network changed or dropped. */
  async restartIce(transportId: string): Promise<IceParameters> {
    const entry = this.#webRtcTransport(transportId, 'restartIce');
    try {
      return await entry.transport.restartIce();
    } catch (error) {
      throw this.#failed(error, entry.router, 'transportId', 'restarting ICE');
    }
  }

  /** Closes a transport and, with it, what this peer produces and consumes on it. */
  closeTransport(transportId: string): void {
    this.#transport(transportId).transport.close();
  }

  // --- media ------------------------------------------------------------------------------

  async produce(transportId: string, options: ProduceOptions): Promise<ProducerParams> {
    const entry = this.#transport(transportId);
    if (entry.direction !== 'send') {
      throw new SfuError(
        'invalid-argument',
        `transport '${entry.transport.id}' receives; produce on a 'send' transport`,
        'transportId',
      );
    }
    if (this.#producers.size >= MAX_PRODUCERS_PER_PEER) {
      throw new SfuError('limit-reached', `a peer sends at most ${MAX_PRODUCERS_PER_PEER} tracks at once; close one first`, 'transportId');
    }
    const input = requireRecord(options, 'options');
    const kind = requireOneOf(input.kind, MEDIA_KINDS, 'kind');
    const rtpParameters = copyParameters<RtpParameters>(input.rtpParameters, 'rtpParameters', ['codecs']);
    const appData = requireRecord(input.appData, 'appData');
    const source = requireOneOf(appData.source, MEDIA_SOURCES, 'appData.source');
    if ((source === 'mic' && kind !== 'audio') || (source === 'webcam' && kind !== 'video')) {
      throw new SfuError('invalid-argument', `appData.source '${source}' cannot carry ${kind}`, 'appData.source');
    }
    const paused = optionalBoolean(input.paused, 'paused') ?? false;
    let producer: Producer;
    try {
      producer = await entry.transport.produce({ kind, rtpParameters, paused, appData: { peerId: this.id, source } });
    } catch (error) {
      throw this.#failed(error, entry.router, 'rtpParameters', 'creating the producer');
    }
    this.#keepOrClose(producer, entry.router, entry, 'creating the producer');
    this.#producers.set(producer.id, { producer, source });
    producer.observer.once('close', () => {
      this.#producers.delete(producer.id);
      // When the router itself closed, the room is being rebuilt or closed: nobody is told per producer.
      if (!entry.router.closed) this.#host.producerClosed(this, producer.id);
    });
    producer.on('score', (score: ProducerScore[]) => this.#emitIfOpen('producerscore', { producerId: producer.id, score }));
    const params = this.#producerParams(producer, source);
    this.#host.producerOpened(params);
    return params;
  }

  async pauseProducer(producerId: string): Promise<void> {
    const { producer } = this.#owned(this.#producers, producerId, 'producerId', 'producer-not-found', 'producer');
    await producer.pause().catch((error: unknown) => {
      throw fromMediasoup(error, 'producerId', 'pausing the producer');
    });
  }

  async resumeProducer(producerId: string): Promise<void> {
    const { producer } = this.#owned(this.#producers, producerId, 'producerId', 'producer-not-found', 'producer');
    await producer.resume().catch((error: unknown) => {
      throw fromMediasoup(error, 'producerId', 'resuming the producer');
    });
  }

  /** Stops a producer; the consumers other peers have on it close, and their peers hear 'consumerclosed'. */
  closeProducer(producerId: string): void {
    this.#owned(this.#producers, producerId, 'producerId', 'producer-not-found', 'producer').producer.close();
  }

  /**
   * Receives another peer's producer. The consumer starts paused: the client resumes it
   * (resumeConsumer) once it has set up its side, so no first packet (nor key frame) is lost.
   */
  async consume(
    producerId: string,
    rtpCapabilities: RtpCapabilities,
    options: ConsumeOptions = {},
  ): Promise<ConsumerParams> {
    this.#assertUsable();
    const id = requireId(producerId, 'producerId');
    const capabilities = copyParameters<RtpCapabilities>(rtpCapabilities, 'rtpCapabilities', ['codecs']);
    const input = requireRecord(options, 'options');
    const entry = this.#receivingTransport(input.transportId, false);
    const found = this.#host.findProducer(id);
    if (!found) {
      throw new SfuError(
        'producer-not-found',
        `no producer '${id}' in room '${this.#host.roomId}'`,
        'producerId',
      );
    }
    const { owner, source } = found;
    // One consumer per producer and peer: a second one shows nothing new, and a client asking
    // for thousands would load the worker for every room on it.
    for (const { consumer } of this.#consumers.values()) {
      if (consumer.producerId === id && !consumer.closed) {
        throw new SfuError('invalid-state', `producer '${id}' is already consumed by consumer '${consumer.id}'`, 'producerId');
      }
    }
    if (!entry.router.canConsume({ producerId: id, rtpCapabilities: capabilities })) {
      throw new SfuError(
        'cannot-consume',
        `rtpCapabilities offer no codec able to receive producer '${id}'`,
        'rtpCapabilities',
      );
    }
    let consumer: Consumer;
    try {
      consumer = await entry.transport.consume({
        producerId: id,
        rtpCapabilities: capabilities,
        paused: true,
        appData: { peerId: this.id, producerPeerId: owner.id },
      });
    } catch (error) {
      throw this.#failed(error, entry.router, 'rtpCapabilities', 'creating the consumer');
    }
    this.#keepOrClose(consumer, entry.router, entry, 'creating the consumer');
    this.#consumers.set(consumer.id, { consumer, producerPeerId: owner.id, source });
    consumer.observer.once('close', () => this.#consumers.delete(consumer.id));
    consumer.on('producerclose', () => {
      this.#consumers.delete(consumer.id);
      this.#emitIfOpen('consumerclosed', { consumerId: consumer.id, producerId: id });
    });
    consumer.on('producerpause', () => this.#emitIfOpen('consumerpaused', { consumerId: consumer.id }));
    consumer.on('producerresume', () => this.#emitIfOpen('consumerresumed', { consumerId: consumer.id }));
    consumer.on('layerschange', (layers?: ConsumerLayers) =>
      this.#emitIfOpen('consumerlayerschange', { consumerId: consumer.id, layers }),
    );
    consumer.on('score', (score: ConsumerScore) => this.#emitIfOpen('consumerscore', { consumerId: consumer.id, score }));
    return {
      id: consumer.id,
      producerId: id,
      producerPeerId: owner.id,
      source,
      kind: consumer.kind,
      rtpParameters: consumer.rtpParameters,
      type: consumer.type,
      paused: consumer.paused,
      producerPaused: consumer.producerPaused,
    };
  }

  async resumeConsumer(consumerId: string): Promise<void> {
    const { consumer } = this.#owned(this.#consumers, consumerId, 'consumerId', 'consumer-not-found', 'consumer');
    await consumer.resume().catch((error: unknown) => {
      throw fromMediasoup(error, 'consumerId', 'resuming the consumer');
    });
  }

  async pauseConsumer(consumerId: string): Promise<void> {
    const { consumer } = this.#owned(this.#consumers, consumerId, 'consumerId', 'consumer-not-found', 'consumer');
    await consumer.pause().catch((error: unknown) => {
      throw fromMediasoup(error, 'consumerId', 'pausing the consumer');
    });
  }

  /** Picks the simulcast/SVC layer to receive: a low one over a satellite link. */
  async setConsumerPreferredLayers(consumerId: string, layers: ConsumerLayers): Promise<void> {
    const { consumer } = this.#owned(this.#consumers, consumerId, 'consumerId', 'consumer-not-found', 'consumer');
    const input = requireRecord(layers, 'layers');
    const spatialLayer = requireInteger(input.spatialLayer, 'layers.spatialLayer', 0, 15);
    const temporalLayer = optionalInteger(input.temporalLayer, 'layers.temporalLayer', 0, 15);
    if (consumer.type !== 'simulcast' && consumer.type !== 'svc') {
      throw new SfuError(
        'invalid-state',
        `consumer '${consumer.id}' is ${consumer.type}, without layers to choose from`,
        'consumerId',
      );
    }
    await consumer
      .setPreferredLayers({ spatialLayer, ...(temporalLayer !== undefined ? { temporalLayer } : {}) })
      .catch((error: unknown) => {
        throw fromMediasoup(error, 'layers', 'setting the preferred layers');
      });
  }

  /**
   * Caps what this peer may send to the hub, on each of its WebRTC send transports (a satellite
   * site: mediasoup's congestion control then asks the browser to stay below it).
   */
  async setMaxIncomingBitrate(bitrate: number): Promise<void> {
    const value = requireInteger(bitrate, 'bitrate', 10_000, 100_000_000);
    for (const entry of this.#transports.values()) {
      if (entry.type !== 'webrtc' || entry.direction !== 'send' || entry.transport.closed) continue;
      await entry.transport.setMaxIncomingBitrate(value).catch((error: unknown) => {
        throw fromMediasoup(error, 'bitrate', 'capping the incoming bitrate');
      });
    }
  }

  /** Holds every simulcast video this peer receives to one spatial layer (0: the lowest). */
  async setVideoConsumersSpatialLayer(spatialLayer: number): Promise<void> {
    const layer = requireInteger(spatialLayer, 'spatialLayer', 0, 15);
    for (const { consumer } of [...this.#consumers.values()]) {
      if (consumer.closed || consumer.kind !== 'video' || (consumer.type !== 'simulcast' && consumer.type !== 'svc')) continue;
      await this.setConsumerPreferredLayers(consumer.id, { spatialLayer: layer });
    }
  }

  closeConsumer(consumerId: string): void {
    this.#owned(this.#consumers, consumerId, 'consumerId', 'consumer-not-found', 'consumer').consumer.close();
  }

  // --- data channels ----------------------------------------------------------------------

  /** A DataChannel from the client (live vitals from an e-valise, chat) over SCTP. */
  async produceData(transportId: string, options: ProduceDataOptions): Promise<DataProducerParams> {
    const entry = this.#transport(transportId);
    if (entry.direction !== 'send') {
      throw new SfuError(
        'invalid-argument',
        `transport '${entry.transport.id}' receives; produce data on a 'send' transport`,
        'transportId',
      );
    }
    if (!entry.transport.sctpParameters) {
      throw new SfuError('invalid-state', `transport '${entry.transport.id}' was created without sctp`, 'transportId');
    }
    const input = requireRecord(options, 'options');
    const stream = requireRecord(input.sctpStreamParameters, 'sctpStreamParameters');
    const sctpStreamParameters: SctpStreamParameters = {
      streamId: requireInteger(stream.streamId, 'sctpStreamParameters.streamId', 0, 65534),
    };
    const ordered = optionalBoolean(stream.ordered, 'sctpStreamParameters.ordered');
    const maxPacketLifeTime = optionalInteger(stream.maxPacketLifeTime, 'sctpStreamParameters.maxPacketLifeTime', 0, 65535);
    const maxRetransmits = optionalInteger(stream.maxRetransmits, 'sctpStreamParameters.maxRetransmits', 0, 65535);
    if (ordered !== undefined) sctpStreamParameters.ordered = ordered;
    if (maxPacketLifeTime !== undefined) sctpStreamParameters.maxPacketLifeTime = maxPacketLifeTime;
    if (maxRetransmits !== undefined) sctpStreamParameters.maxRetransmits = maxRetransmits;
    const label = optionalLabel(input.label, 'label', 128) ?? '';
    const protocol = optionalLabel(input.protocol, 'protocol', 128) ?? '';
    let dataProducer: DataProducer;
    try {
      dataProducer = await entry.transport.produceData({
        sctpStreamParameters,
        label,
        protocol,
        appData: { peerId: this.id },
      });
    } catch (error) {
      throw this.#failed(error, entry.router, 'sctpStreamParameters', 'creating the data producer');
    }
    this.#keepOrClose(dataProducer, entry.router, entry, 'creating the data producer');
    this.#dataProducers.set(dataProducer.id, dataProducer);
    dataProducer.observer.once('close', () => {
      this.#dataProducers.delete(dataProducer.id);
      if (!entry.router.closed) this.#host.dataProducerClosed(this, dataProducer.id);
    });
    const params = this.#dataProducerParams(dataProducer);
    this.#host.dataProducerOpened(params);
    return params;
  }

  closeDataProducer(dataProducerId: string): void {
    this.#owned(this.#dataProducers, dataProducerId, 'dataProducerId', 'data-producer-not-found', 'data producer').close();
  }

  async consumeData(dataProducerId: string, options: ConsumeOptions = {}): Promise<DataConsumerParams> {
    this.#assertUsable();
    const id = requireId(dataProducerId, 'dataProducerId');
    const input = requireRecord(options, 'options');
    const entry = this.#receivingTransport(input.transportId, true);
    const found = this.#host.findDataProducer(id);
    if (!found) {
      throw new SfuError(
        'data-producer-not-found',
        `no data producer '${id}' in room '${this.#host.roomId}'`,
        'dataProducerId',
      );
    }
    let dataConsumer: DataConsumer;
    try {
      dataConsumer = await entry.transport.consumeData({
        dataProducerId: id,
        appData: { peerId: this.id, producerPeerId: found.owner.id },
      });
    } catch (error) {
      throw this.#failed(error, entry.router, 'dataProducerId', 'creating the data consumer');
    }
    this.#keepOrClose(dataConsumer, entry.router, entry, 'creating the data consumer');
    this.#dataConsumers.set(dataConsumer.id, { dataConsumer, producerPeerId: found.owner.id });
    dataConsumer.observer.once('close', () => this.#dataConsumers.delete(dataConsumer.id));
    dataConsumer.on('dataproducerclose', () => {
      this.#dataConsumers.delete(dataConsumer.id);
      this.#emitIfOpen('dataconsumerclosed', { dataConsumerId: dataConsumer.id, dataProducerId: id });
    });
    return {
      id: dataConsumer.id,
      dataProducerId: id,
      producerPeerId: found.owner.id,
      label: dataConsumer.label,
      protocol: dataConsumer.protocol,
      ...(dataConsumer.sctpStreamParameters ? { sctpStreamParameters: dataConsumer.sctpStreamParameters } : {}),
    };
  }

  closeDataConsumer(dataConsumerId: string): void {
    const owned = this.#owned(this.#dataConsumers, dataConsumerId, 'dataConsumerId', 'data-consumer-not-found', 'data consumer');
    owned.dataConsumer.close();
  }

  /** Leaves the room: the same as room.leave(peer.id). */
  close(): void {
    this.#close('left');
  }

  // --- internals --------------------------------------------------------------------------

  #assertUsable(): void {
    this.#host.assertOpen();
    if (this.#closed) throw new SfuError('peer-closed', `peer '${this.id}' has left room '${this.#host.roomId}'`);
  }

  async #withTransportSlot<T>(create: () => Promise<T>): Promise<T> {
    const limit = this.#host.settings.maxTransportsPerPeer;
    if (this.#transports.size + this.#pendingTransports >= limit) {
      throw new SfuError('limit-reached', `peer '${this.id}' already holds ${limit} transports; close one first`);
    }
    this.#pendingTransports += 1;
    try {
      return await create();
    } finally {
      this.#pendingTransports -= 1;
    }
  }

  /**
   * After an await: the peer may have left, the room closed, its router died, or the transport
   * closed meanwhile. Then the new object is closed at once (nobody else would ever close it:
   * mediasoup does not know it belongs to a closed parent) and the call fails.
   */
  #keepOrClose(created: Closable, router: Router, entry: TransportEntry | undefined, doing: string): void {
    const problem = this.#interruption(router, entry, doing) ?? (created.closed ? this.#interrupted(doing) : undefined);
    if (!problem) return;
    created.close();
    throw problem;
  }

  /** Why a call failed, when the cause is the peer, room, router or transport closing rather than the arguments. */
  #failed(error: unknown, router: Router, field: string, doing: string): SfuError {
    return this.#interruption(router, undefined, doing) ?? fromMediasoup(error, field, doing);
  }

  #interruption(router: Router, entry: TransportEntry | undefined, doing: string): SfuError | undefined {
    try {
      this.#assertUsable();
    } catch (error) {
      return error as SfuError;
    }
    if (router.closed) return this.#interrupted(doing);
    if (entry?.transport.closed) {
      return new SfuError('transport-not-found', `transport '${entry.transport.id}' closed while ${doing}`, 'transportId');
    }
    return undefined;
  }

  #interrupted(doing: string): SfuError {
    return new SfuError(
      'room-interrupted',
      `the room's media server stopped while ${doing}; wait for 'reconnect-required' and try again`,
    );
  }

  #adoptTransport(entry: TransportEntry): void {
    const { transport } = entry;
    this.#transports.set(transport.id, entry);
    transport.observer.once('close', () => {
      this.#transports.delete(transport.id);
      this.#updateConnectionState();
    });
    if (entry.type === 'webrtc') {
      entry.transport.on('icestatechange', (iceState: IceState) => {
        entry.iceState = iceState;
        this.#transportStateChanged(entry);
      });
      entry.transport.on('dtlsstatechange', (dtlsState: DtlsState) => {
        entry.dtlsState = dtlsState;
        this.#transportStateChanged(entry);
      });
    }
  }

  #transportStateChanged(entry: WebRtcEntry): void {
    this.#emitIfOpen('transportstatechange', {
      transportId: entry.transport.id,
      direction: entry.direction,
      iceState: entry.iceState,
      dtlsState: entry.dtlsState,
    });
    this.#updateConnectionState();
  }

  #updateConnectionState(): void {
    const next = connectionStateOf(this.#transports.values());
    if (next === this.#connectionState) return;
    this.#connectionState = next;
    this.#emitIfOpen('connectionstatechange', next);
  }

  /** Looks an id up among this peer's objects; an id of another peer's object is 'not-owner'. */
  #owned<T>(map: Map<string, T>, id: unknown, field: string, code: SfuErrorCode, what: string): T {
    this.#assertUsable();
    const key = requireId(id, field);
    const found = map.get(key);
    if (found !== undefined) return found;
    if (this.#host.ownerOf(key)) {
      throw new SfuError(
        'not-owner',
        `${field} '${key}' names a ${what} of another peer`,
        field,
      );
    }
    throw new SfuError(code, `peer '${this.id}' has no ${what} '${key}'`, field);
  }

  #transport(transportId: unknown): TransportEntry {
    return this.#owned(this.#transports, transportId, 'transportId', 'transport-not-found', 'transport');
  }

  #webRtcTransport(transportId: unknown, operation: string): WebRtcEntry {
    const entry = this.#transport(transportId);
    if (entry.type !== 'webrtc') {
      throw new SfuError(
        'invalid-state',
        `transport '${entry.transport.id}' is a plain transport; ${operation} applies to WebRTC transports`,
        'transportId',
      );
    }
    return entry;
  }

  /** The transport to consume on: the one named, or the peer's only receiving one. */
  #receivingTransport(transportId: unknown, needsSctp: boolean): TransportEntry {
    const fits = (entry: TransportEntry) =>
      entry.direction === 'recv' && (!needsSctp || entry.transport.sctpParameters !== undefined);
    const what = needsSctp ? "'recv' transport with sctp" : "'recv' transport";
    if (transportId !== undefined) {
      const entry = this.#transport(transportId);
      if (!fits(entry)) {
        throw new SfuError(
          'invalid-argument',
          `transport '${entry.transport.id}' is not a ${what}`,
          'transportId',
        );
      }
      return entry;
    }
    const candidates = [...this.#transports.values()].filter(fits);
    const [only] = candidates;
    if (only && candidates.length === 1) return only;
    if (!only) {
      throw new SfuError(
        'transport-not-found',
        `peer '${this.id}' has no ${what}; create one first`,
        'transportId',
      );
    }
    throw new SfuError(
      'invalid-argument',
      `peer '${this.id}' has several ${what}s; name one with options.transportId`,
      'transportId',
    );
  }

  #producerParams(producer: Producer, source: MediaSource): ProducerParams {
    return { id: producer.id, peerId: this.id, kind: producer.kind, source, type: producer.type, paused: producer.paused };
  }

  #dataProducerParams(dataProducer: DataProducer): DataProducerParams {
    return { id: dataProducer.id, peerId: this.id, label: dataProducer.label, protocol: dataProducer.protocol };
  }

  #emitIfOpen<K extends keyof PeerEvents>(event: K, ...args: PeerEvents[K]): void {
    if (!this.#closed) (this.emit as (event: K, ...args: PeerEvents[K]) => boolean)(event, ...args);
  }

  #dropMedia(): void {
    for (const { transport } of [...this.#transports.values()]) transport.close();
    this.#transports.clear();
    this.#producers.clear();
    this.#consumers.clear();
    this.#dataProducers.clear();
    this.#dataConsumers.clear();
    this.#connectionState = 'new';
  }

  #close(reason: PeerCloseReason): void {
    if (this.#closed) return;
    this.#closed = true;
    // mediasoup closes the producers, consumers and data channels living on each transport.
    for (const { transport } of [...this.#transports.values()]) transport.close();
    this.#transports.clear();
    this.#producers.clear();
    this.#consumers.clear();
    this.#dataProducers.clear();
    this.#dataConsumers.clear();
    this.emit('closed', reason);
  }
}
