import type { Client } from 'fhir-kit-client';
import type { Bundle, DiagnosticReport, Observation, OperationOutcomeIssue, Resource } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_IDS } from '../../fhir/demo/demo-data.js';
import { loadDefinitions } from '../../fhir/definitions.js';
import { FhirError } from '../../fhir/errors.js';
import { checkPlausibility, countSamples } from '../../fhir/evalise/plausibility.js';
import { ECG_LEADS, EVALISE_CODES, EVALISE_RHYTHMS, generateExam, type EvaliseExamOptions } from '../../fhir/evalise/synthetic.js';
import { validate } from '../../fhir/validation.js';
import { backends, startTestHub, type TestHub } from './harness.js';
import { body, count, create, failure, followedPatient, patientRef, search, unique } from './support.js';

beforeAll(() => loadDefinitions());

const TIME = '2025-03-14T09:30:00+01:00';
const OPTIONS: EvaliseExamOptions = { patientId: 'patient-x', performerId: 'pract-gp-tende', deviceSerial: 'EV-06-TENDE-01', time: TIME, rhythm: 'sinus' };
const readingId = (code: string) => `EV-06-TENDE-01|patient-x|${code}|${TIME}`;

/** Entries of a generated exam, in bundle order. */
const ENTRY = { device: 0, ecg: 1, spo2: 2, bloodPressure: 3, heartRate: 4, report: 5 } as const;

const SINUS = generateExam(OPTIONS);

/** A copy of one resource of the sinus exam with one fault put in. */
function faulty<T extends Resource>(entry: number, fault: (resource: T) => void): T {
  const resource = structuredClone(SINUS.entry![entry]!.resource) as T;
  fault(resource);
  return resource;
}

const lead = (ecg: Observation, name: (typeof ECG_LEADS)[number]) => ecg.component![ECG_LEADS.indexOf(name)]!;

function onlyIssue(issues: OperationOutcomeIssue[]): OperationOutcomeIssue {
  expect(issues, JSON.stringify(issues, null, 1)).toHaveLength(1);
  return issues[0]!;
}

