/**
 * npm run bench:sfu (part b) — capacity of one mediasoup worker behind the hub's sfu/ layer.
 *
 * Media: ffmpeg encodes a few seconds of VP8 (~750 kbit/s, 640x360, 30 fps, key frame every 2 s)
 * and Opus (32 kbit/s) once; the RTP packets are kept in memory and replayed in a loop by a relay
 * in this process, one copy per producer with its own SSRC, sequence numbers, timestamps and VP8
 * picture ids, at spread-out phases. Consumers are PlainTransports sending to UDP sinks in this
 * process that count packets per SSRC. WebRTC transports cannot be fed without a browser; plain
 * transports are the like-for-like comparison (no SRTP on either side).
 *
 * Worker CPU comes from /proc/<worker pid>/stat; the relay and sinks are reported apart ("bench
 * CPU"), and so is every other process of the machine ("other processes", a shared machine).
 *  1. Sweeps, one worker each:
 *     - bare fan-out: mediasoup API only; one VP8 and one Opus producer fanned out to N
 *       PlainTransport consumers (half video, half audio: the mix of rooms of three), then a
 *       video-only fan-out;
 *     - hub rooms of 3: WorkerPool + RoomRegistry + Room + Peer, each peer producing audio+video
 *       and consuming the two others on plain transports; rooms added until the sinks miss > 1 %
 *       of packets, the worker reaches 90 % of a core, or the load generator saturates.
 *  2. Side by side: the hub's rooms, the same rooms made with mediasoup calls only, and a fan-out
 *     of as many streams, on three workers at the same time, for a few windows: the hub / bare
 *     ratio without the drift between minutes of a shared machine.
 *
 * Environment: BENCH_SFU_DURATION_S (10 s window), BENCH_SFU_WARMUP_S (3), BENCH_SFU_FANOUT
 * (100,400,800 consumers), BENCH_SFU_VIDEO_FANOUT (400 video-only consumers; '' skips),
 * BENCH_SFU_ROOMS (1,8,32,64,96,112,128), BENCH_SFU_MAX_ROOMS (128), BENCH_SFU_SIDE_BY_SIDE_ROOMS
 * (24), BENCH_SFU_SIDE_BY_SIDE_ROUNDS (3; 0 skips), BENCH_SFU_LOSS_PCT (1), BENCH_SFU_CPU_PCT (90),
 * BENCH_SFU_RECORD_S (6), BENCH_SFU_SINKS (32 sink sockets), BENCH_SFU_QUIET_BUDGET_S (60 s spent
 * at most, over the whole run, waiting for other processes to leave the CPU and measuring again
 * the windows they disturbed; 0 on a dedicated machine).
 */
import { describeMachine } from './sfu/machine.js';
import {
  lossBreakdown,
  lossPercent,
  marginalPercentPerStream,
  measureTogether,
  microsPerPacket,
  percentPerStream,
  waitForQuiet,
  type Measurement,
} from './sfu/measure.js';
import { FfmpegMissingError, killEncoders, recordWithFfmpeg, type Recordings } from './sfu/rtp-recording.js';
import { RtpReplayer } from './sfu/rtp-replayer.js';
import { RtpSinks } from './sfu/rtp-sinks.js';
import { BareFanout, EngineRooms, HubRooms, type Topology } from './sfu/topologies.js';

const env = process.env;
const numbers = (value: string | undefined, fallback: string) =>
  (value ?? fallback)
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map(Number)
    .filter((n) => Number.isFinite(n) && n > 0);

