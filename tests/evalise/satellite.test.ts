import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bundle, DiagnosticReport, Observation } from '@medplum/fhirtypes';
import { backends, startTestHub, type TestHub } from '../fhir/harness.js';
import { count, search } from '../fhir/support.js';
import { LinkEmulator } from '../support/link-emulator.js';
import { exportExams, identifiersOf, runUploader, tempDir, uploaderEnv, waitFor, type Run } from './support.js';

const EXAMS = 50;

function sentCount(outbox: string): number {
  try {
    return readdirSync(path.join(outbox, 'sent')).filter((n) => n.endsWith('.json')).length;
  } catch {
    return 0;
  }
}

async function killWhen(run: Run, condition: () => boolean, what: string): Promise<void> {
  await waitFor(condition, what, 240_000);
  run.child.kill('SIGKILL');
  await run.exit;
}

/**
 * The proof: 50 exams through a link that adds 600 ms of round trip, resets connections in
 * the middle of uploads, loses answers the hub had already committed, and stalls; the uploader is
 * killed twice (SIGKILL: no chance to tidy up) and restarted. At the end the hub holds each exam
 * exactly once and whole.
 */
describe('e-valise exams over a satellite link', () => {
  const backend = backends()[0]!;
  let hub: TestHub;
  let link: LinkEmulator;

  beforeAll(async () => {
    hub = await startTestHub(backend);
    const port = Number(new URL(hub.rootUrl).port);
    link = await LinkEmulator.start({
      targetHost: '127.0.0.1',
      targetPort: port,
      profile: {
        latencyMs: 300,
        bandwidthBitsPerSecond: 2_000_000,
        // An exam is ~80 KB gzip'd: offsets drawn below that land in the middle of an upload.
        resetProbability: 0.3,
        resetWithinBytes: 120_000,
        responseResetProbability: 0.15,
        stallProbability: 0.15,
        stallMs: 8_000,
        seed: 20260314,
      },
    });
  });

  afterAll(async () => {
    await link?.close();
    await hub?.close();
  });

  it('delivers 50 exams exactly once and whole through resets, lost answers and stalls, with the uploader killed and restarted twice', { timeout: 600_000 }, async () => {
    const { dir, exams } = await exportExams(hub, EXAMS, { patients: 7, serial: 'EV-06-SAT-01' });
    const outbox = tempDir('outbox');
    const env = uploaderEnv(link.url, outbox);

    // 1. The GP's machine watches the device's export folder... and loses power after 10 exams.
    const first = runUploader(['watch', dir], env);
    await killWhen(first, () => sentCount(outbox) >= 10, 'ten exams are delivered');
    // 2. Restarted by hand on the whole folder; killed again after 25.
    const second = runUploader(['send', dir], env);
    await killWhen(second, () => sentCount(outbox) >= 25, 'twenty-five exams are delivered');
    // 3. Restarted: delivers what is left and exits.
    const third = runUploader(['send'], env);
    const code = await third.exit;
    expect(code, `${first.output()}\n---\n${second.output()}\n---\n${third.output()}`).toBe(0);

    // The link did what a satellite link does.
    const stats = link.stats();
    expect(stats.resets, 'connections reset mid-upload').toBeGreaterThan(0);
    expect(stats.responseResets, 'answers lost after the hub committed').toBeGreaterThan(0);
    expect(stats.stalls, 'stalled connections').toBeGreaterThan(0);

    // The uploader's view: everything delivered, nothing refused.
    expect(sentCount(outbox)).toBe(EXAMS);
    expect(readdirSync(path.join(outbox, 'outbox'))).toEqual([]);
    expect(readdirSync(path.join(outbox, 'rejected'))).toEqual([]);

    // The hub's view: 50 reports, 200 readings, one device, nothing twice.
    expect(await count(hub.client, 'DiagnosticReport', { code: 'http://loinc.org|11524-6' })).toBe(EXAMS);
    expect(await count(hub.client, 'Device', { identifier: 'urn:hub:evalise-device|EV-06-SAT-01' })).toBe(1);
    let observations = 0;
    for (const exam of exams) {
      for (const id of identifiersOf(exam)) {
        const found = await count(hub.client, id.type, { identifier: `${id.system}|${id.value}` });
        expect(found, `${id.type} ${id.value}`).toBe(1);
        if (id.type === 'Observation') observations++;
      }
    }
    expect(observations).toBe(EXAMS * 4);

    // Each exam whole: its report points at its four readings, and the ECG is the one exported, sample for sample.
    for (const exam of exams) {
      const sentReport = exam.entry!.find((e) => e.resource?.resourceType === 'DiagnosticReport')!.resource as DiagnosticReport;
      const reportIdentifier = sentReport.identifier![0]!;
      const found = (await search(hub.client, 'DiagnosticReport', {
        identifier: `${reportIdentifier.system}|${reportIdentifier.value!}`,
        _include: 'DiagnosticReport:result',
      })) as Bundle;
      const resources = (found.entry ?? []).map((e) => e.resource!);
      const report = resources.find((r): r is DiagnosticReport => r.resourceType === 'DiagnosticReport')!;
      const readings = resources.filter((r): r is Observation => r.resourceType === 'Observation');
      expect(report.result).toHaveLength(4);
      expect(readings).toHaveLength(4);
      expect(new Set(readings.map((o) => o.subject?.reference))).toEqual(new Set([sentReport.subject!.reference]));
      const sentEcg = exam.entry!.map((e) => e.resource).find((r): r is Observation => r?.resourceType === 'Observation' && r.code.coding?.[0]?.code === '131328')!;
      const storedEcg = readings.find((o) => o.code.coding?.[0]?.code === '131328')!;
      expect(storedEcg.component).toHaveLength(12);
      expect(storedEcg.component!.map((c) => c.valueSampledData!.data)).toEqual(sentEcg.component!.map((c) => c.valueSampledData!.data));
    }
  });
});
