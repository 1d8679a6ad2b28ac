/**
 * npm run bench:sfu — (c) teleassistance vitals: how late the e-valise's readings reach the
 * remote doctor. A SAMU correspondent streams SpO2, heart rate and a 250 Hz ECG strip (one
 * message every 100 ms) over a DataChannel through the hub's SFU to the regulator, both in
 * Chromium on loopback, for BENCH_VITALS_SECONDS (default 20). Printed: messages received,
 * gaps, and the delay — from the last ECG sample of a message being taken to the message
 * being handled in the doctor's page ("transit": what the hub and the network add), and from
 * the first sample (adds the device's own 100 ms batching). Target: under 300 ms added.
 */
import { performance } from 'node:perf_hooks';
import { ORG, api, create, newPatient, startAccessHub, unique } from '../access/support.js';
import { AppUser, builtWebApp, launchChromium } from '../e2e/browser.js';
import { backends } from '../fhir/harness.js';
import { USER } from '../rooms/support.js';
import type { QueueEntry } from '../../server/rooms/routes.js';

const SECONDS = Number(process.env.BENCH_VITALS_SECONDS ?? 20);

async function main(): Promise<void> {
  const webRoot = builtWebApp();
  const [hub, browser] = await Promise.all([startAccessHub(backends()[0]!, { rooms: true, webRoot }), launchChromium()]);
  try {
    const patient = await create(await hub.clientAs(USER.samuCorrespondent), newPatient(ORG.samu, unique('Banc')));
    const call = await api<QueueEntry>(hub, 'POST', '/api/teleassistance/calls', await hub.login(USER.samuCorrespondent), {
      patient: `Patient/${patient.id}`,
      reason: 'Banc de mesure : constantes en direct',
      emergency: true,
    });
    const id = call.body.serviceRequest.split('/')[1]!;
    const regulator = await AppUser.login(browser, hub.rootUrl, USER.regulator);
    await regulator.joinFromHome('assistance', id);
    await regulator.waitForState('hosting', (s) => s.role === 'host' && s.admitted);
    const correspondent = await AppUser.login(browser, hub.rootUrl, USER.samuCorrespondent);
    await correspondent.joinFromHome('assistance', id);
    const host = await regulator.waitForState('the correspondent waiting', (s) => s.waiting.length === 1);
    await regulator.page.getByTestId(`waiting-${host.waiting[0]}`).getByRole('button', { name: 'Admettre' }).click();
    await correspondent.waitForState('admitted', (s) => s.admitted);

    // Samples of the doctor's view every 250 ms: the last message's delay, to get a distribution.
    const delays: number[] = [];
    const until = performance.now() + SECONDS * 1000;
    let seen = -1;
    while (performance.now() < until) {
      const v = await regulator.vitals();
      if (v && v.lastSeq !== undefined && v.lastSeq !== seen && v.lastDelayMs !== undefined) {
        seen = v.lastSeq;
        delays.push(v.lastDelayMs);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const v = (await regulator.vitals())!;
    const sorted = [...delays].sort((a, b) => a - b);
    const p = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
    console.log(`\n# Teleassistance vitals over the SFU (Chromium → hub → Chromium, loopback, ${SECONDS} s)\n`);
    console.log('| messages received | missing | out of order | delay from first sample p50 / p95 / max (sampled) | max transit (last sample → doctor) | target |');
    console.log('|---|---|---|---|---|---|');
    console.log(`| ${v.received} (seq ${v.firstSeq}–${v.lastSeq}) | ${v.missing} | ${v.outOfOrder} | ${p(0.5)} / ${p(0.95)} / ${Math.round(v.maxDelayMs!)} ms | ${Math.round(v.maxTransitMs!)} ms | < 300 ms added |`);
    console.log('\n(the delay from the first sample includes the 100 ms the device spends filling a message)');
    await regulator.close();
    await correspondent.close();
  } finally {
    await browser.close();
    await hub.close();
  }
}

await main();
