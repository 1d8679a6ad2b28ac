import { validateResource } from '@medplum/core';
import type { CareTeam, Identifier, Organization, Patient, PractitionerRole, Resource } from '@medplum/fhirtypes';
import { beforeAll, describe, expect, it } from 'vitest';
import { SUPPORTED_TYPES, loadDefinitions } from '../../fhir/definitions.js';
import { DEMO_IDS, FINESS_SYSTEM, HUB_ROLE_SYSTEM, INS_NIR_SYSTEM, RPPS_SYSTEM, demoBundle } from '../../fhir/demo/demo-data.js';

beforeAll(() => loadDefinitions());

const bundle = demoBundle();
const resources = (bundle.entry ?? []).map((e) => e.resource!);
const ofType = <T extends Resource>(type: T['resourceType']): T[] => resources.filter((r): r is T => r.resourceType === type);
const byRef = new Map(resources.map((r) => [`${r.resourceType}/${r.id}`, r]));

/** Written independently of the module under test: the INS-NIR key is 97 - (n mod 97). */
function expectedInsKey(first13: string): string {
  return String(97n - (BigInt(first13) % 97n)).padStart(2, '0');
}

function luhnValid(digits: string): boolean {
  const sum = [...digits].reverse().reduce((acc, c, i) => {
    let d = Number(c);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    return acc + d;
  }, 0);
  return sum % 10 === 0;
}

function identifiersOf(r: Resource): Identifier[] {
  return 'identifier' in r && Array.isArray(r.identifier) ? (r.identifier as Identifier[]) : [];
}

function referencesIn(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) value.forEach((v) => referencesIn(v, out));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'reference' && typeof v === 'string') out.push(v);
      else referencesIn(v, out);
    }
  }
  return out;
}

