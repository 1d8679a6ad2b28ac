/**
 * One professional in one consultation or teleassistance room: the room ticket, the signaling
 * connection, the waiting room, and the WebRTC media through mediasoup-client (a send and a
 * receive transport; microphone, camera, screen; one consumer per remote producer; the vitals
 * DataChannel of a teleassistance). It follows server/rooms/protocol.ts, knows nothing of React,
 * and publishes an immutable view (`getSnapshot`) that the pages render.
 *
 * Links are assumed to be bad: a dropped socket reconnects and joins again with a new ticket
 * (the hub keeps the peer for a grace period: `resumed`), a failed ICE path is restarted, a
 * rebuilt room (`reconnectRequired`) gets new transports and the same tracks produced again, and
 * the link profile (satellite) is chosen by the user or measured.
 */
import { Device } from 'mediasoup-client';
import type {
  Consumer,
  DataConsumer,
  DataProducer,
  DtlsParameters,
  IceCandidate,
  IceParameters,
  Producer,
  RtpCapabilities,
  RtpEncodingParameters,
  RtpParameters,
  SctpParameters,
  SctpStreamParameters,
  Transport,
  TransportOptions,
} from 'mediasoup-client/types';
import type {
  DataProducerSummary,
  EndResult,
  JoinResult,
  LinkProfile,
  PeerState,
  PeerSummary,
  ProducerSummary,
  RoomKind,
  RoomRole,
  RoomTicket,
  TransportInfo,
} from '../../../../server/rooms/protocol.js';
import type { CallPhase, HubDebug, HubDebugState, HubDebugStats, HubDebugTimings, InboundSummary } from '../debug-api.js';
import { ApiError, type Session } from '../session.js';
import { EvaliseSimulator, VITALS_INTERVAL_MS, VITALS_LABEL, VITALS_PROTOCOL, VitalsMonitor, parseVitalsMessage, type VitalsMessage, type VitalsSummary } from '../teleassistance/vitals.js';
import { LINK_POLICY, initialLinkPolicyState, linkSampleFromStats, nextLinkState, type LinkPolicyState, type LossCounters } from './link-policy.js';
import { RoomRequestError, Signaling } from './signaling.js';

export type RoomTarget = { type: 'appointment'; id: string } | { type: 'serviceRequest'; id: string };
export type LinkMode = 'auto' | LinkProfile;
export type MediaSource = 'mic' | 'webcam' | 'screen';

/** The camera in three simulcast layers; the sum stays under the normal profile's 1.5 Mbit/s cap (protocol.ts LINK_PROFILES). */
const SIMULCAST_ENCODINGS: RtpEncodingParameters[] = [
  { scaleResolutionDownBy: 4, maxBitrate: 100_000 },
  { scaleResolutionDownBy: 2, maxBitrate: 300_000 },
  { scaleResolutionDownBy: 1, maxBitrate: 900_000 },
];
/** Satellite: the lowest layer only, at a frame rate that leaves room for the voice under 150 kbit/s. */
const SATELLITE_ENCODINGS: RtpEncodingParameters[] = [{ scaleResolutionDownBy: 4, maxBitrate: 90_000, maxFramerate: 15 }];
const SCREEN_ENCODINGS: Record<LinkProfile, RtpEncodingParameters[]> = {
  normal: [{ maxBitrate: 1_000_000 }],
  satellite: [{ maxBitrate: 90_000, maxFramerate: 5 }],
};
/** Highest spatial layer index per profile (protocol.ts LINK_PROFILES.videoLayers - 1). */
const TOP_LAYER: Record<LinkProfile, number> = { normal: 2, satellite: 0 };
/** Vitals queued while the DataChannel is down (30 s), sent in order once it is open again. */
const VITALS_QUEUE_LIMIT = 300;

export interface RemoteMedia {
  consumerId: string;
  producerId: string;
  peerId: string;
  kind: 'audio' | 'video';
  source: MediaSource;
  track: MediaStreamTrack;
  /** The sender paused it (muted microphone, camera off). */
  paused: boolean;
}

export interface CallView {
  phase: CallPhase;
  target: RoomTarget;
  ticket?: RoomTicket;
  role?: RoomRole;
  kind?: RoomKind;
  peerState?: PeerState;
  peerId?: string;
  peers: PeerSummary[];
  waiting: PeerSummary[];
  localStream?: MediaStream;
  screenStream?: MediaStream;
  micOn: boolean;
  cameraOn: boolean;
  sharing: boolean;
  remote: RemoteMedia[];
  linkMode: LinkMode;
  linkProfile: LinkProfile;
  rttMs?: number;
  loss?: number;
  connection: 'ok' | 'unstable' | 'reconnecting';
  /** Something the user should know (no camera, a refused request); the call goes on. */
  notice?: { code: string; message: string };
  error?: { code: string; message: string };
  encounter?: string;
  vitals?: VitalsSummary;
  vitalsSent: number;
}

export interface CallOptions {
  linkMode?: LinkMode;
  /** Ask for the camera and microphone (false: receive only). */
  media?: boolean;
}

export class RoomCall {
  readonly #session: Session;
  readonly #target: RoomTarget;
  readonly #listeners = new Set<() => void>();
  #view: CallView;

