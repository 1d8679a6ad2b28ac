import type { Practitioner, PractitionerRole } from '@medplum/fhirtypes';
import { HUB_ROLES, type HubRole } from '../../fhir/access.js';
import { DEMO_IDS, HUB_ROLE_SYSTEM, demoBundle, type DemoPractitionerKey } from '../../fhir/demo/demo-data.js';
import { ApiError } from '../errors.js';
import type { AccountStore, NewAccount } from './accounts.js';

/**
 * One login per demo practitioner, for demonstrations and tests only (LOAD_DEMO_DATA). The
 * passwords are public (README, "Demo accounts"): never load them into a production hub.
 */
export const DEMO_ACCOUNTS: Record<DemoPractitionerKey, { username: string; password: string }> = {
  gpTende: { username: 'dr.pastorelli', password: 'Demo-Tende-2026!' },
  gpVesubie: { username: 'dr.ghigo', password: 'Demo-Vesubie-2026!' },
  cardiologist: { username: 'dr.bermond', password: 'Demo-Coeur-2026!' },
  pulmonologist: { username: 'dr.benali', password: 'Demo-Souffle-2026!' },
  geriatrician: { username: 'dr.lacroix', password: 'Demo-Geriatrie-2026!' },
  ehpadNurse: { username: 'ide.cazenave', password: 'Demo-Edelweiss-2026!' },
  samuCorrespondent: { username: 'dr.raybaud', password: 'Demo-Vallee-2026!' },
  regulator: { username: 'dr.fabre', password: 'Demo-Centre15-2026!' },
  coordinator: { username: 'coord.orsini', password: 'Demo-Coordination-2026!' },
  admin: { username: 'admin', password: 'Demo-Admin-2026!' },
};

/** The demo password of a demo username (tests log in with it). */
export function demoPassword(username: string): string {
  const entry = Object.values(DEMO_ACCOUNTS).find((a) => a.username === username.toLowerCase());
  if (!entry) throw new Error(`"${username}" is not a demo account`);
  return entry.password;
}

/**
 * The accounts to create, read from the demo directory itself: the role is the
 * https://hub.example/role code of the practitioner's PractitionerRole and the organization is
 * that role's, so accounts and FHIR data cannot drift apart.
 */
export function demoAccounts(): NewAccount[] {
  const resources = (demoBundle().entry ?? []).map((e) => e.resource);
  const practitioners = new Map(resources.filter((r): r is Practitioner => r?.resourceType === 'Practitioner').map((p) => [p.id!, p]));
  const roles = new Map(resources.filter((r): r is PractitionerRole => r?.resourceType === 'PractitionerRole').map((r) => [r.id!, r]));
  return (Object.keys(DEMO_ACCOUNTS) as DemoPractitionerKey[]).map((key) => {
    const practitionerId = DEMO_IDS.practitioners[key];
    const practitionerRoleId = DEMO_IDS.practitionerRoles[key];
    const role = roles.get(practitionerRoleId);
    const code = role?.code?.flatMap((c) => c.coding ?? []).find((c) => c.system === HUB_ROLE_SYSTEM)?.code;
    if (!role || !code || !HUB_ROLES.includes(code as HubRole)) throw new Error(`demo PractitionerRole ${practitionerRoleId} has no hub role`);
    const organizationId = role.organization?.reference?.replace(/^Organization\//, '');
    const name = practitioners.get(practitionerId)?.name?.[0];
    const displayName = [...(name?.prefix ?? []), ...(name?.given ?? []), name?.family].filter(Boolean).join(' ');
    const { username, password } = DEMO_ACCOUNTS[key];
    return {
      id: `acct-${practitionerId.replace(/^pract-/, '')}`,
      username,
      password,
      displayName,
      role: code as HubRole,
      practitionerId,
      practitionerRoleId,
      ...(organizationId ? { organizationId } : {}),
    };
  });
}

/** Creates the demo accounts that do not exist yet; existing ones (and changed passwords) are left alone. */
export async function seedDemoAccounts(accounts: AccountStore): Promise<number> {
  let created = 0;
  await Promise.all(
    demoAccounts().map(async (a) => {
      if ((await accounts.byId(a.id!)) || (await accounts.byUsername(a.username))) return;
      try {
        await accounts.create(a);
        created++;
      } catch (err) {
        // Another hub node starting at the same time created it first.
        if (!(err instanceof ApiError && (err.code === 'username-taken' || err.code === 'account-exists'))) throw err;
      }
    }),
  );
  return created;
}
