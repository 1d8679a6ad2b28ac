import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import type { RtpCapabilities, WebRtcTransport, Worker } from 'mediasoup/lib/types.js';
import { SfuError } from '../../sfu/errors.js';
import type { ObjectCounts } from '../../sfu/object-counts.js';
import type { ConsumerParams, Peer, PeerConnectionState } from '../../sfu/peer.js';
import { RoomRegistry } from '../../sfu/room-registry.js';
import { Room } from '../../sfu/room.js';
import type { WorkerPool } from '../../sfu/worker-pool.js';
import {
  CLIENT_DTLS_PARAMETERS,
  Census,
  countInWorkers,
  nextEvent,
  opusRtpPacket,
  opusRtpParameters,
  simulcastVp8RtpParameters,
  startPool,
  thrown,
  waitUntil,
} from './support.js';

const ZERO: ObjectCounts = { routers: 0, transports: 0, producers: 0, consumers: 0, dataProducers: 0, dataConsumers: 0 };

interface Setup {
  pool: WorkerPool;
  census: Census;
}

const pools: WorkerPool[] = [];
const registries: RoomRegistry[] = [];

async function setup(numWorkers = 2): Promise<Setup> {
  const pool = await startPool(numWorkers);
  pools.push(pool);
  return { pool, census: new Census(pool.workers) };
}

async function openRegistry(pool: WorkerPool): Promise<RoomRegistry> {
  const registry = new RoomRegistry({ pool });
  registries.push(registry);
  return registry;
}

/** A peer sending opus from a plain RTP transport, as the capacity benchmark's senders do. */
async function producePlainAudio(peer: Peer, ssrc: number) {
  const transport = await peer.createPlainTransport({ direction: 'send', comedia: true });
  const producer = await peer.produce(transport.id, {
    kind: 'audio',
    rtpParameters: opusRtpParameters(ssrc),
    appData: { source: 'mic' },
  });
  return { transport, producer };
}

afterEach(() => {
  for (const registry of registries.splice(0)) registry.close();
  for (const pool of pools.splice(0)) pool.close();
});

