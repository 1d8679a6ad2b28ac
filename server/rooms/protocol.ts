/**
 * The signaling protocol of consultation and teleassistance rooms, over socket.io namespace
 * `/rooms`. The browser app imports these types (type-only imports: no server code reaches the
 * browser); the server validates every request against the zod schemas below at the door.
 *
 * Flow:
 *  1. HTTP  POST /api/rooms/token { appointment: "Appointment/<id>" } or { serviceRequest: "ServiceRequest/<id>" }
 *           → RoomTicket (a short-lived JWT bound to the user and the consultation)
 *  2. socket.io connect to `/rooms` with `auth: { token: <access token> }`
 *  3. emit `join` { roomToken } → JoinResult. A guest (patient side) is `waiting` until a host admits it;
 *     a waiting peer may only `leave`. Hosts receive `waitingRoom` updates and `admit` / `remove`.
 *  4. media: `createTransport` (send, recv) → `connectTransport` → `produce` / `consume` (consumers start
 *     paused: `resumeConsumer` once the client's consumer is set up) → `newProducer` events for later producers.
 *  5. `end` (host) stores the Encounter and the report; `leave` for everyone else.
 *
 * Every request is acknowledged with `Ack<T>`: `{ ok: true, data }` or `{ ok: false, error: { code, message, field? } }`.
 */
import { z } from 'zod';

/** What POST /api/rooms/token answers. */
export interface RoomTicket {
  roomToken: string;
  /** "appointment:<id>" or "teleassistance:<id>" */
  roomId: string;
  /** host: the doctor (admits, removes, ends); guest: the patient side, or the assisted correspondent. */
  role: RoomRole;
  kind: RoomKind;
  expiresIn: number;
}

export type RoomRole = 'host' | 'guest';
export type RoomKind = 'teleconsultation' | 'teleassistance';
export type PeerState = 'waiting' | 'admitted';
export type LinkProfile = 'normal' | 'satellite';

/** Bitrates of the link profiles, shared by the server (caps) and the browser (encodings). */
export const LINK_PROFILES = {
  normal: { maxIncomingBitrate: 1_500_000, videoLayers: 3 },
  satellite: { maxIncomingBitrate: 150_000, videoLayers: 1 },
} as const;

export interface RoomError {
  /** Stable code the client can branch on: 'invalid-argument', 'unauthorized', 'forbidden', 'waiting', 'not-found', 'not-owner', ... */
  code: string;
  message: string;
  /** The request field at fault, when there is one. */
  field?: string;
}

export type Ack<T> = { ok: true; data: T } | { ok: false; error: RoomError };

export interface PeerSummary {
  peerId: string;
  displayName: string;
  role: RoomRole;
  state: PeerState;
}

export interface ProducerSummary {
  peerId: string;
  producerId: string;
  kind: 'audio' | 'video';
  source: 'mic' | 'webcam' | 'screen';
  paused: boolean;
}

export interface DataProducerSummary {
  peerId: string;
  dataProducerId: string;
  label: string;
  source: 'vitals';
}

export interface JoinResult {
  peerId: string;
  role: RoomRole;
  state: PeerState;
  kind: RoomKind;
  /** Present once admitted (also sent with `admitted`). Opaque mediasoup RtpCapabilities. */
  routerRtpCapabilities?: unknown;
  peers: PeerSummary[];
  producers: ProducerSummary[];
  dataProducers: DataProducerSummary[];
  /** A reconnect within the grace period: the peer's server-side objects still exist. */
  resumed: boolean;
}

export interface TransportInfo {
  id: string;
  iceParameters: unknown;
  iceCandidates: unknown;
  dtlsParameters: unknown;
  sctpParameters?: unknown;
}

export interface ConsumerInfo {
  id: string;
  producerId: string;
  peerId: string;
  kind: 'audio' | 'video';
  source: 'mic' | 'webcam' | 'screen';
  rtpParameters: unknown;
  type: string;
  /** Consumers start paused on the server; `resumeConsumer` once the client is ready. */
  paused: boolean;
}