describe('checkPlausibility', () => {
  it.each(EVALISE_RHYTHMS)('finds nothing to object to in a generated %s exam', (rhythm) => {
    const bundle = generateExam({ ...OPTIONS, rhythm });
    for (const entry of bundle.entry!) expect(checkPlausibility(entry.resource!), entry.resource!.resourceType).toEqual([]);
  });

  it('accepts e-valise ECGs sampled at 250 Hz and at 1000 Hz', () => {
    for (const sampleRateHz of [250, 1000]) {
      expect(checkPlausibility(generateExam({ ...OPTIONS, sampleRateHz }).entry![ENTRY.ecg]!.resource!)).toEqual([]);
    }
  });

  describe('SpO2', () => {
    it('rejects an SpO2 of 104 %, naming the value field, the reading, the value and the allowed range', () => {
      const spo2 = faulty<Observation>(ENTRY.spo2, (o) => (o.valueQuantity!.value = 104));
      const issue = onlyIssue(checkPlausibility(spo2, 'Bundle.entry[2]'));
      expect(issue).toMatchObject({ severity: 'error', code: 'value', expression: ['Observation.valueQuantity.value'] });
      expect(issue.diagnostics).toBe(
        `SpO2 104 % is above 100 %, the allowed range is 0 to 100 % (Observation ${readingId('2708-6')}, Bundle.entry[2])`,
      );
    });

    it('rejects a negative SpO2', () => {
      const issue = onlyIssue(checkPlausibility(faulty<Observation>(ENTRY.spo2, (o) => (o.valueQuantity!.value = -3))));
      expect(issue.expression).toEqual(['Observation.valueQuantity.value']);
      expect(issue.diagnostics).toContain('SpO2 -3 % is below 0 %');
    });

    it('keeps SpO2 readings of 45 % and 100 %: a very low reading is one that must raise an alert, not be refused', () => {
      for (const value of [0, 45, 100]) expect(checkPlausibility(faulty<Observation>(ENTRY.spo2, (o) => (o.valueQuantity!.value = value)))).toEqual([]);
    });

    it('checks an Observation coded only 59408-5 (pulse oximetry) like one coded 2708-6', () => {
      const spo2 = faulty<Observation>(ENTRY.spo2, (o) => {
        o.identifier = undefined;
        o.code = { coding: [{ ...EVALISE_CODES.spo2PulseOximetry }] };
        o.valueQuantity!.value = 101;
      });
      expect(onlyIssue(checkPlausibility(spo2)).diagnostics).toBe('SpO2 101 % is above 100 %, the allowed range is 0 to 100 %');
    });

    it('rejects a final SpO2 without a value or a reason for its absence, and accepts one with a dataAbsentReason', () => {
      const missing = faulty<Observation>(ENTRY.spo2, (o) => delete o.valueQuantity);
      const issue = onlyIssue(checkPlausibility(missing));
      expect(issue).toMatchObject({ code: 'business-rule', expression: ['Observation.valueQuantity'] });
      expect(issue.diagnostics).toMatch(/^SpO2 has no value: .*dataAbsentReason/);
      expect(onlyIssue(checkPlausibility(faulty<Observation>(ENTRY.spo2, (o) => delete o.valueQuantity!.value))).expression).toEqual([
        'Observation.valueQuantity.value',
      ]);
      const absent = faulty<Observation>(ENTRY.spo2, (o) => {
        delete o.valueQuantity;
        o.dataAbsentReason = { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/data-absent-reason', code: 'error' }] };
      });
      expect(checkPlausibility(absent)).toEqual([]);
      expect(checkPlausibility(faulty<Observation>(ENTRY.spo2, (o) => ((o.status = 'preliminary'), delete o.valueQuantity)))).toEqual([]);
    });

    it('rejects an SpO2 given as a string instead of a Quantity', () => {
      const spo2 = faulty<Observation>(ENTRY.spo2, (o) => {
        delete o.valueQuantity;
        o.valueString = '97 %';
      });
      const issue = onlyIssue(checkPlausibility(spo2));
      expect(issue.expression).toEqual(['Observation.valueString']);
      expect(issue.diagnostics).toContain('SpO2 is a valueString: it must be a valueQuantity in UCUM %');
    });

    it('rejects an SpO2 whose unit system is not UCUM, naming valueQuantity.system', () => {
      const spo2 = faulty<Observation>(ENTRY.spo2, (o) => (o.valueQuantity!.system = 'http://snomed.info/sct'));
      const issue = onlyIssue(checkPlausibility(spo2));
      expect(issue.expression).toEqual(['Observation.valueQuantity.system']);
      expect(issue.diagnostics).toContain('SpO2 unit system "http://snomed.info/sct" is not UCUM');
    });

    it('leaves an SpO2 entered in error alone, so that a wrong value can still be retracted', () => {
      const retracted = faulty<Observation>(ENTRY.spo2, (o) => ((o.status = 'entered-in-error'), (o.valueQuantity!.value = 104)));
      expect(checkPlausibility(retracted)).toEqual([]);
    });
  });

  describe('heart rate', () => {
    it.each([0, 301, -60])('rejects a heart rate of %s /min', (value) => {
      const issue = onlyIssue(checkPlausibility(faulty<Observation>(ENTRY.heartRate, (o) => (o.valueQuantity!.value = value))));
      expect(issue.expression).toEqual(['Observation.valueQuantity.value']);
      expect(issue.diagnostics).toContain(`heart rate ${value} /min is `);
      expect(issue.diagnostics).toContain('the allowed range is above 0 up to 300 /min');
      expect(issue.diagnostics).toContain(readingId('8867-4'));
    });

    it('accepts heart rates of 25 and 300 /min', () => {
      for (const value of [25, 300]) expect(checkPlausibility(faulty<Observation>(ENTRY.heartRate, (o) => (o.valueQuantity!.value = value)))).toEqual([]);
    });

    it('rejects "bpm" as a unit code, naming valueQuantity.code and the UCUM code expected', () => {
      const issue = onlyIssue(checkPlausibility(faulty<Observation>(ENTRY.heartRate, (o) => (o.valueQuantity!.code = 'bpm'))));
      expect(issue.expression).toEqual(['Observation.valueQuantity.code']);
      expect(issue.diagnostics).toContain('heart rate unit code "bpm" is not the UCUM code "/min"');
    });
  });

  describe('blood pressure', () => {
    const systolic = (o: Observation) => o.component![0]!.valueQuantity!;
    const diastolic = (o: Observation) => o.component![1]!.valueQuantity!;

    it('rejects a systolic pressure below the diastolic, naming both values', () => {
      const bp = faulty<Observation>(ENTRY.bloodPressure, (o) => ((systolic(o).value = 70), (diastolic(o).value = 90)));
      const issue = onlyIssue(checkPlausibility(bp, 'Bundle.entry[3]'));
      expect(issue).toMatchObject({ code: 'business-rule', expression: ['Observation.component[0].valueQuantity.value'] });
      expect(issue.diagnostics).toBe(
        `systolic blood pressure 70 mmHg is not above the diastolic 90 mmHg (component[1]) (Observation ${readingId('85354-9')}, Bundle.entry[3])`,
      );
    });

    it('rejects a systolic pressure equal to the diastolic', () => {
      const bp = faulty<Observation>(ENTRY.bloodPressure, (o) => ((systolic(o).value = 80), (diastolic(o).value = 80)));
      expect(onlyIssue(checkPlausibility(bp)).diagnostics).toContain('systolic blood pressure 80 mmHg is not above the diastolic 80 mmHg');
    });

    it.each([
      [0, 'not above 0'],
      [320, 'above 300'],
    ])('rejects a systolic pressure of %s mmHg', (value, why) => {
      const issue = onlyIssue(checkPlausibility(faulty<Observation>(ENTRY.bloodPressure, (o) => (systolic(o).value = value))));
      expect(issue.expression).toEqual(['Observation.component[0].valueQuantity.value']);
      expect(issue.diagnostics).toContain(`systolic blood pressure ${value} mmHg is ${why} mmHg, the allowed range is above 0 up to 300 mmHg`);
    });

    it('rejects a panel without a diastolic component', () => {
      const issue = onlyIssue(checkPlausibility(faulty<Observation>(ENTRY.bloodPressure, (o) => o.component!.pop())));
      expect(issue.expression).toEqual(['Observation.component']);
      expect(issue.diagnostics).toContain('blood pressure panel has no diastolic blood pressure component (LOINC 8462-4)');
    });

    it('rejects a panel with two systolic components, naming the second', () => {
      const bp = faulty<Observation>(ENTRY.bloodPressure, (o) => o.component!.push(structuredClone(o.component![0]!)));
      const issue = onlyIssue(checkPlausibility(bp));
      expect(issue.expression).toEqual(['Observation.component[2].code']);
      expect(issue.diagnostics).toContain('2 systolic blood pressure components (component[0], component[2])');
    });

    it('rejects "mmHg" as a UCUM code (it is mm[Hg]), naming the component\'s valueQuantity.code', () => {
      const issue = onlyIssue(checkPlausibility(faulty<Observation>(ENTRY.bloodPressure, (o) => (diastolic(o).code = 'mmHg'))));
      expect(issue.expression).toEqual(['Observation.component[1].valueQuantity.code']);
      expect(issue.diagnostics).toContain('diastolic blood pressure unit code "mmHg" is not the UCUM code "mm[Hg]"');
    });

    it('checks unit and range of a systolic pressure recorded on its own', () => {
      const standalone = (value: number, code = 'mm[Hg]'): Observation => ({
        resourceType: 'Observation',
        status: 'final',
        code: { coding: [{ ...EVALISE_CODES.systolic }] },
        valueQuantity: { value, unit: 'mmHg', system: EVALISE_CODES.systems.ucum, code },
      });
      expect(checkPlausibility(standalone(128))).toEqual([]);
      expect(onlyIssue(checkPlausibility(standalone(350))).diagnostics).toContain('systolic blood pressure 350 mmHg is above 300 mmHg');
      expect(onlyIssue(checkPlausibility(standalone(128, 'mmHg'))).expression).toEqual(['Observation.valueQuantity.code']);
    });
  });

  describe('ECG', () => {
    it('rejects an e-valise ECG missing leads, naming them', () => {
      const ecg = faulty<Observation>(ENTRY.ecg, (o) => (o.component = o.component!.filter((c) => !['V3', 'aVL'].includes(c.code.text!))));
      const issue = onlyIssue(checkPlausibility(ecg));
      expect(issue).toMatchObject({ code: 'business-rule', expression: ['Observation.component'] });
      expect(issue.diagnostics).toBe(
        `ECG has 10 of the 12 leads, missing aVL, V3: an e-valise exam records all 12 (Observation ${readingId('131328')})`,
      );
    });

    it('rejects a lead with fewer samples than the first lead, naming the lead and both counts', () => {
      const ecg = faulty<Observation>(ENTRY.ecg, (o) => {
        const sd = lead(o, 'V3').valueSampledData!;
        sd.data = sd.data!.slice(0, sd.data!.lastIndexOf(' '));
      });
      const issue = onlyIssue(checkPlausibility(ecg, 'Bundle.entry[1]'));
      expect(issue.expression).toEqual(['Observation.component[8].valueSampledData.data']);
      expect(issue.diagnostics).toBe(
        `ECG lead V3 has 4999 samples, lead I has 5000: all leads must have the same number of samples (Observation ${readingId('131328')}, Bundle.entry[1])`,
      );
    });

    it.each([0, -2, 0.05, 20])('rejects an absurd sampling period of %s ms', (period) => {
      const ecg = faulty<Observation>(ENTRY.ecg, (o) => (lead(o, 'II').valueSampledData!.period = period));
      const issue = onlyIssue(checkPlausibility(ecg));
      expect(issue).toMatchObject({ code: 'value', expression: ['Observation.component[1].valueSampledData.period'] });
      expect(issue.diagnostics).toContain(`ECG lead II sampling period ${period} ms`);
      expect(issue.diagnostics).toContain('is absurd, the allowed range is 0.5 to 10 ms (100–2000 Hz)');
    });

    it('rejects a lead sampled at another rate than the first lead', () => {
      const ecg = faulty<Observation>(ENTRY.ecg, (o) => (lead(o, 'aVF').valueSampledData!.period = 4));
      const issue = onlyIssue(checkPlausibility(ecg));
      expect(issue.expression).toEqual(['Observation.component[5].valueSampledData.period']);
      expect(issue.diagnostics).toContain('ECG lead aVF is sampled every 4 ms, lead I every 2 ms');
    });

    it('rejects a component that is not one of the 12 leads', () => {
      const ecg = faulty<Observation>(ENTRY.ecg, (o) => (lead(o, 'V6').code = { coding: [{ system: EVALISE_CODES.systems.mdc, code: '131337' }] }));
      const issues = checkPlausibility(ecg);
      expect(issues.map((i) => i.expression)).toEqual([['Observation.component[11].code'], ['Observation.component']]);
      expect(issues[0]!.diagnostics).toContain('ECG component[11] has code MDC 131337, which is not one of the 12 leads');
      expect(issues[1]!.diagnostics).toContain('missing V6');
    });

    it('rejects a lead recorded twice', () => {
      const ecg = faulty<Observation>(ENTRY.ecg, (o) => (lead(o, 'V2').code = structuredClone(lead(o, 'V1').code)));
      const issues = checkPlausibility(ecg);
      expect(issues.map((i) => i.expression)).toEqual([['Observation.component[7].code'], ['Observation.component']]);
      expect(issues[0]!.diagnostics).toContain('ECG lead V1 appears twice (component[6] and component[7])');
    });

    it('rejects a lead without valueSampledData', () => {
      const issue = onlyIssue(checkPlausibility(faulty<Observation>(ENTRY.ecg, (o) => delete lead(o, 'III').valueSampledData)));
      expect(issue.expression).toEqual(['Observation.component[2].valueSampledData']);
      expect(issue.diagnostics).toContain('ECG lead III has no valueSampledData');
    });

    it('rejects a lead of two dimensions', () => {
      const issue = onlyIssue(checkPlausibility(faulty<Observation>(ENTRY.ecg, (o) => (lead(o, 'I').valueSampledData!.dimensions = 2))));
      expect(issue.expression).toEqual(['Observation.component[0].valueSampledData.dimensions']);
      expect(issue.diagnostics).toContain('ECG lead I has 2 dimensions, expected 1');
    });

    it('rejects a lead whose origin is not in a UCUM unit of electric potential', () => {
      const ecg = faulty<Observation>(ENTRY.ecg, (o) => (lead(o, 'V4').valueSampledData!.origin = { value: 0, system: 'urn:local:units', code: 'mm[Hg]' }));
      const issues = checkPlausibility(ecg);
      expect(issues.map((i) => i.expression)).toEqual([['Observation.component[9].valueSampledData.origin.system'], ['Observation.component[9].valueSampledData.origin.code']]);
      expect(issues[1]!.diagnostics).toContain('ECG lead V4 origin unit code "mm[Hg]" is not a UCUM unit of electric potential');
    });

    it('rejects an e-valise ECG shorter than 10 s', () => {
      const short = generateExam({ ...OPTIONS, durationSeconds: 6 }).entry![ENTRY.ecg]!.resource!;
      const issue = onlyIssue(checkPlausibility(short));
      expect(issue.expression).toEqual(['Observation.component[0].valueSampledData.data']);
      expect(issue.diagnostics).toContain('ECG lasts 6 s (3000 samples × 2 ms), an e-valise exam records at least 10 s');
    });

    it('accepts a 6 s single-lead strip that is not an e-valise reading (a teleassistance snapshot)', () => {
      const snapshot = faulty<Observation>(ENTRY.ecg, (o) => {
        delete o.identifier;
        const ii = lead(o, 'II');
        ii.valueSampledData!.data = ii.valueSampledData!.data!.split(' ').slice(0, 3000).join(' ');
        o.component = [ii];
      });
      expect(checkPlausibility(snapshot)).toEqual([]);
    });
  });

  describe('e-valise readings', () => {
    it('rejects a reading coded with anything but the four exam codes', () => {
      const rr = faulty<Observation>(ENTRY.heartRate, (o) => (o.code = { coding: [{ system: EVALISE_CODES.systems.loinc, code: '9279-1' }] }));
      const issues = checkPlausibility(rr);
      expect(issues[0]!.expression).toEqual(['Observation.code.coding[0].code']);
      expect(issues[0]!.diagnostics).toContain('e-valise reading has code LOINC 9279-1, not an exam code');
      expect(issues[0]!.diagnostics).toContain(readingId('8867-4'));
    });

    it('rejects a reading without a coded code', () => {
      const issue = onlyIssue(checkPlausibility(faulty<Observation>(ENTRY.spo2, (o) => (o.code = { text: 'SpO2' }))));
      expect(issue).toMatchObject({ code: 'business-rule', expression: ['Observation.code.coding'] });
      expect(issue.diagnostics).toContain('e-valise reading has no code.coding');
    });

    it('rejects a reading whose identifier names another code, since a resend would not be recognised', () => {
      const spo2 = faulty<Observation>(ENTRY.spo2, (o) => (o.identifier![0]!.value = readingId('8867-4')));
      const issue = onlyIssue(checkPlausibility(spo2));
      expect(issue.expression).toEqual(['Observation.identifier[0].value']);
      expect(issue.diagnostics).toContain('e-valise reading identifier names code 8867-4 but the SpO2 is coded 2708-6 and 59408-5');
    });

    it('rejects a reading whose identifier names another patient than its subject', () => {
      const hr = faulty<Observation>(ENTRY.heartRate, (o) => (o.subject = { reference: 'Patient/patient-y' }));
      const issue = onlyIssue(checkPlausibility(hr));
      expect(issue.expression).toEqual(['Observation.identifier[0].value']);
      expect(issue.diagnostics).toContain('identifier names patient patient-x but the subject is Patient/patient-y');
    });

    it('rejects an identifier that is not serial|patient|code|time', () => {
      const issue = onlyIssue(checkPlausibility(faulty<Observation>(ENTRY.spo2, (o) => (o.identifier![0]!.value = 'EV-06-TENDE-01|2708-6'))));
      expect(issue.expression).toEqual(['Observation.identifier[0].value']);
    });

    it('rejects a vital sign filed as a procedure and an ECG filed as a vital sign', () => {
      const procedure = { coding: [{ system: EVALISE_CODES.systems.observationCategory, code: 'procedure' }] };
      const spo2 = onlyIssue(checkPlausibility(faulty<Observation>(ENTRY.spo2, (o) => (o.category = [procedure]))));
      expect(spo2.expression).toEqual(['Observation.category[0].coding[0].code']);
      expect(spo2.diagnostics).toContain('e-valise SpO2 has category procedure: it must be vital-signs');
      const ecg = onlyIssue(checkPlausibility(faulty<Observation>(ENTRY.ecg, (o) => delete o.category)));
      expect(ecg.expression).toEqual(['Observation.category']);
      expect(ecg.diagnostics).toContain('e-valise ECG has no observation category: it must be procedure');
    });

    it('rejects an exam report not coded as an EKG study (LOINC 11524-6)', () => {
      const report = faulty<DiagnosticReport>(ENTRY.report, (r) => (r.code = { coding: [{ system: EVALISE_CODES.systems.loinc, code: '11525-3' }] }));
      const issue = onlyIssue(checkPlausibility(report, 'Bundle.entry[5]'));
      expect(issue.expression).toEqual(['DiagnosticReport.code.coding[0].code']);
      expect(issue.diagnostics).toBe(
        `e-valise exam report has code LOINC 11525-3: it must be coded LOINC 11524-6 (EKG study) (DiagnosticReport EV-06-TENDE-01|patient-x|11524-6|${TIME}, Bundle.entry[5])`,
      );
    });
  });

  it('counts the samples of SampledData.data as space-separated tokens', () => {
    expect([countSamples(undefined), countSamples(''), countSamples('7'), countSamples('1 -2 E 3.5'), countSamples(' 1  2 ')]).toEqual([0, 0, 1, 4, 2]);
  });
});

describe('validate', () => {
  it('answers an implausible bundle entry with 422 and the entry-prefixed path of the field', () => {
    const spo2 = faulty<Observation>(ENTRY.spo2, (o) => (o.valueQuantity!.value = 104));
    let error: unknown;
    try {
      validate(spo2, 'Observation', 'Bundle.entry[2].resource');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(FhirError);
    expect((error as FhirError).status).toBe(422);
    const issue = onlyIssue((error as FhirError).outcome.issue!);
    expect(issue.expression).toEqual(['Bundle.entry[2].resource.valueQuantity.value']);
    expect(issue.diagnostics).toContain(`(Observation ${readingId('2708-6')}, Bundle.entry[2])`);
  });

  it('accepts a generated exam and leaves its ECG samples as they were sent', () => {
    const bundle = generateExam(OPTIONS);
    bundle.entry!.forEach((entry, i) => expect(validate(entry.resource, entry.request!.url, `Bundle.entry[${i}].resource`)).toBe(entry.resource));
    expect(bundle).toEqual(SINUS);
  });

  it('reports structural errors alone (400) and leaves plausibility for a well-formed resource', () => {
    const spo2 = faulty<Observation>(ENTRY.spo2, (o) => ((o.valueQuantity!.value = 104), (o.effectiveDateTime = 'hier')));
    let error: unknown;
    try {
      validate(spo2, 'Observation');
    } catch (err) {
      error = err;
    }
    expect((error as FhirError).status).toBe(400);
    expect((error as FhirError).outcome.issue!.map((i) => i.expression)).toEqual([['Observation.effective[x]']]);
  });
});

describe.each(backends())('e-valise exams with impossible values over HTTP on $name', (backend) => {
  let hub: TestHub;
  let client: Client;
  beforeAll(async () => {
    hub = await startTestHub(backend);
    client = hub.client;
  });
  afterAll(async () => {
    await hub?.close();
  });

  async function newExam(): Promise<{ bundle: Bundle; patientId: string; serial: string }> {
    const patient = await followedPatient(client, { name: [{ family: 'Valise' }] });
    const serial = unique('EV');
    const bundle = generateExam({ ...OPTIONS, patientId: patient.id!, deviceSerial: serial, performerId: DEMO_IDS.practitioners.gpTende, rhythm: 'hypoxia' });
    return { bundle, patientId: patient.id!, serial };
  }

  const transaction = async (bundle: Bundle) => (await client.transaction({ body: body(bundle) })) as unknown as Bundle;

  /** How many of each resource of the exam are stored, found by their identifiers. */
  async function storedOf(bundle: Bundle, patientId: string): Promise<Record<string, number>> {
    const counts: Record<string, number> = {};
    for (const entry of bundle.entry!) {
      const identifier = (entry.resource as { identifier: { system: string; value: string }[] }).identifier[0]!;
      const key = `${entry.resource!.resourceType} ${identifier.value}`;
      counts[key] = await count(client, entry.resource!.resourceType, { identifier: `${identifier.system}|${identifier.value}` });
    }
    counts['Observation of the patient'] = await count(client, 'Observation', { subject: `Patient/${patientId}` });
    counts['DiagnosticReport of the patient'] = await count(client, 'DiagnosticReport', { subject: `Patient/${patientId}` });
    return counts;
  }
  const all = (counts: Record<string, number>, n: number) => Object.fromEntries(Object.keys(counts).map((k) => [k, n]));

  it('refuses a whole exam with an SpO2 of 104 % with 422 naming the entry and field, stores nothing of it, then takes the corrected exam once', async () => {
    const { bundle, patientId, serial } = await newExam();
    const implausible = structuredClone(bundle);
    (implausible.entry![ENTRY.spo2]!.resource as Observation).valueQuantity!.value = 104;

    const { status, outcome } = await failure(client.transaction({ body: body(implausible) }));
    expect(status).toBe(422);
    expect(outcome.resourceType).toBe('OperationOutcome');
    const issue = onlyIssue(outcome.issue);
    expect(issue).toMatchObject({ severity: 'error', code: 'value', expression: ['Bundle.entry[2].resource.valueQuantity.value'] });
    expect(issue.diagnostics).toBe(
      `SpO2 104 % is above 100 %, the allowed range is 0 to 100 % (Observation ${serial}|${patientId}|2708-6|${TIME}, Bundle.entry[2])`,
    );
    const nothing = await storedOf(bundle, patientId);
    expect(nothing).toEqual(all(nothing, 0));

    const response = await transaction(bundle);
    expect(response.type).toBe('transaction-response');
    expect(response.entry!.map((e) => e.response?.status)).toEqual(Array(6).fill('201 Created'));
    // Resent, as an uploader does when it never saw the answer: still stored once.
    await transaction(bundle);
    const once = await storedOf(bundle, patientId);
    expect(once).toEqual({ ...all(once, 1), 'Observation of the patient': 4 });
    const sent = bundle.entry![ENTRY.ecg]!.resource as Observation;
    const stored = (await search(client, 'Observation', { identifier: `${EVALISE_CODES.systems.reading}|${sent.identifier![0]!.value}` })).entry![0]!
      .resource as Observation;
    expect(stored.component!.map((c) => c.valueSampledData!.data)).toEqual(sent.component!.map((c) => c.valueSampledData!.data));
  });

  it('refuses an exam whose ECG lead V3 is one sample short with 422 naming the lead\'s data in its entry', async () => {
    const { bundle, patientId } = await newExam();
    const sd = lead(bundle.entry![ENTRY.ecg]!.resource as Observation, 'V3').valueSampledData!;
    sd.data = sd.data!.slice(0, sd.data!.lastIndexOf(' '));
    const { status, outcome } = await failure(client.transaction({ body: body(bundle) }));
    expect(status).toBe(422);
    const issue = onlyIssue(outcome.issue);
    expect(issue.expression).toEqual(['Bundle.entry[1].resource.component[8].valueSampledData.data']);
    expect(issue.diagnostics).toMatch(/^ECG lead V3 has 4999 samples, lead I has 5000: .*Bundle\.entry\[1\]\)$/);
    const nothing = await storedOf(bundle, patientId);
    expect(nothing).toEqual(all(nothing, 0));
  });

  it('refuses a single Observation of SpO2 101 % with 422 and stores nothing', async () => {
    const patient = await followedPatient(client);
    const spo2: Observation = {
      resourceType: 'Observation',
      status: 'final',
      category: [{ coding: [{ system: EVALISE_CODES.systems.observationCategory, code: 'vital-signs' }] }],
      code: { coding: [{ ...EVALISE_CODES.spo2 }] },
      subject: patientRef(patient),
      effectiveDateTime: TIME,
      valueQuantity: { value: 101, unit: '%', system: EVALISE_CODES.systems.ucum, code: '%' },
    };
    const { status, outcome } = await failure(create(client, spo2));
    expect(status).toBe(422);
    const issue = onlyIssue(outcome.issue);
    expect(issue.expression).toEqual(['Observation.valueQuantity.value']);
    expect(issue.diagnostics).toBe('SpO2 101 % is above 100 %, the allowed range is 0 to 100 %');
    expect(await count(client, 'Observation', { subject: `Patient/${patient.id}` })).toBe(0);
    expect((await create(client, { ...spo2, valueQuantity: { ...spo2.valueQuantity, value: 97 } })).id).toBeTruthy();
    expect((await search(client, 'Observation', { subject: `Patient/${patient.id}` })).entry).toHaveLength(1);
  });
});
