import type { Observation, Patient } from '@medplum/fhirtypes';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QueueEntry } from '../../server/rooms/routes.js';
import { ORG, api, consent, create, newPatient, read, startAccessHub, unique } from '../access/support.js';
import { backends, type TestHub } from '../fhir/harness.js';
import { USER } from '../rooms/support.js';
import { AppUser, builtWebApp, eventually, launchChromium } from './browser.js';

const backend = backends()[0]!;
const VITALS_WANTED = 40;

describe('teleassistance in Chromium: the e-valise stream reaches the remote doctor', { timeout: 120_000 }, () => {
  let hub: TestHub;
  let browser: Browser;
  const users: AppUser[] = [];
  const login = async (username: string) => {
    const user = await AppUser.login(browser, hub.rootUrl, username);
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

  /** The SAMU correspondent, on the scene, registers the casualty and calls the SAMU for assistance. */
  async function callForAssistance(emergency: boolean): Promise<{ patient: Patient; serviceRequestId: string }> {
    const correspondent = await hub.clientAs(USER.samuCorrespondent);
    const patient = await create(correspondent, newPatient(ORG.samu, unique('Blessé'), 'Pierre'));
    // Outside an emergency the patient's consent is collected first.
    if (!emergency) await create(correspondent, consent(patient.id!, 'teleassistance', { organizationId: ORG.samu }));
    const call = await api<QueueEntry>(hub, 'POST', '/api/teleassistance/calls', await hub.login(USER.samuCorrespondent), {
      patient: `Patient/${patient.id}`,
      reason: emergency ? 'Douleur thoracique, sueurs : ECG en cours' : 'Entorse de cheville, avis sur la radiographie',
      emergency,
    });
    expect(call.status, JSON.stringify(call.body)).toBe(201);
    return { patient, serviceRequestId: call.body.serviceRequest.split('/')[1]! };
  }

  it('streams SpO2, heart rate and ECG over a DataChannel, in order and without a gap; the doctor saves a snapshot as Observations', async () => {
    const routine = await callForAssistance(false);
    const regulator = await login(USER.regulator);
    await regulator.page.getByTestId(`assistance-${routine.serviceRequestId}`).waitFor();

    // An emergency call comes in while the regulator looks at the list: it appears at once, first, though it came in last.
    const { patient, serviceRequestId } = await callForAssistance(true);
    await regulator.page.getByTestId(`assistance-${serviceRequestId}`).waitFor({ timeout: 10_000 });
    const order = await regulator.page.locator('[data-testid^="assistance-"]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-testid')));
    expect(order.indexOf(`assistance-${serviceRequestId}`)).toBeLessThan(order.indexOf(`assistance-${routine.serviceRequestId}`));
    await regulator.page.getByTestId(`assistance-${serviceRequestId}`).getByText('Urgence', { exact: true }).waitFor();

    await regulator.joinFromHome('assistance', serviceRequestId);
    await regulator.waitForState('hosting the teleassistance', (s) => s.role === 'host' && s.kind === 'teleassistance' && s.admitted);

    const correspondent = await login(USER.samuCorrespondent);
    await correspondent.joinFromHome('assistance', serviceRequestId);
    await correspondent.waitForState('waiting', (s) => s.phase === 'waiting');
    const host = await regulator.waitForState('the correspondent waiting', (s) => s.waiting.length === 1);
    await regulator.page.getByTestId(`waiting-${host.waiting[0]}`).getByRole('button', { name: 'Admettre' }).click();
    await correspondent.waitForState('admitted', (s) => s.admitted);

    const vitals = await eventually(
      `${VITALS_WANTED} vitals messages at the doctor`,
      async () => {
        const v = await regulator.vitals();
        return v && v.received >= VITALS_WANTED ? v : undefined;
      },
      30_000,
    );
    // In order, none missing, none late or twice, from the first message that reached the doctor.
    // The stream is live: its first messages may leave before the hub has the doctor's DataConsumer,
    // and nothing in the protocol tells the e-valise when it has.
    expect(vitals).toMatchObject({ missing: 0, outOfOrder: 0, ecgLead: 'II', ecgRateHz: 250 });
    expect(vitals.lastSeq! - vitals.firstSeq! + 1).toBe(vitals.received);
    const sent = await correspondent.vitalsSent();
    expect(sent.lastSeq).toBeGreaterThanOrEqual(vitals.lastSeq!);
    expect(vitals.spo2).toBeGreaterThanOrEqual(90);
    expect(vitals.heartRate).toBeGreaterThan(40);
    console.log(`teleassistance vitals: ${vitals.received} messages from seq ${vitals.firstSeq}, largest delay ${Math.round(vitals.maxDelayMs!)} ms (of which the device batches 100 ms), largest transit ${Math.round(vitals.maxTransitMs!)} ms`);
    await regulator.page.getByTestId('spo2').waitFor();
    await regulator.page.getByRole('img', { name: 'ECG — dérivation II' }).waitFor();

    // The doctor saves what the stream shows into the patient's record.
    await regulator.page.getByRole('button', { name: 'Enregistrer un instantané' }).click();
    await regulator.page.getByText('Instantané enregistré : 3 observations.').waitFor();
    const references = (await regulator.lastSnapshot())!;
    expect(references).toHaveLength(3);
    const fhir = await hub.clientAs(USER.regulator);
    const [spo2, heartRate, ecg] = await Promise.all(references.map((r) => read<Observation>(fhir, 'Observation', r.split('/')[1]!)));
    for (const o of [spo2!, heartRate!, ecg!]) {
      expect(o).toMatchObject({ status: 'final', subject: { reference: `Patient/${patient.id}` }, basedOn: [{ reference: `ServiceRequest/${serviceRequestId}` }] });
    }
    expect(spo2!.code.coding![0]!.code).toBe('2708-6');
    expect(spo2!.valueQuantity).toMatchObject({ unit: '%', code: '%' });
    expect(heartRate!.code.coding![0]!.code).toBe('8867-4');
    expect(heartRate!.valueQuantity).toMatchObject({ unit: '/min', code: '/min' });
    expect(ecg!.code.coding![0]!.code).toBe('131328');
    const lead = ecg!.component![0]!.valueSampledData!;
    expect(lead).toMatchObject({ period: 4, dimensions: 1, origin: { code: 'uV' } });
    const samples = lead.data!.split(' ');
    expect(samples.length).toBeGreaterThanOrEqual(VITALS_WANTED * 25);
    expect(samples.length).toBeLessThanOrEqual(2500);
    // The correspondent on the scene sees the snapshot in the patient's record too.
    await read<Observation>(await hub.clientAs(USER.samuCorrespondent), 'Observation', ecg!.id!);
  });
});