describe('Room', () => {
  it('lets a peer join once, refuses a second join with the same id and an unknown peer leaving, naming the field at fault', async () => {
    const { pool } = await setup(1);
    const room = await Room.create({ pool, roomId: 'consult-1' });
    const joined: string[] = [];
    const left: string[] = [];
    room.on('peerjoined', (peer) => joined.push(peer.id));
    room.on('peerleft', ({ peerId }) => left.push(peerId));

    const gp = room.join('gp-1', { displayName: ' Dr Martin ', role: 'practitioner' });
    room.join('nurse-1', { displayName: 'Inf. Durand' });

    expect(gp).toMatchObject({ id: 'gp-1', displayName: 'Dr Martin', role: 'practitioner' });
    expect(room.getPeer('gp-1')).toBe(gp);
    expect(room.roster().map((p) => [p.id, p.role])).toEqual([
      ['gp-1', 'practitioner'],
      ['nurse-1', 'participant'],
    ]);
    expect(thrown(() => room.join('gp-1', { displayName: 'Dr Martin' }))).toMatchObject({ code: 'peer-exists', field: 'peerId' });
    expect(thrown(() => room.leave('ghost'))).toMatchObject({ code: 'peer-not-found', field: 'peerId' });
    expect(thrown(() => room.join('', { displayName: 'x' }))).toMatchObject({ code: 'invalid-argument', field: 'peerId' });
    expect(thrown(() => room.join('p', { displayName: '   ' }))).toMatchObject({ code: 'invalid-argument', field: 'displayName' });
    expect(thrown(() => room.join('p', { displayName: 'x', role: 42 as unknown as string }))).toMatchObject({ field: 'role' });
    room.join('p', { displayName: 'x' });
    expect(room.peers.map((p) => p.id)).toEqual(['gp-1', 'nurse-1', 'p']);

    room.leave('gp-1');
    expect(gp.closed).toBe(true);
    expect(room.findPeer('gp-1')).toBeUndefined();
    expect(thrown(() => room.leave('gp-1'))).toMatchObject({ code: 'peer-not-found' });
    await expect(gp.createWebRtcTransport({ direction: 'send' })).rejects.toMatchObject({ code: 'peer-closed' });
    // The same person can come back under the same id once gone.
    room.join('gp-1', { displayName: 'Dr Martin' });
    expect(joined).toEqual(['gp-1', 'nurse-1', 'p', 'gp-1']);
    expect(left).toEqual(['gp-1']);
  }, 20_000);

  it('refuses every operation once closed, with room-closed, and releases its router in the worker', async () => {
    const { pool, census } = await setup(1);
    const room = await Room.create({ pool, roomId: 'consult-2' });
    const peer = room.join('a', { displayName: 'A' });
    const transport = await peer.createWebRtcTransport({ direction: 'send' });
    const events: string[] = [];
    room.on('closed', (reason) => events.push(`room:${reason}`));
    peer.on('closed', (reason) => events.push(`peer:${reason}`));
    expect(await countInWorkers(pool, census)).toMatchObject({ routers: 1, transports: 1 });

    room.close();

    expect(events).toEqual(['peer:room-closed', 'room:closed']);
    expect(room.closed).toBe(true);
    expect(thrown(() => room.join('b', { displayName: 'B' }))).toMatchObject({ code: 'room-closed' });
    expect(thrown(() => room.getPeer('a'))).toMatchObject({ code: 'room-closed' });
    expect(thrown(() => room.rtpCapabilities)).toMatchObject({ code: 'room-closed' });
    await expect(peer.createWebRtcTransport({ direction: 'recv' })).rejects.toMatchObject({ code: 'room-closed' });
    await expect(peer.connectTransport(transport.id, CLIENT_DTLS_PARAMETERS)).rejects.toMatchObject({ code: 'room-closed' });
    await expect(room.rebuild()).rejects.toMatchObject({ code: 'room-closed' });
    expect(room.countObjects()).toEqual(ZERO);
    expect(census.counts()).toEqual(ZERO);
    expect(await countInWorkers(pool, census)).toEqual(ZERO);
    room.close(); // closing twice is harmless
  }, 20_000);

  it('gives a client what mediasoup-client needs, connects with its DTLS parameters, restarts ICE and caps transports per peer', async () => {
    const { pool } = await setup(1);
    const room = await Room.create({ pool, roomId: 'consult-3' });
    const peer = room.join('a', { displayName: 'A' });

    const send = await peer.createWebRtcTransport({ direction: 'send', sctp: true });
    expect(send.direction).toBe('send');
    expect(send.iceParameters.usernameFragment).toEqual(expect.any(String));
    expect(send.iceCandidates[0]).toMatchObject({ ip: '127.0.0.1', protocol: 'udp' });
    expect(send.iceCandidates[0]?.port).toBeGreaterThanOrEqual(50000);
    expect(send.iceCandidates[0]?.port).toBeLessThanOrEqual(51999);
    expect(send.dtlsParameters.fingerprints.length).toBeGreaterThan(0);
    expect(send.sctpParameters).toMatchObject({ OS: 1024, MIS: 1024 });
    const recv = await peer.createWebRtcTransport({ direction: 'recv' });
    expect(recv.sctpParameters).toBeUndefined();

    await peer.connectTransport(send.id, CLIENT_DTLS_PARAMETERS);
    await expect(peer.connectTransport(send.id, CLIENT_DTLS_PARAMETERS)).rejects.toMatchObject({ code: 'invalid-state' });
    const restarted = await peer.restartIce(send.id);
    expect(restarted.usernameFragment).not.toBe(send.iceParameters.usernameFragment);

    await expect(peer.createWebRtcTransport({ direction: 'both' as 'send' })).rejects.toMatchObject({
      code: 'invalid-argument',
      field: 'direction',
    });
    await expect(peer.connectTransport(recv.id, { fingerprints: [] })).rejects.toMatchObject({
      field: 'dtlsParameters.fingerprints',
    });
    await expect(
      peer.connectTransport(recv.id, { role: 'sideways' as 'client', fingerprints: CLIENT_DTLS_PARAMETERS.fingerprints }),
    ).rejects.toMatchObject({ field: 'dtlsParameters.role' });
    await expect(peer.restartIce('00000000-0000-0000-0000-000000000000')).rejects.toMatchObject({
      code: 'transport-not-found',
      field: 'transportId',
    });

    const plain = await peer.createPlainTransport({ direction: 'send' });
    await expect(peer.restartIce(plain.id)).rejects.toMatchObject({ code: 'invalid-state', field: 'transportId' });
    await peer.createPlainTransport({ direction: 'recv' });
    // Two WebRTC and two plain transports: the default limit of four is reached.
    await expect(peer.createWebRtcTransport({ direction: 'recv' })).rejects.toMatchObject({ code: 'limit-reached' });
    peer.closeTransport(plain.id);
    await peer.createWebRtcTransport({ direction: 'recv' });
    expect(peer.countObjects().transports).toBe(4);
  }, 20_000);

  it('opens transports on the addresses and with the bitrates of its configuration, and refuses a bad configuration', async () => {
    const { pool, census } = await setup(1);
    const room = await Room.create({
      pool,
      roomId: 'satellite-site',
      transports: {
        listenIps: [{ ip: '127.0.0.1', announcedIp: '203.0.113.7' }],
        initialAvailableOutgoingBitrate: 300_000,
        maxIncomingBitrate: 500_000,
        maxTransportsPerPeer: 2,
      },
    });
    const peer = room.join('a', { displayName: 'A' });
    const send = await peer.createWebRtcTransport({ direction: 'send' });
    expect(send.iceCandidates.map((candidate) => candidate.ip)).toEqual(['203.0.113.7', '203.0.113.7']);
    const [stats] = await (census.transport(send.id) as WebRtcTransport).getStats();
    expect(stats?.maxIncomingBitrate).toBe(500_000);
    const plain = await peer.createPlainTransport({ direction: 'send' });
    expect(plain.ip).toBe('203.0.113.7');
    await expect(peer.createWebRtcTransport({ direction: 'recv' })).rejects.toMatchObject({ code: 'limit-reached' });

    await expect(Room.create({ pool, roomId: 'x', transports: { listenIps: [] } })).rejects.toMatchObject({
      code: 'invalid-argument',
      field: 'transports.listenIps',
    });
    await expect(Room.create({ pool, roomId: 'x', transports: { maxTransportsPerPeer: 0 } })).rejects.toMatchObject({
      field: 'transports.maxTransportsPerPeer',
    });
    await expect(Room.create({ pool: {} as WorkerPool, roomId: 'x' })).rejects.toMatchObject({ field: 'pool' });
    await expect(
      Room.create({ pool, roomId: 'x', mediaCodecs: [{ kind: 'video', mimeType: 'video/NOPE', clockRate: 90000 }] }),
    ).rejects.toMatchObject({ code: 'invalid-argument', field: 'mediaCodecs' });
    expect(census.counts().routers).toBe(1);
  }, 20_000);

  it("keeps each peer to its own objects: another peer's ids are refused with not-owner and nothing changes", async () => {
    const { pool, census } = await setup(1);
    const room = await Room.create({ pool, roomId: 'consult-4' });
    const alice = room.join('alice', { displayName: 'Alice' });
    const bob = room.join('bob', { displayName: 'Bob' });
    const { transport: aliceSend, producer } = await producePlainAudio(alice, 1111);
    const aliceRecv = await alice.createWebRtcTransport({ direction: 'recv' });
    const aliceConsumer = await alice.consume(producer.id, room.rtpCapabilities);
    const bobRecv = await bob.createWebRtcTransport({ direction: 'recv' });
    const before = await countInWorkers(pool, census);

    const refusals = [
      bob.connectTransport(aliceRecv.id, CLIENT_DTLS_PARAMETERS),
      bob.restartIce(aliceRecv.id),
      bob.produce(aliceSend.id, { kind: 'audio', rtpParameters: opusRtpParameters(2222), appData: { source: 'mic' } }),
      bob.consume(producer.id, room.rtpCapabilities, { transportId: aliceRecv.id }),
      bob.pauseProducer(producer.id),
      bob.resumeConsumer(aliceConsumer.id),
      bob.setConsumerPreferredLayers(aliceConsumer.id, { spatialLayer: 0 }),
    ];
    for (const refusal of refusals) await expect(refusal).rejects.toMatchObject({ code: 'not-owner' });
    expect(thrown(() => bob.closeTransport(aliceSend.id))).toMatchObject({ code: 'not-owner', field: 'transportId' });
    expect(thrown(() => bob.closeProducer(producer.id))).toMatchObject({ code: 'not-owner', field: 'producerId' });
    expect(thrown(() => bob.closeConsumer(aliceConsumer.id))).toMatchObject({ code: 'not-owner', field: 'consumerId' });
    expect(thrown(() => bob.closeTransport('not-a-transport'))).toMatchObject({ code: 'transport-not-found' });

    expect(alice.countObjects()).toMatchObject({ transports: 2, producers: 1, consumers: 1 });
    expect(await countInWorkers(pool, census)).toEqual(before);
    // Bob may still consume Alice's producer on his own transport: that is what rooms are for.
    const bobConsumer = await bob.consume(producer.id, room.rtpCapabilities, { transportId: bobRecv.id });
    expect(bobConsumer.producerPeerId).toBe('alice');
  }, 20_000);

  it("forwards a plain RTP opus producer to another peer's WebRTC consumer, which starts paused until resumed", async () => {
    const { pool, census } = await setup(1);
    const room = await Room.create({ pool, roomId: 'consult-5' });
    const sender = room.join('cart', { displayName: 'Chariot EHPAD' });
    const viewer = room.join('specialist', { displayName: 'Dr Leroy' });
    const announced = nextEvent(room, 'newproducer');

    const { transport, producer } = await producePlainAudio(sender, 0x1234abcd);
    expect(producer).toMatchObject({ peerId: 'cart', kind: 'audio', source: 'mic', type: 'simple', paused: false });
    expect(await announced).toEqual([producer]);
    expect(sender.info().producers).toEqual([producer]);

    // Real RTP reaches the producer: the parameters are the ones a sender actually uses.
    const socket = dgram.createSocket('udp4');
    try {
      for (let seq = 0; seq < 20; seq++) {
        socket.send(opusRtpPacket(0x1234abcd, seq), transport.port, transport.ip);
      }
      await waitUntil(async () => {
        const [stats] = await census.producer(producer.id).getStats();
        return (stats?.packetCount ?? 0) > 0;
      }, 'the producer has received RTP');
    } finally {
      socket.close();
    }

    await viewer.createWebRtcTransport({ direction: 'recv' });
    const consumer = await viewer.consume(producer.id, room.rtpCapabilities);
    expect(consumer).toMatchObject({
      producerId: producer.id,
      producerPeerId: 'cart',
      source: 'mic',
      kind: 'audio',
      type: 'simple',
      paused: true,
      producerPaused: false,
    });
    expect(consumer.rtpParameters.codecs[0]?.mimeType.toLowerCase()).toBe('audio/opus');
    expect(census.consumer(consumer.id).paused).toBe(true);
    await viewer.resumeConsumer(consumer.id);
    expect(census.consumer(consumer.id).paused).toBe(false);

    const paused = nextEvent(viewer, 'consumerpaused');
    await sender.pauseProducer(producer.id);
    expect(await paused).toEqual([{ consumerId: consumer.id }]);
    const resumed = nextEvent(viewer, 'consumerresumed');
    await sender.resumeProducer(producer.id);
    expect(await resumed).toEqual([{ consumerId: consumer.id }]);
  }, 20_000);

  it('refuses producers and consumers whose parameters do not fit, naming the field', async () => {
    const { pool } = await setup(1);
    const room = await Room.create({ pool, roomId: 'consult-6' });
    const a = room.join('a', { displayName: 'A' });
    const b = room.join('b', { displayName: 'B' });
    const send = await a.createPlainTransport({ direction: 'send' });
    const recv = await a.createPlainTransport({ direction: 'recv' });
    const audio = { kind: 'audio' as const, rtpParameters: opusRtpParameters(1), appData: { source: 'mic' as const } };

    await expect(a.produce(recv.id, audio)).rejects.toMatchObject({ code: 'invalid-argument', field: 'transportId' });
    await expect(a.produce(send.id, { ...audio, appData: { source: 'webcam' } })).rejects.toMatchObject({ field: 'appData.source' });
    await expect(a.produce(send.id, { ...audio, appData: { source: 'tv' as 'mic' } })).rejects.toMatchObject({ field: 'appData.source' });
    await expect(a.produce(send.id, { ...audio, kind: 'smell' as 'audio' })).rejects.toMatchObject({ field: 'kind' });
    await expect(
      a.produce(send.id, { ...audio, rtpParameters: { codecs: [{ mimeType: 'audio/opus', clockRate: 48000 }] } as never }),
    ).rejects.toMatchObject({ code: 'invalid-argument', field: 'rtpParameters' });
    await expect(
      a.produce(send.id, { ...audio, rtpParameters: { ...opusRtpParameters(1), codecs: [{ ...opusRtpParameters(1).codecs[0]!, mimeType: 'audio/G729' }] } }),
    ).rejects.toMatchObject({ code: 'invalid-argument', field: 'rtpParameters' });
    expect(a.countObjects().producers).toBe(0);

    const producer = await a.produce(send.id, audio);
    const videoOnly: RtpCapabilities = {
      codecs: (room.rtpCapabilities.codecs ?? []).filter((codec) => codec.kind === 'video'),
      headerExtensions: [],
    };
    await b.createWebRtcTransport({ direction: 'recv' });
    await expect(b.consume(producer.id, videoOnly)).rejects.toMatchObject({ code: 'cannot-consume', field: 'rtpCapabilities' });
    await expect(b.consume(producer.id, { headerExtensions: [] } as never)).rejects.toMatchObject({ field: 'rtpCapabilities.codecs' });
    await expect(b.consume('no-such-producer', room.rtpCapabilities)).rejects.toMatchObject({ code: 'producer-not-found' });
    await b.createWebRtcTransport({ direction: 'recv' });
    await expect(b.consume(producer.id, room.rtpCapabilities)).rejects.toMatchObject({ code: 'invalid-argument', field: 'transportId' });
    expect(b.countObjects().consumers).toBe(0);
  }, 20_000);

  it('closing a producer closes the consumers other peers have on it and tells each owner; so does its peer leaving', async () => {
    const { pool, census } = await setup(1);
    const room = await Room.create({ pool, roomId: 'consult-7' });
    const speaker = room.join('speaker', { displayName: 'S' });
    const listeners = ['l1', 'l2'].map((id) => room.join(id, { displayName: id }));
    const { producer } = await producePlainAudio(speaker, 4242);
    const consumers: ConsumerParams[] = [];
    for (const listener of listeners) {
      await listener.createWebRtcTransport({ direction: 'recv' });
      consumers.push(await listener.consume(producer.id, room.rtpCapabilities));
    }
    const told = listeners.map((listener) => nextEvent(listener, 'consumerclosed'));
    const roomTold = nextEvent(room, 'producerclosed');

    speaker.closeProducer(producer.id);

    expect(await Promise.all(told)).toEqual(consumers.map((c) => [{ consumerId: c.id, producerId: producer.id }]));
    expect(await roomTold).toEqual([{ peerId: 'speaker', producerId: producer.id }]);
    expect(listeners.map((l) => l.countObjects().consumers)).toEqual([0, 0]);
    expect(await countInWorkers(pool, census)).toMatchObject({ producers: 0, consumers: 0 });
    expect(thrown(() => listeners[0]!.closeConsumer(consumers[0]!.id))).toMatchObject({ code: 'consumer-not-found' });

    const again = await producePlainAudio(speaker, 4343);
    const consumer = await listeners[0]!.consume(again.producer.id, room.rtpCapabilities);
    const closed = nextEvent(listeners[0]!, 'consumerclosed');
    room.leave('speaker');
    expect(await closed).toEqual([{ consumerId: consumer.id, producerId: again.producer.id }]);
    expect(room.countObjects()).toEqual({ ...ZERO, routers: 1, transports: 2 });
    expect(await countInWorkers(pool, census)).toEqual({ ...ZERO, routers: 1, transports: 2 });
  }, 20_000);

  it('lets a receiver pick simulcast layers of a video consumer, and refuses layers on an audio one', async () => {
    const { pool } = await setup(1);
    const room = await Room.create({ pool, roomId: 'consult-8' });
    const cart = room.join('cart', { displayName: 'Cart' });
    const doctor = room.join('doctor', { displayName: 'Doctor' });
    const send = await cart.createPlainTransport({ direction: 'send', comedia: true });
    const video = await cart.produce(send.id, {
      kind: 'video',
      rtpParameters: simulcastVp8RtpParameters(5000),
      appData: { source: 'webcam' },
    });
    expect(video.type).toBe('simulcast');
    const audio = await cart.produce(send.id, { kind: 'audio', rtpParameters: opusRtpParameters(6000), appData: { source: 'mic' } });
    await doctor.createWebRtcTransport({ direction: 'recv' });
    const videoConsumer = await doctor.consume(video.id, room.rtpCapabilities);
    const audioConsumer = await doctor.consume(audio.id, room.rtpCapabilities);

    expect(videoConsumer.type).toBe('simulcast');
    await doctor.setConsumerPreferredLayers(videoConsumer.id, { spatialLayer: 0, temporalLayer: 0 });
    await expect(doctor.setConsumerPreferredLayers(videoConsumer.id, { spatialLayer: -1 })).rejects.toMatchObject({
      field: 'layers.spatialLayer',
    });
    await expect(doctor.setConsumerPreferredLayers(audioConsumer.id, { spatialLayer: 0 })).rejects.toMatchObject({
      code: 'invalid-state',
      field: 'consumerId',
    });
  }, 20_000);

  it("carries DataChannels over SCTP: a data producer on one peer's send transport, a data consumer on another's receive transport", async () => {
    const { pool, census } = await setup(1);
    const room = await Room.create({ pool, roomId: 'consult-9' });
    const evalise = room.join('evalise', { displayName: 'e-valise' });
    const cardiologist = room.join('cardio', { displayName: 'Cardiologue' });
    const send = await evalise.createWebRtcTransport({ direction: 'send', sctp: true });
    const plainSend = await evalise.createWebRtcTransport({ direction: 'send' });
    const announced = nextEvent(room, 'newdataproducer');

    await expect(
      evalise.produceData(plainSend.id, { label: 'vitals', sctpStreamParameters: { streamId: 0 } }),
    ).rejects.toMatchObject({ code: 'invalid-state', field: 'transportId' });
    await expect(evalise.produceData(send.id, { label: 'vitals', sctpStreamParameters: { streamId: -1 } })).rejects.toMatchObject({
      field: 'sctpStreamParameters.streamId',
    });
    const vitals = await evalise.produceData(send.id, {
      label: 'vitals',
      protocol: 'json',
      sctpStreamParameters: { streamId: 0, ordered: true },
    });
    expect(vitals).toMatchObject({ peerId: 'evalise', label: 'vitals', protocol: 'json' });
    expect(await announced).toEqual([vitals]);

    await cardiologist.createWebRtcTransport({ direction: 'recv' });
    await expect(cardiologist.consumeData(vitals.id)).rejects.toMatchObject({ code: 'transport-not-found', field: 'transportId' });
    const recv = await cardiologist.createWebRtcTransport({ direction: 'recv', sctp: true });
    const dataConsumer = await cardiologist.consumeData(vitals.id);
    expect(dataConsumer).toMatchObject({ dataProducerId: vitals.id, producerPeerId: 'evalise', label: 'vitals', protocol: 'json' });
    expect(dataConsumer.sctpStreamParameters?.streamId).toEqual(expect.any(Number));
    expect(await countInWorkers(pool, census)).toMatchObject({ dataProducers: 1, dataConsumers: 1 });
    await expect(cardiologist.consumeData(vitals.id, { transportId: send.id })).rejects.toMatchObject({ code: 'not-owner' });
    await expect(cardiologist.consumeData(vitals.id, { transportId: recv.id })).resolves.toMatchObject({ label: 'vitals' });
    expect(thrown(() => cardiologist.closeDataProducer(vitals.id))).toMatchObject({ code: 'not-owner' });

    const told = nextEvent(cardiologist, 'dataconsumerclosed');
    const roomTold = nextEvent(room, 'dataproducerclosed');
    evalise.closeDataProducer(vitals.id);
    expect(await told).toEqual([{ dataConsumerId: expect.any(String), dataProducerId: vitals.id }]);
    expect(await roomTold).toEqual([{ peerId: 'evalise', dataProducerId: vitals.id }]);
    await waitUntil(() => cardiologist.countObjects().dataConsumers === 0, 'both data consumers closed');
    expect(await countInWorkers(pool, census)).toMatchObject({ dataProducers: 0, dataConsumers: 0 });
  }, 20_000);

  it('keeps every transport through a transient ICE disconnection and tells signaling, which decides when to give up', async () => {
    const { pool, census } = await setup(1);
    const room = await Room.create({ pool, roomId: 'consult-10' });
    const peer = room.join('valley-gp', { displayName: 'GP' });
    const other = room.join('chu', { displayName: 'CHU' });
    const { producer } = await producePlainAudio(other, 777);
    const recv = await peer.createWebRtcTransport({ direction: 'recv' });
    const consumer = await peer.consume(producer.id, room.rtpCapabilities);
    const states: PeerConnectionState[] = [];
    peer.on('connectionstatechange', (state) => states.push(state));
    const transportEvents: string[] = [];
    peer.on('transportstatechange', (event) => transportEvents.push(`${event.iceState}/${event.dtlsState}`));
    // What mediasoup emits when the worker reports ICE state changes (a real ICE agent would need a browser).
    const transport = census.transport(recv.id) as WebRtcTransport;

    transport.emit('icestatechange', 'connected');
    transport.emit('dtlsstatechange', 'connected');
    transport.emit('icestatechange', 'disconnected');
    await new Promise((resolve) => setTimeout(resolve, 50));

    expect(peer.connectionState).toBe('disconnected');
    expect(transport.closed).toBe(false);
    expect(peer.closed).toBe(false);
    expect(peer.countObjects()).toMatchObject({ transports: 1, consumers: 1 });
    expect(census.consumer(consumer.id).closed).toBe(false);
    expect(room.findPeer('valley-gp')).toBe(peer);
    // The client comes back: an ICE restart on the same transport.
    await peer.restartIce(recv.id);
    transport.emit('icestatechange', 'completed');
    expect(states).toEqual(['connected', 'disconnected', 'connected']);
    expect(transportEvents).toEqual(['connected/new', 'connected/connected', 'disconnected/connected', 'completed/connected']);
    transport.emit('dtlsstatechange', 'failed');
    expect(peer.connectionState).toBe('failed');
    expect(peer.countObjects().transports).toBe(1);
  }, 20_000);

  it('leaves nothing behind when a peer leaves while its transports and consumers are being created', async () => {
    const { pool, census } = await setup(1);
    const room = await Room.create({ pool, roomId: 'consult-11' });
    const sender = room.join('s', { displayName: 'S' });
    const { producer } = await producePlainAudio(sender, 99);
    // Leave at once, after a microtask, after an event-loop turn, after a millisecond: before,
    // during and after mediasoup answers.
    const delays: (() => Promise<unknown>)[] = [
      async () => {},
      () => Promise.resolve(),
      () => new Promise((resolve) => setImmediate(resolve)),
      () => new Promise((resolve) => setTimeout(resolve, 1)),
    ];
    const outcomes = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const peer = room.join(`p${i}`, { displayName: 'P' });
      const delay = delays[i % delays.length]!;
      const created = census.created.transports;
      const creating = peer.createWebRtcTransport({ direction: 'recv', sctp: true }).catch((error: unknown) => error);
      await delay();
      if (i % 8 < 4) {
        room.leave(peer.id);
        const result = await creating;
        outcomes.add(result instanceof SfuError ? `transport ${result.code}${census.created.transports > created ? ' after mediasoup made it' : ''}` : 'transport made');
      } else {
        await creating;
        const consuming = peer.consume(producer.id, room.rtpCapabilities).catch((error: unknown) => error);
        await delay();
        room.leave(peer.id);
        const result = await consuming;
        outcomes.add(result instanceof SfuError ? `consumer ${result.code}` : 'consumer made');
      }
    }
    expect(outcomes).toContain('transport peer-closed');
    expect(outcomes).toContain('transport peer-closed after mediasoup made it');
    expect(outcomes).toContain('consumer peer-closed');
    const expected = { ...ZERO, routers: 1, transports: 1, producers: 1 };
    expect(room.countObjects()).toEqual(expected);
    expect(census.counts()).toEqual(expected);
    expect(await countInWorkers(pool, census)).toEqual(expected);
  }, 20_000);
});

