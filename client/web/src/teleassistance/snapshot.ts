/**
 * "Enregistrer un instantané": what the remote doctor saves of a teleassistance vitals stream, as
 * one FHIR transaction of Observations (DESIGN.md, FHIR modelling): SpO2 (LOINC 2708-6, %), heart
 * rate (LOINC 8867-4, /min), and the ECG strip (MDC 131328, one SampledData component for the
 * lead, origin in µV). Pure: no DOM, no I/O.
 *
 * Each Observation carries an identifier made of the snapshot id and its code, and is a
 * conditional create on it: a transaction resent after a lost answer (a satellite link) stores
 * nothing twice. The identifier is not an e-valise reading identifier on purpose: a snapshot is a
 * strip of one lead shorter than an e-valise exam, which the hub's plausibility rules allow only
 * outside exams.
 */
import type { Bundle, BundleEntry, CodeableConcept, Observation, Reference } from '@medplum/fhirtypes';

export const SNAPSHOT_IDENTIFIER_SYSTEM = 'urn:hub:teleassistance-snapshot';

const LOINC = 'http://loinc.org';
const UCUM = 'http://unitsofmeasure.org';
const MDC = 'urn:oid:2.16.840.1.113883.6.24';
const CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';

/** MDC codes of the 12 leads (DESIGN.md). */
export const ECG_LEAD_CODES: Record<string, string> = {
  I: '131329',
  II: '131330',
  III: '131389',
  aVR: '131390',
  aVL: '131391',
  aVF: '131392',
  V1: '131331',
  V2: '131332',
  V3: '131333',
  V4: '131334',
  V5: '131335',
  V6: '131336',
};

export interface SnapshotInput {
  /** Unique per snapshot (a UUID): the idempotency key of its Observations. */
  snapshotId: string;
  /** "Patient/<id>", the ServiceRequest's subject. */
  subject: string;
  /** "ServiceRequest/<id>" of the teleassistance. */
  basedOn?: string;
  /** "Practitioner/<id>" of the doctor who saves it. */
  performer?: string;
  /** ISO 8601 instant the readings describe. */
  effective: string;
  spo2?: number;
  heartRate?: number;
  ecg?: { lead: string; rateHz: number; samples: readonly number[] };
}

const category = (code: 'vital-signs' | 'procedure', display: string): CodeableConcept[] => [
  { coding: [{ system: CATEGORY, code, display }] },
];

/** A transaction Bundle (conditional creates) of the snapshot's Observations; throws on an input the hub would refuse. */
export function snapshotBundle(input: SnapshotInput): Bundle {
  if (!/^Patient\/[A-Za-z0-9\-.]{1,64}$/.test(input.subject)) throw new Error(`subject must be a Patient reference, got "${input.subject}"`);
  const common = (code: string): Pick<Observation, 'identifier' | 'status' | 'subject' | 'effectiveDateTime' | 'basedOn' | 'performer'> => ({
    identifier: [{ system: SNAPSHOT_IDENTIFIER_SYSTEM, value: `${input.snapshotId}:${code}` }],
    status: 'final',
    subject: { reference: input.subject },
    effectiveDateTime: input.effective,
    ...(input.basedOn ? { basedOn: [{ reference: input.basedOn }] } : {}),
    ...(input.performer ? { performer: [{ reference: input.performer } satisfies Reference] } : {}),
  });
  const observations: { code: string; resource: Observation }[] = [];
  if (input.spo2 !== undefined) {
    observations.push({
      code: '2708-6',
      resource: {
        resourceType: 'Observation',
        ...common('2708-6'),
        category: category('vital-signs', 'Vital Signs'),
        code: {
          coding: [
            { system: LOINC, code: '2708-6', display: 'Oxygen saturation in Arterial blood' },
            { system: LOINC, code: '59408-5', display: 'Oxygen saturation in Arterial blood by Pulse oximetry' },
          ],
          text: 'SpO2',
        },
        valueQuantity: { value: input.spo2, unit: '%', system: UCUM, code: '%' },
      },
    });
  }
  if (input.heartRate !== undefined) {
    observations.push({
      code: '8867-4',
      resource: {
        resourceType: 'Observation',
        ...common('8867-4'),
        category: category('vital-signs', 'Vital Signs'),
        code: { coding: [{ system: LOINC, code: '8867-4', display: 'Heart rate' }], text: 'Fréquence cardiaque' },
        valueQuantity: { value: input.heartRate, unit: '/min', system: UCUM, code: '/min' },
      },
    });
  }
  const ecg = input.ecg;
  if (ecg && ecg.samples.length > 0) {
    const leadCode = ECG_LEAD_CODES[ecg.lead];
    if (!leadCode) throw new Error(`unknown ECG lead ${ecg.lead}`);
    const period = 1000 / ecg.rateHz;
    if (!(period >= 0.5 && period <= 10)) throw new Error(`ECG rate ${ecg.rateHz} Hz is outside 100–2000 Hz`);
    observations.push({
      code: '131328',
      resource: {
        resourceType: 'Observation',
        ...common('131328'),
        category: category('procedure', 'Procedure'),
        code: { coding: [{ system: MDC, code: '131328', display: 'MDC_ECG_ELEC_POTL' }], text: `ECG (dérivation ${ecg.lead})` },
        component: [
          {
            code: { coding: [{ system: MDC, code: leadCode, display: `MDC_ECG_ELEC_POTL_${ecg.lead.toUpperCase()}` }] },
            valueSampledData: {
              origin: { value: 0, unit: 'uV', system: UCUM, code: 'uV' },
              period,
              dimensions: 1,
              data: ecg.samples.map((s) => String(Math.round(s))).join(' '),
            },
          },
        ],
      },
    });
  }
  if (observations.length === 0) throw new Error('nothing to save: no reading received yet');
  const entry: BundleEntry[] = observations.map(({ code, resource }, index) => ({
    fullUrl: `urn:uuid:${uuidFrom(input.snapshotId, index)}`,
    resource,
    request: {
      method: 'POST',
      url: 'Observation',
      ifNoneExist: `identifier=${encodeURIComponent(`${SNAPSHOT_IDENTIFIER_SYSTEM}|${input.snapshotId}:${code}`)}`,
    },
  }));
  return { resourceType: 'Bundle', type: 'transaction', entry };
}

/** A urn:uuid for entry `index` of a snapshot whose id is a UUID: stable across resends. */
function uuidFrom(snapshotId: string, index: number): string {
  const hex = snapshotId.replace(/[^0-9a-f]/gi, '').toLowerCase().padEnd(32, '0').slice(0, 32);
  const last = ((parseInt(hex.slice(28), 16) + index) >>> 0).toString(16).padStart(4, '0').slice(-4);
  const h = hex.slice(0, 28) + last;
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
