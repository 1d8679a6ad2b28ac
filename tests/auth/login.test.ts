import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_IDS } from '../../fhir/demo/demo-data.js';
import { demoPassword } from '../../server/auth/demo-accounts.js';
import { backends, startTestHub, type TestHub } from '../fhir/harness.js';
import { call, decodePart, login, MemoryAuditSink, type ErrorBody } from './support.js';

describe.each(backends())('logging in on $name', (backend) => {
  let hub: TestHub;
  const audit = new MemoryAuditSink();
  beforeAll(async () => {
    hub = await startTestHub(backend, { implicitAuth: false, audit });
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('returns an access token, a refresh token and its lifetime, and the access token opens the API', async () => {
    const response = await login(hub, 'dr.bermond', demoPassword('dr.bermond'));
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('no-store');
    const { accessToken, refreshToken, expiresIn } = response.body;
    expect(expiresIn).toBe(900);
    expect(refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const header = decodePart(accessToken, 0);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'at+jwt' });
    expect(typeof header.kid).toBe('string');
    const claims = decodePart(accessToken, 1);
    expect(claims).toMatchObject({
      iss: 'telemedicine-hub',
      aud: 'hub-api',
      sub: 'acct-cardio-chu',
      username: 'dr.bermond',
      role: 'specialist',
      practitionerId: DEMO_IDS.practitioners.cardiologist,
      practitionerRoleId: DEMO_IDS.practitionerRoles.cardiologist,
      organizationId: DEMO_IDS.organizations.cardiology,
    });
    expect((claims.exp as number) - (claims.iat as number)).toBe(900);

    const me = await call(hub, 'GET', '/api/auth/me', { token: accessToken });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ accountId: 'acct-cardio-chu', username: 'dr.bermond', role: 'specialist', displayName: 'Pr Hélène Bermond' });

    const fhir = await call(hub, 'GET', `/fhir/R4/Practitioner/${DEMO_IDS.practitioners.cardiologist}`, { token: accessToken });
    expect(fhir.status).not.toBe(401);
  });

  it('reports a successful login to the audit sink with the account, the address and the user agent', async () => {
    await call(hub, 'POST', '/api/auth/login', {
      json: { username: 'dr.lacroix', password: demoPassword('dr.lacroix') },
      headers: { 'user-agent': 'e-valise/2.1' },
    });
    expect(audit.succeeded.at(-1)).toEqual({
      accountId: 'acct-geriatre-chu',
      username: 'dr.lacroix',
      role: 'specialist',
      practitionerId: DEMO_IDS.practitioners.geriatrician,
      ip: expect.stringMatching(/127\.0\.0\.1/),
      userAgent: 'e-valise/2.1',
    });
  });

  it('accepts the username in any case', async () => {
    expect((await login(hub, 'Dr.Fabre', demoPassword('dr.fabre'))).status).toBe(200);
  });

  it('refuses a wrong password with 401 and records the failure', async () => {
    const response = await login(hub, 'dr.fabre', 'not-her-password');
    expect(response.status).toBe(401);
    expect(response.body).toEqual({ error: { code: 'invalid-credentials', message: 'the username or the password is incorrect' } });
    expect(response.body.accessToken).toBeUndefined();
    expect(audit.failed.at(-1)).toMatchObject({ username: 'dr.fabre', reason: 'bad-password', ip: expect.stringMatching(/127\.0\.0\.1/) });
  });

  it('answers an unknown username exactly as a wrong password, and records it as unknown', async () => {
    const unknown = await login(hub, 'dr.nobody', 'whatever-2026!');
    const wrong = await login(hub, 'dr.raybaud', 'whatever-2026!');
    expect(unknown.status).toBe(401);
    expect(unknown.body).toEqual(wrong.body);
    expect(audit.failed.find((e) => e.username === 'dr.nobody')).toMatchObject({ reason: 'unknown-user' });
  });

  it('locks an account for 15 minutes after 5 failed logins in a row, even for the right password, with 429', async () => {
    for (let i = 0; i < 5; i++) expect((await login(hub, 'dr.benali', `wrong-${i}`)).status).toBe(401);
    const locked = await login(hub, 'dr.benali', demoPassword('dr.benali'));
    expect(locked.status).toBe(429);
    expect(locked.body.error.code).toBe('too-many-attempts');
    const retryAfter = Number(locked.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(14 * 60);
    expect(retryAfter).toBeLessThanOrEqual(15 * 60);
    expect(audit.failed.filter((e) => e.username === 'dr.benali').map((e) => e.reason)).toEqual([
      ...Array(5).fill('bad-password'),
      'locked',
    ]);

    // An administrator lifts the lock.
    await hub.auth.accounts.unlock('acct-pneumo-chu');
    expect((await login(hub, 'dr.benali', demoPassword('dr.benali'))).status).toBe(200);
  });

  it('locks an unknown username the same way, so a lockout does not reveal that an account exists', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await login(hub, 'dr.ghost', `wrong-${i}`)).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
  });

  it('starts counting again after a successful login', async () => {
    for (let i = 0; i < 4; i++) await login(hub, 'dr.ghigo', `wrong-${i}`);
    expect((await login(hub, 'dr.ghigo', demoPassword('dr.ghigo'))).status).toBe(200);
    for (let i = 0; i < 4; i++) expect((await login(hub, 'dr.ghigo', `wrong-${i}`)).status).toBe(401);
    expect((await login(hub, 'dr.ghigo', demoPassword('dr.ghigo'))).status).toBe(200);
  });

  it('refuses a disabled account with 403 once the password is right, and records it', async () => {
    await hub.auth.accounts.setDisabled('acct-regulateur-samu', true);
    try {
      const response = await login(hub, 'dr.fabre', demoPassword('dr.fabre'));
      expect(response.status).toBe(403);
      expect(response.body.error.code).toBe('account-disabled');
      expect(audit.failed.at(-1)).toMatchObject({ username: 'dr.fabre', reason: 'disabled' });
    } finally {
      await hub.auth.accounts.setDisabled('acct-regulateur-samu', false);
    }
  });

  it('names the missing or wrong field of a malformed request', async () => {
    const cases: [unknown, string][] = [
      [{ username: 'dr.bermond' }, 'password'],
      [{ password: 'x' }, 'username'],
      [{ username: 42, password: 'x' }, 'username'],
      [{ username: 'dr.bermond', password: '' }, 'password'],
      [{ username: '   ', password: 'x' }, 'username'],
      [{ username: 'dr.bermond', password: 'x'.repeat(1025) }, 'password'],
    ];
    for (const [json, field] of cases) {
      const response = await call<ErrorBody>(hub, 'POST', '/api/auth/login', { json });
      expect(response.status, JSON.stringify(json)).toBe(400);
      expect(response.body.error.code).toBe('invalid-request');
      expect(response.body.error.field).toBe(field);
      expect(response.body.error.message).toContain(field);
    }
    const missing = await call<ErrorBody>(hub, 'POST', '/api/auth/login', { json: { username: 'dr.bermond' } });
    expect(missing.body.error.message).toBe('password is required');
  });

  it('answers malformed JSON with 400, a body that is not an object with 400, and an oversized body with 413', async () => {
    const malformed = await call<ErrorBody>(hub, 'POST', '/api/auth/login', { rawBody: '{"username":', headers: { 'content-type': 'application/json' } });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.code).toBe('invalid-json');

    const array = await call<ErrorBody>(hub, 'POST', '/api/auth/login', { json: ['dr.bermond'] });
    expect(array.status).toBe(400);
    expect(array.body.error.code).toBe('invalid-request');

    const form = await call<ErrorBody>(hub, 'POST', '/api/auth/login', { rawBody: 'username=a&password=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(form.status).toBe(400);

    const huge = await call<ErrorBody>(hub, 'POST', '/api/auth/login', { json: { username: 'dr.bermond', password: 'x'.repeat(120_000) } });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe('body-too-large');
  });
});

describe('the login rate limit per address', () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub(backends()[0]!, { implicitAuth: false, loginRateLimitPerMinute: 3 });
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('counts only failed logins, and answers 429 once the limit is reached, whatever the username', async () => {
    for (let i = 0; i < 5; i++) expect((await login(hub, 'dr.pastorelli', demoPassword('dr.pastorelli'))).status).toBe(200);
    for (const username of ['dr.a', 'dr.b', 'dr.c']) expect((await login(hub, username, 'wrong')).status).toBe(401);
    const limited = await login(hub, 'dr.pastorelli', demoPassword('dr.pastorelli'));
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe('rate-limited');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});