  #signaling: Signaling | undefined;
  #ticket: RoomTicket | undefined;
  #joinResult: JoinResult | undefined;
  #joins = 0;
  #resumedJoins = 0;
  #closed = false;

  #localStream: MediaStream | undefined;
  #localMedia: Promise<void> | undefined;
  #screenStream: MediaStream | undefined;

  #device: Device | undefined;
  #sendTransport: Transport | undefined;
  #recvTransport: Transport | undefined;
  /** Set while transports are being made: later events wait for it. */
  #mediaReady: Promise<void> | undefined;
  #producers = new Map<MediaSource, Producer>();
  /** Every producer the room announced, by id (to consume, with its source). */
  #knownProducers = new Map<string, ProducerSummary>();
  #knownDataProducers = new Map<string, DataProducerSummary>();
  #consumers = new Map<string, { consumer: Consumer; summary: ProducerSummary; paused: boolean }>();
  #consuming = new Set<string>();
  #dataConsumers = new Map<string, DataConsumer>();
  #dataProducer: DataProducer | undefined;

  #linkState: LinkPolicyState;
  #lossCounters: LossCounters | undefined;
  #linkTimer: ReturnType<typeof setInterval> | undefined;
  #transportStates = new Map<string, string>();

  #vitalsMonitor: VitalsMonitor | undefined;
  #simulator: EvaliseSimulator | undefined;
  #vitalsQueue: VitalsMessage[] = [];
  #vitalsTimer: ReturnType<typeof setInterval> | undefined;
  #vitalsSent = 0;
  #vitalsLastSeq: number | undefined;
  #lastSnapshot: string[] | undefined;

  #timings: HubDebugTimings = {};
  #firstFrameWatch: ReturnType<typeof setInterval> | undefined;
  readonly #wantMedia: boolean;

