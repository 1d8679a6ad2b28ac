/**
 * A load generator in its own process, so the client's HTTP work does not run on the hub's event
 * loop: `node --import tsx tests/bench/load-client.ts` reads one JSON job from stdin
 * ({ url, authorization, bodies: string[] (JSON), gzip, concurrency }) and prints { seconds, statuses }.
 */
import http from 'node:http';
import { gzipSync } from 'node:zlib';

interface Job {
  url: string;
  authorization: string;
  bodies: string[];
  gzip: boolean;
  concurrency: number;
}

const input: Buffer[] = [];
for await (const chunk of process.stdin) input.push(chunk as Buffer);
const job = JSON.parse(Buffer.concat(input).toString('utf8')) as Job;
const payloads = job.bodies.map((b) => (job.gzip ? gzipSync(b) : Buffer.from(b)));
const agent = new http.Agent({ keepAlive: true, maxSockets: job.concurrency });
const statuses: Record<number, number> = {};

function post(body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      job.url,
      {
        method: 'POST',
        agent,
        headers: {
          'Content-Type': 'application/fhir+json',
          Authorization: job.authorization,
          'Content-Length': body.length,
          Prefer: 'return=minimal',
          ...(job.gzip ? { 'Content-Encoding': 'gzip' } : {}),
        },
      },
      (res) => {
        statuses[res.statusCode!] = (statuses[res.statusCode!] ?? 0) + 1;
        res.resume();
        res.on('end', resolve);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

let next = 0;
const start = performance.now();
await Promise.all(
  Array.from({ length: job.concurrency }, async () => {
    while (next < payloads.length) await post(payloads[next++]!);
  }),
);
process.stdout.write(JSON.stringify({ seconds: (performance.now() - start) / 1000, statuses }));
agent.destroy();