const DURATION_S = Number(env.BENCH_SFU_DURATION_S ?? 10);
const WARMUP_S = Number(env.BENCH_SFU_WARMUP_S ?? 3);
const FANOUT = numbers(env.BENCH_SFU_FANOUT, '100,400,800');
const VIDEO_FANOUT = numbers(env.BENCH_SFU_VIDEO_FANOUT, '400');
const MAX_ROOMS = Number(env.BENCH_SFU_MAX_ROOMS ?? 128);
const ROOMS = numbers(env.BENCH_SFU_ROOMS, '1,8,32,64,96,112,128').filter((n) => n <= MAX_ROOMS);
const SIDE_BY_SIDE_ROOMS = Number(env.BENCH_SFU_SIDE_BY_SIDE_ROOMS ?? 24);
const SIDE_BY_SIDE_ROUNDS = Number(env.BENCH_SFU_SIDE_BY_SIDE_ROUNDS ?? 3);
const LOSS_LIMIT = Number(env.BENCH_SFU_LOSS_PCT ?? 1);
const CPU_LIMIT = Number(env.BENCH_SFU_CPU_PCT ?? 90);
const RECORD_S = Number(env.BENCH_SFU_RECORD_S ?? 6);
const SINKS = Number(env.BENCH_SFU_SINKS ?? 32);
/** Seconds left for waiting out other processes and re-measuring what they disturbed. */
let quietBudget = Number(env.BENCH_SFU_QUIET_BUDGET_S ?? 60);
/** Other processes using more than this share of a core make a window noisy. */
const NOISY_CORES = 0.25;
/** A load generator using nearly a core cannot be trusted to keep time. */
const BENCH_SATURATED_CORES = 0.95;
const TARGET_RATIO = 1.2;

type Media = { recordings: Recordings; replayer: RtpReplayer; sinks: RtpSinks };

const open = new Set<Topology>();
let replayer: RtpReplayer | undefined;
let sinks: RtpSinks | undefined;

async function cleanUp(): Promise<void> {
  killEncoders();
  for (const topology of [...open]) {
    open.delete(topology);
    await topology.close().catch(() => {});
  }
  replayer?.close();
  replayer = undefined;
  sinks?.close();
  sinks = undefined;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`\n${signal}: stopping ffmpeg and the mediasoup workers`);
    void cleanUp().finally(() => process.exit(130));
  });
}
process.once('exit', () => killEncoders());

function log(message: string): void {
  console.error(`[bench:sfu] ${message}`);
}

function describe(m: Measurement): string {
  return (
    `${m.streams} streams: worker ${(m.workerCores * 100).toFixed(1)} % of a core, ` +
    `${microsPerPacket(m).toFixed(2)} µs/packet, loss ${lossPercent(m).toFixed(2)} %, bench ${(m.benchCores * 100).toFixed(0)} %, ` +
    `other processes ${(m.otherCores * 100).toFixed(0)} %`
  );
}

/**
 * The machine may be shared (colleagues' test runs): each window waits for the other processes to
 * calm down, and a window they disturbed anyway is measured again; the least disturbed is kept.
 */
async function measureQuietly(topologies: readonly Topology[], media: Media, warmupSeconds: number): Promise<Measurement[]> {
  let best: Measurement[] | undefined;
  const pids = topologies.map((t) => t.workerPid);
  for (let attempt = 1; ; attempt += 1) {
    // The first second of waiting is part of the warm-up, and is spent even on a quiet machine.
    const quiet = await waitForQuiet(pids, 1 + Math.max(0, quietBudget), NOISY_CORES);
    quietBudget -= quiet.waited - 1;
    if (quiet.load > NOISY_CORES) log(`other processes use ${(quiet.load * 100).toFixed(0)} % CPU; measuring anyway`);
    const warmup = attempt === 1 ? Math.max(0, warmupSeconds - quiet.waited) : 0;
    const rows = await measureTogether(topologies, media.replayer, media.sinks, warmup, DURATION_S);
    const other = rows[0]?.otherCores ?? 0;
    if (!best || other < (best[0]?.otherCores ?? Infinity)) best = rows;
    if (other <= NOISY_CORES || quietBudget < DURATION_S) return best;
    quietBudget -= DURATION_S;
    log(`window disturbed by other processes (${(other * 100).toFixed(0)} % CPU): measuring again`);
  }
}

type Stop = 'loss' | 'cpu' | 'bench' | 'setup' | undefined;

function stopReason(m: Measurement): Stop {
  // Loss while other processes held the CPU says more about the machine than about mediasoup.
  if (lossPercent(m) > LOSS_LIMIT && m.otherCores <= NOISY_CORES) return 'loss';
  if (m.workerCores * 100 >= CPU_LIMIT) return 'cpu';
  if (m.benchCores >= BENCH_SATURATED_CORES || m.skipped > 0) return 'bench';
  return undefined;
}

async function track<T extends Topology>(making: Promise<T>): Promise<T> {
  const topology = await making;
  open.add(topology);
  return topology;
}