  constructor(session: Session, target: RoomTarget, options: CallOptions = {}) {
    this.#session = session;
    this.#target = target;
    this.#wantMedia = options.media ?? true;
    const linkMode = options.linkMode ?? 'auto';
    this.#linkState = initialLinkPolicyState(linkMode === 'satellite' ? 'satellite' : 'normal');
    this.#view = {
      phase: 'idle',
      target,
      peers: [],
      waiting: [],
      micOn: true,
      cameraOn: true,
      sharing: false,
      remote: [],
      linkMode,
      linkProfile: this.#linkState.profile,
      connection: 'ok',
      vitalsSent: 0,
    };
  }

  // ------------------------------------------------------------------------------------------
  // The view (React reads it with useSyncExternalStore)
  // ------------------------------------------------------------------------------------------

  subscribe = (listener: () => void): (() => void) => {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  };

  getSnapshot = (): CallView => this.#view;

  #update(patch: Partial<CallView>): void {
    this.#view = { ...this.#view, ...patch };
    for (const listener of this.#listeners) listener();
  }

  #refreshRemote(): void {
    const remote: RemoteMedia[] = [...this.#consumers.values()].map(({ consumer, summary, paused }) => ({
      consumerId: consumer.id,
      producerId: summary.producerId,
      peerId: summary.peerId,
      kind: summary.kind,
      source: summary.source,
      track: consumer.track,
      paused,
    }));
    this.#update({ remote });
  }

  #fail(phase: CallPhase, err: unknown): void {
    const { code, message } = describeError(err);
    this.#update({ phase, error: { code, message } });
  }

  #notice(err: unknown): void {
    this.#update({ notice: describeError(err) });
  }

  // ------------------------------------------------------------------------------------------
  // Joining
  // ------------------------------------------------------------------------------------------

  /** Asks for a ticket, connects and joins. Resolves once joined (waiting or admitted), or with the phase 'refused'/'error'. */
  async start(): Promise<void> {
    this.#timings = { ticketRequested: performance.now() };
    this.#update({ phase: 'ticket', error: undefined });
    if (this.#wantMedia) this.#localMedia = this.#acquireLocalMedia();
    try {
      this.#ticket = await this.#requestTicket();
    } catch (err) {
      this.#fail(err instanceof ApiError && err.status >= 400 && err.status < 500 ? 'refused' : 'error', err);
      return;
    }
    this.#timings.ticketReceived = performance.now();
    this.#update({ phase: 'connecting', ticket: this.#ticket, role: this.#ticket.role, kind: this.#ticket.kind });
    if (this.#ticket.kind === 'teleassistance' && this.#ticket.role === 'host') this.#vitalsMonitor = new VitalsMonitor(10);

    const signaling = new Signaling(() => this.#session.accessToken());
    this.#signaling = signaling;
    this.#listen(signaling);
    const joined = new Promise<void>((resolve) => {
      const done = () => {
        if (this.#view.phase !== 'connecting') {
          this.#listeners.delete(done);
          resolve();
        }
      };
      this.#listeners.add(done);
    });
    signaling.connect();
    await joined;
  }

  async #requestTicket(): Promise<RoomTicket> {
    const body = this.#target.type === 'appointment' ? { appointment: `Appointment/${this.#target.id}` } : { serviceRequest: `ServiceRequest/${this.#target.id}` };
    return this.#session.json<RoomTicket>('/api/rooms/token', { method: 'POST', body: JSON.stringify(body) });
  }

  #listen(signaling: Signaling): void {
    const socket = signaling.socket;
    let connectedOnce = false;
    let refusedConnections = 0;
    socket.on('connect', () => {
      const rejoin = connectedOnce;
      connectedOnce = true;
      refusedConnections = 0;
      void this.#join(rejoin);
    });
    socket.on('disconnect', (reason) => {
      if (this.#closed) return;
      if (reason === 'io server disconnect') {
        // The hub closed this connection on purpose (the session was revoked): do not insist.
        this.#teardownMedia();
        this.#update({ phase: 'left', connection: 'ok', error: { code: 'disconnected', message: 'the hub closed the connection' } });
        return;
      }
      this.#update({ connection: 'reconnecting' });
    });
    socket.on('connect_error', (err) => {
      if (this.#closed) return;
      if (!socket.active) {
        // Refused by the hub's middleware: socket.io does not retry by itself. An expired or revoked
        // access token ('unauthorized') gets a refresh; the hub unable to check it ('unavailable'), a pause.
        refusedConnections += 1;
        if (refusedConnections > 5) {
          this.#fail('error', { code: 'connect-refused', message: err.message });
          return;
        }
        const retry = err.message === 'unauthorized' ? this.#session.refresh() : new Promise<void>((r) => setTimeout(r, 1_000 * refusedConnections));
        retry.then(
          () => {
            if (!this.#closed) socket.connect();
          },
          (refreshError: unknown) => this.#fail('error', refreshError),
        );
        return;
      }
      if (this.#view.phase === 'connecting') this.#update({ notice: { code: 'connect-error', message: err.message } });
    });

    socket.on('waitingRoom', ({ waiting }) => this.#update({ waiting }));
    socket.on('admitted', (update) => {
      this.#timings.admitted = performance.now();
      for (const p of update.producers) this.#knownProducers.set(p.producerId, p);
      for (const d of update.dataProducers) this.#knownDataProducers.set(d.dataProducerId, d);
      this.#update({ phase: 'admitted', peerState: 'admitted', peers: update.peers });
      void this.#startMedia(update.routerRtpCapabilities);
    });
    socket.on('removed', () => {
      this.#finish();
      this.#update({ phase: 'removed', peerState: undefined });
    });
    socket.on('peerJoined', (peer) => this.#update({ peers: [...this.#view.peers.filter((p) => p.peerId !== peer.peerId), peer] }));
    socket.on('peerLeft', ({ peerId }) => {
      for (const [id, c] of this.#consumers) if (c.summary.peerId === peerId) this.#closeConsumer(id);
      for (const [id, p] of this.#knownProducers) if (p.peerId === peerId) this.#knownProducers.delete(id);
      this.#update({ peers: this.#view.peers.filter((p) => p.peerId !== peerId), waiting: this.#view.waiting.filter((p) => p.peerId !== peerId) });
    });
    socket.on('newProducer', (producer) => {
      this.#knownProducers.set(producer.producerId, producer);
      void this.#consume(producer);
    });
    socket.on('producerClosed', ({ producerId }) => {
      this.#knownProducers.delete(producerId);
      for (const [id, c] of this.#consumers) if (c.summary.producerId === producerId) this.#closeConsumer(id);
    });
    socket.on('producerPaused', ({ producerId }) => this.#setRemotePaused(producerId, true));
    socket.on('producerResumed', ({ producerId }) => this.#setRemotePaused(producerId, false));
    socket.on('consumerClosed', ({ consumerId }) => this.#closeConsumer(consumerId));
    socket.on('newDataProducer', (dataProducer) => {
      this.#knownDataProducers.set(dataProducer.dataProducerId, dataProducer);
      void this.#consumeData(dataProducer);
    });
    socket.on('dataConsumerClosed', ({ dataConsumerId }) => {
      this.#dataConsumers.get(dataConsumerId)?.close();
      this.#dataConsumers.delete(dataConsumerId);
    });
    socket.on('reconnectRequired', ({ routerRtpCapabilities }) => {
      // The room moved to a new router: nothing of ours exists there. Same tracks, new everything else.
      this.#teardownMedia({ keepLocal: true });
      this.#knownProducers.clear();
      this.#knownDataProducers.clear();
      if (this.#view.phase === 'admitted') void this.#startMedia(routerRtpCapabilities);
    });
    socket.on('roomEnded', ({ encounter }) => {
      this.#finish();
      this.#update({ phase: 'ended', ...(encounter ? { encounter } : {}) });
    });
  }

  async #join(rejoin: boolean): Promise<void> {
    const signaling = this.#signaling;
    if (!signaling || this.#closed) return;
    try {
      // A ticket lives a few minutes: a reconnection (a satellite cut) gets a fresh one.
      if (rejoin) this.#ticket = await this.#requestTicket();
      // A new page asks for a fresh join: if the hub still holds this professional from an earlier
      // page (a reload, a crashed tab), it keeps the place (no second trip to the waiting room)
      // and closes the old media objects, which this page cannot reach.
      const result = await signaling.request('join', { roomToken: this.#ticket!.roomToken, ...(rejoin ? {} : { fresh: true }) });
      this.#timings.joinAcked ??= performance.now();
      this.#joins += 1;
      if (result.resumed) this.#resumedJoins += 1;
      await this.#onJoined(result, rejoin);
    } catch (err) {
      if (rejoin && !(err instanceof RoomRequestError || err instanceof ApiError)) {
        this.#notice(err);
        return;
      }
      this.#teardownMedia();
      const refused = (err instanceof RoomRequestError && ['unauthorized', 'forbidden', 'not-found'].includes(err.code)) || (err instanceof ApiError && [401, 403, 404].includes(err.status));
      this.#fail(refused ? 'refused' : 'error', err);
      signaling.close();
    }
  }

  async #onJoined(result: JoinResult, rejoin: boolean): Promise<void> {
    this.#joinResult = result;
    this.#knownProducers = new Map(result.producers.map((p) => [p.producerId, p]));
    this.#knownDataProducers = new Map(result.dataProducers.map((d) => [d.dataProducerId, d]));
    const admitted = result.state === 'admitted';
    this.#update({
      phase: admitted ? 'admitted' : 'waiting',
      role: result.role,
      kind: result.kind,
      peerId: result.peerId,
      peerState: result.state,
      peers: result.peers,
      connection: 'ok',
      notice: undefined,
    });
    if (!admitted) {
      this.#teardownMedia({ keepLocal: true });
      return;
    }
    if (result.resumed && rejoin && this.#sendTransport && this.#recvTransport && !this.#sendTransport.closed && !this.#recvTransport.closed) {
      // The hub kept our transports, producers and consumers through the cut: catch up on what changed meanwhile.
      for (const [id, c] of this.#consumers) if (!this.#knownProducers.has(c.summary.producerId)) this.#closeConsumer(id);
      for (const p of this.#knownProducers.values()) void this.#consume(p);
      for (const d of this.#knownDataProducers.values()) void this.#consumeData(d);
      for (const transport of [this.#sendTransport, this.#recvTransport]) {
        if (transport.connectionState === 'failed' || transport.connectionState === 'disconnected') void this.#restartIce(transport);
      }
      return;
    }
    this.#teardownMedia({ keepLocal: true });
    await this.#startMedia(result.routerRtpCapabilities);
  }

  // ------------------------------------------------------------------------------------------
  // Media
  // ------------------------------------------------------------------------------------------

  async #acquireLocalMedia(): Promise<void> {
    try {
      this.#localStream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
        video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24 } },
      });
    } catch (err) {
      try {
        // No camera (or refused): the voice alone still makes a consultation.
        this.#localStream = await navigator.mediaDevices.getUserMedia({ audio: true });
        this.#notice({ code: 'no-camera', message: describeError(err).message });
      } catch (audioErr) {
        this.#notice({ code: 'no-media', message: describeError(audioErr).message });
        return;
      }
    }
    this.#update({ localStream: this.#localStream });
  }

  #startMedia(routerRtpCapabilities: unknown): Promise<void> {
    const run = this.#setUpMedia(routerRtpCapabilities).catch((err: unknown) => {
      if (!this.#closed) this.#notice(err);
    });
    this.#mediaReady = run;
    return run;
  }

  async #setUpMedia(routerRtpCapabilities: unknown): Promise<void> {
    const signaling = this.#signaling!;
    const device = await Device.factory();
    await device.load({ routerRtpCapabilities: routerRtpCapabilities as RtpCapabilities });
    this.#device = device;
    const sctp = this.#view.kind === 'teleassistance';
    // Satellite from the start: told before the transports exist, so that the hub caps them and
    // holds the consumers to the lowest layer from their first packet (requests are handled in order).
    const linkProfileSet = this.#linkState.profile === 'satellite' ? this.#sendLinkProfile('satellite') : undefined;
    const [sendInfo, recvInfo] = await Promise.all([
      signaling.request('createTransport', { direction: 'send', sctp }),
      signaling.request('createTransport', { direction: 'recv', sctp }),
    ]);
    this.#sendTransport = this.#wireSendTransport(device.createSendTransport(transportOptions(sendInfo)));
    this.#recvTransport = this.#wireTransport(device.createRecvTransport(transportOptions(recvInfo)));
    // Receive first: what the other side already sends is what the user waits to see.
    await Promise.all([
      ...[...this.#knownProducers.values()].map((p) => this.#consume(p)),
      ...[...this.#knownDataProducers.values()].map((d) => this.#consumeData(d)),
      this.#produceLocal(),
      this.#startVitalsIfCorrespondent(),
    ]);
    await linkProfileSet;
    this.#startLinkMonitor();
  }

  #wireTransport(transport: Transport): Transport {
    const signaling = this.#signaling!;
    transport.on('connect', ({ dtlsParameters }, callback, errback) => {
      signaling.request('connectTransport', { transportId: transport.id, dtlsParameters: dtlsParameters as unknown as Record<string, unknown> }).then(() => callback(), errback);
    });
    transport.on('connectionstatechange', (state) => {
      this.#transportStates.set(transport.id, state);
      if (state === 'failed') void this.#restartIce(transport);
      this.#updateConnection();
    });
    return transport;
  }

  #wireSendTransport(transport: Transport): Transport {
    const signaling = this.#signaling!;
    this.#wireTransport(transport);
    transport.on('produce', ({ kind, rtpParameters, appData }, callback, errback) => {
      signaling
        .request('produce', {
          transportId: transport.id,
          kind,
          rtpParameters: rtpParameters as unknown as Record<string, unknown>,
          source: appData.source as MediaSource,
          ...(appData.paused === true ? { paused: true } : {}),
        })
        .then(({ producerId }) => callback({ id: producerId }), errback);
    });
    transport.on('producedata', ({ sctpStreamParameters, label, protocol }, callback, errback) => {
      signaling
        .request('produceData', {
          transportId: transport.id,
          sctpStreamParameters: sctpStreamParameters as unknown as Record<string, unknown>,
          label: label ?? VITALS_LABEL,
          protocol: protocol ?? VITALS_PROTOCOL,
          source: 'vitals',
        })
        .then(({ dataProducerId }) => callback({ id: dataProducerId }), errback);
    });
    return transport;
  }

  #updateConnection(): void {
    const states = [...this.#transportStates.values()];
    const unstable = states.some((s) => s === 'disconnected' || s === 'failed');
    if (this.#view.connection !== 'reconnecting') this.#update({ connection: unstable ? 'unstable' : 'ok' });
  }

  async #restartIce(transport: Transport): Promise<void> {
    try {
      const { iceParameters } = await this.#signaling!.request('restartIce', { transportId: transport.id });
      if (!transport.closed) await transport.restartIce({ iceParameters: iceParameters as IceParameters });
    } catch (err) {
      this.#notice(err);
    }
  }

  async #produceLocal(): Promise<void> {
    await this.#localMedia;
    const stream = this.#localStream;
    if (!stream || !this.#sendTransport) return;
    const audio = stream.getAudioTracks()[0];
    const video = stream.getVideoTracks()[0];
    await Promise.all([
      audio ? this.#produce('mic', audio, !this.#view.micOn) : undefined,
      video ? this.#produce('webcam', video, !this.#view.cameraOn) : undefined,
      this.#screenStream?.getVideoTracks()[0] ? this.#produce('screen', this.#screenStream.getVideoTracks()[0]!, false) : undefined,
    ]);
  }

  async #produce(source: MediaSource, track: MediaStreamTrack, paused: boolean): Promise<void> {
    const transport = this.#sendTransport;
    if (!transport || transport.closed) return;
    const profile = this.#linkState.profile;
    try {
      const producer = await transport.produce({
        track,
        stopTracks: false,
        appData: { source, paused },
        ...(source === 'mic'
          ? { codecOptions: { opusFec: true, opusDtx: true, opusStereo: false, ...(profile === 'satellite' ? { opusMaxAverageBitrate: 24_000 } : {}) } }
          : source === 'webcam'
            ? { encodings: profile === 'satellite' ? SATELLITE_ENCODINGS : SIMULCAST_ENCODINGS, codecOptions: { videoGoogleStartBitrate: profile === 'satellite' ? 80 : 500 } }
            : { encodings: SCREEN_ENCODINGS[profile] }),
      });
      if (paused) producer.pause();
      this.#producers.get(source)?.close();
      this.#producers.set(source, producer);
      producer.on('trackended', () => {
        if (source === 'screen') void this.stopScreenShare();
      });
    } catch (err) {
      this.#notice(err);
    }
  }

  async #consume(summary: ProducerSummary): Promise<void> {
    if (this.#view.phase !== 'admitted' || summary.peerId === this.#view.peerId) return;
    if (!this.#recvTransport) return; // #setUpMedia consumes everything known once the transport exists
    if (this.#consuming.has(summary.producerId) || [...this.#consumers.values()].some((c) => c.summary.producerId === summary.producerId)) return;
    const device = this.#device!;
    const transport = this.#recvTransport;
    const signaling = this.#signaling!;
    this.#consuming.add(summary.producerId);
    try {
      const info = await signaling.request('consume', {
        producerId: summary.producerId,
        rtpCapabilities: device.recvRtpCapabilities as unknown as Record<string, unknown>,
        transportId: transport.id,
      });
      if (transport.closed) return;
      const consumer = await transport.consume({
        id: info.id,
        producerId: info.producerId,
        kind: info.kind,
        rtpParameters: info.rtpParameters as RtpParameters,
        appData: { peerId: summary.peerId, source: summary.source },
      });
      this.#consumers.set(consumer.id, { consumer, summary, paused: summary.paused });
      consumer.on('transportclose', () => this.#closeConsumer(consumer.id));
      this.#refreshRemote();
      if (info.kind === 'video' && this.#linkState.profile === 'satellite') {
        await signaling.request('setPreferredLayers', { consumerId: consumer.id, spatialLayer: 0 }).catch(() => undefined);
      }
      await signaling.request('resumeConsumer', { consumerId: consumer.id });
      if (info.kind === 'video') this.#watchFirstFrame(consumer);
    } catch (err) {
      if (!(err instanceof RoomRequestError && err.code === 'not-found')) this.#notice(err);
    } finally {
      this.#consuming.delete(summary.producerId);
    }
  }

  #closeConsumer(consumerId: string): void {
    const entry = this.#consumers.get(consumerId);
    if (!entry) return;
    entry.consumer.close();
    this.#consumers.delete(consumerId);
    this.#refreshRemote();
  }

  #setRemotePaused(producerId: string, paused: boolean): void {
    const known = this.#knownProducers.get(producerId);
    if (known) known.paused = paused;
    for (const entry of this.#consumers.values()) if (entry.summary.producerId === producerId) entry.paused = paused;
    this.#refreshRemote();
  }

  /** Notes when the first remote video frame is decoded (the join benchmark's end mark). */
  #watchFirstFrame(consumer: Consumer): void {
    if (this.#timings.firstRemoteFrame !== undefined || this.#firstFrameWatch) return;
    this.#firstFrameWatch = setInterval(() => {
      if (consumer.closed) {
        clearInterval(this.#firstFrameWatch);
        this.#firstFrameWatch = undefined;
        return;
      }
      consumer.getStats().then((report) => {
        for (const s of report.values()) {
          if (s.type === 'inbound-rtp' && (s.framesDecoded ?? 0) > 0) this.markRemoteFrame();
        }
      }, () => undefined);
    }, 25);
  }

  /** A remote video element presented a frame (requestVideoFrameCallback), or stats saw one decoded. */
  markRemoteFrame(): void {
    this.#timings.firstRemoteFrame ??= performance.now();
    if (this.#firstFrameWatch) {
      clearInterval(this.#firstFrameWatch);
      this.#firstFrameWatch = undefined;
    }
  }

  #teardownMedia(options: { keepLocal?: boolean } = {}): void {
    if (this.#linkTimer) clearInterval(this.#linkTimer);
    this.#linkTimer = undefined;
    if (this.#vitalsTimer) clearInterval(this.#vitalsTimer);
    this.#vitalsTimer = undefined;
    if (this.#firstFrameWatch) clearInterval(this.#firstFrameWatch);
    this.#firstFrameWatch = undefined;
    this.#dataProducer = undefined;
    this.#dataConsumers.clear();
    this.#producers.clear();
    this.#consumers.clear();
    this.#consuming.clear();
    this.#transportStates.clear();
    this.#sendTransport?.close();
    this.#recvTransport?.close();
    this.#sendTransport = undefined;
    this.#recvTransport = undefined;
    this.#device = undefined;
    if (!options.keepLocal) {
      for (const track of this.#localStream?.getTracks() ?? []) track.stop();
      for (const track of this.#screenStream?.getTracks() ?? []) track.stop();
      this.#localStream = undefined;
      this.#screenStream = undefined;
      this.#update({ localStream: undefined, screenStream: undefined, sharing: false });
    }
    this.#refreshRemote();
  }

  // ------------------------------------------------------------------------------------------
  // What the user does
  // ------------------------------------------------------------------------------------------

  async admit(peerId: string): Promise<void> {
    try {
      await this.#signaling!.request('admit', { peerId });
    } catch (err) {
      this.#notice(err);
    }
  }

  async remove(peerId: string): Promise<void> {
    try {
      await this.#signaling!.request('remove', { peerId });
    } catch (err) {
      this.#notice(err);
    }
  }

  async setMicOn(on: boolean): Promise<void> {
    this.#update({ micOn: on });
    await this.#setProducerPaused('mic', !on);
  }

  async setCameraOn(on: boolean): Promise<void> {
    this.#update({ cameraOn: on });
    await this.#setProducerPaused('webcam', !on);
  }

  async #setProducerPaused(source: MediaSource, paused: boolean): Promise<void> {
    const producer = this.#producers.get(source);
    if (!producer || producer.closed) return;
    try {
      if (paused) {
        producer.pause();
        await this.#signaling!.request('pauseProducer', { producerId: producer.id });
      } else {
        producer.resume();
        await this.#signaling!.request('resumeProducer', { producerId: producer.id });
      }
    } catch (err) {
      this.#notice(err);
    }
  }

  async startScreenShare(): Promise<void> {
    if (this.#screenStream) return;
    try {
      this.#screenStream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 10 } }, audio: false });
    } catch (err) {
      this.#notice(err);
      return;
    }
    this.#update({ screenStream: this.#screenStream, sharing: true });
    const track = this.#screenStream.getVideoTracks()[0];
    if (track) {
      track.addEventListener('ended', () => void this.stopScreenShare());
      await this.#mediaReady;
      await this.#produce('screen', track, false);
    }
  }

  async stopScreenShare(): Promise<void> {
    const producer = this.#producers.get('screen');
    this.#producers.delete('screen');
    for (const track of this.#screenStream?.getTracks() ?? []) track.stop();
    this.#screenStream = undefined;
    this.#update({ screenStream: undefined, sharing: false });
    if (producer && !producer.closed) {
      producer.close();
      await this.#signaling?.request('closeProducer', { producerId: producer.id }).catch(() => undefined);
    }
  }

  /** 'auto': measured every 5 s; 'normal' / 'satellite': the user's choice. */
  async setLinkMode(mode: LinkMode): Promise<void> {
    this.#update({ linkMode: mode });
    if (mode === 'auto') return; // the next sample decides
    await this.#applyProfile(mode);
  }

  async #applyProfile(profile: LinkProfile): Promise<void> {
    if (this.#linkState.profile === profile && this.#view.linkProfile === profile) return;
    this.#linkState = initialLinkPolicyState(profile);
    this.#update({ linkProfile: profile });
    if (!this.#sendTransport) return;
    await this.#sendLinkProfile(profile);
    const webcam = this.#producers.get('webcam');
    if (webcam && !webcam.closed) {
      const layers = webcam.rtpParameters.encodings?.length ?? 1;
      if (profile === 'normal' && layers < SIMULCAST_ENCODINGS.length && webcam.track) {
        // Produced with one layer on a satellite link: produce again with all three.
        const track = webcam.track;
        const paused = webcam.paused;
        webcam.close();
        this.#producers.delete('webcam');
        await this.#signaling!.request('closeProducer', { producerId: webcam.id }).catch(() => undefined);
        await this.#produce('webcam', track, paused);
      } else if (layers > 1) {
        await webcam.setMaxSpatialLayer(Math.min(TOP_LAYER[profile], layers - 1)).catch((err: unknown) => this.#notice(err));
      }
    }
    await Promise.all(
      [...this.#consumers.values()]
        .filter((c) => c.consumer.kind === 'video' && !c.consumer.closed)
        .map((c) =>
          this.#signaling!.request('setPreferredLayers', { consumerId: c.consumer.id, spatialLayer: TOP_LAYER[profile] }).catch(() => undefined),
        ),
    );
  }

  async #sendLinkProfile(profile: LinkProfile): Promise<void> {
    try {
      await this.#signaling!.request('setLinkProfile', { profile });
    } catch (err) {
      this.#notice(err);
    }
  }

  #startLinkMonitor(): void {
    if (this.#linkTimer) clearInterval(this.#linkTimer);
    this.#lossCounters = undefined;
    this.#linkTimer = setInterval(() => void this.#sampleLink(), LINK_POLICY.intervalMs);
  }

  async #sampleLink(): Promise<void> {
    const transports = [this.#sendTransport, this.#recvTransport].filter((t): t is Transport => !!t && !t.closed);
    if (transports.length === 0) return;
    const reports = await Promise.all(transports.map((t) => t.getStats().catch(() => undefined)));
    const stats = reports.flatMap((r) => (r ? [...r.values()] : [])) as { type?: unknown; [key: string]: unknown }[];
    const { sample, counters } = linkSampleFromStats(stats, this.#lossCounters);
    this.#lossCounters = counters;
    this.#update({ ...(sample.rttMs !== undefined ? { rttMs: sample.rttMs } : {}), ...(sample.loss !== undefined ? { loss: sample.loss } : {}) });
    if (this.#view.linkMode !== 'auto') return;
    const next = nextLinkState(this.#linkState, sample);
    if (next.profile !== this.#linkState.profile) await this.#applyProfile(next.profile);
    else this.#linkState = next;
  }

  /** The host closes the consultation: the report goes into the patient's record. */
  async end(report: string): Promise<EndResult | undefined> {
    try {
      const result = await this.#signaling!.request('end', { report });
      this.#finish();
      this.#update({ phase: 'ended', encounter: result.encounter });
      return result;
    } catch (err) {
      this.#notice(err);
      return undefined;
    }
  }

  /** The session is over for this page (ended, removed): media and signaling close; nothing reconnects. */
  #finish(): void {
    this.#closed = true;
    this.#teardownMedia();
    this.#signaling?.close();
  }

  async leave(): Promise<void> {
    if (this.#closed) {
      this.#teardownMedia();
      return;
    }
    const signaling = this.#signaling;
    const wasJoined = this.#view.phase === 'admitted' || this.#view.phase === 'waiting';
    this.#closed = true;
    this.#teardownMedia();
    if (signaling) {
      if (wasJoined && signaling.socket.connected) await signaling.request('leave', {}, 3_000).catch(() => undefined);
      signaling.close();
    }
    if (this.#view.phase !== 'ended' && this.#view.phase !== 'refused' && this.#view.phase !== 'error') this.#update({ phase: 'left' });
  }

  // ------------------------------------------------------------------------------------------
  // Teleassistance vitals
  // ------------------------------------------------------------------------------------------

  async #startVitalsIfCorrespondent(): Promise<void> {
    if (this.#view.kind !== 'teleassistance' || this.#view.role !== 'guest' || !this.#sendTransport) return;
    try {
      const producer = await this.#sendTransport.produceData({ ordered: true, label: VITALS_LABEL, protocol: VITALS_PROTOCOL, appData: { source: 'vitals' } });
      this.#dataProducer = producer;
      const flush = () => {
        while (this.#vitalsQueue.length > 0 && producer.readyState === 'open') {
          const message = this.#vitalsQueue.shift()!;
          producer.send(JSON.stringify(message));
          this.#vitalsSent += 1;
          this.#vitalsLastSeq = message.seq;
        }
      };
      producer.on('open', flush);
      // The e-valise keeps measuring whatever the link does; its clock starts with the first reading.
      this.#simulator ??= new EvaliseSimulator({ rateHz: 250, startMs: Date.now(), seed: Math.floor(Math.random() * 2 ** 31) });
      if (this.#vitalsTimer) clearInterval(this.#vitalsTimer);
      this.#vitalsTimer = setInterval(() => {
        const message = this.#simulator!.next(Date.now());
        if (message) {
          this.#vitalsQueue.push(message);
          if (this.#vitalsQueue.length > VITALS_QUEUE_LIMIT) this.#vitalsQueue.splice(0, this.#vitalsQueue.length - VITALS_QUEUE_LIMIT);
        }
        if (this.#dataProducer === producer && !producer.closed) flush();
        this.#update({ vitalsSent: this.#vitalsSent });
      }, VITALS_INTERVAL_MS);
    } catch (err) {
      this.#notice(err);
    }
  }

  async #consumeData(summary: DataProducerSummary): Promise<void> {
    if (this.#view.phase !== 'admitted' || summary.peerId === this.#view.peerId || !this.#vitalsMonitor) return;
    const transport = this.#recvTransport;
    if (!transport) return;
    if ([...this.#dataConsumers.values()].some((d) => d.dataProducerId === summary.dataProducerId)) return;
    try {
      const info = await this.#signaling!.request('consumeData', { dataProducerId: summary.dataProducerId, transportId: transport.id });
      if (transport.closed) return;
      const consumer = await transport.consumeData({
        id: info.id,
        dataProducerId: info.dataProducerId,
        sctpStreamParameters: info.sctpStreamParameters as SctpStreamParameters,
        label: info.label,
        protocol: info.protocol,
      });
      this.#dataConsumers.set(consumer.id, consumer);
      const monitor = this.#vitalsMonitor;
      consumer.on('message', (data: unknown) => {
        const message = parseVitalsMessage(data);
        if (!message) return;
        monitor.receive(message, Date.now());
        this.#update({ vitals: monitor.summary });
      });
      consumer.on('transportclose', () => this.#dataConsumers.delete(consumer.id));
    } catch (err) {
      this.#notice(err);
    }
  }

  get vitalsMonitor(): VitalsMonitor | undefined {
    return this.#vitalsMonitor;
  }

  noteSnapshot(references: string[]): void {
    this.#lastSnapshot = references;
  }

  // ------------------------------------------------------------------------------------------
  // window.__hub
  // ------------------------------------------------------------------------------------------

  debug(): HubDebug {
    return {
      state: (): HubDebugState => {
        const v = this.#view;
        return {
          phase: v.phase,
          ...(v.role ? { role: v.role } : {}),
          ...(v.kind ? { kind: v.kind } : {}),
          ...(v.peerState ? { peerState: v.peerState } : {}),
          ...(v.ticket ? { roomId: v.ticket.roomId } : {}),
          ...(v.peerId ? { peerId: v.peerId } : {}),
          joined: this.#joinResult !== undefined && (v.phase === 'waiting' || v.phase === 'admitted'),
          admitted: v.phase === 'admitted',
          waiting: v.waiting.map((p) => p.peerId),
          peers: v.peers.map(({ peerId, displayName, role, state }) => ({ peerId, displayName, role, state })),
          producers: [...this.#producers.entries()].map(([source, p]) => ({ source, kind: p.kind, paused: p.paused })),
          consumers: v.remote.map((r) => ({ peerId: r.peerId, source: r.source, kind: r.kind, paused: r.paused })),
          dataConsumers: this.#dataConsumers.size,
          linkMode: v.linkMode,
          linkProfile: v.linkProfile,
          connection: v.connection,
          ...(v.error ? { error: v.error } : {}),
          ...(v.encounter ? { encounter: v.encounter } : {}),
          joins: this.#joins,
          resumedJoins: this.#resumedJoins,
        };
      },
      timings: () => ({ ...this.#timings }),
      stats: async (): Promise<HubDebugStats> => {
        const empty = (): InboundSummary => ({ bytesReceived: 0, packetsReceived: 0, streams: 0 });
        const result: HubDebugStats = { audio: empty(), video: { ...empty(), framesDecoded: 0 } };
        const transport = this.#recvTransport;
        if (!transport || transport.closed) return result;
        const report = await transport.getStats();
        for (const s of report.values()) {
          // mediasoup-client's bandwidth probator (mid 'probator') carries padding, not media.
          if (s.type !== 'inbound-rtp' || s.mid === 'probator') continue;
          const kind = (s.kind ?? s.mediaType) === 'video' ? 'video' : 'audio';
          const summary = result[kind];
          summary.streams += 1;
          summary.bytesReceived += s.bytesReceived ?? 0;
          summary.packetsReceived += s.packetsReceived ?? 0;
          if (kind === 'video') {
            summary.framesDecoded = (summary.framesDecoded ?? 0) + (s.framesDecoded ?? 0);
            summary.frameWidth = Math.max(summary.frameWidth ?? 0, s.frameWidth ?? 0);
          }
        }
        return result;
      },
      vitals: () => this.#vitalsMonitor?.summary,
      vitalsSent: () => ({ sent: this.#vitalsSent, lastSeq: this.#vitalsLastSeq }),
      lastSnapshot: () => this.#lastSnapshot,
    };
  }
}

function transportOptions(info: TransportInfo): TransportOptions {
  return {
    id: info.id,
    iceParameters: info.iceParameters as IceParameters,
    iceCandidates: info.iceCandidates as IceCandidate[],
    dtlsParameters: info.dtlsParameters as DtlsParameters,
    ...(info.sctpParameters ? { sctpParameters: info.sctpParameters as SctpParameters } : {}),
  };
}

export function describeError(err: unknown): { code: string; message: string } {
  if (err instanceof RoomRequestError || err instanceof ApiError) return { code: err.code, message: err.message };
  if (typeof err === 'object' && err !== null && 'code' in err && 'message' in err) {
    return { code: String((err as { code: unknown }).code), message: String((err as { message: unknown }).message) };
  }
  if (err instanceof Error) return { code: err.name, message: err.message };
  return { code: 'error', message: String(err) };
}
