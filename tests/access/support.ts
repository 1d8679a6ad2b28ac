import { randomUUID } from 'node:crypto';
import { Client, type FhirResource } from 'fhir-kit-client';
import type {
  Bundle,
  BundleEntry,
  CodeableConcept,
  Consent,
  Observation,
  OperationOutcome,
  Patient,
  Resource,
  ServiceRequest,
  Task,
} from '@medplum/fhirtypes';
import { SYSTEM } from '../../fhir/access.js';
import { ACT_SYSTEM, type TelemedicineAct } from '../../fhir/consent.js';
import { DEMO_IDS, INS_NIR_SYSTEM, demoBundle } from '../../fhir/demo/demo-data.js';
import { seedOnce } from '../../fhir/store.js';
import { DEMO_ACCOUNTS } from '../../server/auth/demo-accounts.js';
import { startTestHub, type Backend, type TestHub, type TestHubOptions } from '../fhir/harness.js';

/**
 * Shared pieces of the access-control tests (issue 3): the demo professionals, a hub with the
 * demo directory loaded as the hub loads it at start (LOAD_DEMO_DATA), and builders of the
 * clinical resources professionals create through the API.
 */

export const USER = {
  gpTende: DEMO_ACCOUNTS.gpTende.username,
  gpVesubie: DEMO_ACCOUNTS.gpVesubie.username,
  cardiologist: DEMO_ACCOUNTS.cardiologist.username,
  pulmonologist: DEMO_ACCOUNTS.pulmonologist.username,
  geriatrician: DEMO_ACCOUNTS.geriatrician.username,
  ehpadNurse: DEMO_ACCOUNTS.ehpadNurse.username,
  samuCorrespondent: DEMO_ACCOUNTS.samuCorrespondent.username,
  regulator: DEMO_ACCOUNTS.regulator.username,
  coordinator: DEMO_ACCOUNTS.coordinator.username,
  admin: DEMO_ACCOUNTS.admin.username,
} as const;

export const ORG = DEMO_IDS.organizations;
export const PRACT = DEMO_IDS.practitioners;
export const ref = (type: string, id: string) => ({ reference: `${type}/${id}` });

/**
 * A test hub with the demo directory (organizations, practitioners, roles, demo patients and
 * their care teams) loaded the way server/main.ts loads it: once, by the hub itself.
 */
export async function startAccessHub(backend: Backend, options: TestHubOptions = {}): Promise<TestHub> {
  const hub = await startTestHub(backend, { implicitAuth: false, ...options });
  await seedOnce(hub.store, 'demo-v1', async () => {
    await hub.store.repo.transaction(SYSTEM, demoBundle());
  });
  return hub;
}

// ------------------------------------------------------------------ HTTP helpers

export interface Failure {
  status: number;
  outcome: OperationOutcome;
}

/** Awaits a request that must fail over HTTP and returns its status and body. */
export async function failure(request: Promise<unknown>): Promise<Failure> {
  try {
    await request;
  } catch (err) {
    const response = (err as { response?: { status: number; data: unknown } }).response;
    if (!response) throw err;
    return { status: response.status, outcome: response.data as OperationOutcome };
  }
  throw new Error('the request succeeded but was expected to fail');
}

/** What the hub answers for something that does not exist, or that the caller may not know exists. */
export function notFoundOutcome(what: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'not-found', diagnostics: `${what} not found` }] };
}

export const fhirBody = (resource: Resource | Bundle): FhirResource => resource as unknown as FhirResource;

export function httpStatus(result: unknown): number {
  const response = Client.httpFor(result as FhirResource).response;
  if (!response) throw new Error('no HTTP response attached to this result');
  return response.status;
}

export async function create<T extends Resource>(client: Client, resource: T, headers?: Record<string, string>): Promise<T> {
  return (await client.create({ resourceType: resource.resourceType, body: fhirBody(resource), ...(headers ? { options: { headers } } : {}) })) as unknown as T;
}

