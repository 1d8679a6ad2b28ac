import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { Router, Worker } from 'mediasoup/lib/types.js';
import { opusRtpParameters } from './support.js';
import { RESERVED_STREAMS_PER_ROOM } from '../../sfu/worker-pool.js';
import { DEFAULT_MEDIA_CODECS, NoWorkerAvailableError, WorkerPool } from '../../sfu/worker-pool.js';

const quietLogger = { info: () => {}, error: () => {} };

function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('WorkerPool', () => {
  const pools: WorkerPool[] = [];
  async function startPool(numWorkers: number): Promise<WorkerPool> {
    const pool = await WorkerPool.create({
      numWorkers,
      rtcMinPort: 40000,
      rtcMaxPort: 49999,
      logger: quietLogger,
    });
    pools.push(pool);
    return pool;
  }

  afterEach(() => {
    for (const pool of pools.splice(0)) pool.close();
  });

  it('creates a router whose capabilities offer opus, VP8 and H264 and hosts WebRTC and plain transports on it', async () => {
    const pool = await startPool(1);
    expect(pool.workers).toHaveLength(1);
    const [worker] = pool.workers as [Worker];

    const router = await pool.createRouter();
    const mimeTypes = (router.rtpCapabilities.codecs ?? []).map((codec) => codec.mimeType.toLowerCase());
    expect(mimeTypes).toContain('audio/opus');
    expect(mimeTypes).toContain('video/vp8');
    expect(mimeTypes).toContain('video/h264');
    const opus = router.rtpCapabilities.codecs?.find((c) => c.mimeType.toLowerCase() === 'audio/opus');
    expect(opus).toMatchObject({ clockRate: 48000, channels: 2 });
    expect(pool.routerCount(worker)).toBe(1);

    const webRtcTransport = await router.createWebRtcTransport({ listenIps: [{ ip: '127.0.0.1' }] });
    expect(webRtcTransport.iceCandidates.length).toBeGreaterThan(0);
    expect(webRtcTransport.iceCandidates[0]).toMatchObject({ ip: '127.0.0.1', protocol: 'udp' });
    expect(webRtcTransport.iceCandidates[0]?.port).toBeGreaterThanOrEqual(40000);
    expect(webRtcTransport.iceCandidates[0]?.port).toBeLessThanOrEqual(49999);

    const plainTransport = await router.createPlainTransport({ listenIp: '127.0.0.1', rtcpMux: true });
    expect(plainTransport.tuple.localIp).toBe('127.0.0.1');
    expect(plainTransport.tuple.localPort).toBeGreaterThanOrEqual(40000);

    webRtcTransport.close();
    plainTransport.close();
    router.close();
    expect(pool.routerCount(worker)).toBe(0);

    const pid = worker.pid;
    pool.close();
    expect(pool.closed).toBe(true);
    expect(worker.closed).toBe(true);
    expect(pool.workers).toHaveLength(0);
    await waitUntil(() => processIsGone(pid), `worker process ${pid} has exited`);
    await expect(pool.createRouter()).rejects.toBeInstanceOf(NoWorkerAvailableError);
  });

  it('closing the pool closes the routers and transports still open on it', async () => {
    const pool = await startPool(1);
    const router = await pool.createRouter();
    const transport = await router.createWebRtcTransport({ listenIps: [{ ip: '127.0.0.1' }] });

    pool.close();

    expect(router.closed).toBe(true);
    expect(transport.closed).toBe(true);
  });

  it('spreads routers requested at the same time evenly over the workers', async () => {
    const pool = await startPool(2);
    const routers = await Promise.all([1, 2, 3, 4].map(() => pool.createRouter()));

    expect(pool.workers.map((worker) => pool.routerCount(worker))).toEqual([2, 2]);

    routers[0]?.close();
    routers[2]?.close();
    const counts = pool.workers.map((worker) => pool.routerCount(worker));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(2);
    // The next router goes to whichever worker now hosts fewer.
    const lighter = pool.leastLoaded();
    const before = pool.routerCount(lighter);
    await pool.createRouter();
    expect(pool.routerCount(lighter)).toBe(before + 1);
  });

  it('drops a worker whose process dies, reports it, and places new routers on the survivors', async () => {
    const pool = await startPool(2);
    const [doomed, survivor] = pool.workers as [Worker, Worker];
    const router = await pool.createRouter();
    expect(pool.routerCount(doomed)).toBe(1);

    const died = once(pool, 'workerdied');
    process.kill(doomed.pid, 'SIGKILL');
    const [deadWorker, error] = (await died) as [Worker, Error];

    expect(deadWorker).toBe(doomed);
    expect(error).toBeInstanceOf(Error);
    expect(router.closed).toBe(true);
    expect(pool.workers).toEqual([survivor]);
    const next = await pool.createRouter();
    expect(pool.routerCount(survivor)).toBe(1);
    expect(next.closed).toBe(false);
  });

  it('refuses to create a router once every worker has died', async () => {
    const pool = await startPool(1);
    const [worker] = pool.workers as [Worker];
    const died = once(pool, 'workerdied');
    process.kill(worker.pid, 'SIGKILL');
    await died;

    await expect(pool.createRouter()).rejects.toThrow(/every worker has died/);
  });

  it('rejects a router with a codec mediasoup does not support and leaves the pool usable', async () => {
    const pool = await startPool(1);
    await expect(
      pool.createRouter([{ kind: 'video', mimeType: 'video/NOPE', clockRate: 90000 }]),
    ).rejects.toThrow(/not supported/);
    expect(pool.routerCount(pool.leastLoaded())).toBe(0);
    const router = await pool.createRouter(DEFAULT_MEDIA_CODECS);
    expect(router.closed).toBe(false);
  });

  it('refuses a pool of zero workers with a message naming the setting', async () => {
    await expect(WorkerPool.create({ numWorkers: 0 })).rejects.toThrow(/numWorkers/);
  });
});

