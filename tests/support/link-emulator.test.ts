import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { LinkEmulator, type LinkProfile } from './link-emulator.js';

/** Everything a test opened, closed after it whatever happened. */
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Target {
  port: number;
  /** Bytes received per connection, in accept order. */
  received: Buffer[][];
  /** Resolves with the bytes of the first connection once it holds `byteCount` bytes. */
  firstConnectionHas(byteCount: number): Promise<Buffer>;
}

/** A TCP server on 127.0.0.1 that echoes, swallows, or accepts and never reads. */
async function startTarget(mode: 'echo' | 'sink' | 'never-read'): Promise<Target> {
  const received: Buffer[][] = [];
  const waiters: Array<() => void> = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const chunks: Buffer[] = [];
    received.push(chunks);
    if (mode === 'never-read') {
      socket.pause();
      return;
    }
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      for (const wake of waiters.splice(0)) wake();
    });
    if (mode === 'echo') socket.pipe(socket);
    else socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  const firstConnectionHas = async (byteCount: number): Promise<Buffer> => {
    for (;;) {
      const bytes = Buffer.concat(received[0] ?? []);
      if (bytes.length >= byteCount) return bytes;
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  return { port: (server.address() as net.AddressInfo).port, received, firstConnectionHas };
}

async function startLink(target: { port: number }, profile: LinkProfile): Promise<LinkEmulator> {
  const link = await LinkEmulator.start({ targetHost: '127.0.0.1', targetPort: target.port, profile });
  cleanups.push(() => link.close());
  return link;
}

async function connect(link: LinkEmulator): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port: link.port, allowHalfOpen: true });
  socket.setNoDelay(true);
  cleanups.push(() => {
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Reads until the peer ends or the socket fails; resolves with what came and how it stopped. */
function readToEnd(socket: net.Socket): Promise<{ bytes: Buffer; error: NodeJS.ErrnoException | undefined }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: NodeJS.ErrnoException | undefined;
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (e: NodeJS.ErrnoException) => (error = e));
    socket.on('end', () => resolve({ bytes: Buffer.concat(chunks), error }));
    socket.on('close', () => resolve({ bytes: Buffer.concat(chunks), error }));
  });
}