describe('demo directory bundle', () => {
  it('is a transaction whose entries are PUTs on stable Type/id urls with urn:uuid fullUrls', () => {
    expect(bundle.resourceType).toBe('Bundle');
    expect(bundle.type).toBe('transaction');
    const fullUrls = new Set<string>();
    for (const entry of bundle.entry ?? []) {
      expect(entry.request?.method).toBe('PUT');
      expect(entry.request?.url).toBe(`${entry.resource!.resourceType}/${entry.resource!.id}`);
      expect(entry.fullUrl).toMatch(/^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      fullUrls.add(entry.fullUrl!);
    }
    expect(fullUrls.size).toBe(bundle.entry!.length);
    expect(byRef.size).toBe(resources.length);
  });

  it('comes out identical on every call, so loading it twice rewrites the same resources', () => {
    expect(JSON.stringify(demoBundle())).toBe(JSON.stringify(bundle));
  });

  it('only holds resource types the store accepts', () => {
    for (const r of resources) expect(SUPPORTED_TYPES).toContain(r.resourceType);
  });

  it('passes R4 validation for every resource and for the bundle itself', () => {
    for (const r of [...resources, bundle]) {
      const issues = validateResource(r);
      expect(issues.filter((i) => i.severity === 'error' || i.severity === 'fatal'), `${r.resourceType}/${r.id}`).toEqual([]);
    }
  });

  it('contains the ids exported in DEMO_IDS, and nothing unnamed', () => {
    const named = [
      ...Object.values(DEMO_IDS.organizations).map((id) => `Organization/${id}`),
      ...Object.values(DEMO_IDS.practitioners).map((id) => `Practitioner/${id}`),
      ...Object.values(DEMO_IDS.practitionerRoles).map((id) => `PractitionerRole/${id}`),
      ...DEMO_IDS.patients.map((id) => `Patient/${id}`),
      ...DEMO_IDS.careTeams.map((id) => `CareTeam/${id}`),
    ];
    expect([...byRef.keys()].sort()).toEqual([...named].sort());
    expect(DEMO_IDS.patients).toHaveLength(12);
  });

  it('resolves every literal reference to a resource of the bundle', () => {
    for (const r of resources) {
      for (const ref of referencesIn(r)) expect(byRef.has(ref), `${r.resourceType}/${r.id} → ${ref}`).toBe(true);
    }
  });

  it('never repeats an identifier', () => {
    const seen = resources.flatMap((r) => identifiersOf(r).map((i) => `${i.system}|${i.value}`));
    expect(new Set(seen).size).toBe(seen.length);
  });
});

describe('demo organizations', () => {
  const orgs = ofType<Organization>('Organization');

  it('carry a 9-digit FINESS number with a valid Luhn key', () => {
    expect(orgs).toHaveLength(8);
    for (const org of orgs) {
      const finess = org.identifier?.find((i) => i.system === FINESS_SYSTEM);
      expect(finess?.value, org.name).toMatch(/^[0-9]{9}$/);
      expect(luhnValid(finess!.value!), org.name).toBe(true);
    }
  });

  it('attach the three CHU departments and the SAMU to the CHU de Nice', () => {
    const chu = `Organization/${DEMO_IDS.organizations.chu}`;
    const { cardiology, pulmonology, geriatrics, samu } = DEMO_IDS.organizations;
    for (const id of [cardiology, pulmonology, geriatrics, samu]) {
      expect((byRef.get(`Organization/${id}`) as Organization).partOf?.reference).toBe(chu);
    }
    expect((byRef.get(chu) as Organization).name).toBe('CHU de Nice');
  });
});

describe('demo practitioners and roles', () => {
  const roles = ofType<PractitionerRole>('PractitionerRole');

  it('give every health professional an 11-digit RPPS number with a valid Luhn key', () => {
    const withRpps = ofType('Practitioner').filter((p) => p.id !== DEMO_IDS.practitioners.admin);
    expect(withRpps).toHaveLength(9);
    for (const p of withRpps) {
      const rpps = identifiersOf(p).find((i) => i.system === RPPS_SYSTEM);
      expect(rpps?.value, p.id).toMatch(/^[0-9]{11}$/);
      expect(luhnValid(rpps!.value!), p.id).toBe(true);
    }
  });

  it('give each practitioner one role in an organization, with a hub role code', () => {
    const allowed = ['gp', 'specialist', 'nurse', 'samu-correspondent', 'regulator', 'coordinator', 'admin'];
    const seenCodes = new Set<string>();
    for (const role of roles) {
      const hub = role.code?.flatMap((c) => c.coding ?? []).filter((c) => c.system === HUB_ROLE_SYSTEM) ?? [];
      expect(hub, role.id).toHaveLength(1);
      expect(allowed).toContain(hub[0]!.code);
      seenCodes.add(hub[0]!.code!);
      expect(byRef.get(role.organization!.reference!)?.resourceType).toBe('Organization');
    }
    expect([...seenCodes].sort()).toEqual([...allowed].sort());
    const practitioners = roles.map((r) => r.practitioner?.reference);
    expect(new Set(practitioners).size).toBe(ofType('Practitioner').length);
  });

  it('place the GPs in the MSPs and the regulator at the SAMU', () => {
    const roleOf = (key: keyof typeof DEMO_IDS.practitionerRoles) => byRef.get(`PractitionerRole/${DEMO_IDS.practitionerRoles[key]}`) as PractitionerRole;
    expect(roleOf('gpTende').organization?.reference).toBe(`Organization/${DEMO_IDS.organizations.mspTende}`);
    expect(roleOf('gpVesubie').organization?.reference).toBe(`Organization/${DEMO_IDS.organizations.mspVesubie}`);
    expect(roleOf('regulator').organization?.reference).toBe(`Organization/${DEMO_IDS.organizations.samu}`);
    expect(roleOf('cardiologist').organization?.reference).toBe(`Organization/${DEMO_IDS.organizations.cardiology}`);
  });
});

describe('demo patients', () => {
  const patients = ofType<Patient>('Patient');

  it('have an INS-NIR of 15 characters whose key is 97 - (n mod 97)', () => {
    expect(patients).toHaveLength(12);
    for (const p of patients) {
      const ins = p.identifier?.find((i) => i.system === INS_NIR_SYSTEM)?.value;
      expect(ins, p.id).toMatch(/^[12][0-9]{14}$/);
      expect(ins!.slice(13), p.id).toBe(expectedInsKey(ins!.slice(0, 13)));
    }
  });

  it('have an INS-NIR consistent with their sex and month of birth', () => {
    for (const p of patients) {
      const ins = p.identifier!.find((i) => i.system === INS_NIR_SYSTEM)!.value!;
      expect(ins[0], p.id).toBe(p.gender === 'male' ? '1' : '2');
      expect(ins.slice(1, 3), p.id).toBe(p.birthDate!.slice(2, 4));
      expect(ins.slice(3, 5), p.id).toBe(p.birthDate!.slice(5, 7));
    }
  });

  it('are followed by an MSP or the EHPAD, and have a care team from that organization', () => {
    const followers = new Set<string>([DEMO_IDS.organizations.mspTende, DEMO_IDS.organizations.mspVesubie, DEMO_IDS.organizations.ehpad].map((id) => `Organization/${id}`));
    const teams = ofType<CareTeam>('CareTeam');
    expect(teams).toHaveLength(12);
    for (const p of patients) {
      const managing = p.managingOrganization?.reference;
      expect(followers.has(managing!), p.id).toBe(true);
      const team = teams.find((t) => t.subject?.reference === `Patient/${p.id}`);
      expect(team, p.id).toBeDefined();
      expect(team!.managingOrganization?.map((o) => o.reference)).toEqual([managing]);
      for (const participant of team!.participant ?? []) {
        const member = participant.member!.reference!;
        const memberOrgs = ofType<PractitionerRole>('PractitionerRole')
          .filter((r) => r.practitioner?.reference === member)
          .map((r) => r.organization?.reference);
        expect(memberOrgs, `${team!.id} ${member}`).toContain(managing);
        expect(participant.onBehalfOf?.reference).toBe(managing);
      }
    }
  });
});
