import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAccessHub } from '../access/support.js';
import { backends, type TestHub } from '../fhir/harness.js';
import { USER, bookConsultation } from '../rooms/support.js';
import { AppUser, builtWebApp, decoding, eventually, launchChromium, mediaFlow } from './browser.js';

const backend = backends()[0]!;

describe('a consultation whose media server dies, in Chromium', { timeout: 120_000 }, () => {
  let hub: TestHub;
  let browser: Browser;
  const users: AppUser[] = [];

  beforeAll(async () => {
    const webRoot = builtWebApp();
    [hub, browser] = await Promise.all([startAccessHub(backend, { rooms: { workers: 2 }, webRoot }), launchChromium()]);
  });
  afterAll(async () => {
    for (const user of users) await user.close();
    await browser?.close();
    await hub?.close();
  });

  it('goes on on another worker: both browsers make new transports, produce the same tracks again and decode each other again', async () => {
    const { appointment } = await bookConsultation(hub);
    const doctor = await AppUser.login(browser, hub.rootUrl, USER.geriatrician);
    users.push(doctor);
    await doctor.joinFromHome('consultation', appointment.id!);
    const nurse = await AppUser.login(browser, hub.rootUrl, USER.ehpadNurse);
    users.push(nurse);
    await nurse.joinFromHome('consultation', appointment.id!);
    const host = await doctor.waitForState('nurse waiting', (s) => s.waiting.length === 1);
    await doctor.page.getByTestId(`waiting-${host.waiting[0]}`).getByRole('button', { name: 'Admettre' }).click();
    const inCall = (s: { consumers: { kind: string }[]; producers: unknown[] }) => s.producers.length === 2 && s.consumers.length === 2;
    await Promise.all([doctor.waitForState('in the call', inCall), nurse.waitForState('in the call', inCall)]);
    await Promise.all([decoding(doctor), decoding(nurse)]);

    const media = hub.rooms!.registry.getRoom(`appointment:${appointment.id}`);
    const pid = media.workerPid!;
    process.kill(pid, 'SIGKILL');
    await eventually('the room rebuilt on the other worker', async () => media.workerPid !== undefined && media.workerPid !== pid && !media.interrupted, 15_000);

    // Still in the room, with media again: new consumers whose counters start from zero and grow.
    for (const user of [doctor, nurse]) {
      await user.waitForState('in the call again', (s) => s.admitted && inCall(s), 30_000);
      await decoding(user);
    }
    const [atDoctor, atNurse] = await Promise.all([mediaFlow(doctor), mediaFlow(nurse)]);
    for (const { before, after } of [atDoctor, atNurse]) {
      expect(after.video.framesDecoded!).toBeGreaterThan(before.video.framesDecoded!);
      expect(after.audio.bytesReceived).toBeGreaterThan(before.audio.bytesReceived);
    }
    expect((await doctor.state())!.joins).toBe(1);
  });
});
