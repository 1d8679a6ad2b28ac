import { EventEmitter } from 'node:events';
import type { Router, RtpCapabilities, RtpCodecCapability } from 'mediasoup/lib/types.js';
import { fromMediasoup, SfuError } from './errors.js';
import { addCounts, countRouterObjectsInWorker, noObjects, type ObjectCounts } from './object-counts.js';
import {
  Peer,
  type DataProducerParams,
  type PeerControls,
  type PeerHost,
  type PeerInfo,
  type ProducerParams,
} from './peer.js';
import { resolveTransportSettings, type TransportSettings, type TransportSettingsInput } from './transport-settings.js';
import { optionalRecord, requireId, requireRecord, requireText } from './validation.js';
import { DEFAULT_MEDIA_CODECS, NoWorkerAvailableError, WorkerPool } from './worker-pool.js';

export interface RoomOptions {
  pool: WorkerPool;
  roomId: string;
  mediaCodecs?: readonly RtpCodecCapability[];
  transports?: TransportSettingsInput;
}

export interface JoinOptions {
  displayName: string;
  /** Free text for the roster ('practitioner', 'patient', 'nurse'...): access rules live in server/, not here. */
  role?: string;
}

export type RoomCloseReason = 'closed' | 'no-worker';

export interface RoomEvents {
  peerjoined: [peer: Peer];
  peerleft: [event: { peerId: string }];
  newproducer: [producer: ProducerParams];
  producerclosed: [event: { peerId: string; producerId: string }];
  newdataproducer: [dataProducer: DataProducerParams];
  dataproducerclosed: [event: { peerId: string; dataProducerId: string }];
  /** The router's worker died: every peer's media is gone until the room is rebuilt. */
  interrupted: [];
  /** The room has a new router; each peer has been sent 'reconnect-required'. */
  rebuilt: [event: { workerPid: number | undefined; peerIds: string[] }];
  closed: [reason: RoomCloseReason];
}

export interface RoomStats extends ObjectCounts {
  roomId: string;
  peers: number;
  workerPid: number | undefined;
  interrupted: boolean;
}

/** How many times a rebuild asks the pool for a router before giving the room up. */
const REBUILD_ATTEMPTS = 3;

/**
 * A call: one mediasoup router and the peers using it. The room owns the router, each peer owns
 * its transports, and mediasoup closes producers and consumers with their transport, so closing
 * the room (or a peer leaving) releases everything below it.
 *
 * When the worker hosting the router dies, the room keeps its identity and roster; its owner
 * calls rebuild() (RoomRegistry does) to get a router on another worker, and the peers are told
 * to reconnect.
 */
export class Room extends EventEmitter<RoomEvents> {
  readonly id: string;
  readonly #pool: WorkerPool;
  readonly #mediaCodecs: readonly RtpCodecCapability[];
  readonly #settings: TransportSettings;
  readonly #rtpCapabilities: RtpCapabilities;
  readonly #peers = new Map<string, { peer: Peer; controls: PeerControls }>();
  readonly #host: PeerHost;
  #router: Router | undefined;
  #rebuilding: Promise<void> | undefined;
  #closed = false;

  static async create(options: RoomOptions): Promise<Room> {
    const input = requireRecord(options, 'options');
    const roomId = requireId(input.roomId, 'roomId');
    const { pool, transports, mediaCodecs = DEFAULT_MEDIA_CODECS } = options;
    if (!(pool instanceof WorkerPool)) {
      throw new SfuError('invalid-argument', 'pool must be a WorkerPool', 'pool');
    }
    const settings = resolveTransportSettings(transports);
    const router = await createRouter(pool, mediaCodecs);
    return new Room(roomId, pool, mediaCodecs, settings, router);
  }

