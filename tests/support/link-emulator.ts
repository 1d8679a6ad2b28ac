/**
 * A satellite link between an uploader and the hub, emulated in a TCP proxy.
 *
 * Why: back-country GPs upload ECG exams over satellite links (~600 ms round trip,
 * 512 kbit/s, drops and stalls). The usual tool, `tc netem`, needs the sch_netem kernel
 * module, which this machine (and CI) does not have, so the link is emulated in user
 * space: the uploader talks to this proxy, the proxy talks to the hub on 127.0.0.1 and
 * adds latency, a bandwidth limit and faults (resets, stalls, lost responses) on the way.
 * It needs nothing but node:net (and the project's seeded generator), so a test, a benchmark or a script can use it:
 *
 *   const link = await LinkEmulator.start({
 *     targetHost: '127.0.0.1', targetPort: hubPort,
 *     profile: { latencyMs: 300, bandwidthBitsPerSecond: 512_000, resetProbability: 0.1, seed: 42 },
 *   });
 *   await fetch(`${link.url}/fhir/R4/Observation`, { method: 'POST', body });  // goes through the link
 *   link.setProfile({ ...profile, resetProbability: 0 });  // new connections only; latency/bandwidth at once
 *   link.cutAll();                                          // the link goes down: every connection reset
 *   console.log(link.stats());
 *   await link.close();                                     // no socket or timer left behind
 *
 * How faults are drawn: each accepted connection draws its fate from one seeded PRNG
 * (mulberry32), always the same number of draws per connection, so a seed replays the
 * same sequence of faults connection after connection. Reset and stall offsets count
 * client->server bytes and are uniform in [0, resetWithinBytes): an upload shorter than
 * the drawn offset passes untouched, so to make a fault certain, send more than
 * resetWithinBytes or lower it. A response cut keeps a uniform share of the first
 * server->client chunk (the start of the first answer), then resets.
 *
 * Not emulated: the TCP handshake is completed by the local kernel before the proxy sees
 * the connection, so opening a connection costs no round trip here (a real satellite link
 * charges one, more with TLS). A benchmark that counts reconnections should add
 * 2 * latencyMs per new connection itself.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
// The same seeded generator as the synthetic exams (mulberry32), so a seed means the same everywhere.
import { seededRandom } from '../../fhir/evalise/synthetic.js';

export interface LinkProfile {
  /** Added one-way delay per direction in ms (RTT adds 2x). Default 0. */
  latencyMs?: number;
  /** Bandwidth per direction, bits per second (serialisation delay, shared by all connections in that direction like a real link). Default unlimited. */
  bandwidthBitsPerSecond?: number;
  /** Probability that a new connection will be reset (RST, via socket.resetAndDestroy()) at a random byte offset while the client->server upload is in progress (uniform in [0, resetWithinBytes)). Default 0. */
  resetProbability?: number;
  /** Window of client->server bytes in which a reset or a stall offset is drawn. Default 256 KiB. */
  resetWithinBytes?: number;
  /** Probability that a new connection stalls: at a random offset, forwarding in both directions stops for stallMs (the connection stays open, nothing flows). Default 0. */
  stallProbability?: number;
  /** Default 20 000 ms. */
  stallMs?: number;
  /** Probability that a response is cut: the server->client direction is reset after a random number of bytes (tests 'request processed but answer lost'). Default 0. */
  responseResetProbability?: number;
  /** Seed for the PRNG so runs are reproducible (mulberry32). Default: a random seed. */
  seed?: number;
}

export interface LinkStats {
  /** Connections accepted from clients. */
  connections: number;
  /** Upload resets carried out (a drawn offset beyond the upload never fires and is not counted). */
  resets: number;
  /** Responses cut. */
  responseResets: number;
  /** Stalls started. */
  stalls: number;
  /** Bytes delivered to the target. */
  bytesUp: number;
  /** Bytes delivered to clients. */
  bytesDown: number;
}

export interface LinkEmulatorOptions {
  targetHost: string;
  targetPort: number;
  profile: LinkProfile;
  /** Default 0: a free port. */
  listenPort?: number;
}

/** Above this many bytes waiting in one direction of a connection, its reading side is paused. */
const BACKLOG_HIGH_BYTES = 256 * 1024;
/** ...and resumed once the backlog is back under this. */
const BACKLOG_LOW_BYTES = 64 * 1024;
/** Under a bandwidth limit chunks are cut to this size so bytes trickle in as on a real link instead of arriving in 64 KiB bursts. */
const SEGMENT_BYTES = 8 * 1024;
const DEFAULT_RESET_WITHIN_BYTES = 256 * 1024;
const DEFAULT_STALL_MS = 20_000;

