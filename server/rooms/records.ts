/**
 * What a finished session leaves in the patient's record (the law asks for a written report):
 * an Encounter (class VR, its period and who took part), the doctor's report as a
 * DocumentReference, the Appointment fulfilled (or the teleassistance request completed), all in
 * one transaction written with the doctor's rights, and an AuditEvent of the session. Every entry
 * is a conditional create on the session's identifier, so an `end` retried after a lost answer
 * stores nothing twice.
 */
import { randomUUID } from 'node:crypto';
import type { Appointment, Bundle, BundleEntry, DocumentReference, Encounter, Resource, ServiceRequest } from '@medplum/fhirtypes';
import type { UserContext } from '../../fhir/access.js';
import { auditEvent } from '../../fhir/audit.js';
import { ACT_SYSTEM } from '../../fhir/consent.js';
import type { FhirStore } from '../../fhir/store.js';
import type { RoomKind, RoomRole } from './protocol.js';

export const SESSION_SYSTEM = 'urn:hub:room-session';

export interface SessionAttendance {
  practitionerId?: string;
  displayName: string;
  role: RoomRole;
  /** When the participant entered the media room (admitted), and left it. */
  start: string;
  end?: string;
}

export interface FinishedSession {
  roomId: string;
  kind: RoomKind;
  basedOn: string;
  patientId: string;
  /** When the first participant was admitted: the session's identifier and the Encounter's start. */
  startedAt: string;
  endedAt: string;
  attendance: SessionAttendance[];
  report: string;
  title?: string;
  /** The doctor ending the session: the report's author, and whose rights write it. */
  author: UserContext;
}

const TYPE_CODE = { teleconsultation: 'PPRF', teleassistance: 'PPRF' } as const;

export async function storeSessionRecord(store: FhirStore, session: FinishedSession): Promise<{ encounter: string; report: string }> {
  const identifier = { system: SESSION_SYSTEM, value: `${session.roomId}|${session.startedAt}` };
  const condition = `identifier=${SESSION_SYSTEM}|${encodeURIComponent(identifier.value)}`;
  const encounterUrl = `urn:uuid:${randomUUID()}`;
  const subject = { reference: `Patient/${session.patientId}` };
  const act = { system: ACT_SYSTEM, code: session.kind, display: session.kind === 'teleconsultation' ? 'Téléconsultation' : 'Téléassistance' };
  const period = { start: session.startedAt, end: session.endedAt };

  const encounter: Encounter = {
    resourceType: 'Encounter',
    identifier: [identifier],
    status: 'finished',
    class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'VR', display: 'virtual' },
    type: [{ coding: [act] }],
    subject,
    period,
    participant: session.attendance
      .filter((a) => a.practitionerId)
      .map((a) => ({
        type: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType', code: a.role === 'host' ? TYPE_CODE[session.kind] : 'PART' }] }],
        individual: { reference: `Practitioner/${a.practitionerId}`, display: a.displayName },
        period: { start: a.start, end: a.end ?? session.endedAt },
      })),
    ...(session.basedOn.startsWith('Appointment/') ? { appointment: [{ reference: session.basedOn }] } : { basedOn: [{ reference: session.basedOn }] }),
  };

  const title = session.title ?? (session.kind === 'teleconsultation' ? 'Compte rendu de téléconsultation' : 'Compte rendu de téléassistance');
  const authorRef = session.author.practitionerId ? [{ reference: `Practitioner/${session.author.practitionerId}` }] : undefined;
  const report: DocumentReference = {
    resourceType: 'DocumentReference',
    identifier: [identifier],
    status: 'current',
    docStatus: 'final',
    type: { coding: [{ system: 'http://loinc.org', code: '11488-4', display: 'Consult note' }], text: title },
    category: [{ coding: [act] }],
    subject,
    date: session.endedAt,
    ...(authorRef ? { author: authorRef } : {}),
    description: title,
    content: [{ attachment: { contentType: 'text/plain; charset=utf-8', language: 'fr', title, creation: session.endedAt, data: Buffer.from(session.report, 'utf8').toString('base64') } }],
    context: { encounter: [{ reference: encounterUrl }], period },
  };

  const entries: BundleEntry[] = [
    { fullUrl: encounterUrl, resource: encounter, request: { method: 'POST', url: 'Encounter', ifNoneExist: condition } },
    { resource: report, request: { method: 'POST', url: 'DocumentReference', ifNoneExist: condition } },
  ];
  // The act is done: the appointment fulfilled, the request completed.
  const [type, id] = session.basedOn.split('/') as ['Appointment' | 'ServiceRequest', string];
  const current = (await store.repo.read(session.author, type, id)) as Appointment | ServiceRequest;
  const done: Resource = current.resourceType === 'Appointment' ? { ...current, status: 'fulfilled' } : { ...current, status: 'completed' };
  if (current.status !== done.status) {
    entries.push({ resource: done, request: { method: 'PUT', url: `${type}/${id}`, ...(current.meta?.versionId ? { ifMatch: `W/"${current.meta.versionId}"` } : {}) } });
  }
  const response = await store.repo.transaction(session.author, { resourceType: 'Bundle', type: 'transaction', entry: entries } as Bundle);
  const location = (i: number) => (response.entry?.[i]?.response?.location ?? '').replace(/^.*?\b(Encounter|DocumentReference)\//, '$1/').replace(/\/_history\/.*$/, '');

  const who = session.attendance.map((a) => `${a.displayName} (${a.role === 'host' ? 'médecin' : 'participant'}, ${a.start} → ${a.end ?? session.endedAt})`).join('; ');
  await store.repo.recordAuditEvent(
    auditEvent(session.author, {
      interaction: 'operation',
      resources: [session.basedOn, location(0), location(1)],
      patientIds: [session.patientId],
      outcome: 'success',
      description: `${act.display} ${session.roomId} du ${session.startedAt} au ${session.endedAt} : ${who}`,
    }),
  );
  return { encounter: location(0), report: location(1) };
}
