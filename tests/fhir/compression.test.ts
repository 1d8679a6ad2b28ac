import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { deflateSync, gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { Bundle, CapabilityStatement, Observation, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { backends, startTestHub, type TestHub } from './harness.js';
import { count, followed, followedPatient, matchIds, read, search, unique } from './support.js';

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The bytes as sent on the wire, not decoded. */
  bytes: Buffer;
}

/** A request with node's http module, which (unlike fetch) neither adds Accept-Encoding nor decodes the response. */
function rawRequest(url: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, bytes: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

describe.each(backends())('FHIR request and response compression on $name', (backend) => {
  let hub: TestHub;
  let client: Client;
  beforeAll(async () => {
    hub = await startTestHub(backend);
    client = hub.client;
  });
  afterAll(async () => {
    await hub?.close();
  });

  const json = (r: RawResponse) => JSON.parse(r.bytes.toString('utf8')) as unknown;

  it('accepts a gzip-compressed resource and stores it as sent', async () => {
    const family = unique('Gzip');
    const patient: Patient = followed({ name: [{ family, given: ['Élodie'] }] });
    const response = await rawRequest(`${hub.baseUrl}/Patient`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', 'content-encoding': 'gzip' },
      body: gzipSync(JSON.stringify(patient)),
    });
    expect(response.status).toBe(201);
    const created = json(response) as Patient;
    expect(created.name).toEqual(patient.name);
    expect(await read<Patient>(client, 'Patient', created.id!)).toEqual(created);
  });

  it('accepts a deflate-compressed resource', async () => {
    const response = await rawRequest(`${hub.baseUrl}/Patient`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', 'content-encoding': 'deflate' },
      body: deflateSync(JSON.stringify(followed({ name: [{ family: 'Deflate' }] }))),
    });
    expect(response.status).toBe(201);
    expect((json(response) as Patient).name).toEqual([{ family: 'Deflate' }]);
  });

  it('accepts a gzip-compressed transaction Bundle, as the e-valise uploader sends it', async () => {
    const code = unique('ecg');
    const bundle: Bundle = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: 'urn:uuid:0b7e2f7e-0000-4000-8000-000000000001', resource: followed(), request: { method: 'POST', url: 'Patient' } },
        ...Array.from({ length: 5 }, () => ({
          resource: {
            resourceType: 'Observation',
            status: 'final',
            code: { coding: [{ system: 'urn:test', code }] },
            subject: { reference: 'urn:uuid:0b7e2f7e-0000-4000-8000-000000000001' },
            valueSampledData: { origin: { value: 0, unit: 'uV' }, period: 2, dimensions: 1, data: Array.from({ length: 500 }, (_, i) => (i % 50) - 25).join(' ') },
          } as Observation,
          request: { method: 'POST' as const, url: 'Observation' },
        })),
      ],
    };
    const response = await rawRequest(`${hub.baseUrl}/`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', 'content-encoding': 'gzip' },
      body: gzipSync(JSON.stringify(bundle)),
    });
    expect(response.status).toBe(200);
    const result = json(response) as Bundle;
    expect(result.entry!.map((e) => e.response?.status)).toEqual(Array(6).fill('201 Created'));
    expect(matchIds(await search(client, 'Observation', { code: `urn:test|${code}` }))).toHaveLength(5);
  });

  it('answers a corrupt gzip body with 400 and stores nothing', async () => {
    const before = await count(client, 'Patient');
    const valid = gzipSync(JSON.stringify(followed()));
    const corrupt = Buffer.concat([valid.subarray(0, 10), Buffer.from('not gzip at all'), valid.subarray(10)]);
    const response = await rawRequest(`${hub.baseUrl}/Patient`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', 'content-encoding': 'gzip' },
      body: corrupt,
    });
    expect(response.status).toBe(400);
    expect((json(response) as OperationOutcome).resourceType).toBe('OperationOutcome');
    expect(await count(client, 'Patient')).toBe(before);
  });

  it('compresses a response with gzip when the client sends Accept-Encoding: gzip', async () => {
    const response = await rawRequest(`${hub.baseUrl}/metadata`, { headers: { 'accept-encoding': 'gzip' } });
    expect(response.status).toBe(200);
    expect(response.headers['content-encoding']).toBe('gzip');
    const statement = JSON.parse(gunzipSync(response.bytes).toString('utf8')) as CapabilityStatement;
    expect(statement.resourceType).toBe('CapabilityStatement');
  });

  it('compresses search results too, and they decode to the same Bundle', async () => {
    const family = unique('Zip');
    for (let i = 0; i < 10; i++) await followedPatient(client, { name: [{ family, given: ['Annabelle', 'Marie', 'Louise'] }] });
    const url = `${hub.baseUrl}/Patient?family:exact=${family}&_sort=_id`;
    const zipped = await rawRequest(url, { headers: { 'accept-encoding': 'gzip' } });
    expect(zipped.headers['content-encoding']).toBe('gzip');
    const plain = await rawRequest(url, { headers: { 'accept-encoding': 'identity' } });
    expect(plain.headers['content-encoding']).toBeUndefined();
    const decoded = JSON.parse(gunzipSync(zipped.bytes).toString('utf8')) as Bundle;
    expect(matchIds(decoded)).toHaveLength(10);
    expect(matchIds(decoded)).toEqual(matchIds(json(plain) as Bundle));
    expect(zipped.bytes.length).toBeLessThan(plain.bytes.length);
  });

  it('sends an uncompressed response when the client does not accept gzip', async () => {
    const response = await rawRequest(`${hub.baseUrl}/metadata`);
    expect(response.status).toBe(200);
    expect(response.headers['content-encoding']).toBeUndefined();
    expect((json(response) as CapabilityStatement).resourceType).toBe('CapabilityStatement');
  });

  it('tells fetch clients the response was gzip-compressed', async () => {
    const response = await fetch(`${hub.baseUrl}/metadata`, { headers: { 'accept-encoding': 'gzip' } });
    expect(response.headers.get('content-encoding')).toBe('gzip');
    expect(((await response.json()) as CapabilityStatement).resourceType).toBe('CapabilityStatement');
  });
});
