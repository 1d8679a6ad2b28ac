import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoPassword } from '../../server/auth/demo-accounts.js';
import { backends, startTestHub, type TestHub } from '../fhir/harness.js';
import { call, decodePart, login, logout, refresh, type ErrorBody } from './support.js';

describe.each(backends())('sessions and refresh tokens on $name', (backend) => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub(backend, { implicitAuth: false });
  });
  afterAll(async () => {
    await hub?.close();
  });

  const open = async (username: string) => (await login(hub, username, demoPassword(username))).body;
  const familyOf = async (refreshToken: string) => {
    const hash = createHash('sha256').update(refreshToken).digest('hex');
    const rows = await hub.store.db.query<{ family_id: string }>('SELECT family_id FROM refresh_token WHERE token_hash = $1', [hash]);
    return rows[0]!.family_id;
  };

  it('stores refresh tokens only as their SHA-256', async () => {
    const { refreshToken } = await open('dr.pastorelli');
    const rows = await hub.store.db.query<{ token_hash: string }>('SELECT token_hash FROM refresh_token');
    expect(rows.some((r) => r.token_hash === refreshToken)).toBe(false);
    expect(rows.every((r) => /^[0-9a-f]{64}$/.test(r.token_hash))).toBe(true);
  });

  it('rotates: a refresh returns a new access token and a new refresh token in the same session', async () => {
    const first = await open('dr.bermond');
    const second = await refresh(hub, first.refreshToken);
    expect(second.status).toBe(200);
    expect(second.headers.get('cache-control')).toBe('no-store');
    expect(second.body.expiresIn).toBe(900);
    expect(second.body.refreshToken).not.toBe(first.refreshToken);
    expect(second.body.accessToken).not.toBe(first.accessToken);
    expect(decodePart(second.body.accessToken, 1)).toMatchObject({ sub: 'acct-cardio-chu', sid: decodePart(first.accessToken, 1).sid });
    expect(await familyOf(second.body.refreshToken)).toBe(await familyOf(first.refreshToken));
    expect((await call(hub, 'GET', '/api/auth/me', { token: second.body.accessToken })).status).toBe(200);

    const third = await refresh(hub, second.body.refreshToken);
    expect(third.status).toBe(200);
  });

  it('detects a reused refresh token and closes the whole session: the newest refresh token fails too', async () => {
    const first = await open('dr.lacroix');
    const second = (await refresh(hub, first.refreshToken)).body;
    const third = (await refresh(hub, second.refreshToken)).body;

    const replay = await refresh(hub, first.refreshToken);
    expect(replay.status).toBe(401);
    expect(replay.body.error).toMatchObject({ code: 'invalid-refresh-token', field: 'refreshToken' });

    const newest = await refresh(hub, third.refreshToken);
    expect(newest.status).toBe(401);
    const family = await familyOf(first.refreshToken);
    const rows = await hub.store.db.query<{ revoked_reason: string | null }>('SELECT revoked_reason FROM refresh_token WHERE family_id = $1', [family]);
    expect(rows.map((r) => r.revoked_reason)).toEqual(['reuse-detected', 'reuse-detected', 'reuse-detected']);

    // Another session of the same person is untouched.
    const other = await open('dr.lacroix');
    expect((await refresh(hub, other.refreshToken)).status).toBe(200);
  });

  it('lets only one of two concurrent refreshes with the same token through, and closes the session', async () => {
    const { refreshToken } = await open('dr.ghigo');
    const results = await Promise.all([refresh(hub, refreshToken), refresh(hub, refreshToken)]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 401]);
    const winner = results.find((r) => r.status === 200)!;
    expect((await refresh(hub, winner.body.refreshToken)).status).toBe(401);
  });

  it('logs out: the session\'s refresh tokens stop working, and logging out again still answers 204', async () => {
    const first = await open('ide.cazenave');
    const second = (await refresh(hub, first.refreshToken)).body;
    const out = await logout(hub, second.refreshToken);
    expect(out.status).toBe(204);
    expect((await refresh(hub, second.refreshToken)).status).toBe(401);
    expect((await logout(hub, second.refreshToken)).status).toBe(204);
    expect((await logout(hub, 'never-issued-token')).status).toBe(204);
    const rows = await hub.store.db.query<{ revoked_reason: string }>('SELECT revoked_reason FROM refresh_token WHERE family_id = $1', [
      await familyOf(first.refreshToken),
    ]);
    expect(rows.map((r) => r.revoked_reason)).toEqual(['logout', 'logout']);
  });

  it('refuses an unknown refresh token, and names the field when it is missing', async () => {
    const unknown = await refresh(hub, 'x'.repeat(43));
    expect(unknown.status).toBe(401);
    const missing = await call<ErrorBody>(hub, 'POST', '/api/auth/refresh', { json: {} });
    expect(missing.status).toBe(400);
    expect(missing.body.error.field).toBe('refreshToken');
    const logoutMissing = await call<ErrorBody>(hub, 'POST', '/api/auth/logout', { json: { refreshToken: 12 } });
    expect(logoutMissing.status).toBe(400);
    expect(logoutMissing.body.error.field).toBe('refreshToken');
  });

  it('refuses to refresh the session of a disabled account, and closes it', async () => {
    const { refreshToken } = await open('coord.orsini');
    await hub.auth.accounts.setDisabled('acct-coordination-chu', true);
    try {
      expect((await refresh(hub, refreshToken)).status).toBe(401);
    } finally {
      await hub.auth.accounts.setDisabled('acct-coordination-chu', false);
    }
    expect((await refresh(hub, refreshToken)).status).toBe(401);
  });

  it('refuses an expired refresh token', async () => {
    const { refreshToken } = await open('dr.fabre');
    const family = await familyOf(refreshToken);
    await hub.store.db.query(`UPDATE refresh_token SET expires_at = now() - interval '1 second' WHERE family_id = $1`, [family]);
    const response = await refresh(hub, refreshToken);
    expect(response.status).toBe(401);
    expect(response.body.error.message).toContain('expired');
  });
});
