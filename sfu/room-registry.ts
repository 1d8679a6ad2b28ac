import { EventEmitter } from 'node:events';
import type { RtpCodecCapability, Worker } from 'mediasoup/lib/types.js';
import { SfuError } from './errors.js';
import { addCounts, noObjects, type ObjectCounts } from './object-counts.js';
import { Room, type RoomCloseReason, type RoomStats } from './room.js';
import { resolveTransportSettings, type TransportSettings, type TransportSettingsInput } from './transport-settings.js';
import { requireId } from './validation.js';
import { WorkerPool, type PoolLogger } from './worker-pool.js';

export interface RoomRegistryOptions {
  pool: WorkerPool;
  /** Codecs of every room's router. Default: DEFAULT_MEDIA_CODECS. */
  mediaCodecs?: readonly RtpCodecCapability[];
  transports?: TransportSettingsInput;
  logger?: PoolLogger;
}

export interface RoomRegistryEvents {
  roomopened: [room: Room];
  roomclosed: [event: { roomId: string; reason: RoomCloseReason }];
  /** A room moved to another worker after its worker died. */
  roomrebuilt: [room: Room];
  /** A room could not be rebuilt (no worker left) and was closed. */
  rebuildfailed: [event: { roomId: string; error: unknown }];
}

const silentLogger: PoolLogger = { info: () => {}, error: () => {} };

/**
 * Every open room of this hub node, by id. Rooms are placed on the least-loaded worker; when the
 * pool reports a dead worker, the rooms it hosted are rebuilt on the workers left.
 */
export class RoomRegistry extends EventEmitter<RoomRegistryEvents> {
  readonly #pool: WorkerPool;
  readonly #mediaCodecs: readonly RtpCodecCapability[] | undefined;
  readonly #transports: TransportSettings;
  readonly #logger: PoolLogger;
  readonly #rooms = new Map<string, Room>();
  /** Rooms whose router is being made: a second open of the same id waits for the first. */
  readonly #opening = new Map<string, Promise<Room>>();
  readonly #onWorkerDied = (worker: Worker) => this.#rebuildRoomsOf(worker);
  #closed = false;

  constructor(options: RoomRegistryOptions) {
    super();
    if (!(options?.pool instanceof WorkerPool)) throw new SfuError('invalid-argument', 'pool must be a WorkerPool', 'pool');
    this.#pool = options.pool;
    this.#mediaCodecs = options.mediaCodecs;
    // Checked now, so a bad configuration fails at start-up rather than at the first call.
    this.#transports = resolveTransportSettings(options.transports);
    this.#logger = options.logger ?? silentLogger;
    this.#pool.on('workerdied', this.#onWorkerDied);
  }

  get rooms(): Room[] {
    return [...this.#rooms.values()];
  }

  /** Opens a new room; 'room-exists' if one with this id is open or opening. */
  async createRoom(roomId: string): Promise<Room> {
    this.#assertOpen();
    const id = requireId(roomId, 'roomId');
    if (this.#rooms.has(id) || this.#opening.has(id)) {
      throw new SfuError('room-exists', `room '${id}' is already open`, 'roomId');
    }
    return this.#open(id);
  }

  /** The open room with this id, or a new one: what the first participant to arrive calls. */
  async openRoom(roomId: string): Promise<Room> {
    this.#assertOpen();
    const id = requireId(roomId, 'roomId');
    return this.#rooms.get(id) ?? this.#opening.get(id) ?? this.#open(id);
  }

  /** The room, or 'room-not-found'. */
  getRoom(roomId: string): Room {
    const id = requireId(roomId, 'roomId');
    const room = this.#rooms.get(id);
    if (!room) throw new SfuError('room-not-found', `no open room '${id}'`, 'roomId');
    return room;
  }

  findRoom(roomId: string): Room | undefined {
    return this.#rooms.get(roomId);
  }

  closeRoom(roomId: string): void {
    this.getRoom(roomId).close();
  }

  /** Objects alive in every room, as the rooms' maps count them. */
  countObjects(): ObjectCounts {
    return this.rooms.reduce((total, room) => addCounts(total, room.countObjects()), noObjects());
  }

  /** Objects alive in every room, as the worker processes report them. */
  async countObjectsInWorkers(): Promise<ObjectCounts> {
    const counts = await Promise.all(this.rooms.map((room) => room.countObjectsInWorker()));
    return counts.reduce(addCounts, noObjects());
  }

  stats(): RoomStats[] {
    return this.rooms.map((room) => room.stats());
  }

  /** Closes every room and stops listening to the pool (which stays open: its owner closes it). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pool.off('workerdied', this.#onWorkerDied);
    for (const room of this.rooms) room.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new SfuError('room-closed', 'the SFU is shutting down; no room can be opened');
  }

  #open(roomId: string): Promise<Room> {
    const opening = Room.create({
      pool: this.#pool,
      roomId,
      transports: this.#transports,
      ...(this.#mediaCodecs ? { mediaCodecs: this.#mediaCodecs } : {}),
    }).then(
      (room) => {
        this.#opening.delete(roomId);
        if (this.#closed) {
          room.close();
          this.#assertOpen();
        }
        this.#adopt(room);
        return room;
      },
      (error: unknown) => {
        this.#opening.delete(roomId);
        throw error;
      },
    );
    this.#opening.set(roomId, opening);
    return opening;
  }

  #adopt(room: Room): void {
    this.#rooms.set(room.id, room);
    room.once('closed', (reason) => {
      if (this.#rooms.get(room.id) === room) this.#rooms.delete(room.id);
      this.emit('roomclosed', { roomId: room.id, reason });
    });
    room.on('rebuilt', () => this.emit('roomrebuilt', room));
    this.emit('roomopened', room);
  }

  #rebuildRoomsOf(worker: Worker): void {
    // A room whose router closed with the worker is interrupted: its roster waits, its media is gone.
    const affected = this.rooms.filter((room) => room.interrupted);
    this.#logger.error(
      { pid: worker.pid, rooms: affected.map((room) => room.id) },
      'mediasoup worker died; rebuilding its rooms on the workers left',
    );
    for (const room of affected) {
      room.rebuild().then(
        () => this.#logger.info({ roomId: room.id, pid: room.workerPid }, 'room rebuilt'),
        (error: unknown) => {
          // Closed on purpose while being rebuilt: nothing failed.
          if (error instanceof SfuError && error.code === 'room-closed') return;
          this.#logger.error({ roomId: room.id, err: error }, 'room could not be rebuilt and was closed');
          this.emit('rebuildfailed', { roomId: room.id, error });
        },
      );
    }
  }
}
