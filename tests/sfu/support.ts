import { once, type EventEmitter } from 'node:events';
import type {
  Consumer,
  DataConsumer,
  DataProducer,
  Producer,
  Router,
  RtpParameters,
  Transport,
  Worker,
} from 'mediasoup/lib/types.js';
import type { ObjectCounts } from '../../sfu/object-counts.js';
import { WorkerPool } from '../../sfu/worker-pool.js';

export const quietLogger = { info: () => {}, error: () => {} };

/** worker-pool.test.ts uses 40000-49999; files run in parallel, so this one keeps apart. */
export async function startPool(numWorkers: number): Promise<WorkerPool> {
  return WorkerPool.create({ numWorkers, rtcMinPort: 50000, rtcMaxPort: 51999, logger: quietLogger });
}

/** What a plain RTP sender of opus announces: payload type 100, one SSRC. */
export function opusRtpParameters(ssrc: number): RtpParameters {
  return {
    codecs: [
      {
        mimeType: 'audio/opus',
        clockRate: 48000,
        channels: 2,
        payloadType: 100,
        parameters: { useinbandfec: 1 },
        rtcpFeedback: [],
      },
    ],
    encodings: [{ ssrc }],
    rtcp: { cname: `bench-${ssrc}` },
  };
}

/** VP8 in three simulcast streams, as a plain RTP sender would announce them. */
export function simulcastVp8RtpParameters(firstSsrc: number): RtpParameters {
  return {
    codecs: [{ mimeType: 'video/VP8', clockRate: 90000, payloadType: 101, rtcpFeedback: [{ type: 'nack' }] }],
    encodings: [{ ssrc: firstSsrc }, { ssrc: firstSsrc + 1 }, { ssrc: firstSsrc + 2 }],
    rtcp: { cname: `sim-${firstSsrc}` },
  };
}

/** One opus RTP packet (a 20 ms silence frame). */
export function opusRtpPacket(ssrc: number, sequence: number): Buffer {
  const packet = Buffer.alloc(12 + 3);
  packet[0] = 0x80; // version 2
  packet[1] = 100; // payload type, no marker
  packet.writeUInt16BE(sequence & 0xffff, 2);
  packet.writeUInt32BE((sequence * 960) >>> 0, 4);
  packet.writeUInt32BE(ssrc >>> 0, 8);
  packet.set([0xf8, 0xff, 0xfe], 12);
  return packet;
}

/** DTLS parameters as a browser would send them (the fingerprint needs no real certificate until DTLS runs). */
export const CLIENT_DTLS_PARAMETERS = {
  role: 'client' as const,
  fingerprints: [
    {
      algorithm: 'sha-256',
      value: Array.from({ length: 32 }, (_, i) => (i * 7 + 16).toString(16).padStart(2, '0').toUpperCase()).join(':'),
    },
  ],
};

/**
 * Every mediasoup object alive on the Node.js side, followed through mediasoup's own observers
 * (not through sfu/'s maps), so an object sfu/ forgot still counts.
 */
export class Census {
  readonly routers = new Set<Router>();
  readonly transports = new Set<Transport>();
  readonly producers = new Set<Producer>();
  readonly consumers = new Set<Consumer>();
  readonly dataProducers = new Set<DataProducer>();
  readonly dataConsumers = new Set<DataConsumer>();
  /** How many were ever made, closed or not. */
  readonly created = { transports: 0 };

  constructor(workers: readonly Worker[]) {
    for (const worker of workers) worker.observer.on('newrouter', (router: Router) => this.#router(router));
  }

  counts(): ObjectCounts {
    return {
      routers: this.routers.size,
      transports: this.transports.size,
      producers: this.producers.size,
      consumers: this.consumers.size,
      dataProducers: this.dataProducers.size,
      dataConsumers: this.dataConsumers.size,
    };
  }

  transport(id: string): Transport {
    const found = [...this.transports].find((t) => t.id === id);
    if (!found) throw new Error(`no live transport ${id}`);
    return found;
  }

  producer(id: string): Producer {
    const found = [...this.producers].find((p) => p.id === id);
    if (!found) throw new Error(`no live producer ${id}`);
    return found;
  }

  consumer(id: string): Consumer {
    const found = [...this.consumers].find((c) => c.id === id);
    if (!found) throw new Error(`no live consumer ${id}`);
    return found;
  }

  #track<T extends { observer: EventEmitter }>(set: Set<T>, object: T): void {
    set.add(object);
    object.observer.once('close', () => set.delete(object));
  }

  #router(router: Router): void {
    this.#track(this.routers, router);
    router.observer.on('newtransport', (transport: Transport) => {
      this.#track(this.transports, transport);
      this.created.transports += 1;
      transport.observer.on('newproducer', (p: Producer) => this.#track(this.producers, p));
      transport.observer.on('newconsumer', (c: Consumer) => this.#track(this.consumers, c));
      transport.observer.on('newdataproducer', (d: DataProducer) => this.#track(this.dataProducers, d));
      transport.observer.on('newdataconsumer', (d: DataConsumer) => this.#track(this.dataConsumers, d));
    });
  }
}

interface WorkerDump {
  routerIds: string[];
}

interface RouterDump {
  transportIds: string[];
  mapProducerIdConsumerIds: Record<string, string[]>;
  mapConsumerIdProducerId: Record<string, string>;
  mapDataProducerIdDataConsumerIds: Record<string, string[]>;
  mapDataConsumerIdDataProducerId: Record<string, string>;
}

/**
 * Objects as the worker processes hold them: routers from worker.dump(), and the contents of
 * each router still known to Node.js from router.dump(). Read independently of sfu/object-counts.
 */
export async function countInWorkers(pool: WorkerPool, census: Census): Promise<ObjectCounts> {
  const workerDumps = (await Promise.all(pool.workers.map((worker) => worker.dump()))) as WorkerDump[];
  const routerIds = new Set(workerDumps.flatMap((dump) => dump.routerIds));
  const counts: ObjectCounts = { routers: routerIds.size, transports: 0, producers: 0, consumers: 0, dataProducers: 0, dataConsumers: 0 };
  const known = [...census.routers].filter((router) => routerIds.has(router.id));
  // A router in a worker that Node.js no longer knows is a leak in itself: the two must agree.
  if (known.length !== routerIds.size) counts.routers += 1000;
  for (const router of known) {
    const dump = (await router.dump()) as RouterDump;
    counts.transports += dump.transportIds.length;
    counts.producers += Object.keys(dump.mapProducerIdConsumerIds).length;
    counts.consumers += Object.keys(dump.mapConsumerIdProducerId).length;
    counts.dataProducers += Object.keys(dump.mapDataProducerIdDataConsumerIds).length;
    counts.dataConsumers += Object.keys(dump.mapDataConsumerIdDataProducerId).length;
  }
  return counts;
}

export function thrown(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

export async function waitUntil(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The next emission of an event, with a deadline so a missing event fails the test instead of hanging it. */
export async function nextEvent<T extends unknown[]>(emitter: EventEmitter, event: string, timeoutMs = 5000): Promise<T> {
  return (await once(emitter, event, { signal: AbortSignal.timeout(timeoutMs) })) as T;
}
