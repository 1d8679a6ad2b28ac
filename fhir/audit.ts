import { randomUUID } from 'node:crypto';
import type { AuditEvent, AuditEventEntity } from '@medplum/fhirtypes';
import type { AccessContext } from './access.js';

export type Interaction =
  | 'read'
  | 'vread'
  | 'history-instance'
  | 'history-type'
  | 'search-type'
  | 'create'
  | 'update'
  | 'patch'
  | 'delete'
  | 'operation'
  | 'transaction'
  | 'batch';

const ACTION: Record<Interaction, AuditEvent['action']> = {
  read: 'R',
  vread: 'R',
  'history-instance': 'R',
  'history-type': 'R',
  'search-type': 'E',
  create: 'C',
  update: 'U',
  patch: 'U',
  delete: 'D',
  operation: 'E',
  transaction: 'E',
  batch: 'E',
};

/** References listed one by one in an AuditEvent; past this the query and the patients still are. */
const MAX_LISTED = 100;

export interface AuditFacts {
  interaction: Interaction;
  /** Resources read or written, as Type/id. */
  resources: string[];
  /** The patients whose data was reached: the "who accessed my record" query searches on these. */
  patientIds: string[];
  outcome: 'success' | 'denied' | 'failed';
  /** Search query or operation, as sent. */
  query?: string;
  description?: string;
  /** Break-the-glass access (v3 ActReason BTG). */
  emergency?: boolean;
}

const OUTCOME = { success: '0', denied: '4', failed: '8' } as const;

/** One AuditEvent (R4, DICOM/HL7 codes) for one access by a professional, or a hub action. */
export function auditEvent(ctx: AccessContext, facts: AuditFacts, now = new Date().toISOString()): AuditEvent {
  const entity: AuditEventEntity[] = [
    ...[...new Set(facts.patientIds)].map((id) => ({
      what: { reference: `Patient/${id}` },
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '1', display: 'Person' },
      role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '1', display: 'Patient' },
    })),
    ...facts.resources
      .filter((r) => !facts.patientIds.includes(r.replace(/^Patient\//, '')) || !r.startsWith('Patient/'))
      .slice(0, MAX_LISTED)
      .map((reference) => ({ what: { reference }, type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' } })),
  ];
  if (facts.query !== undefined) {
    entity.push({
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-entity-type', code: '2', display: 'System Object' },
      role: { system: 'http://terminology.hl7.org/CodeSystem/object-role', code: '24', display: 'Query' },
      query: Buffer.from(facts.query).toString('base64'),
    });
  }
  return {
    resourceType: 'AuditEvent',
    id: randomUUID(),
    type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest', display: 'RESTful Operation' },
    subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: facts.interaction }],
    action: ACTION[facts.interaction],
    recorded: now,
    outcome: OUTCOME[facts.outcome],
    ...(facts.description ? { outcomeDesc: facts.description } : {}),
    ...(facts.emergency
      ? { purposeOfEvent: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: 'BTG', display: 'break the glass' }] }] }
      : {}),
    agent: [agentOf(ctx)],
    source: { observer: { display: 'telemedicine-hub' }, type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }] },
    ...(entity.length > 0 ? { entity } : {}),
  };
}

function agentOf(ctx: AccessContext): NonNullable<AuditEvent['agent']>[number] {
  if (ctx.kind === 'system') {
    return { requestor: false, who: { display: `hub: ${ctx.reason}` }, type: { coding: [{ system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110150', display: 'Application' }] } };
  }
  return {
    requestor: true,
    who: ctx.practitionerId ? { reference: `Practitioner/${ctx.practitionerId}`, display: ctx.username } : { display: ctx.username },
    altId: ctx.accountId,
    role: [{ coding: [{ system: 'https://hub.example/role', code: ctx.role }] }],
    ...(ctx.ip ? { network: { address: ctx.ip, type: '2' as const } } : {}),
  };
}

export interface AuthenticationFacts {
  action: 'login' | 'logout';
  outcome: 'success' | 'failed';
  username: string;
  accountId?: string;
  practitionerId?: string;
  role?: string;
  ip?: string;
  userAgent?: string;
  /** Why a login failed (unknown-user, bad-password, locked, disabled). */
  reason?: string;
}

/** A login or logout (DICOM "User Authentication"), successful or not. */
export function authenticationEvent(facts: AuthenticationFacts, now = new Date().toISOString()): AuditEvent {
  return {
    resourceType: 'AuditEvent',
    id: randomUUID(),
    type: { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110114', display: 'User Authentication' },
    subtype: [
      facts.action === 'login'
        ? { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110122', display: 'Login' }
        : { system: 'http://dicom.nema.org/resources/ontology/DCM', code: '110123', display: 'Logout' },
    ],
    action: 'E',
    recorded: now,
    outcome: facts.outcome === 'success' ? '0' : '4',
    ...(facts.reason ? { outcomeDesc: facts.reason } : {}),
    agent: [
      {
        requestor: true,
        who: facts.practitionerId ? { reference: `Practitioner/${facts.practitionerId}`, display: facts.username } : { display: facts.username },
        ...(facts.accountId ? { altId: facts.accountId } : {}),
        ...(facts.role ? { role: [{ coding: [{ system: 'https://hub.example/role', code: facts.role }] }] } : {}),
        ...(facts.ip ? { network: { address: facts.ip, type: '2' as const } } : {}),
      },
    ],
    source: { observer: { display: 'telemedicine-hub' }, type: [{ system: 'http://terminology.hl7.org/CodeSystem/security-source-type', code: '4', display: 'Application Server' }] },
  };
}