export async function read<T extends Resource>(client: Client, resourceType: T['resourceType'], id: string): Promise<T> {
  return (await client.read({ resourceType, id })) as unknown as T;
}

export async function update<T extends Resource>(client: Client, resource: T): Promise<T> {
  return (await client.update({ resourceType: resource.resourceType, id: resource.id!, body: fhirBody(resource) })) as unknown as T;
}

export async function search(client: Client, resourceType: string, searchParams: Record<string, string | string[]> = {}): Promise<Bundle> {
  return (await client.search({ resourceType, searchParams })) as unknown as Bundle;
}

export async function transaction(client: Client, entry: BundleEntry[], type: 'transaction' | 'batch' = 'transaction'): Promise<Bundle> {
  const bundle: Bundle = { resourceType: 'Bundle', type, entry };
  return (type === 'transaction' ? await client.transaction({ body: fhirBody(bundle) }) : await client.batch({ body: fhirBody(bundle) })) as unknown as Bundle;
}

/** Type/id of every resource of a bundle (matches and includes). */
export function refsOf(bundle: Bundle): string[] {
  return (bundle.entry ?? []).map((e) => `${e.resource!.resourceType}/${e.resource!.id}`).sort();
}

export function idsOf(bundle: Bundle): string[] {
  return (bundle.entry ?? []).map((e) => e.resource!.id!).sort();
}

/** How many resources match, as the server counts them with _total=accurate. */
export async function total(client: Client, resourceType: string, searchParams: Record<string, string> = {}): Promise<number> {
  const bundle = await search(client, resourceType, { ...searchParams, _total: 'accurate', _count: '0' });
  if (bundle.total === undefined) throw new Error(`no total in the ${resourceType} bundle`);
  return bundle.total;
}

