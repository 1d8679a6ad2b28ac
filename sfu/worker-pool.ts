import { EventEmitter } from 'node:events';
import os from 'node:os';
import { createWorker } from 'mediasoup';
import type {
  Consumer,
  Router,
  RtpCodecCapability,
  Worker,
  WorkerLogLevel,
  WorkerSettings,
} from 'mediasoup/lib/types.js';

/**
 * Codecs every room router offers unless told otherwise.
 *
 * H264 uses profile-level-id 42e01f (Constrained Baseline, level 3.1): the
 * profile that browsers and hardware encoders in carts and e-valises all
 * produce, so H264-only devices can join without transcoding.
 */
export const DEFAULT_MEDIA_CODECS: readonly RtpCodecCapability[] = Object.freeze([
  {
    kind: 'audio',
    mimeType: 'audio/opus',
    clockRate: 48000,
    channels: 2,
  },
  {
    kind: 'video',
    mimeType: 'video/VP8',
    clockRate: 90000,
  },
  {
    kind: 'video',
    mimeType: 'video/H264',
    clockRate: 90000,
    parameters: {
      'packetization-mode': 1,
      'profile-level-id': '42e01f',
      'level-asymmetry-allowed': 1,
    },
  },
]);

/** The part of a pino logger the pool uses; pass `logger.child({ part: 'sfu' })`. */
export interface PoolLogger {
  info(details: Record<string, unknown>, message: string): void;
  error(details: Record<string, unknown>, message: string): void;
}

const consoleLogger: PoolLogger = {
  info: () => {},
  error: (details, message) => console.error(`[sfu] ${message}`, details),
};

export interface WorkerPoolOptions {
  /** Number of mediasoup worker processes. Default: one per core. */
  numWorkers?: number;
  /** Lowest UDP/TCP port for ICE, DTLS and RTP. mediasoup default 10000. */
  rtcMinPort?: number;
  /** Highest UDP/TCP port for ICE, DTLS and RTP. mediasoup default 59999. */
  rtcMaxPort?: number;
  /** Log level of the worker processes. Default 'warn'. */
  logLevel?: WorkerLogLevel;
  logger?: PoolLogger;
  /**
   * Forwarded streams (consumers) a worker may carry before it takes no new room: past ~90 % of
   * a core mediasoup stops answering in time (bench:sfu measured ~1,350 streams of rooms of 3 per
   * core at 92 %). Rooms already open keep going; a new one is refused when every worker is full.
   * Default: no limit.
   */
  maxStreamsPerWorker?: number;
}

export interface WorkerPoolEvents {
  /**
   * A worker process exited unexpectedly. Its routers (and every transport on
   * them) are already closed and the worker is out of the pool; whoever owns
   * rooms on it must rebuild them elsewhere.
   */
  workerdied: [worker: Worker, error: Error];
}

/** Thrown when a router is asked for and no worker is left to host it. */
export class NoWorkerAvailableError extends Error {
  constructor(reason: string) {
    super(`No mediasoup worker available: ${reason}`);
    this.name = 'NoWorkerAvailableError';
  }
}

/**
 * Streams a room is expected to forward before its participants are all in: a consultation of two
 * with audio and video each way. Without it, every room opened in a morning burst (empty at
 * first) would land on the one idle worker.
 */
export const RESERVED_STREAMS_PER_ROOM = 4;

interface WorkerLoad {
  readonly routers: Set<Router>;
  /** Consumers alive on each router: the streams it forwards, what the worker's CPU follows. */
  readonly streamsByRouter: Map<Router, number>;
  /** Routers being created right now: counted so that concurrent requests spread out. */
  pending: number;
}

/**
 * mediasoup worker processes (one per core by default) and the routers placed
 * on them. Each router goes to the worker forwarding the fewest streams (then
 * hosting the fewest routers): a worker's CPU follows its consumers, not its rooms.
 */
export class WorkerPool extends EventEmitter<WorkerPoolEvents> {
  readonly #loads = new Map<Worker, WorkerLoad>();
  /** Which worker made each router, kept after either closes (a dead worker's rooms still ask). */
  readonly #hosts = new WeakMap<Router, Worker>();
  readonly #logger: PoolLogger;
  #closed = false;

  static async create(options: WorkerPoolOptions = {}): Promise<WorkerPool> {
    const { numWorkers = os.cpus().length || 1, rtcMinPort, rtcMaxPort, logLevel = 'warn' } = options;
    if (!Number.isInteger(numWorkers) || numWorkers < 1) {
      throw new RangeError(`numWorkers must be a positive integer, got ${numWorkers}`);
    }
    if (rtcMinPort !== undefined && rtcMaxPort !== undefined && rtcMinPort > rtcMaxPort) {
      throw new RangeError(`rtcMinPort (${rtcMinPort}) must not exceed rtcMaxPort (${rtcMaxPort})`);
    }

    // Workers share one port range: a worker that finds a port taken by
    // another simply tries the next one.
    const settings: WorkerSettings = { logLevel };
    if (rtcMinPort !== undefined) settings.rtcMinPort = rtcMinPort;
    if (rtcMaxPort !== undefined) settings.rtcMaxPort = rtcMaxPort;
    const started = await Promise.allSettled(
      Array.from({ length: numWorkers }, () => createWorker(settings)),
    );
    const workers = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    const failure = started.find((result) => result.status === 'rejected');
    if (failure) {
      for (const worker of workers) worker.close();
      throw new Error(`Could not start mediasoup workers: ${String(failure.reason)}`, {
        cause: failure.reason,
      });
    }
    if (options.maxStreamsPerWorker !== undefined && (!Number.isInteger(options.maxStreamsPerWorker) || options.maxStreamsPerWorker < 1)) {
      for (const worker of workers) worker.close();
      throw new RangeError(`maxStreamsPerWorker must be a positive integer, got ${options.maxStreamsPerWorker}`);
    }
    return new WorkerPool(workers, options.logger ?? consoleLogger, options.maxStreamsPerWorker);
  }

