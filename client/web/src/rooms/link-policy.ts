/**
 * The automatic link profile: measure the round trip and the loss of the media path every few
 * seconds (WebRTC getStats) and move to the satellite profile on a bad link, back to normal once
 * the link has been good for a while. Pure: it reads plain stats objects, so it is tested without
 * a browser.
 */
import type { LinkProfile } from '../../../../server/rooms/protocol.js';

export const LINK_POLICY = {
  /** Samples are taken this often in auto mode. */
  intervalMs: 5_000,
  /** A satellite hop alone is ~600 ms; terrestrial links stay well under this. */
  satelliteRttMs: 400,
  satelliteLoss: 0.05,
  /** Back to normal only clearly below the thresholds (hysteresis)… */
  normalRttMs: 250,
  normalLoss: 0.02,
  /** …and for this many samples in a row (15 s), so a flapping link stays on satellite. */
  goodSamplesToRecover: 3,
  /** Bad samples in a row before leaving normal: one spike is not a satellite link. */
  badSamplesToDegrade: 2,
} as const;

export interface LinkSample {
  /** Round trip of the selected ICE candidate pair, ms. */
  rttMs?: number;
  /** Fraction (0–1) of packets lost over the last interval, the worse direction. */
  loss?: number;
}

export interface LinkPolicyState {
  profile: LinkProfile;
  badStreak: number;
  goodStreak: number;
}

export const initialLinkPolicyState = (profile: LinkProfile = 'normal'): LinkPolicyState => ({ profile, badStreak: 0, goodStreak: 0 });

/** The profile after one more sample. A sample with neither RTT nor loss changes nothing. */
export function nextLinkState(state: LinkPolicyState, sample: LinkSample): LinkPolicyState {
  const { rttMs, loss } = sample;
  if (rttMs === undefined && loss === undefined) return state;
  const bad = (rttMs ?? 0) > LINK_POLICY.satelliteRttMs || (loss ?? 0) > LINK_POLICY.satelliteLoss;
  const good = (rttMs ?? 0) < LINK_POLICY.normalRttMs && (loss ?? 0) < LINK_POLICY.normalLoss;
  const badStreak = bad ? state.badStreak + 1 : 0;
  const goodStreak = good ? state.goodStreak + 1 : 0;
  if (state.profile === 'normal' && badStreak >= LINK_POLICY.badSamplesToDegrade) return { profile: 'satellite', badStreak: 0, goodStreak: 0 };
  if (state.profile === 'satellite' && goodStreak >= LINK_POLICY.goodSamplesToRecover) return { profile: 'normal', badStreak: 0, goodStreak: 0 };
  return { profile: state.profile, badStreak, goodStreak };
}

/** The counters of one getStats() call that the loss is computed from, kept between samples. */
export interface LossCounters {
  /** Per inbound-rtp id: packets received and lost so far. */
  inbound: Record<string, { received: number; lost: number }>;
}

type Stat = { type?: unknown; [key: string]: unknown };
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/**
 * One sample from the stats of the send and receive transports (RTCStatsReport values): the RTT
 * of the selected candidate pair, and the worse of the loss the far end reports on what we send
 * (remote-inbound-rtp fractionLost) and the loss we see on what we receive (inbound-rtp, over the
 * interval since `previous`).
 */
export function linkSampleFromStats(stats: Iterable<Stat>, previous: LossCounters | undefined): { sample: LinkSample; counters: LossCounters } {
  const all = [...stats];
  const selectedPairs = new Set(all.filter((s) => s.type === 'transport').map((s) => s.selectedCandidatePairId).filter((id): id is string => typeof id === 'string'));
  let rtt: number | undefined;
  for (const s of all) {
    if (s.type !== 'candidate-pair') continue;
    const selected = selectedPairs.size > 0 ? selectedPairs.has(s.id as string) : s.nominated === true && s.state === 'succeeded';
    const value = num(s.currentRoundTripTime);
    if (selected && value !== undefined) rtt = Math.max(rtt ?? 0, value * 1000);
  }
  if (rtt === undefined) {
    for (const s of all) {
      const value = s.type === 'remote-inbound-rtp' ? num(s.roundTripTime) : undefined;
      if (value !== undefined) rtt = Math.max(rtt ?? 0, value * 1000);
    }
  }
  let loss: number | undefined;
  for (const s of all) {
    if (s.type !== 'remote-inbound-rtp') continue;
    const fraction = num(s.fractionLost);
    if (fraction !== undefined) loss = Math.max(loss ?? 0, fraction);
  }
  const counters: LossCounters = { inbound: {} };
  for (const s of all) {
    if (s.type !== 'inbound-rtp' || typeof s.id !== 'string') continue;
    const received = num(s.packetsReceived) ?? 0;
    const lost = Math.max(0, num(s.packetsLost) ?? 0);
    counters.inbound[s.id] = { received, lost };
    const before = previous?.inbound[s.id];
    if (!before) continue;
    const dReceived = received - before.received;
    const dLost = lost - before.lost;
    if (dReceived + dLost > 0 && dLost >= 0) loss = Math.max(loss ?? 0, dLost / (dReceived + dLost));
  }
  const sample: LinkSample = {};
  if (rtt !== undefined) sample.rttMs = Math.round(rtt);
  if (loss !== undefined) sample.loss = loss;
  return { sample, counters };
}
