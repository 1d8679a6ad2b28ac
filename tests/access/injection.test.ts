import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { Bundle, OperationOutcome, Patient } from '@medplum/fhirtypes';
import { INS_NIR_SYSTEM } from '../../fhir/demo/demo-data.js';
import { backends, type TestHub } from '../fhir/harness.js';
import { HEART_RATE, ORG, PRACT, USER, create, createdIds, examEntries, newPatient, search, startAccessHub, total, transaction, unique, vital } from './support.js';

/** Strings that break out of badly built SQL; none may change anything or reveal anything. */
const INJECTIONS = [
  `' OR 1=1 --`,
  `'); DROP TABLE resource; --`,
  `\\' OR ''='`,
  `%`,
  `_`,
  `1; SELECT pg_sleep(3); --`,
  `$$; DELETE FROM sp_token; $$`,
  `Ñoël « 急救 » 🚑 ∑ "x" \u202e; -- ʼ OR ʼʼ=ʼ`,
];

type Params = Record<string, string>;

/** Parameters whose value is data: the search runs (200) and finds nothing. */
const VALUE_POSITIONS: [type: string, params: (x: string) => Params][] = [
  ['Patient', (x) => ({ identifier: x })], // token
  ['Patient', (x) => ({ identifier: `${INS_NIR_SYSTEM}|${x}` })],
  ['Observation', (x) => ({ code: `${x}|${HEART_RATE.loinc}` })],
  ['Patient', (x) => ({ gender: x })],
  ['Patient', (x) => ({ name: x })], // string
  ['Patient', (x) => ({ 'family:exact': x })],
  ['Patient', (x) => ({ 'name:contains': x })],
  ['Patient', (x) => ({ 'address-city': x })],
  ['Observation', (x) => ({ subject: x })], // reference
  ['Observation', (x) => ({ subject: `Patient/${x}` })],
  ['Observation', (x) => ({ performer: x })],
  ['Observation', (x) => ({ 'value-quantity': `${HEART_RATE.value}|${x}|/min` })], // quantity system
  ['Observation', (x) => ({ _profile: x })], // uri
  ['Observation', (x) => ({ '_profile:below': x })],
  ['ServiceRequest', (x) => ({ 'instantiates-uri': x })],
  ['Patient', (x) => ({ _id: x })], // _id
  ['Observation', (x) => ({ _id: x })],
  ['Observation', (x) => ({ 'subject:Patient.name': x })], // chained value
  ['Observation', (x) => ({ 'patient.identifier': x })],
];

/** Parameters whose value is syntax (dates, numbers, names, sorting, includes): refused with 400. */
const SYNTAX_POSITIONS: [type: string, params: (x: string) => Params][] = [
  ['Patient', (x) => ({ birthdate: x })], // date
  ['Observation', (x) => ({ date: `ge${x}` })],
  ['Observation', (x) => ({ date: x })],
  ['Patient', (x) => ({ _lastUpdated: x })],
  ['Observation', (x) => ({ 'value-quantity': x })], // quantity number
  ['Patient', (x) => ({ _sort: x })], // _sort
  ['Observation', (x) => ({ _sort: `-${x}` })],
  ['Observation', (x) => ({ _include: x })], // _include
  ['Observation', (x) => ({ _include: `Observation:${x}` })],
  ['Patient', (x) => ({ _revinclude: `Observation:${x}` })],
  ['Observation', (x) => ({ [`subject:Patient.${x}`]: 'Giordano' })], // chained names
  ['Observation', (x) => ({ [`subject:${x}.name`]: 'Giordano' })],
  ['Patient', (x) => ({ [x]: 'Giordano' })], // parameter name
  ['Patient', (x) => ({ [`name:${x}`]: 'Giordano' })], // modifier
  ['Patient', (x) => ({ _count: x })],
  ['Patient', (x) => ({ _total: x })],
];

