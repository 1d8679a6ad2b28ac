import type { NumSctpStreams, TransportListenIp } from 'mediasoup/lib/types.js';
import { SfuError } from './errors.js';

/** How a room opens transports for its peers; from the hub's configuration, read once. */
export interface TransportSettings {
  /**
   * Addresses WebRTC transports listen on. Behind NAT or in a container, give the private `ip`
   * and the public `announcedIp` that browsers must reach.
   */
  listenIps: readonly TransportListenIp[];
  /** Address plain RTP transports (gateways, benchmarks) listen on. Default: the first listenIp. */
  plainListenIp: TransportListenIp;
  /** Starting estimate of the downlink, in bit/s: low for satellite sites so the first seconds do not overshoot. */
  initialAvailableOutgoingBitrate?: number;
  /** Cap on what one WebRTC transport may send to the hub, in bit/s. */
  maxIncomingBitrate?: number;
  /** WebRTC and plain transports one peer may hold at once (a client needs two: send and receive). */
  maxTransportsPerPeer: number;
  /** SCTP streams of DataChannel-capable transports (mediasoup-client's default is 1024 each way). */
  numSctpStreams: NumSctpStreams;
}

export type TransportSettingsInput = Partial<TransportSettings>;

const LOOPBACK: TransportListenIp = { ip: '127.0.0.1' };

function positiveInteger(value: number | undefined, field: string): number | undefined {
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
    throw new SfuError('invalid-argument', `${field} must be a positive integer, got ${value}`, field);
  }
  return value;
}

/** Fills in defaults (loopback, fit for tests and a single machine) and checks the values. */
export function resolveTransportSettings(input: TransportSettingsInput = {}): TransportSettings {
  const listenIps = input.listenIps ?? [LOOPBACK];
  if (listenIps.length === 0 || listenIps.some((entry) => typeof entry?.ip !== 'string' || entry.ip === '')) {
    throw new SfuError(
      'invalid-argument',
      'transports.listenIps must list at least one { ip, announcedIp? }',
      'transports.listenIps',
    );
  }
  const numSctpStreams = input.numSctpStreams ?? { OS: 1024, MIS: 1024 };
  positiveInteger(numSctpStreams.OS, 'transports.numSctpStreams.OS');
  positiveInteger(numSctpStreams.MIS, 'transports.numSctpStreams.MIS');
  const settings: TransportSettings = {
    listenIps: listenIps.map((entry) => ({ ...entry })),
    plainListenIp: { ...(input.plainListenIp ?? listenIps[0] ?? LOOPBACK) },
    maxTransportsPerPeer: positiveInteger(input.maxTransportsPerPeer, 'transports.maxTransportsPerPeer') ?? 4,
    numSctpStreams: { OS: numSctpStreams.OS, MIS: numSctpStreams.MIS },
  };
  const initial = positiveInteger(input.initialAvailableOutgoingBitrate, 'transports.initialAvailableOutgoingBitrate');
  if (initial !== undefined) settings.initialAvailableOutgoingBitrate = initial;
  const maxIncoming = positiveInteger(input.maxIncomingBitrate, 'transports.maxIncomingBitrate');
  if (maxIncoming !== undefined) settings.maxIncomingBitrate = maxIncoming;
  return settings;
}