function nextData(socket: net.Socket, byteCount: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= byteCount) {
        socket.off('data', onData);
        resolve(Buffer.concat(chunks));
      }
    };
    socket.on('data', onData);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('LinkEmulator', () => {
  it('delivers a 1 MB payload intact and in order, both ways, and passes the half-close on after the data', async () => {
    const target = await startTarget('echo');
    const link = await startLink(target, { latencyMs: 5, bandwidthBitsPerSecond: 200_000_000 });
    const client = await connect(link);
    const payload = randomBytes(1024 * 1024);

    const echoed = readToEnd(client);
    client.end(payload);
    const { bytes, error } = await echoed;

    expect(error).toBeUndefined();
    expect(bytes.length).toBe(payload.length);
    expect(bytes.equals(payload)).toBe(true);
    expect(link.stats()).toMatchObject({ connections: 1, bytesUp: payload.length, bytesDown: payload.length });
  });

  it('adds the latency of both directions to a round trip', async () => {
    const target = await startTarget('echo');
    const link = await startLink(target, { latencyMs: 100 });
    const client = await connect(link);

    for (const ping of ['first', 'second']) {
      const started = performance.now();
      const pong = nextData(client, ping.length);
      client.write(ping);
      expect((await pong).toString()).toBe(ping);
      expect(performance.now() - started).toBeGreaterThanOrEqual(200);
    }
  });

  it('takes at least a second to carry 64 KB at 512 kbit/s', async () => {
    const target = await startTarget('sink');
    const link = await startLink(target, { bandwidthBitsPerSecond: 512_000 });
    const client = await connect(link);
    const payload = randomBytes(64 * 1024);

    const started = performance.now();
    client.write(payload);
    const received = await target.firstConnectionHas(payload.length);

    // 65 536 bytes * 8 / 512 000 bit/s = 1.024 s of serialisation.
    expect(performance.now() - started).toBeGreaterThanOrEqual(1000);
    expect(received.equals(payload)).toBe(true);
  });

  it('shares the bandwidth between connections in the same direction', async () => {
    const target = await startTarget('sink');
    const link = await startLink(target, { bandwidthBitsPerSecond: 512_000 });
    const clients = [await connect(link), await connect(link)];

    const started = performance.now();
    for (const client of clients) client.write(randomBytes(32 * 1024));
    while (target.received.map((chunks) => Buffer.concat(chunks).length).join() !== '32768,32768') await sleep(20);

    // Two 32 KB uploads over one 512 kbit/s link: 1.024 s together, not 0.512 s each side by side.
    expect(performance.now() - started).toBeGreaterThanOrEqual(1000);
  });

  it('stops reading from a client whose bytes the target does not take', async () => {
    const target = await startTarget('never-read');
    const link = await startLink(target, {});
    const client = await connect(link);
    client.on('error', () => {});

    // Far more than the loopback socket buffers on both hops can hold (a few MB each).
    client.write(Buffer.alloc(96 * 1024 * 1024));
    await sleep(1000);

    // Without backpressure the proxy would have read it all into memory and the client buffer would be empty.
    expect(client.writableLength).toBeGreaterThan(0);
  });

  it('resets a connection during the upload: the client sees ECONNRESET and the target never gets the whole upload', async () => {
    const target = await startTarget('sink');
    const link = await startLink(target, { resetProbability: 1, seed: 7 });
    const client = await connect(link);
    const payload = randomBytes(1024 * 1024);

    const outcome = readToEnd(client);
    client.end(payload);
    const { error } = await outcome;

    expect(['ECONNRESET', 'EPIPE']).toContain(error?.code);
    await sleep(50);
    expect(Buffer.concat(target.received[0] ?? []).length).toBeLessThan(256 * 1024);
    expect(link.stats()).toMatchObject({ connections: 1, resets: 1 });
  });

  it('stalls a connection: the data still arrives, but only after the stall', async () => {
    const target = await startTarget('sink');
    const link = await startLink(target, { stallProbability: 1, stallMs: 500, seed: 11 });
    const client = await connect(link);
    // Longer than the default 256 KiB window in which the stall offset is drawn, so the stall is certain.
    const payload = randomBytes(300 * 1024);

    const started = performance.now();
    client.write(payload);
    const received = await target.firstConnectionHas(payload.length);

    expect(performance.now() - started).toBeGreaterThanOrEqual(500);
    expect(received.equals(payload)).toBe(true);
    expect(link.stats()).toMatchObject({ stalls: 1, resets: 0 });
  });

  it('cuts a response: the server processes the whole request but the client sees a reset', async () => {
    let receivedBody = -1;
    const server = http.createServer((request, response) => {
      let length = 0;
      request.on('data', (chunk: Buffer) => (length += chunk.length));
      request.on('end', () => {
        receivedBody = length;
        response.setHeader('content-type', 'application/json');
        response.end(JSON.stringify({ stored: true, bytes: length, padding: 'x'.repeat(2000) }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    server.on('clientError', () => {});
    const link = await startLink({ port: (server.address() as net.AddressInfo).port }, { responseResetProbability: 1, seed: 3 });
    const exam = Buffer.from(JSON.stringify({ ecg: 'y'.repeat(80 * 1024) }));

    const outcome = await new Promise<string>((resolve) => {
      const request = http.request(`${link.url}/exams`, { method: 'POST', agent: false }, (response) => {
        response.on('error', (e: NodeJS.ErrnoException) => resolve(`response ${e.code}`));
        response.on('close', () => resolve(response.complete ? 'complete' : 'response incomplete'));
        response.resume();
      });
      request.on('error', (e: NodeJS.ErrnoException) => resolve(`request ${e.code}`));
      request.end(exam);
    });

    expect(receivedBody).toBe(exam.length);
    expect(outcome).not.toBe('complete');
    expect(outcome).toMatch(/ECONNRESET|incomplete/);
    expect(link.stats()).toMatchObject({ responseResets: 1, resets: 0 });
  });

  it('replays the same faults from the same seed', async () => {
    const target = await startTarget('sink');
    const fates = async (): Promise<string> => {
      const link = await startLink(target, { resetProbability: 0.5, resetWithinBytes: 1, seed: 1234 });
      const outcomes: string[] = [];
      for (let i = 0; i < 12; i += 1) {
        const client = await connect(link);
        const outcome = readToEnd(client);
        client.end('x');
        outcomes.push((await outcome).error ? 'reset' : 'ok');
      }
      return outcomes.join(',');
    };

    const first = await fates();
    expect(first).toContain('reset');
    expect(first).toContain('ok');
    expect(await fates()).toBe(first);
  });

  it('cutAll drops every open connection', async () => {
    const target = await startTarget('echo');
    const link = await startLink(target, { latencyMs: 10 });
    const clients = [await connect(link), await connect(link), await connect(link)];
    for (const client of clients) {
      const pong = nextData(client, 4);
      client.write('ping');
      await pong;
    }

    const outcomes = clients.map(readToEnd);
    link.cutAll();
    const results = await Promise.all(outcomes);

    expect(results.map((result) => result.error?.code)).toEqual(['ECONNRESET', 'ECONNRESET', 'ECONNRESET']);
    // The link stays up for new connections.
    const fresh = await connect(link);
    const pong = nextData(fresh, 4);
    fresh.write('pong');
    expect((await pong).toString()).toBe('pong');
  });

  it('close() leaves no socket or timer behind: a process with a connection mid-stall exits by itself', async () => {
    const moduleUrl = new URL('./link-emulator.ts', import.meta.url).href;
    const script = `
      import net from 'node:net';
      import { LinkEmulator } from ${JSON.stringify(moduleUrl)};
      const target = net.createServer((socket) => { socket.on('error', () => {}); socket.resume(); });
      await new Promise((resolve) => target.listen(0, '127.0.0.1', resolve));
      const link = await LinkEmulator.start({
        targetHost: '127.0.0.1',
        targetPort: target.address().port,
        profile: { latencyMs: 50, bandwidthBitsPerSecond: 1_000_000, stallProbability: 1, stallMs: 600_000, resetWithinBytes: 1024 },
      });
      const client = net.connect(link.port, '127.0.0.1');
      client.on('error', () => {});
      client.write(Buffer.alloc(200_000));
      await new Promise((resolve) => setTimeout(resolve, 300));
      await link.close();
      target.close();
      console.log(JSON.stringify(link.stats()));
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // A leaked 10-minute stall timer would keep the process alive far longer than this.
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (exitCode) => resolve(exitCode)));
    clearTimeout(killer);

    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(JSON.parse(stdout)).toMatchObject({ connections: 1, stalls: 1 });
  });

  it('rejects a profile it cannot honour, naming the field', async () => {
    await expect(
      LinkEmulator.start({ targetHost: '127.0.0.1', targetPort: 1, profile: { resetProbability: 1.5 } }),
    ).rejects.toThrow(/resetProbability/);
  });
});