describe('RoomRegistry', () => {
  it('opens a room once per id, spreads rooms over the workers and forgets a room once closed', async () => {
    const { pool } = await setup(2);
    const registry = await openRegistry(pool);
    const [first, same] = await Promise.all([registry.openRoom('r1'), registry.openRoom('r1')]);
    expect(first).toBe(same);
    await expect(registry.createRoom('r1')).rejects.toMatchObject({ code: 'room-exists', field: 'roomId' });
    const second = await registry.createRoom('r2');
    expect(new Set([first.workerPid, second.workerPid]).size).toBe(2);
    expect(registry.rooms.map((room) => room.id)).toEqual(['r1', 'r2']);
    expect(thrown(() => registry.getRoom('nope'))).toMatchObject({ code: 'room-not-found' });
    await expect(registry.openRoom('')).rejects.toMatchObject({ field: 'roomId' });

    registry.closeRoom('r1');
    expect(first.closed).toBe(true);
    expect(registry.findRoom('r1')).toBeUndefined();
    expect(registry.stats()).toEqual([expect.objectContaining({ roomId: 'r2', peers: 0, routers: 1, interrupted: false })]);
    registry.close();
    expect(second.closed).toBe(true);
    await expect(registry.openRoom('r3')).rejects.toMatchObject({ code: 'room-closed' });
  }, 20_000);

  it('after 1,000 join/leave cycles every mediasoup object count is back to zero, in sfu/ and in the workers', async () => {
    const { pool, census } = await setup(2);
    const registry = await openRegistry(pool);
    const rooms = await Promise.all([registry.openRoom('cycles-a'), registry.openRoom('cycles-b')]);
    const rtpCapabilities = rooms[0]!.rtpCapabilities;
    let peak: ObjectCounts | undefined;

    async function cycle(i: number): Promise<void> {
      const room = rooms[i % rooms.length]!;
      const sender = room.join(`sender-${i}`, { displayName: 'Sender' });
      const receiver = room.join(`receiver-${i}`, { displayName: 'Receiver' });
      const { producer } = await producePlainAudio(sender, 100_000 + i);
      const dataSend = await sender.createWebRtcTransport({ direction: 'send', sctp: true });
      const vitals = await sender.produceData(dataSend.id, { label: 'vitals', sctpStreamParameters: { streamId: 0 } });
      await receiver.createWebRtcTransport({ direction: 'send' });
      await receiver.createWebRtcTransport({ direction: 'recv', sctp: true });
      const consumer = await receiver.consume(producer.id, rtpCapabilities);
      await receiver.resumeConsumer(consumer.id);
      await receiver.consumeData(vitals.id);
      if (i === 0) peak = await countInWorkers(pool, census);
      // Half the cycles the sender leaves first, so the receiver's consumers close with their producer.
      if (i % 2 === 0) {
        room.leave(sender.id);
        room.leave(receiver.id);
      } else {
        receiver.close();
        sender.close();
      }
    }

    const concurrency = 8;
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < 1000) await cycle(next++);
      }),
    );

    expect(peak).toMatchObject({ routers: 2 });
    expect(peak!.transports).toBeGreaterThanOrEqual(4);
    expect(peak!.consumers).toBeGreaterThanOrEqual(1);
    expect(peak!.dataConsumers).toBeGreaterThanOrEqual(1);
    const roomsOnly = { ...ZERO, routers: 2 };
    expect(rooms.map((room) => room.peers.length)).toEqual([0, 0]);
    expect(registry.countObjects()).toEqual(roomsOnly);
    expect(await registry.countObjectsInWorkers()).toEqual(roomsOnly);
    expect(census.counts()).toEqual(roomsOnly);
    expect(await countInWorkers(pool, census)).toEqual(roomsOnly);

    registry.close();
    expect(registry.countObjects()).toEqual(ZERO);
    expect(census.counts()).toEqual(ZERO);
    expect(await countInWorkers(pool, census)).toEqual(ZERO);
  }, 120_000);

  it("rebuilds a dead worker's rooms on the surviving worker: ids and rosters survive, peers are told to reconnect and can produce again", async () => {
    const { pool, census } = await setup(2);
    const registry = await openRegistry(pool);
    const doomedRoom = await registry.openRoom('teleconsult');
    const otherRoom = await registry.openRoom('teleexpertise');
    const [doomedWorker, survivor] = [doomedRoom.workerPid, otherRoom.workerPid].map(
      (pid) => pool.workers.find((w) => w.pid === pid) as Worker,
    ) as [Worker, Worker];
    expect(doomedWorker).not.toBe(survivor);

    const nurse = doomedRoom.join('nurse', { displayName: 'Infirmière', role: 'nurse' });
    const doctor = doomedRoom.join('doctor', { displayName: 'Dr Roux', role: 'practitioner' });
    const { producer } = await producePlainAudio(nurse, 31337);
    const recv = await doctor.createWebRtcTransport({ direction: 'recv', sctp: true });
    const consumer = await doctor.consume(producer.id, doomedRoom.rtpCapabilities);
    const bystander = otherRoom.join('gp', { displayName: 'GP' });
    const untouched = await producePlainAudio(bystander, 4);

    const events: string[] = [];
    doomedRoom.on('interrupted', () => events.push('interrupted'));
    doomedRoom.on('rebuilt', ({ peerIds }) => events.push(`rebuilt:${peerIds.join(',')}`));
    for (const peer of [nurse, doctor]) peer.on('reconnect-required', ({ reason }) => events.push(`${peer.id}:${reason}`));
    bystander.on('reconnect-required', () => events.push('bystander told to reconnect'));
    const rebuilt = nextEvent(registry, 'roomrebuilt');
    const died = nextEvent(pool, 'workerdied');

    process.kill(doomedWorker.pid, 'SIGKILL');
    await died;
    // A request arriving during the rebuild waits for the new router instead of failing.
    const earlyTransport = nurse.createWebRtcTransport({ direction: 'send' });
    expect(await rebuilt).toEqual([doomedRoom]);

    expect(events).toEqual([
      'interrupted',
      'nurse:media-server-restarted',
      'doctor:media-server-restarted',
      'rebuilt:nurse,doctor',
    ]);
    expect(doomedRoom.id).toBe('teleconsult');
    expect(doomedRoom.workerPid).toBe(survivor.pid);
    expect(doomedRoom.interrupted).toBe(false);
    expect(registry.getRoom('teleconsult')).toBe(doomedRoom);
    expect(doomedRoom.roster().map((p) => [p.id, p.displayName, p.role, p.producers.length])).toEqual([
      ['nurse', 'Infirmière', 'nurse', 0],
      ['doctor', 'Dr Roux', 'practitioner', 0],
    ]);
    expect(nurse.closed || doctor.closed).toBe(false);
    await expect(doctor.resumeConsumer(consumer.id)).rejects.toMatchObject({ code: 'consumer-not-found' });
    await expect(doctor.connectTransport(recv.id, CLIENT_DTLS_PARAMETERS)).rejects.toMatchObject({ code: 'transport-not-found' });

    // The clients reconnect: new transports, the nurse produces again, the doctor receives again.
    expect((await earlyTransport).iceCandidates.length).toBeGreaterThan(0);
    const again = await producePlainAudio(nurse, 31338);
    await doctor.createWebRtcTransport({ direction: 'recv' });
    const consumerAgain = await doctor.consume(again.producer.id, doomedRoom.rtpCapabilities);
    await doctor.resumeConsumer(consumerAgain.id);
    expect(doomedRoom.countObjects()).toEqual({ routers: 1, transports: 3, producers: 1, consumers: 1, dataProducers: 0, dataConsumers: 0 });
    expect(await doomedRoom.countObjectsInWorker()).toEqual(doomedRoom.countObjects());

    // The other room, on the surviving worker, never noticed.
    expect(events).not.toContain('bystander told to reconnect');
    expect(bystander.info().producers.map((p) => p.id)).toEqual([untouched.producer.id]);
    expect(registry.countObjects()).toEqual(await countInWorkers(pool, census));

    // With no worker left, the rooms cannot be rebuilt: they close and say why.
    const failures: string[] = [];
    registry.on('rebuildfailed', ({ roomId }) => failures.push(roomId));
    const closedReasons: string[] = [];
    for (const room of registry.rooms) room.on('closed', (reason) => closedReasons.push(reason));
    process.kill(survivor.pid, 'SIGKILL');
    await waitUntil(() => registry.rooms.length === 0, 'both rooms have closed');
    expect(failures.sort()).toEqual(['teleconsult', 'teleexpertise']);
    expect(closedReasons).toEqual(['no-worker', 'no-worker']);
    expect(nurse.closed && bystander.closed).toBe(true);
    expect(census.counts()).toEqual(ZERO);
  }, 30_000);
});