/** A raw JSON request to the hub's /api routes. */
export async function api<T = unknown>(hub: TestHub, method: string, path: string, token: string | undefined, json?: unknown): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${hub.rootUrl}${path}`, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // keep the text
  }
  return { status: response.status, body: body as T };
}

export const sorted = (values: string[]) => [...values].sort();
export const unique = (prefix = 'u') => `${prefix}-${randomUUID().slice(0, 8)}`;

// ------------------------------------------------------------------ clinical resources

const LOINC = 'http://loinc.org';
const VITAL_SIGNS: CodeableConcept[] = [
  { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs', display: 'Vital Signs' }] },
];

/** A fictitious INS-NIR (13 random digits and their key). */
export function fakeNir(): string {
  const body = String(1_000_000_000_000 + Math.floor(Math.random() * 8_999_999_999_999));
  return body + String(97n - (BigInt(body) % 97n)).padStart(2, '0');
}

/** A patient as a professional registers them: followed by the professional's organization. */
export function newPatient(organizationId: string, family: string, given = 'Jeanne', nir = fakeNir()): Patient {
  return {
    resourceType: 'Patient',
    identifier: [{ system: INS_NIR_SYSTEM, value: nir }],
    active: true,
    name: [{ use: 'official', family, given: [given] }],
    gender: 'female',
    birthDate: '1950-04-12',
    managingOrganization: ref('Organization', organizationId),
  };
}

export interface VitalSpec {
  loinc: string;
  display: string;
  value: number;
  unit: string;
  code: string;
}

export const HEART_RATE: VitalSpec = { loinc: '8867-4', display: 'Heart rate', value: 72, unit: '/min', code: '/min' };
export const SPO2: VitalSpec = { loinc: '2708-6', display: 'Oxygen saturation in Arterial blood', value: 96, unit: '%', code: '%' };
export const RESP_RATE: VitalSpec = { loinc: '9279-1', display: 'Respiratory rate', value: 16, unit: '/min', code: '/min' };

/** A vital sign measured by a professional (performer) for a patient. */
export function vital(patientId: string, performerPractitionerId: string, spec: VitalSpec, effective = '2026-03-02T09:30:00Z', identifier?: string): Observation {
  return {
    resourceType: 'Observation',
    ...(identifier ? { identifier: [{ system: 'urn:ietf:rfc:3986', value: identifier }] } : {}),
    status: 'final',
    category: VITAL_SIGNS,
    code: { coding: [{ system: LOINC, code: spec.loinc, display: spec.display }] },
    subject: ref('Patient', patientId),
    performer: [ref('Practitioner', performerPractitionerId)],
    effectiveDateTime: effective,
    valueQuantity: { value: spec.value, unit: spec.unit, system: 'http://unitsofmeasure.org', code: spec.code },
  };
}

/**
 * An e-valise exam as the uploader sends it: a transaction of conditional creates on the device
 * reading identifiers (a resent exam never duplicates).
 */
export function examEntries(patientId: string, performerPractitionerId: string, specs: VitalSpec[] = [HEART_RATE, SPO2, RESP_RATE]): BundleEntry[] {
  const serial = unique('evalise');
  return specs.map((spec) => {
    const identifier = `urn:evalise:${serial}:${patientId}:${spec.loinc}:2026-03-02T09:30:00Z`;
    return {
      fullUrl: `urn:uuid:${randomUUID()}`,
      resource: vital(patientId, performerPractitionerId, spec, '2026-03-02T09:30:00Z', identifier),
      request: { method: 'POST', url: 'Observation', ifNoneExist: `identifier=urn:ietf:rfc:3986|${identifier}` },
    };
  });
}

/** Ids created by a transaction, in entry order, read from the response locations. */
export function createdIds(response: Bundle): string[] {
  return (response.entry ?? []).map((e) => {
    const m = /\/([A-Za-z]+)\/([^/]+)\/_history\//.exec(e.response?.location ?? '');
    if (!m) throw new Error(`no location in ${JSON.stringify(e.response)}`);
    return m[2]!;
  });
}

export const act = (code: TelemedicineAct | string): CodeableConcept => ({ coding: [{ system: ACT_SYSTEM, code }] });

/** The patient's consent to one telemedicine act, recorded by the professional who collected it. */
export function consent(patientId: string, code: TelemedicineAct, options: { status?: Consent['status']; period?: { start?: string; end?: string }; organizationId?: string } = {}): Consent {
  return {
    resourceType: 'Consent',
    status: options.status ?? 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'treatment' }] },
    category: [act(code)],
    patient: ref('Patient', patientId),
    dateTime: new Date().toISOString(),
    performer: [ref('Patient', patientId)],
    ...(options.organizationId ? { organization: [ref('Organization', options.organizationId)] } : {}),
    policyRule: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'OPTIN' }] },
    provision: { type: 'permit', ...(options.period ? { period: options.period } : {}) },
  };
}

/** A tele-expertise request of a GP to a specialty pool (the department's Organization). */
export function expertiseRequest(patientId: string, requesterPractitionerId: string, poolOrganizationId: string, extra: Partial<ServiceRequest> = {}): ServiceRequest {
  return {
    resourceType: 'ServiceRequest',
    status: 'active',
    intent: 'order',
    category: [act('teleexpertise')],
    code: { text: 'Avis cardiologique sur ECG 12 dérivations' },
    subject: ref('Patient', patientId),
    requester: ref('Practitioner', requesterPractitionerId),
    performer: [ref('Organization', poolOrganizationId)],
    authoredOn: new Date().toISOString(),
    ...extra,
  };
}

/** The worklist Task of a tele-expertise request, addressed to the pool. */
export function expertiseTask(patientId: string, requesterPractitionerId: string, poolOrganizationId: string, serviceRequestRef: string): Task {
  return {
    resourceType: 'Task',
    status: 'requested',
    intent: 'order',
    code: { text: 'Téléexpertise' },
    focus: { reference: serviceRequestRef },
    for: ref('Patient', patientId),
    requester: ref('Practitioner', requesterPractitionerId),
    owner: ref('Organization', poolOrganizationId),
    authoredOn: new Date().toISOString(),
  };
}