async function release(topology: Topology): Promise<void> {
  open.delete(topology);
  await topology.close();
  // Let the last packets in flight drain before the next worker starts.
  await new Promise((resolve) => setTimeout(resolve, 500));
}

/** Grows a topology size by size, measuring each, until loss, 90 % of a core, or the last size. */
async function sweep(
  topology: BareFanout | HubRooms,
  unit: string,
  sizes: readonly number[],
  media: Media,
): Promise<{ rows: Measurement[]; stop: Stop }> {
  const rows: Measurement[] = [];
  let stop: Stop;
  for (const size of sizes) {
    log(`${topology.label}: growing to ${size} ${unit}`);
    const started = performance.now();
    try {
      await topology.growTo(size);
    } catch (error) {
      // A saturated worker answers its channel late: mediasoup gives up after 15 s.
      log(`${topology.label}: could not grow to ${size} ${unit}: ${String(error)}`);
      stop = 'setup';
      break;
    }
    const setupMs = performance.now() - started;
    const [m] = await measureQuietly([topology], media, WARMUP_S);
    rows.push(m!);
    log(`${topology.label}, ${size} ${unit} (set up in ${setupMs.toFixed(0)} ms): ${describe(m!)}`);
    stop = stopReason(m!);
    if (stop) break;
  }
  await release(topology);
  return { rows, stop };
}

/**
 * The hub, the engine in the hub's topology and the engine's fan-out, each on its own worker,
 * forwarding the same number of streams of the same mix at the same time, for a few windows: a
 * comparison that the machine's drift (other tenants, frequency) cannot bias.
 */
async function sideBySide(media: Media, rooms: number, rounds: number): Promise<Measurement[][]> {
  const hub = await track(HubRooms.create(media));
  const engine = await track(EngineRooms.create(media));
  const fanout = await track(BareFanout.create(media, ['video', 'audio']));
  try {
    await hub.growTo(rooms);
    await engine.growTo(rooms);
    await fanout.growTo(rooms * 12);
  } catch (error) {
    log(`side by side: could not set up ${rooms} rooms: ${String(error)}`);
    for (const topology of [hub, engine, fanout]) await release(topology);
    return [];
  }
  const results: Measurement[][] = [];
  for (let round = 1; round <= rounds; round += 1) {
    const rows = await measureQuietly([hub, engine, fanout], media, round === 1 ? WARMUP_S : 0);
    log(`side by side, round ${round}: ${rows.map((m) => `${m.path}: ${describe(m)}`).join('; ')}`);
    results.push(rows);
  }
  for (const topology of [hub, engine, fanout]) await release(topology);
  return results;
}

const fmt = (value: number | undefined, digits: number) =>
  value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);

