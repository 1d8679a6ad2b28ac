import { createHmac, generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OperationOutcome } from '@medplum/fhirtypes';
import { demoPassword } from '../../server/auth/demo-accounts.js';
import { KeyRing } from '../../server/auth/keys.js';
import { backends, startTestHub, type TestHub } from '../fhir/harness.js';
import { base64url, call, decodePart, login, type ErrorBody } from './support.js';

interface ActiveKey {
  kid: string;
  private_pem: string;
  public_pem: string;
}

describe.each(backends())('access tokens on $name', (backend) => {
  let hub: TestHub;
  let valid: string;
  let key: ActiveKey;
  beforeAll(async () => {
    hub = await startTestHub(backend, { implicitAuth: false });
    valid = (await login(hub, 'dr.pastorelli', demoPassword('dr.pastorelli'))).body.accessToken;
    const rows = await hub.store.db.query<ActiveKey>(
      'SELECT kid, private_pem, public_pem FROM signing_key WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1',
    );
    key = rows[0]!;
    expect(decodePart(valid, 0).kid).toBe(key.kid);
  });
  afterAll(async () => {
    await hub?.close();
  });

  const claimsOf = (token: string) => decodePart(token, 1);
  const now = () => Math.floor(Date.now() / 1000);

  /** Expects 401 from the FHIR API (an OperationOutcome) and from /api/auth/me (the JSON error), with the Bearer challenge. */
  async function expectRefused(token: string, description: string): Promise<void> {
    const fhir = await call<OperationOutcome>(hub, 'GET', '/fhir/R4/Patient', { token });
    expect(fhir.status, description).toBe(401);
    expect(fhir.headers.get('www-authenticate'), description).toMatch(/^Bearer realm="telemedicine-hub", error="invalid_token"/);
    expect(fhir.headers.get('content-type')).toMatch(/^application\/fhir\+json/);
    expect(fhir.body.resourceType).toBe('OperationOutcome');
    expect(fhir.body.issue?.[0]).toMatchObject({ severity: 'error', code: 'login' });
    expect(fhir.body.issue?.[0]?.diagnostics).toBeTruthy();

    const me = await call<ErrorBody>(hub, 'GET', '/api/auth/me', { token });
    expect(me.status, description).toBe(401);
    expect(me.headers.get('www-authenticate'), description).toContain('error="invalid_token"');
    expect(me.body.error.code).toBe('invalid-token');
  }

  it('lets a valid token through on the FHIR API and on /api/auth/me', async () => {
    expect((await call(hub, 'GET', '/fhir/R4/Patient', { token: valid })).status).not.toBe(401);
    expect((await call(hub, 'GET', '/api/auth/me', { token: valid })).status).toBe(200);
  });

  it('refuses a token with one character of its payload changed', async () => {
    const [h, p, s] = valid.split('.') as [string, string, string];
    const i = Math.floor(p.length / 2);
    const flipped = p[i] === 'A' ? 'B' : 'A';
    await expectRefused(`${h}.${p.slice(0, i)}${flipped}${p.slice(i + 1)}.${s}`, 'one character changed');
  });

  it('refuses a token whose role was raised to admin, keeping the original signature', async () => {
    const [h, , s] = valid.split('.') as [string, string, string];
    await expectRefused(`${h}.${base64url({ ...claimsOf(valid), role: 'admin' })}.${s}`, 'role raised');
  });

  it('refuses a token signed with the real key but expired', async () => {
    const expired = jwt.sign({ ...claimsOf(valid), iat: now() - 1000, exp: now() - 100 }, key.private_pem, {
      algorithm: 'ES256',
      header: { alg: 'ES256', typ: 'at+jwt', kid: key.kid },
    });
    // The same claims with a future expiry pass: only the expiry is wrong.
    const fresh = jwt.sign({ ...claimsOf(valid), iat: now(), exp: now() + 100 }, key.private_pem, {
      algorithm: 'ES256',
      header: { alg: 'ES256', typ: 'at+jwt', kid: key.kid },
    });
    expect((await call(hub, 'GET', '/api/auth/me', { token: fresh })).status).toBe(200);
    await expectRefused(expired, 'expired');
    const me = await call<ErrorBody>(hub, 'GET', '/api/auth/me', { token: expired });
    expect(me.body.error.message).toContain('expired');
  });

  it('refuses an unsigned token (alg "none")', async () => {
    const header = base64url({ alg: 'none', typ: 'at+jwt', kid: key.kid });
    await expectRefused(`${header}.${base64url(claimsOf(valid))}.`, 'alg none');
    await expectRefused(`${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(claimsOf(valid))}.`, 'alg none without kid');
  });

  it('refuses a token signed with another ES256 key that claims the real kid', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const forged = jwt.sign(claimsOf(valid), privateKey, { algorithm: 'ES256', header: { alg: 'ES256', typ: 'at+jwt', kid: key.kid } });
    await expectRefused(forged, 'other key, same kid');
  });

  it('refuses an HS256 token keyed with the public key (algorithm confusion)', async () => {
    for (const secret of [key.public_pem, key.public_pem.trim()]) {
      const head = `${base64url({ alg: 'HS256', typ: 'at+jwt', kid: key.kid })}.${base64url(claimsOf(valid))}`;
      const signature = createHmac('sha256', secret).update(head).digest('base64url');
      await expectRefused(`${head}.${signature}`, 'HS256 with the public key');
    }
  });

  it('refuses a token naming an unknown kid, another audience or another issuer', async () => {
    const sign = (payload: object, kid = key.kid) =>
      jwt.sign(payload, key.private_pem, { algorithm: 'ES256', header: { alg: 'ES256', typ: 'at+jwt', kid } });
    await expectRefused(sign(claimsOf(valid), 'no-such-key'), 'unknown kid');
    await expectRefused(sign({ ...claimsOf(valid), aud: 'another-api' }), 'audience');
    await expectRefused(sign({ ...claimsOf(valid), iss: 'another-issuer' }), 'issuer');
    await expectRefused(sign({ ...claimsOf(valid), role: 'surgeon' }), 'unknown role');
    await expectRefused('not-a-jwt', 'garbage');
  });

  it('refuses the token of an account disabled after the token was issued', async () => {
    const token = (await login(hub, 'dr.raybaud', demoPassword('dr.raybaud'))).body.accessToken;
    expect((await call(hub, 'GET', '/api/auth/me', { token })).status).toBe(200);
    await hub.auth.accounts.setDisabled('acct-mcs-vesubie', true);
    try {
      await expectRefused(token, 'disabled account');
    } finally {
      await hub.auth.accounts.setDisabled('acct-mcs-vesubie', false);
    }
    expect((await call(hub, 'GET', '/api/auth/me', { token })).status).toBe(200);
  });

  it('keeps verifying tokens of the old key after a rotation, signs new tokens with the new key, and stops at retirement', async () => {
    const before = (await login(hub, 'dr.ghigo', demoPassword('dr.ghigo'))).body.accessToken;
    const oldKid = decodePart(before, 0).kid as string;
    const newKid = await hub.auth.keyRing.rotate();
    expect(newKid).not.toBe(oldKid);

    expect((await call(hub, 'GET', '/api/auth/me', { token: before })).status).toBe(200);
    const after = (await login(hub, 'dr.ghigo', demoPassword('dr.ghigo'))).body.accessToken;
    expect(decodePart(after, 0).kid).toBe(newKid);
    expect((await call(hub, 'GET', '/api/auth/me', { token: after })).status).toBe(200);

    // Another hub node sharing the database verifies both, and signs with the new key.
    const otherNode = await KeyRing.open(hub.store.db);
    await expect(otherNode.verify(before)).resolves.toMatchObject({ username: 'dr.ghigo' });
    await expect(otherNode.verify(after)).resolves.toMatchObject({ username: 'dr.ghigo' });
    expect(await otherNode.activeKid()).toBe(newKid);

    await hub.auth.keyRing.retire(oldKid);
    await expectRefused(before, 'retired key');
    expect((await call(hub, 'GET', '/api/auth/me', { token: after })).status).toBe(200);
  });

  it('asks for a token without naming an error when none is sent, and refuses a malformed Authorization header', async () => {
    const none = await call<OperationOutcome>(hub, 'GET', '/fhir/R4/Patient');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="telemedicine-hub"');
    expect(none.body.issue?.[0]?.code).toBe('login');
    for (const authorization of [`Basic ${base64url('dr.pastorelli:x')}`, `Bearer`, `Bearer ${valid} extra`, valid]) {
      const response = await call(hub, 'GET', '/api/auth/me', { headers: { authorization } });
      expect(response.status, authorization.slice(0, 20)).toBe(401);
    }
  });
});
