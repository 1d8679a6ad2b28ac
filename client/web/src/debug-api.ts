/**
 * `window.__hub`: what the end-to-end tests and the join benchmark read from a running app. Types
 * only (no DOM), so the tests in Node import them too.
 */
import type { LinkProfile, PeerState, RoomKind, RoomRole } from '../../../server/rooms/protocol.js';
import type { VitalsSummary } from './teleassistance/vitals.js';

export type CallPhase = 'idle' | 'ticket' | 'connecting' | 'waiting' | 'admitted' | 'removed' | 'ended' | 'left' | 'refused' | 'error';

export interface HubDebugState {
  phase: CallPhase;
  role?: RoomRole;
  kind?: RoomKind;
  peerState?: PeerState;
  roomId?: string;
  peerId?: string;
  joined: boolean;
  admitted: boolean;
  /** Hosts: peers waiting to be admitted. */
  waiting: string[];
  peers: { peerId: string; displayName: string; role: RoomRole; state: PeerState }[];
  producers: { source: string; kind: string; paused: boolean }[];
  consumers: { peerId: string; source: string; kind: string; paused: boolean }[];
  dataConsumers: number;
  linkMode: 'auto' | LinkProfile;
  linkProfile: LinkProfile;
  connection: 'ok' | 'unstable' | 'reconnecting';
  error?: { code: string; message: string };
  encounter?: string;
  /** Times joins and reconnections went through (join acks). */
  joins: number;
  resumedJoins: number;
}

/** performance.now() marks of the last join (ms). */
export interface HubDebugTimings {
  ticketRequested?: number;
  ticketReceived?: number;
  joinAcked?: number;
  admitted?: number;
  firstRemoteFrame?: number;
}

export interface InboundSummary {
  bytesReceived: number;
  packetsReceived: number;
  /** Video only. */
  framesDecoded?: number;
  /** Video only: the widest frame being decoded now (the simulcast layer that arrives). */
  frameWidth?: number;
  streams: number;
}

export interface HubDebugStats {
  audio: InboundSummary;
  video: InboundSummary;
}

export interface HubDebugVitalsSent {
  sent: number;
  lastSeq: number | undefined;
}

export interface HubDebug {
  state(): HubDebugState;
  timings(): HubDebugTimings;
  /** Inbound RTP of the receive transport, summed per kind. */
  stats(): Promise<HubDebugStats>;
  /** Host side of a teleassistance: what arrived over the vitals DataChannel. */
  vitals(): VitalsSummary | undefined;
  /** Correspondent side: what the e-valise panel sent. */
  vitalsSent(): HubDebugVitalsSent;
  /** The FHIR references of the last snapshot saved. */
  lastSnapshot(): string[] | undefined;
}

export interface HubWindow {
  __hub?: HubDebug;
}