interface ResolvedProfile {
  latencyMs: number;
  bandwidthBitsPerSecond: number;
  resetProbability: number;
  resetWithinBytes: number;
  stallProbability: number;
  stallMs: number;
  responseResetProbability: number;
  seed: number | undefined;
}

function resolveProfile(profile: LinkProfile): ResolvedProfile {
  const resolved: ResolvedProfile = {
    latencyMs: profile.latencyMs ?? 0,
    bandwidthBitsPerSecond: profile.bandwidthBitsPerSecond ?? Number.POSITIVE_INFINITY,
    resetProbability: profile.resetProbability ?? 0,
    resetWithinBytes: profile.resetWithinBytes ?? DEFAULT_RESET_WITHIN_BYTES,
    stallProbability: profile.stallProbability ?? 0,
    stallMs: profile.stallMs ?? DEFAULT_STALL_MS,
    responseResetProbability: profile.responseResetProbability ?? 0,
    seed: profile.seed,
  };
  const nonNegative = ['latencyMs', 'stallMs'] as const;
  for (const key of nonNegative) {
    if (!(resolved[key] >= 0 && Number.isFinite(resolved[key]))) {
      throw new RangeError(`LinkProfile.${key} must be a finite number >= 0, got ${resolved[key]}`);
    }
  }
  const probabilities = ['resetProbability', 'stallProbability', 'responseResetProbability'] as const;
  for (const key of probabilities) {
    if (!(resolved[key] >= 0 && resolved[key] <= 1)) {
      throw new RangeError(`LinkProfile.${key} must be in [0, 1], got ${resolved[key]}`);
    }
  }
  if (!(resolved.bandwidthBitsPerSecond > 0)) {
    throw new RangeError(`LinkProfile.bandwidthBitsPerSecond must be > 0, got ${resolved.bandwidthBitsPerSecond}`);
  }
  if (!(resolved.resetWithinBytes >= 1 && Number.isFinite(resolved.resetWithinBytes))) {
    throw new RangeError(`LinkProfile.resetWithinBytes must be a finite number >= 1, got ${resolved.resetWithinBytes}`);
  }
  if (resolved.seed !== undefined && !Number.isInteger(resolved.seed)) {
    throw new RangeError(`LinkProfile.seed must be an integer, got ${resolved.seed}`);
  }
  return resolved;
}

/**
 * Runs `action` once performance.now() has reached `deadline`. Node timers may fire a
 * millisecond early against performance.now() (the loop time they start from is cached),
 * so the deadline is checked again: a delay the emulator promises is a lower bound.
 */
