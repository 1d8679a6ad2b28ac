import type { Appointment, Encounter } from '@medplum/fhirtypes';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JoinResult } from '../../server/rooms/protocol.js';
import { PRACT, act, api, consent, create, read, ref, startAccessHub } from '../access/support.js';
import { backends, type TestHub } from '../fhir/harness.js';
import { RoomClient, USER, bookConsultation, ticket } from '../rooms/support.js';
import { AppUser, builtWebApp, decoding, eventually, launchChromium, mediaFlow } from './browser.js';

// One storage backend is enough here: what is under test is the browser, the signaling and the media.
const backend = backends()[0]!;
const PPRF = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: 'PPRF' }] };

describe('teleconsultation between a CHU doctor and a nursing home, in Chromium', { timeout: 120_000 }, () => {
  let hub: TestHub;
  let browser: Browser;
  const users: AppUser[] = [];
  const login = async (username: string, path = '/') => {
    const user = await AppUser.login(browser, hub.rootUrl, username, path);
    users.push(user);
    return user;
  };

  beforeAll(async () => {
    const webRoot = builtWebApp();
    [hub, browser] = await Promise.all([startAccessHub(backend, { rooms: true, webRoot }), launchChromium()]);
  });
  afterAll(async () => {
    for (const user of users) await user.close();
    await browser?.close();
    await hub?.close();
  });

  it('holds the nursing home in the waiting room until the doctor admits it; then each decodes the other’s audio and video; the doctor ends with a report', async () => {
    const { patient, appointment } = await bookConsultation(hub);

    const nurse = await login(USER.ehpadNurse);
    await nurse.joinFromHome('consultation', appointment.id!);
    await nurse.page.getByText('Salle d’attente — le médecin va vous admettre').waitFor();
    expect(await nurse.waitForState('waiting', (s) => s.phase === 'waiting')).toMatchObject({ role: 'guest', kind: 'teleconsultation', admitted: false, consumers: [] });

    const doctor = await login(USER.geriatrician);
    await doctor.joinFromHome('consultation', appointment.id!);
    const host = await doctor.waitForState('in the room, producing, with the nurse waiting', (s) => s.admitted && s.producers.length === 2 && s.waiting.length === 1);
    expect(host).toMatchObject({ role: 'host', roomId: `appointment:${appointment.id}` });
    expect(host.producers.map((p) => p.source).sort()).toEqual(['mic', 'webcam']);

    // The doctor is in and sending: the waiting nurse still gets nothing.
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await nurse.state())!.phase).toBe('waiting');
    expect((await nurse.stats()).video.bytesReceived).toBe(0);

    const waitingPeer = host.waiting[0]!;
    await doctor.page.getByTestId(`waiting-${waitingPeer}`).getByRole('button', { name: 'Admettre' }).click();
    await nurse.waitForState('admitted', (s) => s.admitted);
    const hasBoth = (peer: string) => (s: { consumers: { peerId: string; kind: string }[] }) =>
      ['audio', 'video'].every((kind) => s.consumers.some((c) => c.peerId === peer && c.kind === kind));
    const nurseState = await nurse.waitForState('consuming the doctor’s audio and video', hasBoth((await doctor.state())!.peerId!));
    await doctor.waitForState('consuming the nurse’s audio and video', hasBoth(nurseState.peerId!));
    await doctor.page.getByTestId('remote-webcam').waitFor();
    await nurse.page.getByTestId('remote-webcam').waitFor();

    // Bytes and frames keep coming, both ways.
    await Promise.all([decoding(doctor), decoding(nurse)]);
    const [atDoctor, atNurse] = await Promise.all([mediaFlow(doctor), mediaFlow(nurse)]);
    for (const [who, { before, after }] of [
      ['doctor', atDoctor],
      ['nurse', atNurse],
    ] as const) {
      expect(after.audio.bytesReceived, `${who}: audio bytes`).toBeGreaterThan(before.audio.bytesReceived);
      expect(after.video.bytesReceived, `${who}: video bytes`).toBeGreaterThan(before.video.bytesReceived);
      expect(after.video.framesDecoded!, `${who}: video frames decoded`).toBeGreaterThan(before.video.framesDecoded!);
    }

    // The doctor writes the report and ends: both see the end; the record is in the store.
    const report = 'Chutes à répétition : hypotension orthostatique. Réduction du traitement antihypertenseur, contrôle à J7.';
    await doctor.page.getByRole('textbox', { name: 'Compte rendu' }).fill(report);
    await doctor.page.getByRole('button', { name: 'Terminer la consultation' }).click();
    const ended = await doctor.waitForState('ended', (s) => s.phase === 'ended' && !!s.encounter);
    await doctor.page.getByTestId('encounter').waitFor();
    await nurse.waitForState('told the consultation ended', (s) => s.phase === 'ended');
    const encounter = await read<Encounter>(await hub.clientAs(USER.geriatrician), 'Encounter', ended.encounter!.split('/')[1]!);
    expect(encounter).toMatchObject({ status: 'finished', class: { code: 'VR' }, subject: { reference: `Patient/${patient.id}` } });
  });

  /** A consultation in progress: the nurse admitted, each receiving the other's audio and video. */
  async function inCall(options: { nurseLinkMode?: 'satellite' } = {}): Promise<{ doctor: AppUser; nurse: AppUser; appointment: Appointment }> {
    const { appointment } = await bookConsultation(hub);
    const doctor = await login(USER.geriatrician);
    await doctor.joinFromHome('consultation', appointment.id!);
    const nurse = await login(USER.ehpadNurse);
    if (options.nurseLinkMode) await nurse.page.evaluate((mode) => (globalThis as unknown as { localStorage: { setItem(k: string, v: string): void } }).localStorage.setItem('hub.linkMode', mode), options.nurseLinkMode);
    await nurse.joinFromHome('consultation', appointment.id!);
    const host = await doctor.waitForState('nurse waiting', (s) => s.waiting.length === 1);
    await doctor.page.getByTestId(`waiting-${host.waiting[0]}`).getByRole('button', { name: 'Admettre' }).click();
    const both = (s: { consumers: { kind: string }[]; producers: unknown[] }) => s.producers.length === 2 && ['audio', 'video'].every((k) => s.consumers.some((c) => c.kind === k));
    await Promise.all([doctor.waitForState('in the call', both), nurse.waitForState('in the call', both)]);
    return { doctor, nurse, appointment };
  }

  const videoWidth = async (user: AppUser) => (await user.stats()).video.frameWidth ?? 0;

  it('brings a participant whose connection dropped back into the call with its producers and consumers; muting is seen by the other side', async () => {
    const { doctor, nurse, appointment } = await inCall();
    const before = (await nurse.state())!;
    // The network drops the nurse's signaling connection (not a goodbye: the socket.io client reconnects by itself).
    const sockets = [...hub.rooms!.signaling.namespace.sockets.values()].filter((s) => {
      const data = s.data as { principal?: { username: string }; roomId?: string };
      return data.principal?.username === USER.ehpadNurse && data.roomId === `appointment:${appointment.id}`;
    });
    expect(sockets).toHaveLength(1);
    sockets[0]!.conn.close();
    const after = await nurse.waitForState('joined again, resumed', (s) => s.joins === 2 && s.resumedJoins === 1 && s.connection === 'ok' && s.admitted);
    expect(after.producers).toEqual(before.producers);
    expect(after.consumers).toEqual(before.consumers);
    await Promise.all([decoding(doctor), decoding(nurse)]);
    const [atDoctor, atNurse] = await Promise.all([mediaFlow(doctor), mediaFlow(nurse)]);
    expect(atDoctor.after.video.framesDecoded!).toBeGreaterThan(atDoctor.before.video.framesDecoded!);
    expect(atNurse.after.video.framesDecoded!).toBeGreaterThan(atNurse.before.video.framesDecoded!);
    expect(atNurse.after.audio.bytesReceived).toBeGreaterThan(atNurse.before.audio.bytesReceived);

    // Still the same signaling underneath: the nurse mutes her microphone, the doctor is told.
    await nurse.page.getByRole('button', { name: 'Couper le micro' }).click();
    await doctor.waitForState('the nurse’s microphone paused', (s) => s.consumers.some((c) => c.kind === 'audio' && c.paused));
    await doctor.page.getByText('Micro coupé').waitFor();
    await nurse.page.getByRole('button', { name: 'Activer le micro' }).click();
    await doctor.waitForState('the nurse’s microphone back', (s) => s.consumers.some((c) => c.kind === 'audio' && !c.paused));
  });

  it('holds video to the lowest simulcast layer on a satellite link, and lets it climb again on a normal one', async () => {
    // The nursing home chose the satellite profile on this browser: it sends one low layer from the start.
    const { doctor, nurse } = await inCall({ nurseLinkMode: 'satellite' });
    expect(await nurse.state()).toMatchObject({ linkMode: 'satellite', linkProfile: 'satellite' });
    await eventually('the doctor receives the nurse at 160 px', async () => (await videoWidth(doctor)) === 160, 20_000, 250);
    // The doctor, on a good link, receives the nurse's... and the nurse receives the doctor's lowest layer only.
    await eventually('the nurse receives the doctor at 160 px', async () => (await videoWidth(nurse)) === 160, 20_000, 250);

    // Back to normal: the nurse's camera is produced again in three layers and climbs to full size.
    await nurse.page.getByTestId('link-mode').selectOption('normal');
    await nurse.waitForState('normal profile', (s) => s.linkProfile === 'normal');
    await eventually('the doctor receives the nurse above the lowest layer', async () => (await videoWidth(doctor)) > 160, 30_000, 250);
    await eventually('the nurse receives the doctor above the lowest layer', async () => (await videoWidth(nurse)) > 160, 30_000, 250);

    // The doctor now moves to satellite: what he sends is cut to the lowest layer.
    await doctor.page.getByTestId('link-mode').selectOption('satellite');
    await eventually('the nurse receives the doctor at 160 px again', async () => (await videoWidth(nurse)) === 160, 20_000, 250);
  });

  it('speaks French first, and English once the user chose it', async () => {
    const user = await login(USER.ehpadNurse);
    await user.page.getByRole('heading', { name: 'Téléconsultations' }).waitFor();
    await user.page.getByRole('combobox', { name: 'Langue' }).selectOption('en');
    await user.page.getByRole('heading', { name: 'Teleconsultations' }).waitFor();
    await user.page.reload();
    await user.page.getByRole('button', { name: 'Log out' }).waitFor();
    expect(await user.page.evaluate(() => (globalThis as unknown as { document: { documentElement: { lang: string } } }).document.documentElement.lang)).toBe('en');
  });

  it('lets the doctor send a waiting participant away', async () => {
    const { appointment } = await bookConsultation(hub);
    const doctor = await login(USER.geriatrician);
    await doctor.joinFromHome('consultation', appointment.id!);
    const nurse = await login(USER.ehpadNurse);
    await nurse.joinFromHome('consultation', appointment.id!);
    const host = await doctor.waitForState('nurse waiting', (s) => s.waiting.length === 1);
    await doctor.page.getByTestId(`waiting-${host.waiting[0]}`).getByRole('button', { name: 'Retirer' }).click();
    await nurse.waitForState('removed', (s) => s.phase === 'removed');
    await nurse.page.getByText('Le médecin vous a retiré de la salle.').waitFor();
    await doctor.waitForState('nobody waiting', (s) => s.waiting.length === 0);
  });

  it('refuses the room to a professional who takes no part in the consultation', async () => {
    const { appointment } = await bookConsultation(hub);
    // Another team's GP does not even see the consultation (404); she opens its link all the same.
    const outsider = await login(USER.gpTende, `/salle/consultation/${appointment.id}`);
    await outsider.page.getByText('Accès à la salle refusé').waitFor();
    expect(await outsider.state()).toMatchObject({ phase: 'refused', joined: false });
    expect((await ticket(hub, await hub.login(USER.gpTende), { appointment: `Appointment/${appointment.id}` })).status).toBe(404);

    // The patient's own GP sees a consultation of her patient with a cardiologist, but is not in it (403).
    const gp = await hub.clientAs(USER.gpTende);
    await create(gp, consent('patient-001', 'teleconsultation'));
    const start = new Date();
    const cardiology = await create<Appointment>(gp, {
      resourceType: 'Appointment',
      status: 'booked',
      serviceType: [act('teleconsultation')],
      start: start.toISOString(),
      end: new Date(start.getTime() + 20 * 60_000).toISOString(),
      participant: [
        { actor: ref('Patient', 'patient-001'), status: 'accepted' },
        { actor: ref('Practitioner', PRACT.cardiologist), status: 'accepted', type: [PPRF] },
      ],
    });
    const refused = await ticket(hub, await hub.login(USER.gpTende), { appointment: `Appointment/${cardiology.id}` });
    expect(refused.status).toBe(403);
    const sameGp = await login(USER.gpTende);
    const answer = sameGp.page.waitForResponse((r) => r.url().endsWith('/api/rooms/token'));
    await sameGp.page.goto(`/salle/consultation/${cardiology.id}`);
    expect((await answer).status()).toBe(403);
    await sameGp.page.getByText('Accès à la salle refusé').waitFor();
  });

  it('refuses a join with a forged room token, another user’s token, or an access token, and a token of another consultation opens only that one', async () => {
    const { appointment } = await bookConsultation(hub);
    const other = await bookConsultation(hub);
    const doctorTicket = (await ticket(hub, await hub.login(USER.geriatrician), { appointment: `Appointment/${appointment.id}` })).body;
    const doctor = await RoomClient.connect(hub, await hub.login(USER.geriatrician));
    const intruder = await RoomClient.connect(hub, await hub.login(USER.ehpadNurse));
    try {
      await doctor.ok('join', { roomToken: doctorTicket.roomToken });

      // A token altered on the way: the signature no longer matches.
      const [header, payload, signature] = doctorTicket.roomToken.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
      const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: 'acct-ide-ehpad', role: 'host' })).toString('base64url')}.${signature}`;
      expect(await intruder.request('join', { roomToken: forged })).toMatchObject({ ok: false, error: { code: 'unauthorized' } });
      // The doctor's own token, presented by someone else.
      expect(await intruder.request('join', { roomToken: doctorTicket.roomToken })).toMatchObject({ ok: false, error: { code: 'forbidden' } });
      // An access token is not a room token.
      expect(await intruder.request('join', { roomToken: await hub.login(USER.ehpadNurse) })).toMatchObject({ ok: false, error: { code: 'unauthorized' } });

      // A genuine ticket of another consultation leads into that consultation, never into this one.
      const otherTicket = (await ticket(hub, await hub.login(USER.ehpadNurse), { appointment: `Appointment/${other.appointment.id}` })).body;
      const elsewhere = await intruder.ok<JoinResult>('join', { roomToken: otherTicket.roomToken });
      expect(elsewhere).toMatchObject({ state: 'waiting', peers: [expect.objectContaining({ peerId: elsewhere.peerId })] });
      expect(elsewhere.peers).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 300));
      expect(doctor.events.filter((e) => e.event === 'waitingRoom').every((e) => (e.payload as { waiting: unknown[] }).waiting.length === 0)).toBe(true);
    } finally {
      doctor.close();
      intruder.close();
    }
    expect((await api(hub, 'POST', '/api/rooms/token', undefined, { appointment: `Appointment/${appointment.id}` })).status).toBe(401);
  });
});
