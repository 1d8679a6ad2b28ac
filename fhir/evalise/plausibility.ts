/**
 * Physiological plausibility of vital signs and ECGs (DESIGN.md, "FHIR modelling"): values no
 * living patient or working device can produce, units that are not the UCUM ones, ECG leads that do
 * not belong together, and e-valise readings whose codes or identifiers disagree. The structural R4
 * validation says a resource is well formed; this says it can be true. It applies to every
 * Observation with these codes, wherever it comes from: an SpO2 of 104 % is impossible from any
 * device. Pure: no I/O, so it runs on each bundle entry before anything is written.
 */
import type {
  CodeableConcept,
  Coding,
  DiagnosticReport,
  Identifier,
  Observation,
  ObservationComponent,
  OperationOutcomeIssue,
  Quantity,
  Resource,
  SampledData,
} from '@medplum/fhirtypes';
import { ECG_LEADS, EVALISE_CODES, type EcgLeadName } from './synthetic.js';

const { loinc: LOINC, ucum: UCUM, observationCategory: OBSERVATION_CATEGORY } = EVALISE_CODES.systems;
const MDC_SYSTEMS = new Set([EVALISE_CODES.systems.mdc, 'urn:iso:std:iso:11073:10101']);

// ---------------------------------------------------------------------------------------------
// The rules
// ---------------------------------------------------------------------------------------------

/** A value measured as a Quantity: its UCUM unit and the range a living patient can show. */
interface QuantityRule {
  /** What the reading is, as the diagnostics name it. */
  name: string;
  ucum: string;
  /** The unit as the diagnostics write it. */
  unit: string;
  min: number;
  /** Whether `min` itself is possible (SpO2 0 % is a reading; a heart rate of 0 /min is not). */
  minIncluded: boolean;
  /** Always included. */
  max: number;
}

// Only values outside 0–100 % are refused. Readings below 50 % are rarely survivable, but a pulse
// oximeter does report them (agonal hypoxaemia, cyanotic heart disease, a poorly perfused finger):
// they are the readings that must raise an alert, and refusing them would lose exactly those.
const SPO2: QuantityRule = { name: 'SpO2', ucum: '%', unit: '%', min: 0, minIncluded: true, max: 100 };
const HEART_RATE: QuantityRule = { name: 'heart rate', ucum: '/min', unit: '/min', min: 0, minIncluded: false, max: 300 };
const SYSTOLIC: QuantityRule = { name: 'systolic blood pressure', ucum: 'mm[Hg]', unit: 'mmHg', min: 0, minIncluded: false, max: 300 };
const DIASTOLIC: QuantityRule = { name: 'diastolic blood pressure', ucum: 'mm[Hg]', unit: 'mmHg', min: 0, minIncluded: false, max: 300 };

/** ECG sampling: 100–2000 Hz; each lead's samples in a unit of electric potential. */
const ECG_PERIOD_MS = { min: 0.5, max: 10 };
const ECG_ORIGIN_UNITS = new Set(['uV', 'mV', 'V']);
/** What an e-valise records (a teleassistance snapshot may be a shorter strip of fewer leads). */
const EXAM_ECG_MIN_MS = 10_000;

interface ObservationRule {
  name: string;
  /** The codes that say an Observation is this reading. */
  codes: readonly Coding[];
  check: (obs: Observation, f: Findings, examReading: boolean) => void;
  /** The category of an e-valise reading of this kind; absent for codes an e-valise does not send alone. */
  examCategory?: 'vital-signs' | 'procedure';
}

/**
 * Every rule, by the code of the Observation. The first one whose code the Observation carries
 * applies; an Observation with none of these codes is not checked (unless it is an e-valise reading).
 */
