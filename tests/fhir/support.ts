import { randomUUID } from 'node:crypto';
import { Client, type FhirResource } from 'fhir-kit-client';
import type { Bundle, ExtractResource, OperationOutcome, Organization, Patient, Practitioner, Reference, Resource, ResourceType } from '@medplum/fhirtypes';
import { DEMO_IDS } from '../../fhir/demo/demo-data.js';

/**
 * Typed helpers over fhir-kit-client for the FHIR REST tests: the client speaks in untyped
 * records, the tests in @medplum/fhirtypes resources.
 */

export interface Failure {
  status: number;
  outcome: OperationOutcome;
}

/** Awaits a request that must fail over HTTP and returns its status and OperationOutcome. */
export async function failure(request: Promise<unknown> | undefined): Promise<Failure> {
  try {
    await request;
  } catch (err) {
    const response = (err as { response?: { status: number; data: unknown } }).response;
    if (!response) throw err;
    return { status: response.status, outcome: response.data as OperationOutcome };
  }
  throw new Error('the request succeeded but was expected to fail');
}

/**
 * The MSP of Tende, the organization of the account the tests act as (DEFAULT_TEST_USER, the GP of
 * Tende): the Patients it manages are in the GP's care, and a Patient the GP creates must name it.
 */
export const TENDE_MSP: Reference<Organization> = { reference: `Organization/${DEMO_IDS.organizations.mspTende}` };

/** The GP of Tende as a performer or author: what they wrote themselves stays readable to them. */
export const TENDE_GP: Reference<Practitioner> = { reference: `Practitioner/${DEMO_IDS.practitioners.gpTende}` };

/** A Patient (not stored) followed by the MSP of Tende, as the GP of Tende records their patients. */
export function followed(patient: Partial<Patient> = {}): Patient {
  return { ...patient, resourceType: 'Patient', managingOrganization: TENDE_MSP };
}

/**
 * Stores a Patient followed by the MSP of Tende, so that the GP may record and read their data:
 * created with POST, or with PUT at the client-chosen id when `extra` has one.
 */
export async function followedPatient(client: Client, extra: Partial<Patient> = {}): Promise<Patient> {
  return extra.id ? put(client, followed(extra)) : create(client, followed(extra));
}

/** A reference to a Patient. */
export const patientRef = (patient: Patient | string): Reference<Patient> => ({ reference: `Patient/${typeof patient === 'string' ? patient : patient.id}` });

/** A value unique to one test, so tests sharing a hub never see each other's resources. */
export function unique(prefix = 'u'): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** The HTTP response a fhir-kit-client result came from (status and headers). */
export function httpResponse(result: Resource | FhirResource): Response {
  const response = Client.httpFor(result as FhirResource).response;
  if (!response) throw new Error('no HTTP response attached to this result');
  return response;
}

export const body = (resource: Resource): FhirResource => resource as unknown as FhirResource;

/** POST; the result is typed by resourceType, so object literals come back as full resources. */
export async function create<K extends ResourceType>(client: Client, resource: ExtractResource<K>): Promise<ExtractResource<K>> {
  return (await client.create({ resourceType: resource.resourceType, body: body(resource) })) as unknown as ExtractResource<K>;
}

export async function read<T extends Resource>(client: Client, resourceType: T['resourceType'], id: string): Promise<T> {
  return (await client.read({ resourceType, id })) as unknown as T;
}

/** PUT with the resource's own id (update, or create with a client-chosen id). */
export async function put<T extends Resource>(client: Client, resource: T, headers?: Record<string, string>): Promise<T> {
  return (await client.update({
    resourceType: resource.resourceType,
    id: resource.id!,
    body: body(resource),
    options: headers ? { headers } : undefined,
  })) as unknown as T;
}

export async function search(client: Client, resourceType: string, searchParams: Record<string, string | string[]> = {}): Promise<Bundle> {
  return (await client.search({ resourceType, searchParams })) as unknown as Bundle;
}

/** GET of a path relative to the base URL, for queries fhir-kit-client's parameter object cannot order. */
export async function get<T = Bundle>(client: Client, path: string): Promise<T> {
  return (await client.request(path)) as unknown as T;
}

/** Ids of the entries found as matches (search.mode "match"), in bundle order. */
export function matchIds(bundle: Bundle): string[] {
  return (bundle.entry ?? []).filter((e) => e.search?.mode === 'match').map((e) => e.resource!.id!);
}

/** Type/id of the entries brought in by _include/_revinclude (search.mode "include"). */
export function includedRefs(bundle: Bundle): string[] {
  return (bundle.entry ?? []).filter((e) => e.search?.mode === 'include').map((e) => `${e.resource!.resourceType}/${e.resource!.id}`);
}

export function nextLink(bundle: Bundle): string | undefined {
  return bundle.link?.find((l) => l.relation === 'next')?.url;
}

/** The page a search bundle's next link points to (fhir-kit-client's nextPage). */
export async function nextPage(client: Client, bundle: Bundle): Promise<Bundle> {
  const page = client.nextPage({ bundle: bundle as unknown as Parameters<Client['nextPage']>[0]['bundle'] });
  if (!page) throw new Error('the bundle has no next link');
  return (await page) as unknown as Bundle;
}

/** Every page of a search, following next links to the end. */
export async function allPages(client: Client, first: Bundle): Promise<Bundle[]> {
  const pages = [first];
  for (let page = first; nextLink(page); ) {
    page = await nextPage(client, page);
    pages.push(page);
  }
  return pages;
}

/** How many resources of a type match, as the server counts them (_summary=count). */
export async function count(client: Client, resourceType: string, searchParams: Record<string, string> = {}): Promise<number> {
  const bundle = await search(client, resourceType, { ...searchParams, _summary: 'count' });
  if (bundle.total === undefined) throw new Error(`no total in the _summary=count bundle of ${resourceType}`);
  return bundle.total;
}

/**
 * Waits until the clock has moved past an instant the server stamped, so that the next write gets
 * a strictly later lastUpdated (the store stamps to the millisecond).
 */
export async function clockPast(instant: string | undefined): Promise<void> {
  const t = Date.parse(instant ?? '');
  if (Number.isNaN(t)) throw new Error(`not an instant: ${instant}`);
  while (Date.now() <= t) await new Promise((resolve) => setTimeout(resolve, 1));
}

/** The sorted (ascending) copy of a list, to compare sets of ids. */
export function sorted(values: string[]): string[] {
  return [...values].sort();
}