  private constructor(
    roomId: string,
    pool: WorkerPool,
    mediaCodecs: readonly RtpCodecCapability[],
    settings: TransportSettings,
    router: Router,
  ) {
    super();
    this.id = roomId;
    this.#pool = pool;
    this.#mediaCodecs = mediaCodecs;
    this.#settings = settings;
    // The same codecs give the same capabilities on any router, so they outlive a rebuild.
    this.#rtpCapabilities = router.rtpCapabilities;
    this.#host = this.#peerHost();
    this.#attach(router);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Lost its router (worker died) and not rebuilt yet. */
  get interrupted(): boolean {
    return !this.#closed && (this.#router === undefined || this.#router.closed);
  }

  /** What the clients load their mediasoup-client Device with. */
  get rtpCapabilities(): RtpCapabilities {
    this.#assertOpen();
    return this.#rtpCapabilities;
  }

  /** The process of the worker hosting the router (undefined while interrupted). */
  get workerPid(): number | undefined {
    const router = this.#router;
    return router && !router.closed ? this.#pool.workerOf(router)?.pid : undefined;
  }

  get peers(): Peer[] {
    return [...this.#peers.values()].map(({ peer }) => peer);
  }

  /** The roster, with what each peer produces. */
  roster(): PeerInfo[] {
    return this.peers.map((peer) => peer.info());
  }

  join(peerId: string, options: JoinOptions): Peer {
    this.#assertOpen();
    const id = requireId(peerId, 'peerId');
    const input = optionalRecord(options, 'options') ?? {};
    const displayName = requireText(input.displayName, 'displayName', 128);
    const role = input.role === undefined ? 'participant' : requireText(input.role, 'role', 64);
    if (this.#peers.has(id)) {
      throw new SfuError(
        'peer-exists',
        `peer '${id}' is already in room '${this.id}'; leave first or use another id`,
        'peerId',
      );
    }
    const peer = new Peer(this.#host, { id, displayName, role });
    this.emit('peerjoined', peer);
    return peer;
  }

  /** The peer, or 'peer-not-found'. */
  getPeer(peerId: string): Peer {
    this.#assertOpen();
    const id = requireId(peerId, 'peerId');
    const entry = this.#peers.get(id);
    if (!entry) throw new SfuError('peer-not-found', `no peer '${id}' in room '${this.id}'`, 'peerId');
    return entry.peer;
  }

  findPeer(peerId: string): Peer | undefined {
    return this.#peers.get(peerId)?.peer;
  }

  /** Closes the peer's transports (and with them all it produces and consumes) and removes it. */
  leave(peerId: string): void {
    this.getPeer(peerId).close();
  }

  /** Objects held in this room, as its own maps count them. */
  countObjects(): ObjectCounts {
    let counts = noObjects();
    if (this.#router && !this.#router.closed) counts.routers = 1;
    for (const { peer } of this.#peers.values()) counts = addCounts(counts, peer.countObjects());
    return counts;
  }

  /** Objects of this room as the worker process reports them (router.dump()): catches leaks inside mediasoup. */
  async countObjectsInWorker(): Promise<ObjectCounts> {
    const router = this.#router;
    return router ? countRouterObjectsInWorker(router) : noObjects();
  }

  stats(): RoomStats {
    return {
      roomId: this.id,
      peers: this.#peers.size,
      workerPid: this.workerPid,
      interrupted: this.interrupted,
      ...this.countObjects(),
    };
  }

  /**
   * Gives the room a new router on the least-loaded worker, keeping its id and roster. Every
   * peer's transports are dropped (closed first if still open) and each peer gets
   * 'reconnect-required'. Called after a worker death; also usable to move a room off a worker.
   * Concurrent calls share one rebuild.
   */
  async rebuild(): Promise<void> {
    this.#assertOpen();
    this.#rebuilding ??= this.#rebuild().finally(() => {
      this.#rebuilding = undefined;
    });
    return this.#rebuilding;
  }

  close(reason: RoomCloseReason = 'closed'): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const { controls } of [...this.#peers.values()]) controls.close('room-closed');
    this.#peers.clear();
    const router = this.#router;
    this.#router = undefined;
    router?.close();
    this.emit('closed', reason);
  }

  async #rebuild(): Promise<void> {
    const old = this.#router;
    this.#router = undefined;
    old?.close();
    for (const { controls } of this.#peers.values()) controls.dropMedia();
    let router: Router | undefined;
    for (let attempt = 1; !router; attempt += 1) {
      try {
        // Already running: rebuilt even on workers at their budget, rather than ended.
        router = await createRouter(this.#pool, this.#mediaCodecs, { ignoreBudget: true });
      } catch (error) {
        // A worker dying while the router is made is worth another try; no worker at all is not.
        const retry =
          error instanceof SfuError &&
          error.code === 'no-worker' &&
          attempt < REBUILD_ATTEMPTS &&
          this.#pool.workers.length > 0;
        if (this.#closed) throw new SfuError('room-closed', `room '${this.id}' closed while being rebuilt`);
        if (!retry) {
          this.close('no-worker');
          throw error;
        }
      }
    }
    if (this.#closed) {
      router.close();
      throw new SfuError('room-closed', `room '${this.id}' closed while being rebuilt`);
    }
    this.#attach(router);
    for (const { controls } of this.#peers.values()) controls.reconnectRequired();
    this.emit('rebuilt', { workerPid: this.workerPid, peerIds: [...this.#peers.keys()] });
  }

  #attach(router: Router): void {
    this.#router = router;
    // Fires when the room closes the router and when the worker under it dies.
    router.observer.once('close', () => {
      if (this.#router !== router || this.#closed) return;
      // The pool shutting down takes every worker: nothing to rebuild on.
      if (this.#pool.closed) return this.close('no-worker');
      for (const { controls } of this.#peers.values()) controls.dropMedia();
      this.emit('interrupted');
    });
  }

  #assertOpen(): void {
    if (this.#closed) throw new SfuError('room-closed', `room '${this.id}' is closed`);
  }

  async #currentRouter(): Promise<Router> {
    this.#assertOpen();
    // A call arriving during a rebuild waits for the new router rather than failing.
    await this.#rebuilding?.catch(() => {});
    this.#assertOpen();
    const router = this.#router;
    if (!router || router.closed) {
      throw new SfuError(
        'room-interrupted',
        `room '${this.id}' lost its media server and is being rebuilt; wait for 'reconnect-required'`,
      );
    }
    return router;
  }

  /** The narrow face peers see of their room. */
  #peerHost(): PeerHost {
    return {
      roomId: this.id,
      settings: this.#settings,
      assertOpen: () => this.#assertOpen(),
      router: () => this.#currentRouter(),
      findProducer: (producerId) => {
        for (const { peer, controls } of this.#peers.values()) {
          const owned = controls.producer(producerId);
          if (owned) return { ...owned, owner: peer };
        }
        return undefined;
      },
      findDataProducer: (dataProducerId) => {
        for (const { peer, controls } of this.#peers.values()) {
          const dataProducer = controls.dataProducer(dataProducerId);
          if (dataProducer) return { dataProducer, owner: peer };
        }
        return undefined;
      },
      ownerOf: (objectId) => {
        for (const { peer, controls } of this.#peers.values()) if (controls.owns(objectId)) return peer;
        return undefined;
      },
      producerOpened: (producer) => this.#emitIfOpen('newproducer', producer),
      producerClosed: (owner, producerId) => this.#emitIfOpen('producerclosed', { peerId: owner.id, producerId }),
      dataProducerOpened: (dataProducer) => this.#emitIfOpen('newdataproducer', dataProducer),
      dataProducerClosed: (owner, dataProducerId) =>
        this.#emitIfOpen('dataproducerclosed', { peerId: owner.id, dataProducerId }),
      register: (peer, controls) => {
        this.#peers.set(peer.id, { peer, controls });
        peer.once('closed', () => {
          if (this.#closed || this.#peers.get(peer.id)?.peer !== peer) return;
          this.#peers.delete(peer.id);
          this.emit('peerleft', { peerId: peer.id });
        });
      },
    };
  }

  #emitIfOpen<K extends keyof RoomEvents>(event: K, ...args: RoomEvents[K]): void {
    if (!this.#closed) (this.emit as (event: K, ...args: RoomEvents[K]) => boolean)(event, ...args);
  }
}

async function createRouter(pool: WorkerPool, mediaCodecs: readonly RtpCodecCapability[], options: { ignoreBudget?: boolean } = {}): Promise<Router> {
  try {
    return await pool.createRouter(mediaCodecs, options);
  } catch (error) {
    if (error instanceof NoWorkerAvailableError) {
      throw new SfuError('no-worker', error.message, undefined, { cause: error });
    }
    throw fromMediasoup(error, 'mediaCodecs', 'creating the router');
  }
}