const OBSERVATION_RULES: readonly ObservationRule[] = [
  { name: 'SpO2', codes: [EVALISE_CODES.spo2, EVALISE_CODES.spo2PulseOximetry], check: quantityReading(SPO2), examCategory: 'vital-signs' },
  { name: 'heart rate', codes: [EVALISE_CODES.heartRate], check: quantityReading(HEART_RATE), examCategory: 'vital-signs' },
  { name: 'blood pressure panel', codes: [EVALISE_CODES.bloodPressure], check: bloodPressurePanel, examCategory: 'vital-signs' },
  { name: 'systolic blood pressure', codes: [EVALISE_CODES.systolic], check: quantityReading(SYSTOLIC) },
  { name: 'diastolic blood pressure', codes: [EVALISE_CODES.diastolic], check: quantityReading(DIASTOLIC) },
  {
    name: 'ECG',
    codes: [...MDC_SYSTEMS].map((system) => ({ system, code: EVALISE_CODES.ecg.code })),
    check: ecg,
    examCategory: 'procedure',
  },
];

/** Statuses of a record withdrawn or never measured: nothing in it is a reading, and retracting a wrong value must stay possible. */
const NOT_A_READING = new Set(['entered-in-error', 'cancelled']);
/** Statuses of a result that must hold its value (or say why it is missing). */
const RESULT_STATUSES = new Set(['final', 'amended', 'corrected']);

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

/**
 * The physiologically impossible or inconsistent fields of a resource that passed the structural
 * validation, each as an issue whose expression is the field's FHIRPath (from the resource type)
 * and whose diagnostics name the reading, the value and the allowed range. `entry` (e.g.
 * "Bundle.entry[2]") is where the resource came from, named in the diagnostics.
 */
export function checkPlausibility(resource: Resource, entry?: string): OperationOutcomeIssue[] {
  if (resource.resourceType === 'Observation') return checkObservation(resource, entry);
  if (resource.resourceType === 'DiagnosticReport') return checkReport(resource, entry);
  return [];
}

function checkObservation(obs: Observation, entry: string | undefined): OperationOutcomeIssue[] {
  if (NOT_A_READING.has(obs.status)) return [];
  const readingIndex = obs.identifier?.findIndex((i) => i.system === EVALISE_CODES.systems.reading) ?? -1;
  const f = new Findings(where('Observation', obs, readingIndex, entry));
  const rule = OBSERVATION_RULES.find((r) => hasCode(obs.code, r.codes));
  if (readingIndex >= 0) evaliseReading(obs, readingIndex, rule, f);
  rule?.check(obs, f, readingIndex >= 0);
  return f.issues;
}

function checkReport(report: DiagnosticReport, entry: string | undefined): OperationOutcomeIssue[] {
  if (NOT_A_READING.has(report.status)) return [];
  const examIndex = report.identifier?.findIndex((i) => i.system === EVALISE_CODES.systems.exam) ?? -1;
  if (examIndex < 0) return [];
  const f = new Findings(where('DiagnosticReport', report, examIndex, entry));
  const expected = EVALISE_CODES.ekgReport;
  if (!hasCode(report.code, [expected])) {
    wrongCode(f, 'DiagnosticReport', report.code, expected, `e-valise exam report has ${codesText(report.code)}: it must be coded LOINC ${expected.code} (${expected.display})`);
  }
  return f.issues;
}

// ---------------------------------------------------------------------------------------------
// Quantities: SpO2, heart rate, blood pressure
// ---------------------------------------------------------------------------------------------

function quantityReading(rule: QuantityRule): ObservationRule['check'] {
  return (obs, f) => {
    const other = Object.keys(obs).find((k) => k.startsWith('value') && k !== 'valueQuantity');
    if (other) {
      f.add('value', `Observation.${other}`, `${rule.name} is a ${other}: it must be a valueQuantity in UCUM ${rule.ucum}`);
      return;
    }
    measured(obs, 'Observation', rule, RESULT_STATUSES.has(obs.status), f);
  };
}

