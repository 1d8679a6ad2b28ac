/**
 * npm run bench:sfu — (a) join-to-first-decoded-frame in Chromium, on loopback.
 *
 * A nursing home (ide.cazenave) is in a teleconsultation, admitted and sending its camera and
 * microphone. The doctor leading it (dr.lacroix) then joins the room BENCH_JOINS times (default
 * 10): from the home page, "Rejoindre", and later "Quitter". Each join is timed in the page, from
 * the room ticket being requested to the first remote video frame decoded, with the steps in
 * between (ticket, join acknowledged). Target: p50 under 1.5 s.
 *
 * Real everything: the hub on PGlite with one mediasoup worker, the built web app
 * (`npm run build:web` first), Debian's Chromium with a fake camera.
 */
import { performance } from 'node:perf_hooks';
import type { HubDebugTimings } from '../../client/web/src/debug-api.js';
import { startAccessHub } from '../access/support.js';
import { AppUser, builtWebApp, launchChromium } from '../e2e/browser.js';
import { backends } from '../fhir/harness.js';
import { USER, bookConsultation } from '../rooms/support.js';

const JOINS = Number(process.env.BENCH_JOINS ?? 10);
const TARGET_MS = 1_500;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
const ms = (n: number) => `${Math.round(n)} ms`.padStart(8);

async function main(): Promise<void> {
  const webRoot = builtWebApp();
  const started = performance.now();
  const [hub, browser] = await Promise.all([startAccessHub(backends()[0]!, { rooms: true, webRoot }), launchChromium()]);
  try {
    const { appointment } = await bookConsultation(hub);
    const nurse = await AppUser.login(browser, hub.rootUrl, USER.ehpadNurse);
    await nurse.joinFromHome('consultation', appointment.id!);
    await nurse.waitForState('waiting', (s) => s.phase === 'waiting');
    const doctor = await AppUser.login(browser, hub.rootUrl, USER.geriatrician);
    await doctor.joinFromHome('consultation', appointment.id!);
    const host = await doctor.waitForState('nurse waiting', (s) => s.waiting.length === 1);
    await doctor.page.getByTestId(`waiting-${host.waiting[0]}`).getByRole('button', { name: 'Admettre' }).click();
    await nurse.waitForState('sending', (s) => s.admitted && s.producers.length === 2);
    await doctor.waitForState('first frame', (s) => s.consumers.length === 2);
    console.log(`set-up: hub, Chromium, two professionals in the room in ${ms(performance.now() - started).trim()}`);

    const rows: Required<Pick<HubDebugTimings, 'ticketRequested' | 'ticketReceived' | 'joinAcked' | 'firstRemoteFrame'>>[] = [];
    for (let i = 0; i < JOINS; i++) {
      await doctor.page.getByRole('button', { name: 'Quitter' }).first().click();
      await doctor.page.getByTestId(`consultation-${appointment.id}`).waitFor();
      // The nurse sees the doctor leave before he comes back (no overlap between two joins).
      await nurse.waitForState('doctor gone', (s) => s.consumers.length === 0);
      await doctor.joinFromHome('consultation', appointment.id!);
      await doctor.waitForState(`join ${i + 1}: first remote frame`, (s) => s.admitted && s.consumers.some((c) => c.kind === 'video'));
      const t = await doctor.page.waitForFunction(
        () => {
          const timings = (globalThis as unknown as { __hub?: { timings(): HubDebugTimings } }).__hub?.timings();
          return timings?.firstRemoteFrame !== undefined ? timings : undefined;
        },
        undefined,
        { timeout: 20_000, polling: 50 },
      );
      const timings = (await t.jsonValue()) as HubDebugTimings;
      rows.push(timings as (typeof rows)[number]);
      console.log(
        `join ${String(i + 1).padStart(2)}: ticket ${ms(timings.ticketReceived! - timings.ticketRequested!)}  join acked ${ms(timings.joinAcked! - timings.ticketRequested!)}  first frame ${ms(timings.firstRemoteFrame! - timings.ticketRequested!)}`,
      );
    }

    const firstFrame = rows.map((r) => r.firstRemoteFrame - r.ticketRequested);
    const joinAck = rows.map((r) => r.joinAcked - r.ticketRequested);
    const ticket = rows.map((r) => r.ticketReceived - r.ticketRequested);
    console.log('');
    console.log(`                       p50      p90      max   (${rows.length} joins, Chromium, loopback)`);
    console.log(`ticket            ${ms(percentile(ticket, 50))} ${ms(percentile(ticket, 90))} ${ms(Math.max(...ticket))}`);
    console.log(`join acked        ${ms(percentile(joinAck, 50))} ${ms(percentile(joinAck, 90))} ${ms(Math.max(...joinAck))}`);
    console.log(`first frame       ${ms(percentile(firstFrame, 50))} ${ms(percentile(firstFrame, 90))} ${ms(Math.max(...firstFrame))}`);
    const p50 = percentile(firstFrame, 50);
    console.log(`\njoin-to-first-decoded-frame p50 ${ms(p50).trim()}: ${p50 < TARGET_MS ? 'within' : 'OVER'} the ${TARGET_MS} ms target`);
    for (const user of [doctor, nurse]) if (user.logs.length) console.log(`${user.username} console:\n${user.logs.join('\n')}`);
  } finally {
    await browser.close();
    await hub.close();
  }
}

await main();