class Deadline {
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly action: () => void) {}

  /** Arms the timer for `deadline` unless it is already armed. */
  arm(deadline: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (performance.now() >= deadline) this.action();
      else this.arm(deadline);
    }, Math.max(0, Math.ceil(deadline - performance.now())));
  }

  cancel(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** One direction of the emulated link, shared by all connections: its delay and the time its serialiser is busy until. */
class OneWayLink {
  private busyUntil = 0;

  constructor(
    public latencyMs: number,
    public bitsPerSecond: number,
  ) {}

  /** Puts `byteCount` bytes on the wire now (after whatever is ahead of them) and returns when they reach the far end. */
  transmit(byteCount: number): number {
    const now = performance.now();
    if (!Number.isFinite(this.bitsPerSecond)) return now + this.latencyMs;
    const start = Math.max(now, this.busyUntil);
    this.busyUntil = start + (byteCount * 8 * 1000) / this.bitsPerSecond;
    return this.busyUntil + this.latencyMs;
  }

  /** When an end-of-stream or reset sent now reaches the far end: control segments take no serialisation time here. */
  signal(): number {
    return performance.now() + this.latencyMs;
  }
}

type ResetFault = 'upload' | 'response';

type InFlight =
  | { kind: 'data'; bytes: Buffer; arrivesAt: number }
  | { kind: 'end'; arrivesAt: number }
  | { kind: 'reset'; fault: ResetFault; arrivesAt: number };

type Held = { kind: 'data'; bytes: Buffer } | { kind: 'end' } | { kind: 'reset'; fault: ResetFault };

interface FlowEvents {
  delivered(byteCount: number): void;
  resetReached(fault: ResetFault): void;
}

/**
 * One direction of one connection: bytes read from `source`, in flight on `link`, written
 * to `destination` in order when they arrive. Owns the pacing timer and the backpressure.
 */
class Flow {
  private readonly inFlight: InFlight[] = [];
  private inFlightBytes = 0;
  private held: Held[] = [];
  private heldBytes = 0;
  private holding = false;
  private lastArrival = 0;
  private unflushedWrites = 0;
  private resetWhenFlushed: ResetFault | undefined;
  private sourcePausedForBacklog = false;
  private sourceHalted = false;
  private disposed = false;
  private readonly delivery = new Deadline(() => this.deliverDue());

  constructor(
    private readonly source: net.Socket,
    private readonly destination: net.Socket,
    private readonly link: OneWayLink,
    private readonly events: FlowEvents,
  ) {
    destination.on('drain', () => this.resumeSourceIfDrained());
  }

  send(bytes: Buffer): void {
    if (!this.sourceHalted) this.schedule({ kind: 'data', bytes });
  }

  sendEnd(): void {
    if (!this.sourceHalted) this.schedule({ kind: 'end' });
  }

  /** The source's bytes stop here: a reset follows them and nothing more is read. */
  sendReset(fault: ResetFault): void {
    if (this.sourceHalted) return;
    this.sourceHalted = true;
    this.source.pause();
    this.schedule({ kind: 'reset', fault });
  }

  /** A stall: what arrives from now on waits at the proxy until release(). */
  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    for (const item of held) this.schedule(item);
    this.resumeSourceIfDrained();
  }

  dispose(): void {
    this.disposed = true;
    this.delivery.cancel();
    this.inFlight.length = 0;
    this.held = [];
  }

  /** Puts an item on the link, or aside while the connection is stalled. */
  private schedule(item: Held): void {
    if (this.disposed) return;
    if (this.holding) {
      this.held.push(item);
      if (item.kind === 'data') this.heldBytes += item.bytes.length;
    } else if (item.kind === 'data') {
      const segmentBytes = this.segmentBytes();
      for (let at = 0; at < item.bytes.length; at += segmentBytes) {
        const segment = item.bytes.subarray(at, at + segmentBytes);
        this.enqueue({ kind: 'data', bytes: segment, arrivesAt: this.link.transmit(segment.length) });
      }
    } else {
      this.enqueue({ ...item, arrivesAt: this.link.signal() });
    }
    this.pauseSourceIfBacklogged();
  }

  private segmentBytes(): number {
    return Number.isFinite(this.link.bitsPerSecond) ? SEGMENT_BYTES : Number.POSITIVE_INFINITY;
  }

  private enqueue(item: InFlight): void {
    if (this.disposed) return;
    // A latency lowered by setProfile must not let later bytes overtake earlier ones.
    item.arrivesAt = Math.max(item.arrivesAt, this.lastArrival);
    this.lastArrival = item.arrivesAt;
    this.inFlight.push(item);
    if (item.kind === 'data') this.inFlightBytes += item.bytes.length;
    this.delivery.arm(this.inFlight[0]!.arrivesAt);
  }

  private deliverDue(): void {
    const now = performance.now();
    let next = this.inFlight[0];
    while (next && next.arrivesAt <= now && !this.disposed) {
      this.inFlight.shift();
      if (next.kind === 'data') {
        this.inFlightBytes -= next.bytes.length;
        this.write(next.bytes);
      } else if (next.kind === 'end') {
        if (!this.destination.destroyed) this.destination.end();
      } else {
        // Bytes before the cut are handed to the kernel first, or the RST would discard them.
        if (this.unflushedWrites === 0) this.events.resetReached(next.fault);
        else this.resetWhenFlushed = next.fault;
        return;
      }
      next = this.inFlight[0];
    }
    if (next && !this.disposed) this.delivery.arm(next.arrivesAt);
    this.resumeSourceIfDrained();
  }

  private write(bytes: Buffer): void {
    if (this.destination.destroyed || !this.destination.writable) return;
    this.unflushedWrites += 1;
    this.destination.write(bytes, () => {
      this.unflushedWrites -= 1;
      if (this.unflushedWrites === 0 && this.resetWhenFlushed && !this.disposed) {
        this.events.resetReached(this.resetWhenFlushed);
      }
    });
    this.events.delivered(bytes.length);
  }

  private backlogBytes(): number {
    return this.inFlightBytes + this.heldBytes + this.destination.writableLength;
  }

  private pauseSourceIfBacklogged(): void {
    if (!this.sourcePausedForBacklog && this.backlogBytes() > BACKLOG_HIGH_BYTES) {
      this.sourcePausedForBacklog = true;
      this.source.pause();
    }
  }

  private resumeSourceIfDrained(): void {
    if (this.sourcePausedForBacklog && !this.disposed && this.backlogBytes() <= BACKLOG_LOW_BYTES) {
      this.sourcePausedForBacklog = false;
      if (!this.sourceHalted) this.source.resume();
    }
  }
}

