import type { Router } from 'mediasoup/lib/types.js';

/** How many mediasoup objects are alive: the figure that must fall back to zero after use. */
export interface ObjectCounts {
  routers: number;
  transports: number;
  producers: number;
  consumers: number;
  dataProducers: number;
  dataConsumers: number;
}

export function noObjects(): ObjectCounts {
  return { routers: 0, transports: 0, producers: 0, consumers: 0, dataProducers: 0, dataConsumers: 0 };
}

export function addCounts(total: ObjectCounts, more: ObjectCounts): ObjectCounts {
  return {
    routers: total.routers + more.routers,
    transports: total.transports + more.transports,
    producers: total.producers + more.producers,
    consumers: total.consumers + more.consumers,
    dataProducers: total.dataProducers + more.dataProducers,
    dataConsumers: total.dataConsumers + more.dataConsumers,
  };
}

/** The part of mediasoup 3.8's `router.dump()` (the worker's own tables) that counts objects. */
interface RouterDump {
  transportIds?: unknown[];
  mapProducerIdConsumerIds?: Record<string, unknown>;
  mapConsumerIdProducerId?: Record<string, unknown>;
  mapDataProducerIdDataConsumerIds?: Record<string, unknown>;
  mapDataConsumerIdDataProducerId?: Record<string, unknown>;
}

/**
 * Counts the objects of a router as its worker process sees them (not as Node.js bookkeeping
 * does), so a leak inside mediasoup shows up too.
 */
export async function countRouterObjectsInWorker(router: Router): Promise<ObjectCounts> {
  if (router.closed) return noObjects();
  const dump = (await router.dump()) as RouterDump;
  const size = (map: Record<string, unknown> | undefined) => Object.keys(map ?? {}).length;
  return {
    routers: 1,
    transports: dump.transportIds?.length ?? 0,
    producers: size(dump.mapProducerIdConsumerIds),
    consumers: size(dump.mapConsumerIdProducerId),
    dataProducers: size(dump.mapDataProducerIdDataConsumerIds),
    dataConsumers: size(dump.mapDataConsumerIdDataProducerId),
  };
}
