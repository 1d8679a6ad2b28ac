/**
 * What the app reads from and writes to the hub's FHIR store (/fhir/R4). The store applies the
 * care-based access rules, so a search returns only what this professional may see.
 */
import type { Appointment, Bundle, HumanName, Patient, Reference, Resource, ServiceRequest } from '@medplum/fhirtypes';
import type { Session } from './session.js';

export const ACT_SYSTEM = 'https://hub.example/act';
const FHIR = '/fhir/R4';

export interface ConsultationItem {
  appointment: Appointment;
  patientName?: string;
}

export interface AssistanceItem {
  request: ServiceRequest;
  patientName?: string;
}

const PRIORITY_ORDER: Record<string, number> = { stat: 0, asap: 1, urgent: 2, routine: 3 };

export function humanName(names: HumanName[] | undefined): string | undefined {
  const name = names?.find((n) => n.use === 'official') ?? names?.[0];
  if (!name) return undefined;
  if (name.text) return name.text;
  return [...(name.prefix ?? []), ...(name.given ?? []), name.family].filter(Boolean).join(' ') || undefined;
}

function resourcesOf<T extends Resource>(bundle: Bundle, type: T['resourceType'], mode?: 'match' | 'include'): T[] {
  return (bundle.entry ?? [])
    .filter((e) => e.resource?.resourceType === type && (!mode || (e.search?.mode ?? 'match') === mode))
    .map((e) => e.resource as T);
}

function patientNames(bundle: Bundle): Map<string, string> {
  const names = new Map<string, string>();
  for (const p of resourcesOf<Patient>(bundle, 'Patient')) {
    const name = humanName(p.name);
    if (p.id && name) names.set(`Patient/${p.id}`, name);
  }
  return names;
}

const nameOf = (names: Map<string, string>, ref: Reference | undefined) => (ref?.reference ? (names.get(ref.reference) ?? ref.display) : ref?.display);

/** Booked teleconsultations this professional takes part in, soonest first. */
export async function listConsultations(session: Session): Promise<ConsultationItem[]> {
  const query = new URLSearchParams({
    status: 'booked,arrived',
    'service-type': `${ACT_SYSTEM}|teleconsultation`,
    _sort: 'date',
    _count: '50',
    _include: 'Appointment:patient',
  });
  const bundle = await session.json<Bundle>(`${FHIR}/Appointment?${query}`);
  const names = patientNames(bundle);
  return resourcesOf<Appointment>(bundle, 'Appointment', 'match').map((appointment) => {
    const patient = appointment.participant.find((p) => p.actor?.reference?.startsWith('Patient/'))?.actor;
    const patientName = nameOf(names, patient);
    return { appointment, ...(patientName ? { patientName } : {}) };
  });
}

/** Open teleassistance requests, emergencies (priority stat) first, then the newest. */
export async function listAssistanceRequests(session: Session): Promise<AssistanceItem[]> {
  const query = new URLSearchParams({
    status: 'active',
    category: `${ACT_SYSTEM}|teleassistance`,
    _sort: '-authored',
    _count: '50',
    _include: 'ServiceRequest:subject',
  });
  const bundle = await session.json<Bundle>(`${FHIR}/ServiceRequest?${query}`);
  const names = patientNames(bundle);
  return sortAssistance(
    resourcesOf<ServiceRequest>(bundle, 'ServiceRequest', 'match').map((request) => {
      const patientName = nameOf(names, request.subject);
      return { request, ...(patientName ? { patientName } : {}) };
    }),
  );
}

export function sortAssistance(items: AssistanceItem[]): AssistanceItem[] {
  const rank = (r: ServiceRequest) => PRIORITY_ORDER[r.priority ?? 'routine'] ?? 3;
  return [...items].sort((a, b) => rank(a.request) - rank(b.request) || (b.request.authoredOn ?? '').localeCompare(a.request.authoredOn ?? ''));
}

export async function readResource<T extends Resource>(session: Session, type: T['resourceType'], id: string): Promise<T> {
  return session.json<T>(`${FHIR}/${type}/${encodeURIComponent(id)}`);
}

export async function readPatientName(session: Session, reference: string | undefined): Promise<string | undefined> {
  const id = reference?.match(/^Patient\/([^/]+)$/)?.[1];
  if (!id) return undefined;
  try {
    return humanName((await readResource<Patient>(session, 'Patient', id)).name);
  } catch {
    return undefined;
  }
}

/** Posts a transaction Bundle; resolves with the Type/id of each entry. Safe to resend when its entries are conditional creates. */
export async function postTransaction(session: Session, bundle: Bundle): Promise<string[]> {
  const send = () =>
    session.json<Bundle>(FHIR, { method: 'POST', body: JSON.stringify(bundle), headers: { 'Content-Type': 'application/fhir+json' } });
  let response: Bundle;
  try {
    response = await send();
  } catch (err) {
    // A lost answer on a bad link: the entries are conditional creates, so resending stores nothing twice.
    if (err instanceof TypeError) response = await send();
    else throw err;
  }
  return (response.entry ?? []).map((e) => {
    const match = /([A-Za-z]+\/[^/]+)\/_history\//.exec(e.response?.location ?? '') ?? /^([A-Za-z]+\/[^/]+)$/.exec(e.response?.location ?? '');
    return match?.[1] ?? e.response?.location ?? '';
  });
}