describe('mediasoup errors', () => {
  it('reports a worker that did not answer in time as an overloaded media server, not as a refusal', async () => {
    const { fromMediasoup } = await import('../../sfu/errors.js');
    const error = fromMediasoup(new Error('Channel request timeout'), 'rtpCapabilities', 'creating the consumer');
    expect(error.code).toBe('media-error');
    expect(error.message).toContain('overloaded');
  });
});

describe('limits a peer cannot get past', () => {
  it('consumes a producer once per peer, and sends at most MAX_PRODUCERS_PER_PEER tracks', async () => {
    const { pool } = await setup(1);
    const registry = await openRegistry(pool);
    const room = await registry.openRoom('limits');
    const alice = room.join('alice', { displayName: 'Alice' });
    const bob = room.join('bob', { displayName: 'Bob' });
    const { producer, transport } = await producePlainAudio(alice, 7001);
    const recv = await bob.createWebRtcTransport({ direction: 'recv' });
    const first = await bob.consume(producer.id, room.rtpCapabilities, { transportId: recv.id });
    const again = await bob.consume(producer.id, room.rtpCapabilities, { transportId: recv.id }).catch((e: unknown) => e);
    expect(again).toMatchObject({ code: 'invalid-state', field: 'producerId' });
    // Once the first consumer is closed, consuming again is fine.
    bob.closeConsumer(first.id);
    await expect(bob.consume(producer.id, room.rtpCapabilities, { transportId: recv.id })).resolves.toBeDefined();

    const { MAX_PRODUCERS_PER_PEER } = await import('../../sfu/peer.js');
    for (let i = 1; i < MAX_PRODUCERS_PER_PEER; i++) {
      await alice.produce(transport.id, { kind: 'audio', rtpParameters: opusRtpParameters(7001 + i), appData: { source: 'mic' } });
    }
    const tooMany = await alice.produce(transport.id, { kind: 'audio', rtpParameters: opusRtpParameters(7100), appData: { source: 'mic' } }).catch((e: unknown) => e);
    expect(tooMany).toMatchObject({ code: 'limit-reached' });
  });
});
