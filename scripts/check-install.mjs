#!/usr/bin/env node
// First step of `npm test`: fail in one clear line, before vitest and tsc print
// pages of module-not-found errors, when the install is missing or stale, or when
// the PostgreSQL/Redis the tests were told to use cannot be reached.
//
// Only Node built-ins are imported statically: this must run when node_modules is absent.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TIMEOUT_MS = 3000;

function fail(message) {
  console.error(message);
  process.exit(1);
}

// --- 1. Dependencies ---------------------------------------------------------

function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

// Same lookup as node_modules/mediasoup/lib/Worker.js (3.8.4) does at runtime.
function mediasoupWorkerBinary() {
  if (process.env.MEDIASOUP_WORKER_BIN) return process.env.MEDIASOUP_WORKER_BIN;
  const buildType = process.env.MEDIASOUP_BUILDTYPE === 'Debug' ? 'Debug' : 'Release';
  return path.join(root, 'node_modules', 'mediasoup', 'worker', 'out', buildType, 'mediasoup-worker');
}

function dependenciesInstalled() {
  const modules = path.join(root, 'node_modules');
  if (!existsSync(modules)) return false;
  // A dependency added to package.json since the last install counts as not installed.
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8'));
  const names = Object.keys({ ...pkg.dependencies, ...pkg.devDependencies });
  if (!names.every((name) => existsSync(path.join(modules, name, 'package.json')))) return false;
  // mediasoup's postinstall builds the worker; a skipped or failed build leaves no binary.
  return isExecutable(mediasoupWorkerBinary());
}

if (!dependenciesInstalled()) fail('Dependencies are not installed. Run: npm ci');

// --- 2. Services the tests were pointed at ----------------------------------

/** The URL as it may appear in a log: without its password. */
function redact(url) {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable URL)';
  }
}

/** node's connection errors are sometimes AggregateErrors with an empty message. */
function describe(error) {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return [...new Set(error.errors.map(describe))].join('; ');
  }
  if (error instanceof Error) {
    const code = /** @type {NodeJS.ErrnoException} */ (error).code;
    return error.message || code || error.name;
  }
  return String(error);
}

async function checkPostgres(url) {
  const { default: pg } = await import('pg');
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: TIMEOUT_MS,
    query_timeout: TIMEOUT_MS,
  });
  // A server that drops the connection later must not crash this script.
  client.on('error', () => {});
  try {
    await client.connect();
    await client.query('SELECT 1');
  } finally {
    await client.end().catch(() => {});
  }
}

/** Encodes one command in RESP, so passwords with spaces or quotes go through intact. */
function respCommand(...args) {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

function checkRedis(url) {
  const parsed = new URL(url);
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    return Promise.reject(new Error(`unsupported scheme ${parsed.protocol} (expected redis: or rediss:)`));
  }
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const port = Number(parsed.port || 6379);
  const commands = [];
  const expected = [];
  if (parsed.password) {
    const password = decodeURIComponent(parsed.password);
    const user = decodeURIComponent(parsed.username);
    commands.push(user ? respCommand('AUTH', user, password) : respCommand('AUTH', password));
    expected.push('+OK');
  }
  commands.push('PING\r\n');
  expected.push('+PONG');

  return new Promise((resolve, reject) => {
    const socket =
      parsed.protocol === 'rediss:'
        ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host })
        : net.connect({ host, port });
    const timer = setTimeout(() => done(new Error(`no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
    let received = '';
    let settled = false;
    function done(error) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve();
    }
    socket.once(parsed.protocol === 'rediss:' ? 'secureConnect' : 'connect', () => {
      socket.write(commands.join(''));
    });
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      const lines = received.split('\r\n');
      const complete = lines.slice(0, -1);
      for (const [i, line] of complete.entries()) {
        if (line !== expected[i]) return done(new Error(`answered ${JSON.stringify(line)} instead of ${expected[i]}`));
      }
      if (complete.length >= expected.length) done();
    });
    socket.once('error', done);
    socket.once('close', () => done(new Error('closed the connection without answering')));
  });
}

function isSet(value) {
  return value !== undefined && value !== '' && value !== 'false' && value !== '0';
}

const databaseUrl = process.env.TEST_DATABASE_URL;
const redisUrl = process.env.REDIS_URL;

if (isSet(process.env.CI) || databaseUrl) {
  if (!databaseUrl) {
    fail('CI is set but TEST_DATABASE_URL is not: CI runs the tests against PostgreSQL. Set TEST_DATABASE_URL=postgres://...');
  }
  try {
    await checkPostgres(databaseUrl);
  } catch (error) {
    fail(`PostgreSQL is not reachable at TEST_DATABASE_URL=${redact(databaseUrl)}: ${describe(error)}`);
  }
}

if (redisUrl) {
  try {
    await checkRedis(redisUrl);
  } catch (error) {
    fail(`Redis is not reachable at REDIS_URL=${redact(redisUrl)}: ${describe(error)}`);
  }
}

// The end-to-end tests drive Debian's Chromium (playwright-core brings no browser).
const chromium = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
if (!isExecutable(chromium)) {
  fail(
    `Chromium is not installed at ${chromium}; the end-to-end tests need it. Install it with:\n` +
      `  sudo apt-get install -y --no-install-recommends chromium\n` +
      `(or point CHROMIUM_PATH at a Chromium binary)`,
  );
}