/**
 * Checks the valueQuantity of an Observation or component against a rule and returns its value
 * when unit and value are right (so callers can compare it), undefined otherwise.
 */
function measured(
  holder: { valueQuantity?: Quantity; dataAbsentReason?: CodeableConcept },
  at: string,
  rule: QuantityRule,
  valueRequired: boolean,
  f: Findings,
): number | undefined {
  const q = holder.valueQuantity;
  if (q?.value === undefined) {
    if (valueRequired && !holder.dataAbsentReason) {
      f.add(
        'business-rule',
        q ? `${at}.valueQuantity.value` : `${at}.valueQuantity`,
        `${rule.name} has no value: a final result needs valueQuantity.value in ${rule.unit}, or a dataAbsentReason saying why it is missing`,
      );
    }
    if (!q) return undefined;
  }
  let unitOk = true;
  if (q.system !== UCUM) {
    unitOk = false;
    f.add(
      'value',
      `${at}.valueQuantity.system`,
      `${rule.name} ${q.system ? `unit system "${q.system}" is not UCUM` : 'has no unit system'}: use system ${UCUM} with code "${rule.ucum}"`,
    );
  }
  if (q.code !== rule.ucum) {
    unitOk = false;
    f.add(
      'value',
      `${at}.valueQuantity.code`,
      `${rule.name} ${q.code ? `unit code "${q.code}" is not` : 'has no unit code, expected'} the UCUM code "${rule.ucum}"`,
    );
  }
  // A value in a wrong unit cannot be compared with the range: the unit is what to fix.
  if (!unitOk || q.value === undefined) return undefined;
  const value = q.value;
  const tooLow = rule.minIncluded ? value < rule.min : value <= rule.min;
  if (tooLow || value > rule.max) {
    const limit = value > rule.max ? `above ${rule.max}` : value < rule.min ? `below ${rule.min}` : `not above ${rule.min}`;
    const range = rule.minIncluded ? `${rule.min} to ${rule.max} ${rule.unit}` : `above ${rule.min} up to ${rule.max} ${rule.unit}`;
    f.add('value', `${at}.valueQuantity.value`, `${rule.name} ${value} ${rule.unit} is ${limit} ${rule.unit}, the allowed range is ${range}`);
    return undefined;
  }
  return value;
}