export interface DataConsumerInfo {
  id: string;
  dataProducerId: string;
  peerId: string;
  sctpStreamParameters: unknown;
  label: string;
  protocol: string;
}

export interface EndResult {
  encounter: string;
  report: string;
}

// ---------------------------------------------------------------------------------------------
// Client → server requests
// ---------------------------------------------------------------------------------------------

const id = (field: string) => z.string({ required_error: `${field} is required` }).min(1, `${field} must not be empty`).max(100);
/** mediasoup parameters are validated by mediasoup itself (sfu/ turns its errors into SfuError naming the field). */
const opaque = (field: string) => z.record(z.unknown(), { required_error: `${field} is required`, invalid_type_error: `${field} must be an object` });

export const requests = {
  join: z.object({
    roomToken: z.string({ required_error: 'roomToken is required' }).min(1).max(4096),
    /**
     * A new page (a reload, a crashed tab) of a participant the hub still holds: its place is kept
     * (an admitted guest stays admitted) but its old media objects, which the new page cannot
     * reach, are closed. Without it, a join within the grace period resumes them.
     */
    fresh: z.boolean().optional(),
  }),
  admit: z.object({ peerId: id('peerId') }),
  remove: z.object({ peerId: id('peerId') }),
  createTransport: z.object({ direction: z.enum(['send', 'recv'], { required_error: 'direction is required', invalid_type_error: "direction must be 'send' or 'recv'" }), sctp: z.boolean().optional() }),
  connectTransport: z.object({ transportId: id('transportId'), dtlsParameters: opaque('dtlsParameters') }),
  restartIce: z.object({ transportId: id('transportId') }),
  produce: z.object({
    transportId: id('transportId'),
    kind: z.enum(['audio', 'video'], { required_error: 'kind is required', invalid_type_error: "kind must be 'audio' or 'video'" }),
    rtpParameters: opaque('rtpParameters'),
    source: z.enum(['mic', 'webcam', 'screen'], { required_error: 'source is required', invalid_type_error: "source must be 'mic', 'webcam' or 'screen'" }),
    paused: z.boolean().optional(),
  }),
  produceData: z.object({
    transportId: id('transportId'),
    sctpStreamParameters: opaque('sctpStreamParameters'),
    label: z.string().max(100).default('vitals'),
    protocol: z.string().max(100).default('hub-vitals/1'),
    source: z.literal('vitals', { invalid_type_error: "source must be 'vitals'" }).default('vitals'),
  }),
  consume: z.object({ producerId: id('producerId'), rtpCapabilities: opaque('rtpCapabilities'), transportId: id('transportId').optional() }),
  consumeData: z.object({ dataProducerId: id('dataProducerId'), transportId: id('transportId').optional() }),
  resumeConsumer: z.object({ consumerId: id('consumerId') }),
  pauseConsumer: z.object({ consumerId: id('consumerId') }),
  setPreferredLayers: z.object({
    consumerId: id('consumerId'),
    spatialLayer: z.number({ required_error: 'spatialLayer is required' }).int().min(0).max(3),
    temporalLayer: z.number().int().min(0).max(3).optional(),
  }),
  pauseProducer: z.object({ producerId: id('producerId') }),
  resumeProducer: z.object({ producerId: id('producerId') }),
  closeProducer: z.object({ producerId: id('producerId') }),
  /**
   * The link this peer is on. 'satellite': the server caps what the peer may send
   * (maxIncomingBitrate) and holds its video consumers to the lowest simulcast layer; the client
   * on its side sends audio first (Opus FEC + DTX) and at most the lowest video layer.
   */
  setLinkProfile: z.object({ profile: z.enum(['normal', 'satellite'], { required_error: 'profile is required', invalid_type_error: "profile must be 'normal' or 'satellite'" }) }),
  leave: z.object({}).passthrough(),
  end: z.object({
    report: z.string({ required_error: 'report is required: the consultation report goes into the patient record' }).trim().min(1, 'report must not be empty').max(100_000),
    /** Optional LOINC-coded conclusion title; default "Téléconsultation". */
    title: z.string().max(200).optional(),
  }),
} as const;

