import type { Consumer, Producer } from 'mediasoup/lib/types.js';
import { machineBusySeconds, ownCpuSeconds, processCpuSeconds, udpCounters } from './machine.js';
import type { RtpReplayer } from './rtp-replayer.js';
import type { RtpSinks } from './rtp-sinks.js';
import type { Topology } from './topologies.js';

/** One measured window of a topology at one size. */
export interface Measurement {
  path: string;
  rooms: number;
  streams: number;
  /** How long the relay was sending during the window. */
  seconds: number;
  /** Worker CPU over the window, in cores (1 = one core fully busy). */
  workerCores: number;
  /** This Node.js process (relay, sinks, sfu/ objects), in cores. */
  benchCores: number;
  /** Every other process of the machine (other test runs...), in cores: high means noisy figures. */
  otherCores: number;
  /** Packets the worker was asked to forward: for each consumer, what was sent to its producer. */
  expected: number;
  /** Packets that reached the sinks. */
  received: number;
  bitsPerSecond: number;
  /** From the worker's own counters (getStats); undefined when the worker did not answer. */
  producerReceived: number | undefined;
  consumerSent: number | undefined;
  /** Packets the relay could not send on time (bench process saturated), and how late the others left. */
  skipped: number;
  lateMeanMs: number;
  lateMaxMs: number;
  /** Machine-wide UDP datagrams dropped by the kernel for lack of receive buffer. */
  rcvbufErrors: number;
}

export function lossPercent(m: Measurement): number {
  return m.expected > 0 ? Math.max(0, (1 - m.received / m.expected) * 100) : 0;
}

/** µs of worker CPU per forwarded packet. */
export function microsPerPacket(m: Measurement): number {
  return m.expected > 0 ? (m.workerCores * m.seconds * 1e6) / m.expected : NaN;
}

/** % of one core per forwarded stream. */
export function percentPerStream(m: Measurement): number {
  return m.streams > 0 ? (m.workerCores * 100) / m.streams : NaN;
}

/** Where the missing packets went: before the producer, inside the worker, or after it. */
export function lossBreakdown(m: Measurement): string {
  const pct = (part: number | undefined, whole: number | undefined) =>
    part === undefined || whole === undefined || whole === 0 ? '–' : `${Math.max(0, (1 - part / whole) * 100).toFixed(2)} %`;
  return (
    `relay→producers ${pct(m.producerReceived, m.expected)}, ` +
    `producers→consumers ${pct(m.consumerSent, m.producerReceived)}, ` +
    `consumers→sinks ${pct(m.received, m.consumerSent)}; ` +
    `kernel receive-buffer drops ${m.rcvbufErrors}, relay packets skipped ${m.skipped}, ` +
    `relay late ${m.lateMeanMs.toFixed(1)} ms mean / ${m.lateMaxMs.toFixed(0)} ms max, other processes ${(m.otherCores * 100).toFixed(0)} % CPU`
  );
}

async function packetCount(object: Producer | Consumer, type: 'inbound-rtp' | 'outbound-rtp'): Promise<number> {
  const stats = (await object.getStats()) as Array<{ type: string; packetCount?: number }>;
  return stats.filter((stat) => stat.type === type).reduce((sum, stat) => sum + (stat.packetCount ?? 0), 0);
}

/** Reads counters a batch at a time: a thousand requests at once can outlast the channel's timeout on a busy machine. */
async function inBatches<T>(items: readonly T[], read: (item: T) => Promise<number>): Promise<Map<T, number>> {
  const counts = new Map<T, number>();
  for (let i = 0; i < items.length; i += 50) {
    const batch = items.slice(i, i + 50);
    const values = await Promise.all(batch.map(read));
    for (const [j, item] of batch.entries()) counts.set(item, values[j] ?? 0);
  }
  return counts;
}

interface WorkerCounts {
  producers: Map<Producer, number>;
  consumers: Map<Consumer, number>;
}

async function workerCounts(topology: Topology): Promise<WorkerCounts | undefined> {
  try {
    const producers = [...new Set(topology.forwardings.map((f) => f.producer))];
    const consumers = topology.forwardings.map((f) => f.consumer);
    return {
      producers: await inBatches(producers, (p) => packetCount(p, 'inbound-rtp')),
      consumers: await inBatches(consumers, (c) => packetCount(c, 'outbound-rtp')),
    };
  } catch {
    return undefined;
  }
}

interface Snapshot {
  worker: number;
  sent: number[];
  sentBytes: number[];
  received: number[];
  skipped: number;
}

interface MachineSnapshot {
  bench: number;
  machine: number;
  rcvbufErrors: number;
}

function snapshot(topology: Topology, sinks: RtpSinks): Snapshot {
  const { forwardings } = topology;
  const copies = new Set(forwardings.map((f) => f.copy));
  return {
    worker: processCpuSeconds(topology.workerPid),
    sent: forwardings.map((f) => f.copy.sent),
    sentBytes: forwardings.map((f) => f.copy.sentBytes),
    received: forwardings.map((f) => sinks.packets(f.sinkSlot)),
    skipped: [...copies].reduce((sum, copy) => sum + copy.skipped, 0),
  };
}

function machineSnapshot(): MachineSnapshot {
  return { bench: ownCpuSeconds(), machine: machineBusySeconds(), rcvbufErrors: udpCounters().rcvbufErrors };
}

const sleep = (seconds: number) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/** CPU used by every process but the workers and this one over `seconds`, in cores. */
async function otherLoad(workerPids: readonly number[], seconds: number): Promise<number> {
  const workers = () => workerPids.reduce((sum, pid) => sum + processCpuSeconds(pid), 0);
  const before = { machine: machineBusySeconds(), workers: workers(), bench: ownCpuSeconds() };
  await sleep(seconds);
  const machine = machineBusySeconds() - before.machine;
  const ours = workers() - before.workers + ownCpuSeconds() - before.bench;
  return Math.max(0, machine - ours) / seconds;
}