/** The blood pressure panel: one systolic and one diastolic component, the systolic above the diastolic. */
function bloodPressurePanel(obs: Observation, f: Findings): void {
  const components = obs.component ?? [];
  const valueRequired = RESULT_STATUSES.has(obs.status);
  const values: { index: number; value: number | undefined }[] = [];
  for (const [rule, coding] of [
    [SYSTOLIC, EVALISE_CODES.systolic],
    [DIASTOLIC, EVALISE_CODES.diastolic],
  ] as const) {
    const indices = components.flatMap((c, i) => (hasCode(c.code, [coding]) ? [i] : []));
    if (indices.length === 0) {
      f.add('business-rule', 'Observation.component', `blood pressure panel has no ${rule.name} component (LOINC ${coding.code})`);
      continue;
    }
    if (indices.length > 1) {
      f.add(
        'business-rule',
        `Observation.component[${indices[1]}].code`,
        `blood pressure panel has ${indices.length} ${rule.name} components (${indices.map((i) => `component[${i}]`).join(', ')}), one expected`,
      );
    }
    for (const i of indices) {
      const at = `Observation.component[${i}]`;
      const value = measured(components[i]!, at, rule, valueRequired, f);
      if (indices.length === 1) values.push({ index: i, value });
    }
  }
  const [systolic, diastolic] = values;
  if (values.length === 2 && systolic!.value !== undefined && diastolic!.value !== undefined && systolic!.value <= diastolic!.value) {
    f.add(
      'business-rule',
      `Observation.component[${systolic!.index}].valueQuantity.value`,
      `systolic blood pressure ${systolic!.value} mmHg is not above the diastolic ${diastolic!.value} mmHg (component[${diastolic!.index}])`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// ECG
// ---------------------------------------------------------------------------------------------

const LEAD_BY_CODE = new Map<string, EcgLeadName>(ECG_LEADS.map((lead) => [EVALISE_CODES.leads[lead].code, lead]));

function leadOf(code: CodeableConcept | undefined): EcgLeadName | undefined {
  for (const c of code?.coding ?? []) {
    const lead = c.system && MDC_SYSTEMS.has(c.system) && c.code ? LEAD_BY_CODE.get(c.code) : undefined;
    if (lead) return lead;
  }
  return undefined;
}

/**
 * One component per lead, each a single-channel SampledData at a sane rate; all leads sampled
 * together (same period, same sample count, measured against the first lead). An e-valise exam
 * also has all 12 leads over at least 10 s.
 */
function ecg(obs: Observation, f: Findings, examReading: boolean): void {
  const components = obs.component ?? [];
  if (components.length === 0) {
    // A non-exam ECG that was not recorded may say why instead (dataAbsentReason).
    if (examReading || (RESULT_STATUSES.has(obs.status) && !obs.dataAbsentReason)) {
      f.add('business-rule', 'Observation.component', 'ECG has no lead: each lead is a component with valueSampledData');
    }
    return;
  }
  const seen = new Map<EcgLeadName, number>();
  let first: { lead: EcgLeadName; index: number; period: number | undefined; samples: number } | undefined;
  components.forEach((component: ObservationComponent, i) => {
    const at = `Observation.component[${i}]`;
    const lead = leadOf(component.code);
    if (!lead) {
      f.add('value', `${at}.code`, `ECG component[${i}] has ${codesText(component.code)}, which is not one of the 12 leads (MDC 131329–131336, 131389–131392)`);
      return;
    }
    const twice = seen.get(lead);
    if (twice !== undefined) {
      f.add('business-rule', `${at}.code`, `ECG lead ${lead} appears twice (component[${twice}] and component[${i}])`);
      return;
    }
    seen.set(lead, i);
    const sd = component.valueSampledData;
    if (!sd) {
      f.add('business-rule', `${at}.valueSampledData`, `ECG lead ${lead} has no valueSampledData`);
      return;
    }
    const name = `ECG lead ${lead}`;
    const sdAt = `${at}.valueSampledData`;
    if (sd.dimensions !== 1) f.add('value', `${sdAt}.dimensions`, `${name} has ${sd.dimensions} dimensions, expected 1 (one lead per component)`);
    origin(sd, sdAt, name, f);
    const period = sanePeriod(sd.period, `${sdAt}.period`, name, f);
    const samples = countSamples(sd.data);
    if (samples === 0) f.add('business-rule', `${sdAt}.data`, `${name} has no samples`);
    if (!first) {
      first = { lead, index: i, period, samples };
      return;
    }
    if (period !== undefined && first.period !== undefined && !samePeriod(period, first.period)) {
      f.add('business-rule', `${sdAt}.period`, `${name} is sampled every ${period} ms, lead ${first.lead} every ${first.period} ms: all leads must share one period`);
    }
    if (samples > 0 && samples !== first.samples) {
      f.add('business-rule', `${sdAt}.data`, `${name} has ${samples} samples, lead ${first.lead} has ${first.samples}: all leads must have the same number of samples`);
    }
  });
  if (!examReading) return;
  const missing = ECG_LEADS.filter((lead) => !seen.has(lead));
  if (missing.length > 0) {
    f.add('business-rule', 'Observation.component', `ECG has ${seen.size} of the 12 leads, missing ${missing.join(', ')}: an e-valise exam records all 12`);
  }
  if (first?.period !== undefined && first.samples > 0) {
    // Half a period of slack: periods such as 1000/300 ms are rounded when written.
    const durationMs = first.samples * first.period;
    if (durationMs < EXAM_ECG_MIN_MS - first.period / 2) {
      f.add(
        'business-rule',
        `Observation.component[${first.index}].valueSampledData.data`,
        `ECG lasts ${round(durationMs / 1000)} s (${first.samples} samples × ${first.period} ms), an e-valise exam records at least ${EXAM_ECG_MIN_MS / 1000} s`,
      );
    }
  }
}

/** The period when it is a sampling rate an electrocardiograph can have, else an issue and undefined. */
function sanePeriod(period: number, at: string, name: string, f: Findings): number | undefined {
  if (period >= ECG_PERIOD_MS.min && period <= ECG_PERIOD_MS.max) return period;
  const rate = period > 0 ? ` (${round(1000 / period)} Hz)` : '';
  f.add(
    'value',
    at,
    `${name} sampling period ${period} ms${rate} is absurd, the allowed range is ${ECG_PERIOD_MS.min} to ${ECG_PERIOD_MS.max} ms (${1000 / ECG_PERIOD_MS.max}–${1000 / ECG_PERIOD_MS.min} Hz)`,
  );
  return undefined;
}

function origin(sd: SampledData, at: string, name: string, f: Findings): void {
  const o = sd.origin;
  if (o.system !== UCUM) {
    f.add('value', `${at}.origin.system`, `${name} origin ${o.system ? `unit system "${o.system}" is not UCUM` : 'has no unit system'}: use system ${UCUM}`);
  }
  if (!o.code || !ECG_ORIGIN_UNITS.has(o.code)) {
    f.add('value', `${at}.origin.code`, `${name} origin ${o.code ? `unit code "${o.code}" is not` : 'has no unit code, expected'} a UCUM unit of electric potential (uV, mV or V)`);
  }
}

const samePeriod = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(a, b);

/**
 * Samples in SampledData.data: tokens separated by spaces. One pass over the character codes, no
 * split: a 10 s lead at 500 Hz is a 25,000-character string, and an exam has 12 of them.
 */
export function countSamples(data: string | undefined): number {
  if (!data) return 0;
  let count = 0;
  let inToken = false;
  for (let i = 0; i < data.length; i++) {
    const space = data.charCodeAt(i) === 32;
    if (!space && !inToken) count++;
    inToken = !space;
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
// E-valise readings
// ---------------------------------------------------------------------------------------------

const EXAM_CODES_TEXT = 'ECG (MDC 131328), SpO2 (LOINC 2708-6), blood pressure (LOINC 85354-9) or heart rate (LOINC 8867-4)';

/**
 * An e-valise reading is one of the four exam measurements; its identifier repeats its code and
 * patient (serial|patient|code|time), and a resend is matched on that identifier, so both must agree
 * with the Observation.
 */
function evaliseReading(obs: Observation, identifierIndex: number, rule: ObservationRule | undefined, f: Findings): void {
  if (!obs.code.coding?.length) {
    f.add('business-rule', 'Observation.code.coding', `e-valise reading has no code.coding: it must be coded as ${EXAM_CODES_TEXT}`);
  } else if (!rule?.examCategory) {
    wrongCode(f, 'Observation', obs.code, undefined, `e-valise reading has ${codesText(obs.code)}, not an exam code: it must be coded as ${EXAM_CODES_TEXT}`);
  }
  identifierSegments(obs, obs.identifier![identifierIndex]!, `Observation.identifier[${identifierIndex}].value`, rule, f);
  if (rule?.examCategory) category(obs, rule, rule.examCategory, f);
}

function identifierSegments(obs: Observation, identifier: Identifier, at: string, rule: ObservationRule | undefined, f: Findings): void {
  const segments = (identifier.value ?? '').split('|');
  if (segments.length !== 4 || segments.some((s) => s === '')) {
    f.add('value', at, `e-valise reading identifier "${identifier.value ?? ''}" must read deviceSerial|patientId|code|time`);
    return;
  }
  const [, patient, code] = segments as [string, string, string, string];
  const ownCodes = (obs.code.coding ?? []).filter((c) => rule?.codes.some((r) => r.system === c.system && r.code === c.code)).map((c) => c.code);
  if (rule?.examCategory && !ownCodes.includes(code)) {
    f.add(
      'business-rule',
      at,
      `e-valise reading identifier names code ${code} but the ${rule.name} is coded ${ownCodes.join(' and ')}: a resent exam would not be recognised and would be stored twice`,
    );
  }
  const subject = /(?:^|\/)Patient\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/[^/]+)?$/.exec(obs.subject?.reference ?? '')?.[1];
  if (subject !== undefined && subject !== patient) {
    f.add('business-rule', at, `e-valise reading identifier names patient ${patient} but the subject is Patient/${subject}`);
  }
}

function category(obs: Observation, rule: ObservationRule, expected: string, f: Findings): void {
  const categories = obs.category ?? [];
  if (categories.some((c) => c.coding?.some((k) => k.system === OBSERVATION_CATEGORY && k.code === expected))) return;
  let at = 'Observation.category';
  let found = '';
  categories.forEach((c, i) =>
    c.coding?.forEach((k, j) => {
      if (!found && k.system === OBSERVATION_CATEGORY && k.code) {
        at = `Observation.category[${i}].coding[${j}].code`;
        found = k.code;
      }
    }),
  );
  f.add('value', at, `e-valise ${rule.name} ${found ? `has category ${found}` : 'has no observation category'}: it must be ${expected} (${OBSERVATION_CATEGORY})`);
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Collects issues, each sentence followed by which resource it is about. */
class Findings {
  readonly issues: OperationOutcomeIssue[] = [];
  constructor(private readonly about: string) {}

  add(code: 'value' | 'business-rule', expression: string, sentence: string): void {
    this.issues.push({ severity: 'error', code, diagnostics: this.about ? `${sentence} (${this.about})` : sentence, expression: [expression] });
  }
}

/** "Observation <identifier value>, Bundle.entry[2]": the identifier an uploader knows the reading by, else its id. */
function where(type: string, resource: { id?: string; identifier?: Identifier[] }, identifierIndex: number, entry: string | undefined): string {
  const identifier = resource.identifier?.[identifierIndex]?.value ?? resource.identifier?.find((i) => i.value)?.value;
  const name = identifier ? `${type} ${identifier}` : resource.id ? `${type}/${resource.id}` : '';
  return [name, entry].filter(Boolean).join(', ');
}

function hasCode(code: CodeableConcept | undefined, expected: readonly Coding[]): boolean {
  return code?.coding?.some((c) => expected.some((e) => e.system === c.system && e.code === c.code)) ?? false;
}

const SYSTEM_NAMES: Record<string, string> = { [LOINC]: 'LOINC', [EVALISE_CODES.systems.mdc]: 'MDC', 'urn:iso:std:iso:11073:10101': 'MDC' };

function codesText(code: CodeableConcept | undefined): string {
  const codings = code?.coding ?? [];
  if (codings.length === 0) return 'no coded code';
  return `code ${codings.map((c) => `${(c.system && SYSTEM_NAMES[c.system]) ?? c.system ?? '(no system)'} ${c.code ?? '(no code)'}`).join(', ')}`;
}

/** A wrong code, named at the field to fix: the coding's system or code when there is one coding, else the codings. */
function wrongCode(f: Findings, type: string, code: CodeableConcept, expected: Coding | undefined, sentence: string): void {
  const codings = code.coding ?? [];
  let at = `${type}.code.coding`;
  if (codings.length === 1) at += expected && codings[0]!.code === expected.code ? '[0].system' : '[0].code';
  f.add('value', at, sentence);
}

const round = (n: number) => Math.round(n * 10) / 10;
