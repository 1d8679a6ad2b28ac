import { randomUUID } from 'node:crypto';
import type { CodeableConcept, Flag, Resource } from '@medplum/fhirtypes';
import type { SqlExecutor } from './db.js';
import { FhirError } from './errors.js';
import { patientsOf } from './access-policy.js';

/**
 * The telemedicine acts of décret 2010-1229 that need the patient's consent, and the resources
 * that start them. A Consent per patient and act (Consent.category = ACT_SYSTEM|act, status
 * active, provision.period covering now) must exist before an act starts; emergency
 * teleassistance (priority stat) proceeds and leaves a Flag saying consent could not be collected.
 */
export const ACT_SYSTEM = 'https://hub.example/act';
export type TelemedicineAct = 'teleconsultation' | 'teleexpertise' | 'telesurveillance' | 'teleassistance';
const ACTS = new Set<string>(['teleconsultation', 'teleexpertise', 'telesurveillance', 'teleassistance']);

export interface ActStart {
  act: TelemedicineAct;
  patientId: string;
  emergency: boolean;
  /** Where the act is named in the resource, for error messages. */
  path: string;
}

function actIn(concepts: CodeableConcept[] | undefined): TelemedicineAct | undefined {
  for (const c of concepts ?? []) {
    for (const coding of c.coding ?? []) {
      if (coding.system === ACT_SYSTEM && coding.code && ACTS.has(coding.code)) return coding.code as TelemedicineAct;
    }
  }
  return undefined;
}

/** The act a new resource starts: a ServiceRequest (expertise, assistance), an Appointment (consultation), a CarePlan (surveillance). */
export function actStartedBy(resource: Resource): ActStart | undefined {
  let act: TelemedicineAct | undefined;
  let path = '';
  let emergency = false;
  switch (resource.resourceType) {
    case 'ServiceRequest':
      act = actIn(resource.category) ?? actIn(resource.code ? [resource.code] : undefined);
      path = 'ServiceRequest.category';
      emergency = act === 'teleassistance' && resource.priority === 'stat';
      break;
    case 'Appointment':
      act = actIn(resource.serviceType);
      path = 'Appointment.serviceType';
      break;
    case 'CarePlan':
      act = actIn(resource.category);
      path = 'CarePlan.category';
      break;
    default:
      return undefined;
  }
  if (!act) return undefined;
  const patientId = patientsOf(resource)[0];
  if (!patientId) return undefined; // the access rules already refuse a clinical resource without a patient
  return { act, patientId, emergency, path };
}

/** Patients (of the given starts) that have an active Consent for the act right now. */
async function consented(exec: SqlExecutor, starts: ActStart[]): Promise<Set<string>> {
  const rows = await exec.query<{ key: string }>(
    `SELECT DISTINCT p.target_id || '|' || c.value AS key
       FROM sp_reference p
       JOIN sp_token c ON c.resource_type = 'Consent' AND c.id = p.id AND c.code = 'category' AND c.system = $3
       JOIN sp_token s ON s.resource_type = 'Consent' AND s.id = p.id AND s.code = 'status' AND s.value = 'active'
      WHERE p.resource_type = 'Consent' AND p.code = 'patient' AND p.ref = ANY($1::text[]) AND c.value = ANY($2::text[])
        AND NOT EXISTS (SELECT 1 FROM sp_date d WHERE d.resource_type = 'Consent' AND d.id = p.id AND d.code = 'period'
                          AND NOT (d.lo <= now() AND d.hi >= now()))`,
    [starts.map((s) => `Patient/${s.patientId}`), starts.map((s) => s.act), ACT_SYSTEM],
  );
  return new Set(rows.map((r) => r.key));
}

/**
 * Checks consent for the acts the new resources start. Returns Flags to store with them for
 * emergencies that went ahead without consent; throws 422 naming the missing Consent otherwise.
 */
export async function checkConsent(exec: SqlExecutor, started: Resource[], now: string, writtenWith: Resource[] = []): Promise<Flag[]> {
  const starts = started.map(actStartedBy).filter((s): s is ActStart => !!s);
  if (starts.length === 0) return [];
  const ok = await consented(exec, starts);
  // A Consent recorded in the same write (a bundle with the consent and the request) counts too.
  for (const r of writtenWith) {
    if (r.resourceType !== 'Consent' || r.status !== 'active') continue;
    const end = r.provision?.period?.end;
    if (end && Date.parse(end) < Date.parse(now)) continue;
    const patient = r.patient?.reference?.replace(/^Patient\//, '');
    const act = actIn(r.category);
    if (patient && act) ok.add(`${patient}|${act}`);
  }
  const flags: Flag[] = [];
  for (const s of starts) {
    if (ok.has(`${s.patientId}|${s.act}`)) continue;
    if (!s.emergency) {
      throw FhirError.of(
        422,
        'business-rule',
        `no active Consent of Patient/${s.patientId} for ${s.act}: record the patient's consent ` +
          `(Consent with category ${ACT_SYSTEM}|${s.act}, status active) before starting the act`,
        [s.path],
      );
    }
    flags.push({
      resourceType: 'Flag',
      id: randomUUID(),
      status: 'active',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/flag-category', code: 'admin', display: 'Administrative' }] }],
      code: {
        coding: [{ system: ACT_SYSTEM, code: 'consent-not-collected', display: 'Consentement non recueilli (urgence)' }],
        text: `Emergency ${s.act} started without the patient's consent: collect it as soon as possible`,
      },
      subject: { reference: `Patient/${s.patientId}` },
      period: { start: now },
    });
  }
  return flags;
}