export type RequestName = keyof typeof requests;
export type RequestOf<N extends RequestName> = z.input<(typeof requests)[N]>;

/** What each request answers (the `data` of a successful Ack). */
export interface Responses {
  join: JoinResult;
  admit: PeerSummary;
  remove: { peerId: string };
  createTransport: TransportInfo;
  connectTransport: Record<string, never>;
  restartIce: { iceParameters: unknown };
  produce: { producerId: string };
  produceData: { dataProducerId: string };
  consume: ConsumerInfo;
  consumeData: DataConsumerInfo;
  resumeConsumer: Record<string, never>;
  pauseConsumer: Record<string, never>;
  setPreferredLayers: Record<string, never>;
  pauseProducer: Record<string, never>;
  resumeProducer: Record<string, never>;
  closeProducer: Record<string, never>;
  setLinkProfile: { profile: LinkProfile; maxIncomingBitrate: number };
  leave: Record<string, never>;
  end: EndResult;
}

export type ClientToServer = {
  [N in RequestName]: (request: RequestOf<N>, ack: (response: Ack<Responses[N]>) => void) => void;
};

// ---------------------------------------------------------------------------------------------
// Server → client events
// ---------------------------------------------------------------------------------------------

export interface ServerToClient {
  /** To hosts: who waits to be admitted. */
  waitingRoom(update: { waiting: PeerSummary[] }): void;
  /** To a waiting guest: admitted, here are the router's capabilities and what is already produced. */
  admitted(update: { routerRtpCapabilities: unknown; peers: PeerSummary[]; producers: ProducerSummary[]; dataProducers: DataProducerSummary[] }): void;
  /**
   * This connection is out of the room (the socket stays connected): 'removed-by-host' (the
   * peer is gone), or 'replaced' (the same professional joined from another connection, which
   * now holds the place).
   */
  removed(update: { code: 'removed-by-host' | 'replaced'; reason: string }): void;
  peerJoined(peer: PeerSummary): void;
  peerLeft(update: { peerId: string }): void;
  newProducer(producer: ProducerSummary): void;
  producerClosed(update: { producerId: string; peerId: string }): void;
  producerPaused(update: { producerId: string; peerId: string }): void;
  producerResumed(update: { producerId: string; peerId: string }): void;
  newDataProducer(dataProducer: DataProducerSummary): void;
  consumerClosed(update: { consumerId: string }): void;
  dataConsumerClosed(update: { dataConsumerId: string }): void;
  /** The media server restarted the room (a worker died): create transports again and produce again. */
  reconnectRequired(update: { reason: string; routerRtpCapabilities: unknown }): void;
  /** The host ended the session; the room is closed. */
  roomEnded(update: { encounter?: string; reason: string }): void;
}

// ---------------------------------------------------------------------------------------------
// Teleassistance vitals, over a DataChannel (label 'vitals', protocol 'hub-vitals/1')
// ---------------------------------------------------------------------------------------------

/**
 * One message every 100 ms from the e-valise side: the latest SpO2 and heart rate and the ECG
 * samples (one lead) taken since the previous message. `t` is the device clock at the first
 * sample (epoch ms), `seq` increases by one per message, so the receiver sees gaps and order.
 */
export interface VitalsMessage {
  seq: number;
  t: number;
  spo2?: number;
  heartRate?: number;
  ecg?: { lead: 'I' | 'II' | 'III' | 'V1' | 'V2' | 'V3' | 'V4' | 'V5' | 'V6' | 'aVR' | 'aVL' | 'aVF'; rateHz: number; samples: number[] };
}
