import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { PractitionerRole } from '@medplum/fhirtypes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_IDS, HUB_ROLE_SYSTEM, demoBundle } from '../../fhir/demo/demo-data.js';
import { DEMO_ACCOUNTS, demoAccounts, seedDemoAccounts } from '../../server/auth/demo-accounts.js';
import { backends, startTestHub, type TestHub } from '../fhir/harness.js';
import { call, login } from './support.js';

describe('demo accounts', () => {
  it('give every demo practitioner one account, with the role and organization of their PractitionerRole', () => {
    const roles = (demoBundle().entry ?? []).map((e) => e.resource).filter((r): r is PractitionerRole => r?.resourceType === 'PractitionerRole');
    const accounts = demoAccounts();
    expect(accounts.map((a) => a.practitionerId).sort()).toEqual(Object.values(DEMO_IDS.practitioners).sort());
    for (const account of accounts) {
      const role = roles.find((r) => r.id === account.practitionerRoleId)!;
      expect(role.practitioner?.reference).toBe(`Practitioner/${account.practitionerId}`);
      expect(account.role).toBe(role.code?.flatMap((c) => c.coding ?? []).find((c) => c.system === HUB_ROLE_SYSTEM)?.code);
      expect(`Organization/${account.organizationId}`).toBe(role.organization?.reference);
    }
    expect(accounts.find((a) => a.username === 'dr.pastorelli')).toMatchObject({
      role: 'gp',
      organizationId: DEMO_IDS.organizations.mspTende,
      displayName: 'Dr Laure Pastorelli',
    });
    expect(accounts.find((a) => a.username === 'ide.cazenave')).toMatchObject({ role: 'nurse', organizationId: DEMO_IDS.organizations.ehpad });
    expect(accounts.find((a) => a.username === 'admin')).toMatchObject({ role: 'admin', organizationId: DEMO_IDS.organizations.chu });
  });
});

describe('the README table of demo accounts', () => {
  it('lists every demo account with its role, organization and password', () => {
    const readme = readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Demo accounts'), readme.indexOf('## Benchmarks'));
    const rows = section
      .split('\n')
      .filter((l) => l.startsWith('| `'))
      .map((l) => l.split('|').map((c) => c.trim()));
    const table = rows.map(([, username, , role, organization, password]) => ({
      username: username!.replaceAll('`', ''),
      role: role!.replaceAll('`', ''),
      organization: /\(`([^`]+)`\)/.exec(organization!)?.[1],
      password: password!.replaceAll('`', ''),
    }));
    expect(table).toEqual(
      demoAccounts().map((a) => ({ username: a.username, role: a.role, organization: a.organizationId, password: a.password })),
    );
  });
});

describe.each(backends())('demo accounts on $name', (backend) => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub(backend, { implicitAuth: false });
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('all log in with their demo password and see themselves in /api/auth/me', async () => {
    for (const { username, password } of Object.values(DEMO_ACCOUNTS)) {
      const response = await login(hub, username, password);
      expect(response.status, username).toBe(200);
      const me = await call<{ username: string }>(hub, 'GET', '/api/auth/me', { token: response.body.accessToken });
      expect(me.body.username).toBe(username);
    }
  });

  it('are seeded once: seeding again creates nothing and keeps a changed password', async () => {
    await hub.auth.accounts.setPassword('acct-admin-chu', 'A-changed-password-2026!');
    expect(await seedDemoAccounts(hub.auth.accounts)).toBe(0);
    const rows = await hub.store.db.query<{ n: string }>('SELECT count(*) AS n FROM account');
    expect(Number(rows[0]!.n)).toBe(10);
    expect((await login(hub, 'admin', 'A-changed-password-2026!')).status).toBe(200);
    expect((await login(hub, 'admin', DEMO_ACCOUNTS.admin.password)).status).toBe(401);
  });

  it('keep passwords only as argon2id hashes', async () => {
    const rows = await hub.store.db.query<{ password_hash: string }>('SELECT password_hash FROM account');
    for (const { password_hash } of rows) {
      expect(password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,p=1,t=2\$/);
      expect(Object.values(DEMO_ACCOUNTS).some((a) => password_hash.includes(a.password))).toBe(false);
    }
  });

  it('apply the auth migrations once, beside those of the FHIR store', async () => {
    const rows = await hub.store.db.query<{ component: string; version: number }>('SELECT component, version FROM schema_migration ORDER BY component, version');
    expect(rows.filter((r) => r.component === 'auth').map((r) => r.version)).toEqual([1]);
    expect(rows.some((r) => r.component === 'fhir')).toBe(true);
  });
});