/** What a connection will suffer, drawn when it is accepted. */
interface FaultPlan {
  /** Upload faults by client->server byte offset, earliest first. */
  uploadFaults: Array<{ atByte: number; kind: 'reset' | 'stall' }>;
  stallMs: number;
  /** Share of the first server->client chunk delivered before the reset, if the response is cut. */
  responseKeepShare: number | undefined;
}

interface ConnectionContext {
  readonly uplink: OneWayLink;
  readonly downlink: OneWayLink;
  readonly stats: LinkStats;
  closed(connection: EmulatedConnection): void;
}

/** A client connection and its upstream connection to the target, with the link between them. */
class EmulatedConnection {
  readonly closed: Promise<void>;
  private readonly upstream: net.Socket;
  private readonly upload: Flow;
  private readonly download: Flow;
  private readonly stallEnd: Deadline;
  private uploadBytesSeen = 0;
  private responseCut = false;
  private aborted = false;

  constructor(
    private readonly client: net.Socket,
    target: { host: string; port: number },
    private readonly plan: FaultPlan,
    private readonly context: ConnectionContext,
  ) {
    this.upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    client.setNoDelay(true);
    this.upstream.setNoDelay(true);

    this.upload = new Flow(client, this.upstream, context.uplink, {
      delivered: (n) => (context.stats.bytesUp += n),
      resetReached: (fault) => this.resetByFault(fault),
    });
    this.download = new Flow(this.upstream, client, context.downlink, {
      delivered: (n) => (context.stats.bytesDown += n),
      resetReached: (fault) => this.resetByFault(fault),
    });
    this.stallEnd = new Deadline(() => {
      this.upload.release();
      this.download.release();
    });

    const clientClosed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const upstreamClosed = new Promise<void>((resolve) => this.upstream.once('close', () => resolve()));
    this.closed = Promise.all([clientClosed, upstreamClosed]).then(() => {
      this.dispose();
      context.closed(this);
    });

    client.on('data', (chunk: Buffer) => this.onUploadData(chunk));
    client.on('end', () => this.upload.sendEnd());
    this.upstream.on('data', (chunk: Buffer) => this.onDownloadData(chunk));
    this.upstream.on('end', () => this.download.sendEnd());
    // An error on either side (ECONNRESET, EPIPE, ECONNREFUSED) resets the other, as a peer's RST would.
    client.on('error', () => this.reset());
    this.upstream.on('error', () => this.reset());
  }

  /** Resets both sides at once (RST), dropping whatever is in flight. */
  reset(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.dispose();
    for (const socket of [this.client, this.upstream]) {
      if (socket.destroyed) continue;
      // A socket still connecting has no connection to reset, and resetAndDestroy would wait for one.
      if (socket.connecting) socket.destroy();
      else socket.resetAndDestroy();
    }
  }

  private resetByFault(fault: ResetFault): void {
    if (this.aborted) return;
    if (fault === 'upload') this.context.stats.resets += 1;
    else this.context.stats.responseResets += 1;
    this.reset();
  }

  private dispose(): void {
    this.upload.dispose();
    this.download.dispose();
    this.stallEnd.cancel();
  }

  private onUploadData(chunk: Buffer): void {
    if (this.aborted) return;
    const chunkStart = this.uploadBytesSeen;
    this.uploadBytesSeen += chunk.length;
    let cursor = 0;
    let fault = this.plan.uploadFaults[0];
    // A fault at byte N fires when byte N arrives, after bytes 0..N-1 were sent on.
    while (fault && fault.atByte < this.uploadBytesSeen) {
      this.plan.uploadFaults.shift();
      const cut = fault.atByte - chunkStart;
      this.upload.send(chunk.subarray(cursor, cut));
      cursor = cut;
      if (fault.kind === 'reset') {
        this.upload.sendReset('upload');
        return;
      }
      this.startStall();
      fault = this.plan.uploadFaults[0];
    }
    this.upload.send(chunk.subarray(cursor));
  }

  private onDownloadData(chunk: Buffer): void {
    if (this.aborted) return;
    if (this.plan.responseKeepShare !== undefined && !this.responseCut) {
      this.responseCut = true;
      this.download.send(chunk.subarray(0, Math.floor(this.plan.responseKeepShare * chunk.length)));
      this.download.sendReset('response');
      return;
    }
    this.download.send(chunk);
  }