/**
 * Waits, up to `maxSeconds`, until other processes (a test run of a colleague, a build) leave the
 * machine's cores to the workers and the load generator. Returns the load seen last, in cores, and
 * the seconds waited.
 */
export async function waitForQuiet(
  workerPids: readonly number[],
  maxSeconds: number,
  threshold: number,
): Promise<{ load: number; waited: number }> {
  let load = await otherLoad(workerPids, 1);
  let waited = 1;
  for (; load > threshold && waited < maxSeconds; waited += 1) load = await otherLoad(workerPids, 1);
  return { load, waited };
}

/** Pauses the relay and waits until the sinks stop counting: every packet sent has arrived or is lost. */
async function drain(replayer: RtpReplayer, topologies: readonly Topology[], sinks: RtpSinks): Promise<void> {
  replayer.pause();
  const total = () =>
    topologies.reduce((sum, t) => t.forwardings.reduce((inner, f) => inner + sinks.packets(f.sinkSlot), sum), 0);
  let last = -1;
  for (let waited = 0; waited < 3; waited += 0.1) {
    await sleep(0.1);
    const now = total();
    if (now === last) return;
    last = now;
  }
}

/**
 * Waits `warmupSeconds` (every video consumer needs a key frame before it forwards anything),
 * then measures `seconds` of steady forwarding. Each end of the window pauses the relay until
 * the in-flight packets have drained, so that what was sent and what arrived are counted over
 * exactly the same packets; the worker's own counters are read during those pauses, outside the
 * CPU window, so that hundreds of getStats requests do not count as forwarding work.
 */
export async function measure(
  topology: Topology,
  replayer: RtpReplayer,
  sinks: RtpSinks,
  warmupSeconds: number,
  seconds: number,
): Promise<Measurement> {
  const [measurement] = await measureTogether([topology], replayer, sinks, warmupSeconds, seconds);
  return measurement!;
}

/**
 * measure() for several topologies forwarding at the same time, each on its own worker: they
 * share the same seconds of the same machine, so a comparison between them does not drift with
 * whatever else the machine does. Bench and other-process CPU are the same figure for all.
 */
export async function measureTogether(
  topologies: readonly Topology[],
  replayer: RtpReplayer,
  sinks: RtpSinks,
  warmupSeconds: number,
  seconds: number,
): Promise<Measurement[]> {
  await sleep(warmupSeconds);
  await drain(replayer, topologies, sinks);
  const statsBefore = await Promise.all(topologies.map(workerCounts));
  const machineStart = machineSnapshot();
  const starts = topologies.map((t) => snapshot(t, sinks));
  replayer.lateness();
  const resumed = performance.now();
  replayer.resume();
  await sleep(seconds);
  replayer.pause();
  const active = (performance.now() - resumed) / 1000;
  const lateness = replayer.lateness();
  await drain(replayer, topologies, sinks);
  const ends = topologies.map((t) => snapshot(t, sinks));
  const machineEnd = machineSnapshot();
  const statsAfter = await Promise.all(topologies.map(workerCounts));
  replayer.resume();

  const sum = (values: number[], from: number[]) => values.reduce((total, v, i) => total + v - (from[i] ?? 0), 0);
  // The drain at the end idles the workers; their CPU is charged to the time the relay was sending.
  const workerSeconds = topologies.map((_, i) => ends[i]!.worker - starts[i]!.worker);
  const benchSeconds = machineEnd.bench - machineStart.bench;
  const otherSeconds = machineEnd.machine - machineStart.machine - benchSeconds - workerSeconds.reduce((a, b) => a + b, 0);
  return topologies.map((topology, i) => {
    const start = starts[i]!;
    const end = ends[i]!;
    const before = statsBefore[i];
    const after = statsAfter[i];
    let producerReceived: number | undefined;
    let consumerSent: number | undefined;
    if (before && after) {
      const delta = <K>(a: Map<K, number>, b: Map<K, number>, key: K) => (a.get(key) ?? 0) - (b.get(key) ?? 0);
      producerReceived = 0;
      consumerSent = 0;
      for (const f of topology.forwardings) {
        producerReceived += delta(after.producers, before.producers, f.producer);
        consumerSent += delta(after.consumers, before.consumers, f.consumer);
      }
    }
    return {
      path: topology.label,
      rooms: topology.rooms,
      streams: topology.forwardings.length,
      seconds: active,
      workerCores: workerSeconds[i]! / active,
      benchCores: benchSeconds / active,
      otherCores: Math.max(0, otherSeconds) / active,
      expected: sum(end.sent, start.sent),
      received: sum(end.received, start.received),
      bitsPerSecond: (sum(end.sentBytes, start.sentBytes) * 8) / active,
      producerReceived,
      consumerSent,
      skipped: end.skipped - start.skipped,
      lateMeanMs: lateness.meanMs,
      lateMaxMs: lateness.maxMs,
      rcvbufErrors: machineEnd.rcvbufErrors - machineStart.rcvbufErrors,
    };
  });
}

/** Least-squares slope of worker cores against forwarded streams: the marginal cost of one more stream. */
export function marginalPercentPerStream(points: readonly Measurement[]): number | undefined {
  if (points.length < 2) return undefined;
  const xs = points.map((m) => m.streams);
  const ys = points.map((m) => m.workerCores * 100);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
  const my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let num = 0;
  let den = 0;
  for (const [i, x] of xs.entries()) {
    num += (x - mx) * ((ys[i] ?? 0) - my);
    den += (x - mx) ** 2;
  }
  return den > 0 ? num / den : undefined;
}