function table(rows: readonly Measurement[], first = 'path'): string {
  const lines = [
    `| ${first} | rooms | streams forwarded | worker CPU (% of a core) | % of a core per stream | µs CPU per forwarded packet | forwarded packets/s | Mbit/s forwarded | loss % | bench CPU % | other processes CPU % |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const m of rows) {
    lines.push(
      `| ${m.path} | ${m.rooms || '–'} | ${m.streams} | ${fmt(m.workerCores * 100, 1)} | ${fmt(percentPerStream(m), 3)} | ` +
        `${fmt(microsPerPacket(m), 2)} | ${fmt(m.expected / m.seconds, 0)} | ${fmt(m.bitsPerSecond / 1e6, 1)} | ` +
        `${fmt(lossPercent(m), 2)} | ${fmt(m.benchCores * 100, 0)} | ${fmt(m.otherCores * 100, 0)}${m.otherCores > NOISY_CORES ? ' ⚠' : ''} |`,
    );
  }
  return lines.join('\n');
}

/** Several windows of one path as one: CPU and packets summed. */
function pooled(rows: readonly Measurement[]): Measurement | undefined {
  const [first] = rows;
  if (!first) return undefined;
  const total = (pick: (m: Measurement) => number) => rows.reduce((sum, m) => sum + pick(m), 0);
  const seconds = total((m) => m.seconds);
  const cores = (pick: (m: Measurement) => number) => total((m) => pick(m) * m.seconds) / seconds;
  return {
    ...first,
    path: `${first.path}, ${rows.length} windows`,
    seconds,
    workerCores: cores((m) => m.workerCores),
    benchCores: cores((m) => m.benchCores),
    otherCores: cores((m) => m.otherCores),
    expected: total((m) => m.expected),
    received: total((m) => m.received),
    bitsPerSecond: cores((m) => m.bitsPerSecond),
  };
}

/** The largest measurement without loss; among equals, one no other process disturbed. */
function lastClean(rows: readonly Measurement[]): Measurement | undefined {
  const clean = [...rows].reverse().filter((m) => lossPercent(m) <= LOSS_LIMIT);
  return clean.find((m) => m.otherCores <= NOISY_CORES) ?? clean[0];
}

function stopText(stop: Stop, limitLabel: string): string {
  switch (stop) {
    case 'loss':
      return `stopped when the sinks missed more than ${LOSS_LIMIT} % of packets`;
    case 'cpu':
      return `stopped when the worker reached ${CPU_LIMIT} % of a core, without loss`;
    case 'setup':
      return 'stopped when the worker no longer answered in time while more were added (saturated)';
    case 'bench':
      return 'stopped when the load generator (this process) saturated before the worker did; figures beyond are extrapolated';
    default:
      return `stopped at ${limitLabel} without loss; figures beyond are extrapolated`;
  }
}

const ratio = (a: number, b: number) => fmt(a / b, 2);

async function main(): Promise<void> {
  console.log('# SFU capacity (issue 5, part b)\n');
  console.log(`Machine: ${describeMachine()}`);
  log(`recording ${RECORD_S} s of VP8 + Opus with ffmpeg`);
  const recordings = await recordWithFfmpeg(RECORD_S);
  const { video, audio } = recordings;
  console.log(
    `Media: VP8 ${(video.bitsPerSecond / 1000).toFixed(0)} kbit/s, ${video.packetsPerSecond.toFixed(0)} packets/s; ` +
      `Opus ${(audio.bitsPerSecond / 1000).toFixed(0)} kbit/s, ${audio.packetsPerSecond.toFixed(0)} packets/s; ` +
      `a ${video.periodSeconds.toFixed(2)} s ffmpeg recording replayed in a loop, one rewritten copy per producer.`,
  );
  console.log(`Windows: ${WARMUP_S} s warm-up, then ${DURATION_S} s measured. Worker CPU from /proc/<worker pid>/stat.\n`);

  sinks = await RtpSinks.open(SINKS);
  replayer = await RtpReplayer.open();
  replayer.start();
  const media: Media = { recordings, replayer, sinks };

  const fanout = await sweep(await track(BareFanout.create(media, ['video', 'audio'])), 'consumers', FANOUT, media);
  const videoOnly =
    VIDEO_FANOUT.length > 0
      ? await sweep(await track(BareFanout.create(media, ['video'])), 'consumers', VIDEO_FANOUT, media)
      : undefined;
  const hub = await sweep(await track(HubRooms.create(media)), 'rooms', ROOMS, media);
  const paired = SIDE_BY_SIDE_ROUNDS > 0 && SIDE_BY_SIDE_ROOMS > 0 ? await sideBySide(media, SIDE_BY_SIDE_ROOMS, SIDE_BY_SIDE_ROUNDS) : [];
  await cleanUp();

  const sweeps = [...fanout.rows, ...(videoOnly?.rows ?? []), ...hub.rows];
  console.log('## 1. Sweeps: one worker, growing until loss or 90 % of a core\n');
  console.log(table(sweeps));
  console.log('');
  for (const m of sweeps.filter((row) => lossPercent(row) > 0.1)) {
    console.log(`- ${m.path}, ${m.streams} streams, loss ${lossPercent(m).toFixed(2)} %: ${lossBreakdown(m)}`);
  }

  const bare = lastClean(fanout.rows);
  const hubClean = lastClean(hub.rows);
  const bareSlope = marginalPercentPerStream(fanout.rows.filter((m) => lossPercent(m) <= LOSS_LIMIT));
  const hubSlope = marginalPercentPerStream(hub.rows.filter((m) => lossPercent(m) <= LOSS_LIMIT && m.rooms >= 8));
  console.log(`- bare fan-out: ${stopText(fanout.stop, `${FANOUT.at(-1)} consumers`)}.`);
  if (bare) {
    console.log(
      `  Bare ceiling: ${fmt(percentPerStream(bare), 3)} % of a core per stream at ${bare.streams} streams ` +
        `(≈ ${fmt(100 / percentPerStream(bare), 0)} streams per core), ${fmt(microsPerPacket(bare), 2)} µs per packet; ` +
        `slope ${fmt(bareSlope, 3)} % per added stream.`,
    );
  }
  console.log(`- hub rooms of 3: ${stopText(hub.stop, `${ROOMS.at(-1)} rooms`)}.`);
  if (hubClean) {
    console.log(
      `  ${hubClean.rooms} rooms (${hubClean.streams} streams) without loss at ${fmt(hubClean.workerCores * 100, 1)} % of a core: ` +
        `≈ ${fmt(hubClean.rooms / hubClean.workerCores, 0)} rooms per core, ${fmt(percentPerStream(hubClean), 3)} % of a core per stream, ` +
        `${fmt(microsPerPacket(hubClean), 2)} µs per packet; slope ${fmt(hubSlope, 3)} % per added stream (8 rooms and up).`,
    );
    if (bare) {
      console.log(
        `  hub / bare, sweeps (different minutes, different sizes): ${ratio(percentPerStream(hubClean), percentPerStream(bare))} per stream, ` +
          `${ratio(microsPerPacket(hubClean), microsPerPacket(bare))} per packet, ` +
          `${bareSlope && hubSlope ? ratio(hubSlope, bareSlope) : '–'} per added stream.`,
      );
    }
  }

  if (paired.length > 0) {
    const flat = paired.flat();
    console.log(
      `\n## 2. Side by side: ${SIDE_BY_SIDE_ROOMS} rooms through sfu/, ${SIDE_BY_SIDE_ROOMS} rooms with mediasoup calls only, ` +
        `and a ${SIDE_BY_SIDE_ROOMS * 12}-consumer fan-out, each on its own worker, at the same time\n`,
    );
    console.log(table(flat.map((m, i) => ({ ...m, path: `${Math.floor(i / 3) + 1}: ${m.path}` })), 'round: path'));
    const byPath = (index: number) => pooled(paired.map((rows) => rows[index]!));
    const [hubAll, engineAll, bareAll] = [byPath(0), byPath(1), byPath(2)];
    console.log('');
    console.log(`| comparison (target ≤ ${TARGET_RATIO.toFixed(2)}) | per forwarded stream | per forwarded packet | per round (per stream) |`);
    console.log('|---|---:|---:|---|');
    const perRound = (a: number, b: number) =>
      paired.map((rows) => ratio(percentPerStream(rows[a]!), percentPerStream(rows[b]!))).join(', ');
    if (hubAll && bareAll) {
      console.log(
        `| hub / bare fan-out | ${ratio(percentPerStream(hubAll), percentPerStream(bareAll))} | ` +
          `${ratio(microsPerPacket(hubAll), microsPerPacket(bareAll))} | ${perRound(0, 2)} |`,
      );
    }
    if (hubAll && engineAll) {
      console.log(
        `| hub / engine, same rooms of 3 | ${ratio(percentPerStream(hubAll), percentPerStream(engineAll))} | ` +
          `${ratio(microsPerPacket(hubAll), microsPerPacket(engineAll))} | ${perRound(0, 1)} |`,
      );
    }
    if (engineAll && bareAll) {
      console.log(
        `| engine rooms of 3 / bare fan-out (the topology alone) | ${ratio(percentPerStream(engineAll), percentPerStream(bareAll))} | ` +
          `${ratio(microsPerPacket(engineAll), microsPerPacket(bareAll))} | ${perRound(1, 2)} |`,
      );
    }
    for (const m of flat.filter((row) => lossPercent(row) > 0.1)) {
      console.log(`- ${m.path}, loss ${lossPercent(m).toFixed(2)} %: ${lossBreakdown(m)}`);
    }
  }
  if ([...sweeps, ...paired.flat()].some((m) => m.otherCores > NOISY_CORES)) {
    console.log(
      '\n⚠: other processes used more than a quarter of a core during that window (a shared machine): ' +
        'its CPU figures hold, its loss may be theirs (a starved worker overflows its socket buffers).',
    );
  }
}

main().catch(async (error: unknown) => {
  await cleanUp();
  if (error instanceof FfmpegMissingError) {
    console.error(error.message);
    process.exit(1);
  }
  console.error(error);
  process.exit(1);
});