  private startStall(): void {
    this.context.stats.stalls += 1;
    this.upload.hold();
    this.download.hold();
    this.stallEnd.arm(performance.now() + this.plan.stallMs);
  }
}

export class LinkEmulator {
  private profile: ResolvedProfile;
  private random: () => number;
  private listeningPort = 0;
  private closing: Promise<void> | undefined;
  private readonly uplink: OneWayLink;
  private readonly downlink: OneWayLink;
  private readonly connections = new Set<EmulatedConnection>();
  private readonly counters: LinkStats = {
    connections: 0,
    resets: 0,
    responseResets: 0,
    stalls: 0,
    bytesUp: 0,
    bytesDown: 0,
  };

  private constructor(
    private readonly server: net.Server,
    private readonly target: { host: string; port: number },
    profile: LinkProfile,
  ) {
    this.profile = resolveProfile(profile);
    this.random = seededRandom(this.profile.seed ?? Math.floor(Math.random() * 2 ** 32));
    this.uplink = new OneWayLink(this.profile.latencyMs, this.profile.bandwidthBitsPerSecond);
    this.downlink = new OneWayLink(this.profile.latencyMs, this.profile.bandwidthBitsPerSecond);
    server.on('connection', (socket) => this.accept(socket));
    // Accept errors (EMFILE...) lose that one connection attempt, as a congested link would.
    server.on('error', () => {});
  }

  static async start(options: LinkEmulatorOptions): Promise<LinkEmulator> {
    const server = net.createServer({ allowHalfOpen: true });
    const emulator = new LinkEmulator(server, { host: options.targetHost, port: options.targetPort }, options.profile);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.listenPort ?? 0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    emulator.listeningPort = (server.address() as net.AddressInfo).port;
    return emulator;
  }

  /** Listening on 127.0.0.1. */
  get port(): number {
    return this.listeningPort;
  }

  get url(): string {
    return `http://127.0.0.1:${this.listeningPort}`;
  }

  /** Faults apply to connections accepted from now on; latency and bandwidth to open ones too. A new seed restarts the PRNG. */
  setProfile(profile: LinkProfile): void {
    const next = resolveProfile(profile);
    if (next.seed !== undefined && next.seed !== this.profile.seed) this.random = seededRandom(next.seed);
    this.profile = next;
    for (const link of [this.uplink, this.downlink]) {
      link.latencyMs = next.latencyMs;
      link.bitsPerSecond = next.bandwidthBitsPerSecond;
    }
  }

  stats(): LinkStats {
    return { ...this.counters };
  }

  /** Drops every open connection at once (a satellite link going down): both sides get a reset. */
  cutAll(): void {
    for (const connection of this.connections) connection.reset();
  }

  /** Closes the server and all sockets, and resolves once every socket has closed. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      const connectionsClosed = [...this.connections].map((connection) => connection.closed);
      this.cutAll();
      await Promise.all([serverClosed, ...connectionsClosed]);
    })();
    return this.closing;
  }

  private accept(client: net.Socket): void {
    if (this.closing) {
      client.on('error', () => {});
      client.resetAndDestroy();
      return;
    }
    this.counters.connections += 1;
    const connection = new EmulatedConnection(
      client,
      this.target,
      this.drawFaults(),
      {
        uplink: this.uplink,
        downlink: this.downlink,
        stats: this.counters,
        closed: (closed) => this.connections.delete(closed),
      },
    );
    this.connections.add(connection);
  }

  /** Always six draws per connection, whatever the profile, so a seed gives the same sequence under any profile. */
  private drawFaults(): FaultPlan {
    const p = this.profile;
    const [resets, resetAt, stalls, stallAt, responseCut, responseKeepShare] = Array.from({ length: 6 }, () =>
      this.random(),
    ) as [number, number, number, number, number, number];
    const uploadFaults: FaultPlan['uploadFaults'] = [];
    if (resets < p.resetProbability) uploadFaults.push({ atByte: Math.floor(resetAt * p.resetWithinBytes), kind: 'reset' });
    if (stalls < p.stallProbability) uploadFaults.push({ atByte: Math.floor(stallAt * p.resetWithinBytes), kind: 'stall' });
    uploadFaults.sort((a, b) => a.atByte - b.atByte);
    return {
      uploadFaults,
      stallMs: p.stallMs,
      responseKeepShare: responseCut < p.responseResetProbability ? responseKeepShare : undefined,
    };
  }
}
