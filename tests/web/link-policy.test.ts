import { describe, expect, it } from 'vitest';
import { LINK_POLICY, initialLinkPolicyState, linkSampleFromStats, nextLinkState, type LinkPolicyState, type LinkSample } from '../../client/web/src/rooms/link-policy.js';

function feed(state: LinkPolicyState, samples: LinkSample[]): LinkPolicyState[] {
  const states: LinkPolicyState[] = [];
  for (const s of samples) states.push((state = nextLinkState(state, s)));
  return states;
}

describe('the automatic link profile', () => {
  it('moves to satellite after two bad samples in a row (RTT over 400 ms or loss over 5 %), not after one spike', () => {
    const profiles = feed(initialLinkPolicyState(), [{ rttMs: 650 }, { rttMs: 40 }, { rttMs: 620 }, { rttMs: 610, loss: 0.01 }]).map((s) => s.profile);
    expect(profiles).toEqual(['normal', 'normal', 'normal', 'satellite']);
    expect(feed(initialLinkPolicyState(), [{ rttMs: 50, loss: 0.08 }, { rttMs: 50, loss: 0.06 }]).at(-1)!.profile).toBe('satellite');
  });

  it('comes back to normal only after three clearly good samples (hysteresis)', () => {
    const start = initialLinkPolicyState('satellite');
    // 300 ms is below the satellite threshold but above the recovery one: stays on satellite.
    expect(feed(start, [{ rttMs: 300 }, { rttMs: 300 }, { rttMs: 300 }, { rttMs: 300 }]).every((s) => s.profile === 'satellite')).toBe(true);
    expect(feed(start, [{ rttMs: 80 }, { rttMs: 80 }, { rttMs: 80, loss: 0.03 }, { rttMs: 80 }, { rttMs: 80 }]).map((s) => s.profile)).toEqual([
      'satellite',
      'satellite',
      'satellite',
      'satellite',
      'satellite',
    ]);
    expect(feed(start, [{ rttMs: 80 }, { rttMs: 90, loss: 0 }, { rttMs: 70 }]).at(-1)!.profile).toBe('normal');
  });

  it('ignores a sample without measurements', () => {
    const state = { profile: 'normal' as const, badStreak: 1, goodStreak: 0 };
    expect(nextLinkState(state, {})).toBe(state);
  });

  it('reads the RTT of the selected candidate pair and the worse loss of both directions from getStats values', () => {
    const stats = (received: number, lost: number) => [
      { type: 'transport', id: 'T1', selectedCandidatePairId: 'CP2' },
      { type: 'candidate-pair', id: 'CP1', nominated: false, state: 'failed', currentRoundTripTime: 2 },
      { type: 'candidate-pair', id: 'CP2', nominated: true, state: 'succeeded', currentRoundTripTime: 0.612 },
      { type: 'remote-inbound-rtp', id: 'RI1', fractionLost: 0.01, roundTripTime: 0.6 },
      { type: 'inbound-rtp', id: 'IV', kind: 'video', packetsReceived: received, packetsLost: lost },
    ];
    const first = linkSampleFromStats(stats(1000, 10), undefined);
    expect(first.sample).toEqual({ rttMs: 612, loss: 0.01 });
    // Over the interval: 80 lost out of 1000 sent = 8 %.
    const second = linkSampleFromStats(stats(1920, 90), first.counters);
    expect(second.sample.loss).toBeCloseTo(0.08, 5);
    expect(nextLinkState(nextLinkState(initialLinkPolicyState(), first.sample), second.sample).profile).toBe('satellite');
  });

  it('falls back on the RTCP round trip when no candidate pair is selected yet', () => {
    expect(linkSampleFromStats([{ type: 'remote-inbound-rtp', id: 'RI', roundTripTime: 0.45 }], undefined).sample).toEqual({ rttMs: 450 });
    expect(LINK_POLICY.intervalMs).toBe(5_000);
  });
});