describe.each(backends())('SQL injection through search parameters on $name', (backend) => {
  let hub: TestHub;
  let tende: Client;
  let vesubie: Client;
  let vesubieToken: string;
  let tendePatient: Patient;

  beforeAll(async () => {
    hub = await startAccessHub(backend);
    tende = await hub.clientAs(USER.gpTende);
    vesubieToken = await hub.login(USER.gpVesubie);
    vesubie = await hub.clientAs(USER.gpVesubie);
    tendePatient = await create(tende, newPatient(ORG.mspTende, unique('Giordano'), 'Paul'));
    createdIds(await transaction(tende, examEntries(tendePatient.id!, PRACT.gpTende)));
    const own = await create(vesubie, newPatient(ORG.mspVesubie, unique('Martini'), 'Chloé'));
    await create(vesubie, vital(own.id!, PRACT.gpVesubie, HEART_RATE));
  });
  afterAll(async () => {
    await hub?.close();
  });

  /** What the store holds, outside the audit trail (which grows with every search). */
  async function snapshot() {
    const db = hub.store.db;
    const tables = ['resource', 'resource_version', 'sp_token', 'sp_string', 'sp_date', 'sp_reference', 'sp_number', 'sp_quantity', 'sp_uri', 'access_grant', 'account'];
    const present = await Promise.all(tables.map(async (t) => (await db.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [t]))[0]!.ok));
    const rows: Record<string, number> = {};
    for (const t of tables.filter((_, i) => present[i])) {
      const audit = t.startsWith('sp_') || t.startsWith('resource') ? ` WHERE resource_type <> 'AuditEvent'` : '';
      rows[t] = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${t}${audit}`))[0]!.n;
    }
    return {
      present: Object.fromEntries(tables.map((t, i) => [t, present[i]])),
      rows,
      tende: { patients: await total(tende, 'Patient'), observations: await total(tende, 'Observation') },
      vesubie: { patients: await total(vesubie, 'Patient'), observations: await total(vesubie, 'Observation') },
    };
  }

  async function answer(type: string, params: Params): Promise<{ status: number; body: Bundle | OperationOutcome }> {
    try {
      const bundle = await search(vesubie, type, params);
      return { status: 200, body: bundle };
    } catch (err) {
      const response = (err as { response?: { status: number; data: unknown } }).response;
      if (!response) throw err;
      return { status: response.status, body: response.data as OperationOutcome };
    }
  }

  it('answers every injected value with 200 and nothing found, and every injected name or syntax with a 400 OperationOutcome, changing nothing', async () => {
    const before = await snapshot();
    expect(before.tende).toEqual({ patients: 5, observations: 3 }); // the four demo patients of Tende and theirs
    expect(Object.values(before.present).every(Boolean)).toBe(true);

    const wrong: unknown[] = [];
    for (const x of INJECTIONS) {
      for (const [type, params] of VALUE_POSITIONS) {
        const query = { ...params(x), _total: 'accurate' };
        const { status, body } = await answer(type, query);
        const bundle = body as Bundle;
        if (status !== 200 || bundle.resourceType !== 'Bundle' || bundle.total !== 0 || (bundle.entry ?? []).length !== 0) {
          wrong.push({ type, query, status, body });
        }
      }
      for (const [type, params] of SYNTAX_POSITIONS) {
        const query = params(x);
        const { status, body } = await answer(type, query);
        const outcome = body as OperationOutcome;
        const code = outcome.issue?.[0]?.code;
        if (status !== 400 || outcome.resourceType !== 'OperationOutcome' || (code !== 'invalid' && code !== 'not-supported')) {
          wrong.push({ type, query, status, body });
        }
      }
      // $lastn takes max as a number.
      const lastn = await vesubie
        .operation({ name: '$lastn', resourceType: 'Observation', method: 'GET', input: { max: x } })
        .then(() => 200, (err: { response: { status: number } }) => err.response.status);
      if (lastn !== 400) wrong.push({ lastn: x, status: lastn });
      // The same through POST _search (form body).
      const posted = await fetch(`${hub.baseUrl}/Patient/_search`, {
        method: 'POST',
        headers: { authorization: `Bearer ${vesubieToken}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ name: x, _total: 'accurate' }).toString(),
      });
      const postedBody = (await posted.json()) as Bundle;
      if (posted.status !== 200 || postedBody.total !== 0) wrong.push({ post: x, status: posted.status, body: postedBody });
    }
    expect(wrong).toEqual([]);

    const after = await snapshot();
    expect(after).toEqual(before);
  });

  it('still serves both GPs their own data, and only theirs, after the attempts', async () => {
    const tendeObservations = await search(tende, 'Observation', { subject: `Patient/${tendePatient.id}`, _total: 'accurate' });
    expect(tendeObservations.total).toBe(3);
    const vesubieView = await search(vesubie, 'Observation', { subject: `Patient/${tendePatient.id}`, _total: 'accurate' });
    expect(vesubieView.total).toBe(0);
    expect(await total(vesubie, 'Patient')).toBe(5); // the four demo patients of Vésubie and theirs
  });
});
