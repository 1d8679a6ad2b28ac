import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { Server } from 'socket.io';
import { io as connectClient, type Socket as ClientSocket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Principal } from '../../server/auth/principal.js';
import { Realtime, rooms } from '../../server/realtime.js';
import { backends, startTestHub, type TestHub } from '../fhir/harness.js';
import { base64url, decodePart } from './support.js';

const opened: ClientSocket[] = [];
afterEach(() => {
  for (const s of opened.splice(0)) s.close();
});

/** Connects a socket.io client; resolves with it once connected, rejects with the connect_error message. */
function connect(url: string, auth: Record<string, unknown>, headers: Record<string, string> = {}): Promise<ClientSocket> {
  const socket = connectClient(url, { auth, transports: ['websocket'], reconnection: false, forceNew: true, extraHeaders: headers });
  opened.push(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (err) => reject(new Error(err.message)));
  });
}

const whoami = (socket: ClientSocket) => new Promise<Principal>((resolve) => socket.emit('whoami', resolve));

describe.each(backends())('socket.io connections on $name', (backend) => {
  let hub: TestHub;
  let token: string;
  beforeAll(async () => {
    hub = await startTestHub(backend, { implicitAuth: false, corsOrigins: ['https://app.hub.example'] });
    token = await hub.login('ide.cazenave');
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('refuses a connection without a token', async () => {
    await expect(connect(hub.rootUrl, {})).rejects.toThrow('unauthorized');
    await expect(connect(hub.rootUrl, { token: 42 })).rejects.toThrow('unauthorized');
  });

  it('refuses a connection with a bad token', async () => {
    const [h, , s] = token.split('.') as [string, string, string];
    const raised = `${h}.${base64url({ ...decodePart(token, 1), role: 'admin' })}.${s}`;
    for (const bad of ['garbage', raised, `${base64url({ alg: 'none' })}.${token.split('.')[1]}.`]) {
      await expect(connect(hub.rootUrl, { token: bad })).rejects.toThrow('unauthorized');
    }
  });

  it('accepts a valid token and knows who is connected', async () => {
    const socket = await connect(hub.rootUrl, { token });
    expect(await whoami(socket)).toMatchObject({ accountId: 'acct-ide-ehpad', username: 'ide.cazenave', role: 'nurse', organizationId: 'org-ehpad-edelweiss' });
    const server = (await hub.realtime.io.fetchSockets()).find((s) => s.id === socket.id);
    expect(server?.data.access).toMatchObject({ kind: 'user', accountId: 'acct-ide-ehpad', role: 'nurse' });
    expect(server?.rooms.has(rooms.account('acct-ide-ehpad'))).toBe(true);
    expect(server?.rooms.has(rooms.organization('org-ehpad-edelweiss'))).toBe(true);
  });

  it('accepts the token with a "Bearer " prefix too', async () => {
    await expect(connect(hub.rootUrl, { token: `Bearer ${token}` })).resolves.toBeDefined();
  });

  it('refuses the token of a disabled account', async () => {
    const disabled = await hub.login('dr.fabre');
    await hub.auth.accounts.setDisabled('acct-regulateur-samu', true);
    try {
      await expect(connect(hub.rootUrl, { token: disabled })).rejects.toThrow('unauthorized');
    } finally {
      await hub.auth.accounts.setDisabled('acct-regulateur-samu', false);
    }
  });

  it('refuses a handshake from a browser origin that is not allowed, and accepts a listed one', async () => {
    await expect(connect(hub.rootUrl, { token }, { origin: 'https://evil.example' })).rejects.toThrow();
    await expect(connect(hub.rootUrl, { token }, { origin: 'https://app.hub.example' })).resolves.toBeDefined();
  });
});

describe.runIf(!!process.env.REDIS_URL)('socket.io across hub nodes through Redis', () => {
  let hub: TestHub;
  const nodes: { server: HttpServer; realtime: Realtime; url: string }[] = [];
  beforeAll(async () => {
    hub = await startTestHub(backends()[0]!, { implicitAuth: false });
    for (let i = 0; i < 2; i++) {
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const realtime = await Realtime.attach(server, { auth: hub.auth, corsOrigins: [], redisUrl: process.env.REDIS_URL, logger: pino({ level: 'silent' }) });
      nodes.push({ server, realtime, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
    }
  });
  afterAll(async () => {
    for (const node of nodes) await node.realtime.close();
    await hub?.close();
  });

  it('delivers an event emitted on one node to a professional connected to another', async () => {
    const socket = await connect(nodes[1]!.url, { token: await hub.login('dr.pastorelli') });
    const received = new Promise<unknown>((resolve) => socket.once('notification', resolve));
    // The event API is for the workflows to define; an untyped emit is enough to see the fan-out.
    const io = nodes[0]!.realtime.io as unknown as Server;
    io.to(rooms.account('acct-gp-tende')).emit('notification', { kind: 'test', from: 'node 0' });
    const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error('nothing arrived through Redis')), 5_000));
    await expect(Promise.race([received, timeout])).resolves.toEqual({ kind: 'test', from: 'node 0' });
  });
});
