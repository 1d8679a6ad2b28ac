import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CapabilityStatement, OperationOutcome } from '@medplum/fhirtypes';
import { DEMO_IDS } from '../../fhir/demo/demo-data.js';
import { backends, startTestHub, type TestHub } from '../fhir/harness.js';
import { call, type ErrorBody } from './support.js';

const APP_ORIGIN = 'https://app.hub.example';

describe.each(backends())('what needs a token on $name', (backend) => {
  let hub: TestHub;
  let token: string;
  beforeAll(async () => {
    hub = await startTestHub(backend, { implicitAuth: false, corsOrigins: [APP_ORIGIN] });
    token = await hub.login('dr.pastorelli');
  });
  afterAll(async () => {
    await hub?.close();
  });

  const patient = { resourceType: 'Patient', name: [{ family: 'Intrus' }] };
  const fhirJson = { 'content-type': 'application/fhir+json' };
  const protectedRoutes: [string, string, { json?: unknown; headers?: Record<string, string> }?][] = [
    ['GET', '/fhir/R4/Patient'],
    ['GET', `/fhir/R4/Patient/${DEMO_IDS.patients[0]}`],
    ['GET', `/fhir/R4/Patient/${DEMO_IDS.patients[0]}/_history`],
    ['GET', `/fhir/R4/Patient/${DEMO_IDS.patients[0]}/_history/1`],
    ['GET', '/fhir/R4/Patient/_history'],
    ['POST', '/fhir/R4/Patient/_search'],
    ['GET', `/fhir/R4/Observation/$lastn?patient=${DEMO_IDS.patients[0]}`],
    ['GET', '/fhir/R4/Organization'],
    ['GET', '/fhir/R4/AuditEvent'],
    ['GET', '/fhir/R4/NoSuchType'],
    ['POST', '/fhir/R4/Patient', { json: patient, headers: fhirJson }],
    ['PUT', '/fhir/R4/Patient/intrus', { json: { ...patient, id: 'intrus' }, headers: fhirJson }],
    ['PATCH', `/fhir/R4/Patient/${DEMO_IDS.patients[0]}`, { json: [{ op: 'replace', path: '/active', value: false }], headers: { 'content-type': 'application/json-patch+json' } }],
    ['DELETE', `/fhir/R4/Patient/${DEMO_IDS.patients[0]}`],
    ['POST', '/fhir/R4', { json: { resourceType: 'Bundle', type: 'transaction', entry: [] }, headers: fhirJson }],
    ['GET', '/fhir/R4'],
    ['GET', '/api/auth/me'],
    ['GET', '/api/expertise/requests'],
    ['POST', '/api/anything', { json: {} }],
  ];

  it('answers 401 without a token on every FHIR and API route but the public ones, and writes nothing', async () => {
    for (const [method, path, options] of protectedRoutes) {
      const response = await call(hub, method, path, options);
      expect(response.status, `${method} ${path}`).toBe(401);
      expect(response.headers.get('www-authenticate'), `${method} ${path}`).toMatch(/^Bearer /);
      if (path.startsWith('/fhir')) expect((response.body as OperationOutcome).resourceType, path).toBe('OperationOutcome');
      else expect((response.body as ErrorBody).error.code, path).toBe('unauthenticated');
    }
    const rows = await hub.store.db.query(`SELECT 1 FROM resource WHERE resource_type = 'Patient'`);
    expect(rows).toHaveLength(0);
  });

  it('passes the same routes on to the API with a token', async () => {
    for (const [method, path, options] of protectedRoutes.filter(([m]) => m === 'GET')) {
      const response = await call(hub, method, path, { ...options, token });
      expect(response.status, `${method} ${path}`).not.toBe(401);
    }
    const unknownApi = await call<ErrorBody>(hub, 'GET', '/api/expertise/requests', { token });
    expect(unknownApi.status).toBe(404);
    expect(unknownApi.body.error.code).toBe('not-found');
  });

  it('keeps health checks, the CapabilityStatement, login, refresh and logout public', async () => {
    expect((await call(hub, 'GET', '/health')).status).toBe(200);
    expect((await call(hub, 'GET', '/health/ready')).status).toBe(200);
    // FHIR convention (and SMART on FHIR): clients read the CapabilityStatement before they log in.
    const metadata = await call<CapabilityStatement>(hub, 'GET', '/fhir/R4/metadata');
    expect(metadata.status).toBe(200);
    expect(metadata.body.resourceType).toBe('CapabilityStatement');
    expect((await call(hub, 'POST', '/api/auth/login', { json: { username: 'dr.nobody', password: 'x' } })).status).toBe(401);
    expect((await call(hub, 'POST', '/api/auth/refresh', { json: { refreshToken: 'unknown' } })).status).toBe(401);
    expect((await call(hub, 'POST', '/api/auth/logout', { json: { refreshToken: 'unknown' } })).status).toBe(204);
    // Only GET of the metadata is public.
    expect((await call(hub, 'POST', '/fhir/R4/metadata', { json: {} })).status).toBe(401);
  });

  it('sends security headers on every response', async () => {
    for (const path of ['/health', '/fhir/R4/metadata', '/api/auth/me']) {
      const { headers } = await call(hub, 'GET', path);
      expect(headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(headers.get('strict-transport-security'), path).toMatch(/max-age=/);
      expect(headers.get('content-security-policy'), path).toContain("default-src 'self'");
      expect(headers.get('x-frame-options'), path).toBe('SAMEORIGIN');
      expect(headers.get('x-powered-by'), path).toBeNull();
    }
  });

  it('allows a listed browser origin, with a preflight that permits the Authorization header', async () => {
    const preflight = await call(hub, 'OPTIONS', '/fhir/R4/Patient', {
      headers: { origin: APP_ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    expect(preflight.headers.get('access-control-allow-headers')).toContain('Authorization');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();

    const get = await call(hub, 'GET', '/api/auth/me', { token, headers: { origin: APP_ORIGIN } });
    expect(get.status).toBe(200);
    expect(get.headers.get('access-control-allow-origin')).toBe(APP_ORIGIN);
    expect(get.headers.get('vary')).toContain('Origin');
  });

  it('gives an unlisted origin no CORS headers and refuses its preflight with 403', async () => {
    const evil = 'https://evil.example';
    const preflight = await call(hub, 'OPTIONS', '/fhir/R4/Patient', { headers: { origin: evil, 'access-control-request-method': 'GET' } });
    expect(preflight.status).toBe(403);
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
    const get = await call(hub, 'GET', '/health', { headers: { origin: evil } });
    expect(get.headers.get('access-control-allow-origin')).toBeNull();
    // Not from a browser (no Origin): the e-valise uploader and FHIR clients.
    const plain = await call(hub, 'GET', '/fhir/R4/metadata');
    expect(plain.status).toBe(200);
    expect(plain.headers.get('access-control-allow-origin')).toBeNull();
  });
});