  readonly #maxStreams: number | undefined;

  private constructor(workers: Worker[], logger: PoolLogger, maxStreams: number | undefined) {
    super();
    this.#logger = logger;
    this.#maxStreams = maxStreams;
    for (const worker of workers) this.#adopt(worker);
    logger.info({ pids: workers.map((w) => w.pid) }, 'mediasoup workers started');
  }

  /** Live workers, in start order. */
  get workers(): Worker[] {
    return [...this.#loads.keys()];
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Open routers hosted by a worker (0 for a worker not in the pool). */
  routerCount(worker: Worker): number {
    return this.#loads.get(worker)?.routers.size ?? 0;
  }

  /** Consumers alive on a worker's routers (0 for a worker not in the pool). */
  streamCount(worker: Worker): number {
    let total = 0;
    for (const streams of this.#loads.get(worker)?.streamsByRouter.values() ?? []) total += streams;
    return total;
  }

  /** The worker that created a router of this pool (undefined for a router from elsewhere). */
  workerOf(router: Router): Worker | undefined {
    return this.#hosts.get(router);
  }

  /**
   * A worker's expected load: the streams each of its rooms forwards, at least
   * RESERVED_STREAMS_PER_ROOM per room (and per room being created).
   */
  expectedStreams(worker: Worker): number {
    const load = this.#loads.get(worker);
    if (!load) return 0;
    let total = load.pending * RESERVED_STREAMS_PER_ROOM;
    for (const router of load.routers) total += Math.max(load.streamsByRouter.get(router) ?? 0, RESERVED_STREAMS_PER_ROOM);
    return total;
  }

  /**
   * The worker with the lowest expected load (then the fewest routers). With a stream budget, a
   * new room is refused when even that worker is at it; a room being rebuilt after its worker
   * died (`ignoreBudget`) is not: it was already running.
   */
  leastLoaded(options: { ignoreBudget?: boolean } = {}): Worker {
    if (this.#closed) throw new NoWorkerAvailableError('the pool is closed');
    let best: Worker | undefined;
    let bestScore = Infinity;
    let bestRouters = Infinity;
    for (const [worker, load] of this.#loads) {
      const score = this.expectedStreams(worker);
      const routers = load.routers.size + load.pending;
      if (score < bestScore || (score === bestScore && routers < bestRouters)) {
        best = worker;
        bestScore = score;
        bestRouters = routers;
      }
    }
    if (!best) throw new NoWorkerAvailableError('every worker has died');
    if (!options.ignoreBudget && this.#maxStreams !== undefined && bestScore >= this.#maxStreams) {
      throw new NoWorkerAvailableError(`every worker is at capacity (${this.#maxStreams} forwarded streams each)`);
    }
    return best;
  }

  /** Creates a router on the least-loaded worker. */
  async createRouter(
    mediaCodecs: readonly RtpCodecCapability[] = DEFAULT_MEDIA_CODECS,
    options: { ignoreBudget?: boolean } = {},
  ): Promise<Router> {
    const worker = this.leastLoaded(options);
    const load = this.#loads.get(worker);
    if (!load) throw new NoWorkerAvailableError('worker left the pool');
    load.pending += 1;
    let router: Router;
    try {
      router = await worker.createRouter({ mediaCodecs: [...mediaCodecs] });
    } finally {
      load.pending -= 1;
    }
    // The worker may have died or the pool closed while the router was being made.
    if (router.closed || !this.#loads.has(worker)) {
      router.close();
      throw new NoWorkerAvailableError('the worker closed while the router was being created');
    }
    load.routers.add(router);
    this.#hosts.set(router, worker);
    load.streamsByRouter.set(router, 0);
    router.observer.once('close', () => load.streamsByRouter.delete(router));
    router.observer.on('newtransport', (transport) => {
      transport.observer.on('newconsumer', (consumer: Consumer) => {
        load.streamsByRouter.set(router, (load.streamsByRouter.get(router) ?? 0) + 1);
        consumer.observer.once('close', () => {
          const streams = load.streamsByRouter.get(router);
          // Gone with its router: nothing left to count down.
          if (streams !== undefined) load.streamsByRouter.set(router, streams - 1);
        });
      });
    });
    // The observer's 'close' fires both on router.close() and when its worker closes.
    router.observer.once('close', () => load.routers.delete(router));
    return router;
  }

  /** Closes every worker, and with them every router and transport. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const worker of [...this.#loads.keys()]) worker.close();
    this.#loads.clear();
  }

  #adopt(worker: Worker): void {
    this.#loads.set(worker, { routers: new Set(), streamsByRouter: new Map(), pending: 0 });
    // Fires on close() and also just before 'died'.
    worker.observer.once('close', () => this.#loads.delete(worker));
    worker.on('died', (error: Error) => {
      this.#loads.delete(worker);
      this.#logger.error(
        { pid: worker.pid, err: error, workersLeft: this.#loads.size },
        'mediasoup worker died; its routers are closed',
      );
      this.emit('workerdied', worker, error);
    });
  }
}