describe('WorkerPool placement by forwarded streams', () => {
  const pools: WorkerPool[] = [];
  afterEach(() => {
    for (const pool of pools.splice(0)) pool.close();
  });
  const quiet = { info: () => {}, error: () => {} };

  /** A producer on `router` and `n` consumers of it: n forwarded streams. */
  async function forward(router: Router, n: number) {
    const ingress = await router.createPlainTransport({ listenIp: { ip: '127.0.0.1' }, rtcpMux: true, comedia: true });
    const producer = await ingress.produce({ kind: 'audio', rtpParameters: opusRtpParameters(4242) });
    const egress = await router.createPlainTransport({ listenIp: { ip: '127.0.0.1' }, rtcpMux: true });
    const consumers = [];
    for (let i = 0; i < n; i++) consumers.push(await egress.consume({ producerId: producer.id, rtpCapabilities: router.rtpCapabilities }));
    return { ingress, egress, consumers };
  }

  it('puts a new room on the worker forwarding the fewest streams, not the one with the fewest rooms', async () => {
    const pool = await WorkerPool.create({ numWorkers: 2, rtcMinPort: 40000, rtcMaxPort: 49999, logger: quiet });
    pools.push(pool);
    const busy = await pool.createRouter();
    const busyWorker = pool.workerOf(busy)!;
    await forward(busy, 10);
    expect(pool.streamCount(busyWorker)).toBe(10);
    // Two quiet rooms on the other worker: it hosts more rooms but forwards nothing.
    const quietA = await pool.createRouter();
    const quietB = await pool.createRouter();
    const quietWorker = pool.workerOf(quietA)!;
    expect(pool.workerOf(quietB)).toBe(quietWorker);
    expect(quietWorker).not.toBe(busyWorker);
    // Two empty rooms count as the streams they are about to carry (2 × RESERVED_STREAMS_PER_ROOM = 8 < 10).
    expect(pool.expectedStreams(quietWorker)).toBe(2 * RESERVED_STREAMS_PER_ROOM);
    const next = await pool.createRouter();
    expect(pool.workerOf(next)).toBe(quietWorker);
  });

  it('spreads a burst of empty rooms instead of piling them on the worker that forwards nothing yet', async () => {
    const pool = await WorkerPool.create({ numWorkers: 2, rtcMinPort: 40000, rtcMaxPort: 49999, logger: quiet });
    pools.push(pool);
    const running = await pool.createRouter();
    await forward(running, RESERVED_STREAMS_PER_ROOM);
    const busyWorker = pool.workerOf(running)!;
    // A morning burst: three rooms opened before anyone is admitted in them.
    const burst = [];
    for (let i = 0; i < 3; i++) burst.push(await pool.createRouter());
    expect(burst.filter((r) => pool.workerOf(r) === busyWorker).length).toBeGreaterThan(0);
    expect(burst.filter((r) => pool.workerOf(r) !== busyWorker).length).toBeGreaterThan(0);
  });

  it('refuses a new room when every worker is at its stream budget, and takes one again once streams end', async () => {
    const pool = await WorkerPool.create({ numWorkers: 1, rtcMinPort: 40000, rtcMaxPort: 49999, logger: quiet, maxStreamsPerWorker: 6 });
    pools.push(pool);
    const router = await pool.createRouter();
    const { egress, consumers } = await forward(router, 6);
    await expect(pool.createRouter()).rejects.toThrow(/at capacity \(6 forwarded streams each\)/);
    // A room already running is rebuilt whatever the budget (its worker died elsewhere).
    const rebuilt = await pool.createRouter(undefined, { ignoreBudget: true });
    rebuilt.close();
    consumers[0]!.close();
    expect(pool.streamCount(pool.workerOf(router)!)).toBe(5);
    await expect(pool.createRouter()).resolves.toBeDefined();
    egress.close();
    expect(pool.streamCount(pool.workerOf(router)!)).toBe(0);
  });

  it('refuses a stream budget that is not a positive integer', async () => {
    await expect(WorkerPool.create({ numWorkers: 1, maxStreamsPerWorker: 0 })).rejects.toThrow(/maxStreamsPerWorker/);
  });
});
