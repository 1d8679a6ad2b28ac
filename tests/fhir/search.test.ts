import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { Bundle, DocumentReference, Encounter, Observation, Period, Resource } from '@medplum/fhirtypes';
import { backends, startTestHub, type TestHub } from './harness.js';
import { TENDE_GP, allPages, clockPast, failure, followed, followedPatient, includedRefs, matchIds, nextLink, nextPage, patientRef, put, search, sorted, unique } from './support.js';

const UCUM = 'http://unitsofmeasure.org';
const INS_NIR = 'urn:oid:1.2.250.1.213.1.4.8';

function observation(fields: Partial<Observation> & { id?: string }): Observation {
  return { resourceType: 'Observation', status: 'final', code: { text: 'mesure' }, ...fields };
}

/** observation(), for readings of one patient. */
function withSubject(subject: Observation['subject']): typeof observation {
  return (fields) => observation({ subject, ...fields });
}

function heartRate(value: number, unit = { system: UCUM, code: '/min' }): Observation['valueQuantity'] {
  return { value, unit: unit.code, ...unit };
}

describe.each(backends())('FHIR search on $name', (backend) => {
  let hub: TestHub;
  let client: Client;
  beforeAll(async () => {
    hub = await startTestHub(backend);
    client = hub.client;
  });
  afterAll(async () => {
    await hub?.close();
  });

  /** Stores resources under client ids `${prefix}-${key}` and returns the full ids by key. */
  async function putAll(prefix: string, resources: Record<string, Resource>): Promise<Record<string, string>> {
    const ids: Record<string, string> = {};
    for (const [key, resource] of Object.entries(resources)) {
      ids[key] = `${prefix}-${key}`;
      await put(client, { ...resource, id: ids[key] });
    }
    return ids;
  }

  /** Ids of all matches of a GET search given as a query string, sorted. */
  async function found(resourceType: string, query: string): Promise<string[]> {
    const bundle = (await client.request(`${resourceType}?${query}&_count=1000`)) as unknown as Bundle;
    expect(nextLink(bundle)).toBeUndefined();
    return sorted(matchIds(bundle));
  }

  const keysOf = (ids: Record<string, string>, ...keys: string[]) => sorted(keys.map((k) => ids[k]!));

  describe('token parameters', () => {
    it('matches on code, system|code, |code and system|, and excludes with :not', async () => {
      const u = unique('tok');
      const subject = patientRef(await followedPatient(client, { id: u }));
      const sysA = `http://example.org/${u}/a`;
      const sysB = `http://example.org/${u}/b`;
      const ids = await putAll(u, {
        a1: observation({ subject, code: { coding: [{ system: sysA, code: 'c1' }] } }),
        a2: observation({ subject, code: { coding: [{ system: sysA, code: 'c2' }] } }),
        b1: observation({ subject, code: { coding: [{ system: sysB, code: 'c1' }] } }),
        n1: observation({ subject, code: { coding: [{ code: 'c1' }] } }),
        both: observation({ subject, code: { coding: [{ system: sysB, code: 'c3' }, { system: sysA, code: 'c3' }] } }),
      });
      const q = (param: string, value: string) => found('Observation', `subject=Patient/${u}&${param}=${encodeURIComponent(value)}`);
      expect(await q('code', 'c1')).toEqual(keysOf(ids, 'a1', 'b1', 'n1'));
      expect(await q('code', `${sysA}|c1`)).toEqual(keysOf(ids, 'a1'));
      expect(await q('code', '|c1')).toEqual(keysOf(ids, 'n1'));
      expect(await q('code', `${sysA}|`)).toEqual(keysOf(ids, 'a1', 'a2', 'both'));
      expect(await q('code', `${sysA}|c1,${sysB}|c1`)).toEqual(keysOf(ids, 'a1', 'b1'));
      expect(await q('code:not', `${sysA}|c1`)).toEqual(keysOf(ids, 'a2', 'b1', 'n1', 'both'));
      expect(await q('code:not', 'c1')).toEqual(keysOf(ids, 'a2', 'both'));
      expect(await q('code:not', `${sysA}|`)).toEqual(keysOf(ids, 'b1', 'n1'));
      expect(await q('code', `${sysA}|c9`)).toEqual([]);
    });

    it('matches identifiers and booleans as tokens', async () => {
      const u = unique('ident');
      const ids = await putAll(u, {
        active: followed({ active: true, identifier: [{ system: INS_NIR, value: `${u}-1` }] }),
        inactive: followed({ active: false, identifier: [{ system: INS_NIR, value: `${u}-2` }] }),
        other: followed({ identifier: [{ system: 'urn:oid:1.2.250.1.71.4.2.1', value: `${u}-1` }] }),
      });
      expect(await found('Patient', `identifier=${INS_NIR}|${u}-1`)).toEqual(keysOf(ids, 'active'));
      expect(await found('Patient', `identifier=${u}-1`)).toEqual(keysOf(ids, 'active', 'other'));
      expect(await found('Patient', `identifier=${u}-1,${u}-2&active=false`)).toEqual(keysOf(ids, 'inactive'));
      expect(await found('Patient', `identifier=${u}-1,${u}-2&active:not=false`)).toEqual(keysOf(ids, 'active', 'other'));
    });
  });

  describe('string parameters', () => {
    it('matches the start of any name part, ignoring case and accents, and supports :exact and :contains', async () => {
      const u = unique('str');
      const identifier = [{ system: `urn:test:${u}`, value: '1' }];
      const ids = await putAll(u, {
        helene: followed({ identifier, name: [{ family: 'Dupont', given: ['Hélène'] }] }),
        helena: followed({ identifier, name: [{ family: 'Martin', given: ['Helena'] }] }),
        marie: followed({ identifier, name: [{ family: 'Durand', given: ['Marie-Hélène'] }] }),
        upper: followed({ identifier, name: [{ family: 'HÉLÈNE-LEBLANC', given: ['Paul'] }] }),
      });
      const q = (query: string) => found('Patient', `identifier=urn:test:${u}|&${query}`);
      expect(await q('name=helene')).toEqual(keysOf(ids, 'helene', 'upper'));
      expect(await q('name=HÉLÈNE')).toEqual(keysOf(ids, 'helene', 'upper'));
      expect(await q('name=HÉLÈ')).toEqual(keysOf(ids, 'helene', 'helena', 'upper'));
      expect(await q('name=hel')).toEqual(keysOf(ids, 'helene', 'helena', 'upper'));
      expect(await q('given=helene')).toEqual(keysOf(ids, 'helene'));
      expect(await q('family=dup')).toEqual(keysOf(ids, 'helene'));
      expect(await q('family=pont')).toEqual([]);
      expect(await q('name:exact=Hélène')).toEqual(keysOf(ids, 'helene'));
      expect(await q('name:exact=helene')).toEqual([]);
      expect(await q('name:exact=Hél')).toEqual([]);
      expect(await q('name:contains=hélène')).toEqual(keysOf(ids, 'helene', 'marie', 'upper'));
      expect(await q('name:contains=LEN')).toEqual(keysOf(ids, 'helene', 'helena', 'marie', 'upper'));
      expect(await q('family:contains=blanc')).toEqual(keysOf(ids, 'upper'));
      expect(await q('name=marie,paul')).toEqual(keysOf(ids, 'marie', 'upper'));
    });

    it('treats % and _ in a string value literally', async () => {
      const u = unique('like');
      const identifier = [{ system: `urn:test:${u}`, value: '1' }];
      const ids = await putAll(u, {
        percent: followed({ identifier, name: [{ family: '100%Bio' }] }),
        plain: followed({ identifier, name: [{ family: '100xBio' }] }),
      });
      expect(await found('Patient', `identifier=urn:test:${u}|&family=${encodeURIComponent('100%')}`)).toEqual(keysOf(ids, 'percent'));
      expect(await found('Patient', `identifier=urn:test:${u}|&family:contains=${encodeURIComponent('0_B')}`)).toEqual([]);
    });
  });

  describe('date parameters', () => {
    it('applies eq, ne, gt, lt, ge, le, sa and eb to year, month and day values, against instants and partial dates', async () => {
      const u = unique('date');
      const subject = patientRef(await followedPatient(client, { id: u }));
      const at = (effectiveDateTime: string) => observation({ subject, effectiveDateTime });
      const ids = await putAll(u, {
        d1: at('2023-06-15T10:00:00Z'),
        d2: at('2024-01-31T23:30:00Z'),
        d3: at('2024-02-01T00:30:00Z'),
        d4: at('2024-02-15T12:00:00Z'),
        d5: at('2024-02-15T18:00:00Z'),
        d6: at('2025-03-01T08:00:00Z'),
        d7: at('2024-02'), // the whole of February
        d8: at('2024-03-01T00:30:00+01:00'), // 2024-02-29T23:30Z
      });
      const expected: Record<string, string[]> = {
        eq2024: ['d2', 'd3', 'd4', 'd5', 'd7', 'd8'],
        ne2024: ['d1', 'd6'],
        gt2024: ['d6'],
        lt2024: ['d1'],
        ge2024: ['d2', 'd3', 'd4', 'd5', 'd6', 'd7', 'd8'],
        le2024: ['d1', 'd2', 'd3', 'd4', 'd5', 'd7', 'd8'],
        'eq2024-02': ['d3', 'd4', 'd5', 'd7', 'd8'],
        'ne2024-02': ['d1', 'd2', 'd6'],
        'gt2024-02': ['d6'],
        'lt2024-02': ['d1', 'd2'],
        'ge2024-02': ['d3', 'd4', 'd5', 'd6', 'd7', 'd8'],
        'le2024-02': ['d1', 'd2', 'd3', 'd4', 'd5', 'd7', 'd8'],
        'eq2024-02-15': ['d4', 'd5'],
        'ne2024-02-15': ['d1', 'd2', 'd3', 'd6', 'd7', 'd8'],
        'gt2024-02-15': ['d6', 'd7', 'd8'],
        'lt2024-02-15': ['d1', 'd2', 'd3', 'd7'],
        'ge2024-02-15': ['d4', 'd5', 'd6', 'd7', 'd8'],
        'le2024-02-15': ['d1', 'd2', 'd3', 'd4', 'd5', 'd7'],
        '2024-02-15': ['d4', 'd5'],
        sa2024: ['d6'],
        eb2024: ['d1'],
        'sa2024-02': ['d6'],
        'eb2024-02': ['d1', 'd2'],
        'sa2024-02-15': ['d6', 'd8'],
        'eb2024-02-15': ['d1', 'd2', 'd3'],
      };
      const actual: Record<string, string[]> = {};
      for (const value of Object.keys(expected)) {
        actual[value] = (await found('Observation', `subject=Patient/${u}&date=${value}`)).map((id) => id.slice(u.length + 1)).sort();
      }
      expect(actual).toEqual(expected);
      // Two values of one parameter are ANDed: a range.
      expect(await found('Observation', `subject=Patient/${u}&date=ge2024-02&date=lt2024-02-15`)).toEqual(keysOf(ids, 'd3', 'd7'));
      expect(await found('Observation', `subject=Patient/${u}&date=ge2024-02-01T00:00:00Z&date=lt2024-02-15`)).toEqual(keysOf(ids, 'd3', 'd7'));
      // Instants with a time zone in the query.
      expect(await found('Observation', `subject=Patient/${u}&date=${encodeURIComponent('2024-03-01T00:30:00+01:00')}`)).toEqual(keysOf(ids, 'd8'));
      // The whole of February (d7) overlaps both bounds of this range.
      expect(await found('Observation', `subject=Patient/${u}&date=gt${encodeURIComponent('2024-02-15T17:00:00Z')}&date=lt2024-02-16`)).toEqual(
        keysOf(ids, 'd5', 'd7'),
      );
    });

    it('matches periods, open-ended ones included, and sorts them by start or end', async () => {
      const u = unique('period');
      const subject = patientRef(await followedPatient(client));
      const encounter = (period: Period): Encounter => ({
        resourceType: 'Encounter',
        status: 'finished',
        class: { code: 'VR' },
        subject,
        identifier: [{ system: `urn:test:${u}`, value: '1' }],
        period,
      });
      const ids = await putAll(u, {
        closed: encounter({ start: '2024-01-10T08:00:00Z', end: '2024-01-10T09:00:00Z' }),
        ongoing: encounter({ start: '2024-01-15T08:00:00Z' }),
        endOnly: encounter({ end: '2023-12-31T10:00:00Z' }),
      });
      const q = (query: string) => found('Encounter', `identifier=urn:test:${u}|&${query}`);
      expect(await q('date=2024-01-10')).toEqual(keysOf(ids, 'closed'));
      expect(await q('date=ge2024-01-12')).toEqual(keysOf(ids, 'ongoing'));
      expect(await q('date=gt2030')).toEqual(keysOf(ids, 'ongoing'));
      expect(await q('date=lt2024-01-01')).toEqual(keysOf(ids, 'endOnly'));
      expect(await q('date=le2024-01-10')).toEqual(keysOf(ids, 'closed', 'endOnly'));
      const order = async (sort: string) =>
        (await allPages(client, await search(client, 'Encounter', { identifier: `urn:test:${u}|`, _sort: sort, _count: '1' })))
          .flatMap(matchIds)
          .map((id) => id.slice(u.length + 1));
      expect(await order('date')).toEqual(['endOnly', 'closed', 'ongoing']);
      expect(await order('-date')).toEqual(['ongoing', 'closed', 'endOnly']);
    });

    it('matches birth dates given as dates', async () => {
      const u = unique('birth');
      const identifier = [{ system: `urn:test:${u}`, value: '1' }];
      const ids = await putAll(u, {
        old: followed({ identifier, birthDate: '1931-02-28' }),
        young: followed({ identifier, birthDate: '1990-07-04' }),
        none: followed({ identifier }),
      });
      expect(await found('Patient', `identifier=urn:test:${u}|&birthdate=1931-02-28`)).toEqual(keysOf(ids, 'old'));
      expect(await found('Patient', `identifier=urn:test:${u}|&birthdate=lt1950`)).toEqual(keysOf(ids, 'old'));
      expect(await found('Patient', `identifier=urn:test:${u}|&birthdate=ge1931-03`)).toEqual(keysOf(ids, 'young'));
      expect(await found('Patient', `identifier=urn:test:${u}|&birthdate:missing=true`)).toEqual(keysOf(ids, 'none'));
    });
  });

  describe('reference parameters', () => {
    it('matches Type/id, a bare id, an absolute URL and the :Type modifier', async () => {
      const u = unique('ref');
      const shared = `${u}-shared`;
      const code = { coding: [{ system: `urn:test:${u}`, code: 'pulse' }] };
      await followedPatient(client, { id: shared });
      await put(client, { resourceType: 'Device', id: shared });
      await followedPatient(client, { id: `${u}-other` });
      const ids = await putAll(u, {
        patient: observation({ code, subject: { reference: `Patient/${shared}` } }),
        // A reading about the device, taken by the patient: performer puts it in the patient's record.
        device: observation({ code, subject: { reference: `Device/${shared}` }, performer: [patientRef(shared)] }),
        other: observation({ code, subject: { reference: `Patient/${u}-other` } }),
        versioned: observation({ code, subject: { reference: `Patient/${u}-other/_history/1` } }),
      });
      const q = (query: string) => found('Observation', `code=urn:test:${u}|&${query}`);
      expect(await q(`subject=Patient/${shared}`)).toEqual(keysOf(ids, 'patient'));
      expect(await q(`subject=${shared}`)).toEqual(keysOf(ids, 'patient', 'device'));
      expect(await q(`subject:Patient=${shared}`)).toEqual(keysOf(ids, 'patient'));
      expect(await q(`subject:Device=${shared}`)).toEqual(keysOf(ids, 'device'));
      expect(await q(`subject=Device/${shared}`)).toEqual(keysOf(ids, 'device'));
      expect(await q(`subject:Device=Patient/${shared}`)).toEqual([]);
      expect(await q(`subject=${encodeURIComponent(`${hub.baseUrl}/Patient/${shared}`)}`)).toEqual(keysOf(ids, 'patient'));
      expect(await q(`subject=Patient/${u}-other`)).toEqual(keysOf(ids, 'other', 'versioned'));
      expect(await q(`patient=${shared}`)).toEqual(keysOf(ids, 'patient'));
      expect(await q(`subject=Patient/${shared},Patient/${u}-other`)).toEqual(keysOf(ids, 'patient', 'other', 'versioned'));
    });
  });

  describe('quantity parameters', () => {
    it('compares values with prefixes and implicit precision, optionally with system and code', async () => {
      const u = unique('qty');
      const subject = patientRef(await followedPatient(client, { id: u }));
      const ids = await putAll(u, {
        q72: observation({ subject, valueQuantity: heartRate(72) }),
        q100: observation({ subject, valueQuantity: heartRate(100) }),
        q1004: observation({ subject, valueQuantity: heartRate(100.4) }),
        q130: observation({ subject, valueQuantity: heartRate(130) }),
        q120other: observation({ subject, valueQuantity: heartRate(120, { system: 'http://example.org/units', code: 'bpm' }) }),
        none: observation({ subject }),
      });
      const q = (value: string) => found('Observation', `subject=Patient/${u}&value-quantity=${encodeURIComponent(value)}`);
      expect(await q('gt100')).toEqual(keysOf(ids, 'q1004', 'q130', 'q120other'));
      expect(await q('ge100')).toEqual(keysOf(ids, 'q100', 'q1004', 'q130', 'q120other'));
      expect(await q('lt100')).toEqual(keysOf(ids, 'q72'));
      expect(await q('le100')).toEqual(keysOf(ids, 'q72', 'q100'));
      expect(await q('100')).toEqual(keysOf(ids, 'q100', 'q1004'));
      expect(await q('eq100.0')).toEqual(keysOf(ids, 'q100'));
      expect(await q('ne100')).toEqual(keysOf(ids, 'q72', 'q130', 'q120other'));
      expect(await q(`gt100|${UCUM}|/min`)).toEqual(keysOf(ids, 'q1004', 'q130'));
      expect(await q(`gt100|http://example.org/units|bpm`)).toEqual(keysOf(ids, 'q120other'));
      expect(await q('le100||/min')).toEqual(keysOf(ids, 'q72', 'q100'));
      expect(await q('lt80,gt125')).toEqual(keysOf(ids, 'q72', 'q130'));
    });
  });

  describe('uri parameters', () => {
    it('matches a DocumentReference location exactly or with :below', async () => {
      const u = unique('uri');
      const base = `https://docs.example.org/${u}`;
      const subject = patientRef(await followedPatient(client));
      const doc = (url: string): DocumentReference => ({ resourceType: 'DocumentReference', status: 'current', subject, content: [{ attachment: { url } }] });
      const ids = await putAll(u, {
        ecg1: doc(`${base}/ecg/1.pdf`),
        ecg2: doc(`${base}/ecg/2.pdf`),
        report: doc(`${base}/report.pdf`),
      });
      expect(await found('DocumentReference', `location=${encodeURIComponent(`${base}/ecg/1.pdf`)}`)).toEqual(keysOf(ids, 'ecg1'));
      expect(await found('DocumentReference', `location=${encodeURIComponent(`${base}/ecg`)}`)).toEqual([]);
      expect(await found('DocumentReference', `location:below=${encodeURIComponent(`${base}/ecg/`)}`)).toEqual(keysOf(ids, 'ecg1', 'ecg2'));
      expect(await found('DocumentReference', `location:below=${encodeURIComponent(base)}`)).toEqual(keysOf(ids, 'ecg1', 'ecg2', 'report'));
    });

    it('matches _profile and counts those matches with _total=accurate', async () => {
      const u = unique('prof');
      const profile = `http://example.org/fhir/StructureDefinition/${u}`;
      const ids = await putAll(u, {
        a: followed({ meta: { profile: [profile] } }),
        b: followed({ meta: { profile: [profile, `${profile}-extra`] } }),
        c: followed({ meta: { profile: [`${profile}-extra`] } }),
      });
      expect(await found('Patient', `_profile=${encodeURIComponent(profile)}`)).toEqual(keysOf(ids, 'a', 'b'));
      const bundle = await search(client, 'Patient', { _profile: profile, _total: 'accurate', _count: '1' });
      expect(bundle.total).toBe(2);
      expect(matchIds(bundle)).toHaveLength(1);
      expect((await search(client, 'Patient', { _profile: profile, _summary: 'count' })).total).toBe(2);
    });
  });

  // Number parameters: none of the 19 stored types has an R4 search parameter of type number
  // (RiskAssessment, MolecularSequence… are not stored); metadata.test.ts checks that none is declared.

  describe(':missing', () => {
    it('finds resources with or without a value for token, date, quantity and reference parameters', async () => {
      const u = unique('miss');
      const code = { coding: [{ system: `urn:test:${u}`, code: 'x' }] };
      const patient = patientRef(await followedPatient(client, { id: u }));
      const ids = await putAll(u, {
        full: observation({ code, subject: patient, effectiveDateTime: '2024-05-01', valueQuantity: heartRate(60) }),
        // No subject: the patient is in it as the performer (a self-reported reading).
        bare: observation({ code, performer: [patient] }),
      });
      const q = (query: string) => found('Observation', `code=urn:test:${u}|&${query}`);
      expect(await q('value-quantity:missing=true')).toEqual(keysOf(ids, 'bare'));
      expect(await q('value-quantity:missing=false')).toEqual(keysOf(ids, 'full'));
      expect(await q('date:missing=true')).toEqual(keysOf(ids, 'bare'));
      expect(await q('subject:missing=false')).toEqual(keysOf(ids, 'full'));
      expect(await q('category:missing=true')).toEqual(keysOf(ids, 'full', 'bare'));
      expect(await q('category:missing=false')).toEqual([]);
    });
  });

  describe('chaining', () => {
    it('follows a reference to the target resource’s parameters, with or without the target type', async () => {
      const u = unique('chain');
      const code = { coding: [{ system: `urn:test:${u}`, code: 'spo2' }] };
      await followedPatient(client, { id: `${u}-p1`, identifier: [{ system: INS_NIR, value: `${u}-1` }], name: [{ given: ['Hélène'], family: 'Faure' }] });
      await followedPatient(client, { id: `${u}-p2`, identifier: [{ system: INS_NIR, value: `${u}-2` }], name: [{ given: ['Paul'], family: 'Faure' }] });
      await put(client, { resourceType: 'Device', id: `${u}-d1`, identifier: [{ system: INS_NIR, value: `${u}-1` }] });
      const ids = await putAll(u, {
        o1: observation({ code, subject: { reference: `Patient/${u}-p1` } }),
        // Performed by the GP: still theirs to read once its subject is deleted, so the last check is the chain's.
        o2: observation({ code, subject: { reference: `Patient/${u}-p2` }, performer: [TENDE_GP] }),
        od: observation({ code, subject: { reference: `Device/${u}-d1` }, performer: [{ reference: `Patient/${u}-p1` }] }),
      });
      const q = (query: string) => found('Observation', `code=urn:test:${u}|&${query}`);
      expect(await q(`subject:Patient.identifier=${INS_NIR}|${u}-1`)).toEqual(keysOf(ids, 'o1'));
      expect(await q(`subject.identifier=${INS_NIR}|${u}-1`)).toEqual(keysOf(ids, 'o1', 'od'));
      expect(await q(`subject:Device.identifier=${INS_NIR}|${u}-1`)).toEqual(keysOf(ids, 'od'));
      expect(await q('subject.name=helene')).toEqual(keysOf(ids, 'o1'));
      expect(await q('subject:Patient.name=faure')).toEqual(keysOf(ids, 'o1', 'o2'));
      expect(await q('patient.given=paul')).toEqual(keysOf(ids, 'o2'));
      expect(await q('subject.name=nobody')).toEqual([]);

      await client.delete({ resourceType: 'Patient', id: `${u}-p2` });
      expect(await q('patient.given=paul')).toEqual([]);
    });

    it('refuses chaining through a parameter that is not a reference with 400', async () => {
      const { status, outcome } = await failure(client.request('Observation?code.name=x'));
      expect(status).toBe(400);
      expect(outcome.resourceType).toBe('OperationOutcome');
    });

    it('refuses a chained parameter that no target type has with 400', async () => {
      expect((await failure(client.request('Observation?subject.colour=red'))).status).toBe(400);
    });
  });

  describe('index maintenance', () => {
    it('finds a resource by its new values after an update or a patch, and no longer by the old ones', async () => {
      const u = unique('reindex');
      const [before, after, patched] = [`urn:test:${u}|before`, `urn:test:${u}|after`, `urn:test:${u}|patched`];
      const subject = patientRef(await followedPatient(client));
      const obs = await put(client, observation({ id: `${u}-o`, subject, code: { coding: [{ system: `urn:test:${u}`, code: 'before' }] }, valueQuantity: heartRate(50) }));
      expect(await found('Observation', `code=${before}`)).toEqual([obs.id]);

      await put(client, { ...obs, code: { coding: [{ system: `urn:test:${u}`, code: 'after' }] }, valueQuantity: heartRate(150) });
      expect(await found('Observation', `code=${before}`)).toEqual([]);
      expect(await found('Observation', `code=${after}`)).toEqual([obs.id]);
      expect(await found('Observation', `code=${after}&value-quantity=lt100`)).toEqual([]);
      expect(await found('Observation', `code=${after}&value-quantity=gt100`)).toEqual([obs.id]);

      await client.patch({ resourceType: 'Observation', id: obs.id!, jsonPatch: [{ op: 'replace', path: '/code/coding/0/code', value: 'patched' }] });
      expect(await found('Observation', `code=${after}`)).toEqual([]);
      expect(await found('Observation', `code=${patched}`)).toEqual([obs.id]);
      expect(await found('Observation', `code=${patched}&value-quantity=gt100`)).toEqual([obs.id]);

      await client.delete({ resourceType: 'Observation', id: obs.id! });
      expect(await found('Observation', `code=${patched}`)).toEqual([]);
      await put(client, { ...obs, code: { coding: [{ system: `urn:test:${u}`, code: 'before' }] } });
      expect(await found('Observation', `code=${before}`)).toEqual([obs.id]);
      expect(await found('Observation', `code=${patched}`)).toEqual([]);
    });
  });

  describe('_id and _lastUpdated', () => {
    it('matches one or several ids', async () => {
      const u = unique('ids');
      const ids = await putAll(u, { a: followed(), b: followed(), c: followed() });
      expect(await found('Patient', `_id=${ids.a}`)).toEqual(keysOf(ids, 'a'));
      expect(await found('Patient', `_id=${ids.a},${ids.c},${u}-missing`)).toEqual(keysOf(ids, 'a', 'c'));
      expect(await found('Patient', `_id=${u}-missing`)).toEqual([]);
    });

    it('matches the last update time with prefixes', async () => {
      const u = unique('lu');
      const identifier = [{ system: `urn:test:${u}`, value: '1' }];
      const first = await followedPatient(client, { identifier });
      await clockPast(first.meta?.lastUpdated);
      const second = await followedPatient(client, { identifier });
      const third = await followedPatient(client, { identifier });
      const t = encodeURIComponent(first.meta!.lastUpdated!);
      const q = (query: string) => found('Patient', `identifier=urn:test:${u}|&${query}`);
      expect(await q(`_lastUpdated=gt${t}`)).toEqual(sorted([second.id!, third.id!]));
      expect(await q(`_lastUpdated=ge${t}`)).toEqual(sorted([first.id!, second.id!, third.id!]));
      expect(await q(`_lastUpdated=le${t}`)).toEqual([first.id!]);
      expect(await q(`_lastUpdated=lt${t}`)).toEqual([]);
      expect(await q(`_lastUpdated=${t}`)).toEqual([first.id!]);
      expect(await q(`_lastUpdated=gt2000-01-01&_lastUpdated=lt2100`)).toEqual(sorted([first.id!, second.id!, third.id!]));
    });
  });

  describe('paging', () => {
    it('returns every result exactly once when next links are followed to the end', async () => {
      const u = unique('page');
      const identifier = [{ system: `urn:test:${u}`, value: '1' }];
      const created: string[] = [];
      for (let i = 0; i < 23; i++) created.push((await followedPatient(client, { identifier })).id!);
      const first = await search(client, 'Patient', { identifier: `urn:test:${u}|`, _count: '5' });
      const pages = await allPages(client, first);
      expect(pages.map((p) => matchIds(p).length)).toEqual([5, 5, 5, 5, 3]);
      const ids = pages.flatMap(matchIds);
      expect(ids).toHaveLength(23);
      expect(sorted(ids)).toEqual(sorted(created));
      for (const page of pages) {
        expect(page.type).toBe('searchset');
        const self = page.link?.find((l) => l.relation === 'self')?.url ?? '';
        expect(new URL(self).searchParams.get('identifier')).toBe(`urn:test:${u}|`);
      }
    });

    it('gives no next link on a last page that is exactly full', async () => {
      const u = unique('full');
      const identifier = [{ system: `urn:test:${u}`, value: '1' }];
      for (let i = 0; i < 10; i++) await followedPatient(client, { identifier });
      const pages = await allPages(client, await search(client, 'Patient', { identifier: `urn:test:${u}|`, _count: '5' }));
      expect(pages.map((p) => matchIds(p).length)).toEqual([5, 5]);
      expect(nextLink(pages[1]!)).toBeUndefined();
      expect(new Set(pages.flatMap(matchIds)).size).toBe(10);
    });

    it('answers _count=0 with no entries and the total when asked', async () => {
      const u = unique('zero');
      const identifier = [{ system: `urn:test:${u}`, value: '1' }];
      for (let i = 0; i < 3; i++) await followedPatient(client, { identifier });
      const bundle = await search(client, 'Patient', { identifier: `urn:test:${u}|`, _count: '0', _total: 'accurate' });
      expect(bundle.total).toBe(3);
      expect(bundle.entry ?? []).toEqual([]);
      expect(nextLink(bundle)).toBeUndefined();
    });

    it('neither skips nor repeats resources that exist throughout while others are created and deleted between pages', async () => {
      const u = unique('live');
      const code = { coding: [{ system: `urn:test:${u}`, code: 'x' }] };
      const reading = withSubject(patientRef(await followedPatient(client)));
      const ids = await putAll(u, {
        p10: reading({ code }),
        p20: reading({ code }),
        p30: reading({ code }),
        p40: reading({ code }),
        p50: reading({ code }),
        p60: reading({ code }),
        p70: reading({ code }),
        p80: reading({ code }),
        p90: reading({ code }),
      });
      const first = await search(client, 'Observation', { code: `urn:test:${u}|`, _count: '3' });
      expect(matchIds(first)).toEqual([ids.p10, ids.p20, ids.p30]);

      // Between pages 1 and 2: one created before the position reached, two after; one seen and one unseen deleted.
      await putAll(u, { p05: reading({ code }), p35: reading({ code }), p95: reading({ code }) });
      await client.delete({ resourceType: 'Observation', id: ids.p20! });
      await client.delete({ resourceType: 'Observation', id: ids.p50! });
      const second = await nextPage(client, first);
      const secondIds = matchIds(second);
      expect(secondIds).toEqual([`${u}-p35`, ids.p40, ids.p60]);

      // Between pages 2 and 3: more churn on both sides.
      await putAll(u, { p38: reading({ code }), p75: reading({ code }) });
      await client.delete({ resourceType: 'Observation', id: ids.p80! });
      const rest = await allPages(client, second);
      const seen = [...matchIds(first), ...rest.flatMap(matchIds)];
      expect(seen).toEqual([ids.p10, ids.p20, ids.p30, `${u}-p35`, ids.p40, ids.p60, ids.p70, `${u}-p75`, ids.p90, `${u}-p95`]);
      expect(new Set(seen).size).toBe(seen.length);
      for (const survivor of [ids.p10, ids.p30, ids.p40, ids.p60, ids.p70, ids.p90]) expect(seen.filter((id) => id === survivor)).toHaveLength(1);
    });

    it('keeps a multi-key sort order across pages while resources are created and deleted', async () => {
      const u = unique('livesort');
      const code = { coding: [{ system: `urn:test:${u}`, code: 'x' }] };
      const subject = patientRef(await followedPatient(client));
      const at = (effectiveDateTime?: string) => observation({ code, subject, ...(effectiveDateTime ? { effectiveDateTime } : {}) });
      const ids = await putAll(u, {
        a: at('2024-01-05'),
        b: at('2024-01-09'),
        c: at('2024-01-05'),
        d: at('2024-01-07'),
        e: at(),
        f: at('2024-01-09'),
        g: at('2024-01-01'),
      });
      // -date,_id: b f d a c g e
      const first = await search(client, 'Observation', { code: `urn:test:${u}|`, _sort: '-date,_id', _count: '2' });
      expect(matchIds(first)).toEqual([ids.b, ids.f]);
      await putAll(u, { h: at('2024-01-10'), a0: at('2024-01-05'), z: at('2024-01-06'), n: at() });
      await client.delete({ resourceType: 'Observation', id: ids.b! });
      await client.delete({ resourceType: 'Observation', id: ids.c! });
      const rest = await allPages(client, await nextPage(client, first));
      const seen = [...matchIds(first), ...rest.flatMap(matchIds)];
      // h sorts before the position reached (not seen); z, a0 and n after it (seen in order).
      expect(seen).toEqual([ids.b, ids.f, ids.d, `${u}-z`, ids.a, `${u}-a0`, ids.g, ids.e, `${u}-n`]);
    });
  });

  describe('sorting', () => {
    it('orders by several keys, with resources lacking a key last, on one page and across pages', async () => {
      const u = unique('sort');
      const code = { coding: [{ system: `urn:test:${u}`, code: 'x' }] };
      const reading = withSubject(patientRef(await followedPatient(client)));
      await putAll(u, {
        a: reading({ code, status: 'final', effectiveDateTime: '2024-03-01T08:00:00Z' }),
        b: reading({ code, status: 'amended', effectiveDateTime: '2024-03-03T08:00:00Z' }),
        c: reading({ code, status: 'final', effectiveDateTime: '2024-03-01T08:00:00Z' }),
        d: reading({ code, status: 'preliminary', effectiveDateTime: '2024-03-02T08:00:00Z' }),
        e: reading({ code, status: 'final' }),
        f: reading({ code, status: 'preliminary', effectiveDateTime: '2024-03-03T08:00:00Z' }),
      });
      const order = async (sort: string, count: string) => {
        const pages = await allPages(client, await search(client, 'Observation', { code: `urn:test:${u}|`, _sort: sort, _count: count }));
        return pages.flatMap(matchIds).map((id) => id.slice(u.length + 1));
      };
      for (const count of ['100', '2', '1']) {
        expect(await order('-date,_id', count)).toEqual(['b', 'f', 'd', 'a', 'c', 'e']);
        expect(await order('date,-_id', count)).toEqual(['c', 'a', 'd', 'f', 'b', 'e']);
        expect(await order('status,-date,_id', count)).toEqual(['b', 'a', 'c', 'e', 'f', 'd']);
        expect(await order('-_id', count)).toEqual(['f', 'e', 'd', 'c', 'b', 'a']);
      }
    });

    it('orders patients by family then given name', async () => {
      const u = unique('sortname');
      const identifier = [{ system: `urn:test:${u}`, value: '1' }];
      await putAll(u, {
        a: followed({ identifier, name: [{ family: 'Martin', given: ['Zoé'] }] }),
        b: followed({ identifier, name: [{ family: 'Bernard', given: ['Luc'] }] }),
        c: followed({ identifier, name: [{ family: 'Martin', given: ['Ambre'] }] }),
        d: followed({ identifier, name: [{ family: 'Émery', given: ['Jules'] }] }),
      });
      const bundle = await search(client, 'Patient', { identifier: `urn:test:${u}|`, _sort: 'family,given' });
      expect(matchIds(bundle).map((id) => id.slice(u.length + 1))).toEqual(['b', 'd', 'c', 'a']);
    });
  });

  describe('_include and _revinclude', () => {
    it('includes the subjects of matched Observations once each, marked as include', async () => {
      const u = unique('inc');
      const code = { coding: [{ system: `urn:test:${u}`, code: 'x' }] };
      await followedPatient(client, { id: `${u}-p1` });
      await followedPatient(client, { id: `${u}-p2` });
      await followedPatient(client, { id: `${u}-gone` });
      await put(client, { resourceType: 'Device', id: `${u}-d1` });
      const ids = await putAll(u, {
        o1: observation({ code, subject: { reference: `Patient/${u}-p1` } }),
        o2: observation({ code, subject: { reference: `Patient/${u}-p1` } }),
        o3: observation({ code, subject: { reference: `Patient/${u}-p2` } }),
        o4: observation({ code, subject: { reference: `Device/${u}-d1` }, performer: [{ reference: `Patient/${u}-p1` }] }),
        // Performed by the GP, so still theirs to read once its subject is gone.
        o5: observation({ code, subject: { reference: `Patient/${u}-gone` }, performer: [TENDE_GP] }),
      });
      // o5's subject no longer exists: there is nothing to include for it.
      await client.delete({ resourceType: 'Patient', id: `${u}-gone` });
      const bundle = await search(client, 'Observation', { code: `urn:test:${u}|`, _include: 'Observation:subject' });
      expect(sorted(matchIds(bundle))).toEqual(keysOf(ids, 'o1', 'o2', 'o3', 'o4', 'o5'));
      expect(sorted(includedRefs(bundle))).toEqual([`Device/${u}-d1`, `Patient/${u}-p1`, `Patient/${u}-p2`]);
      expect(bundle.entry).toHaveLength(8);

      const onlyPatients = await search(client, 'Observation', { code: `urn:test:${u}|`, _include: 'Observation:subject:Patient' });
      expect(sorted(includedRefs(onlyPatients))).toEqual([`Patient/${u}-p1`, `Patient/${u}-p2`]);

      const withTotal = await search(client, 'Observation', { code: `urn:test:${u}|`, _include: 'Observation:subject', _total: 'accurate' });
      expect(withTotal.total).toBe(5);
    });

    it('includes Observations that point to the matched Patients once each', async () => {
      const u = unique('rev');
      const identifier = [{ system: `urn:test:${u}`, value: '1' }];
      await followedPatient(client, { id: `${u}-p1`, identifier });
      await followedPatient(client, { id: `${u}-p2`, identifier });
      await followedPatient(client, { id: `${u}-p3` });
      await putAll(u, {
        o1: observation({ subject: { reference: `Patient/${u}-p1` } }),
        o2: observation({ subject: { reference: `Patient/${u}-p1` } }),
        o3: observation({ subject: { reference: `Patient/${u}-p2` } }),
        o4: observation({ subject: { reference: `Patient/${u}-p3` } }),
      });
      await client.delete({ resourceType: 'Observation', id: `${u}-o2` });
      const bundle = await search(client, 'Patient', { identifier: `urn:test:${u}|`, _revinclude: 'Observation:subject' });
      expect(sorted(matchIds(bundle))).toEqual([`${u}-p1`, `${u}-p2`]);
      expect(sorted(includedRefs(bundle))).toEqual([`Observation/${u}-o1`, `Observation/${u}-o3`]);
      expect(bundle.entry).toHaveLength(4);
    });

    it('never repeats as an include a resource that is already a match', async () => {
      const u = unique('incdup');
      const code = { coding: [{ system: `urn:test:${u}`, code: 'x' }] };
      await followedPatient(client, { id: `${u}-p` });
      await putAll(u, {
        member: observation({ code, subject: { reference: `Patient/${u}-p` } }),
        panel: observation({ code, subject: { reference: `Patient/${u}-p` }, hasMember: [{ reference: `Observation/${u}-member` }] }),
      });
      const bundle = await search(client, 'Observation', { code: `urn:test:${u}|`, _include: ['Observation:has-member', 'Observation:subject'] });
      expect(sorted(matchIds(bundle))).toEqual([`${u}-member`, `${u}-panel`]);
      expect(includedRefs(bundle)).toEqual([`Patient/${u}-p`]);
      const all = (bundle.entry ?? []).map((e) => `${e.resource!.resourceType}/${e.resource!.id}`);
      expect(new Set(all).size).toBe(all.length);
    });

    it('includes per page: each page carries the subjects of its own matches', async () => {
      const u = unique('incpage');
      const code = { coding: [{ system: `urn:test:${u}`, code: 'x' }] };
      await followedPatient(client, { id: `${u}-p1` });
      await followedPatient(client, { id: `${u}-p2` });
      await putAll(u, {
        o1: observation({ code, subject: { reference: `Patient/${u}-p1` } }),
        o2: observation({ code, subject: { reference: `Patient/${u}-p1` } }),
        o3: observation({ code, subject: { reference: `Patient/${u}-p2` } }),
      });
      const pages = await allPages(client, await search(client, 'Observation', { code: `urn:test:${u}|`, _include: 'Observation:subject', _count: '2' }));
      expect(pages.map(matchIds)).toEqual([[`${u}-o1`, `${u}-o2`], [`${u}-o3`]]);
      expect(pages.map(includedRefs)).toEqual([[`Patient/${u}-p1`], [`Patient/${u}-p2`]]);
    });
  });

  describe('totals', () => {
    it('reports the accurate total of all matches on every page, not the size of the page', async () => {
      const u = unique('total');
      const identifier = [{ system: `urn:test:${u}`, value: '1' }];
      const created: string[] = [];
      for (let i = 0; i < 7; i++) {
        const patient = await followedPatient(client, { identifier, gender: i < 4 ? 'female' : 'male' });
        created.push(patient.id!);
        await clockPast(patient.meta?.lastUpdated); // a strict order by _lastUpdated
      }
      const bundle = await search(client, 'Patient', { identifier: `urn:test:${u}|`, _total: 'accurate', _count: '3', _sort: '-_lastUpdated' });
      expect(bundle.total).toBe(7);
      expect(matchIds(bundle)).toHaveLength(3);
      const pages = await allPages(client, bundle);
      expect(pages.map((p) => p.total)).toEqual([7, 7, 7]);
      const newestFirst = pages.flatMap(matchIds);
      expect(newestFirst).toEqual([...created].reverse());
      expect((await search(client, 'Patient', { identifier: `urn:test:${u}|`, gender: 'female', _total: 'accurate' })).total).toBe(4);
      const counted = await search(client, 'Patient', { identifier: `urn:test:${u}|`, gender: 'male', _summary: 'count' });
      expect(counted.total).toBe(3);
      expect(counted.entry ?? []).toEqual([]);
    });

    it('searches the same way with POST _search and a form body', async () => {
      const u = unique('post');
      const identifier = [{ system: `urn:test:${u}`, value: '1' }];
      const a = await followedPatient(client, { identifier, name: [{ family: 'Poste' }] });
      await followedPatient(client, { identifier, name: [{ family: 'Autre' }] });
      const bundle = (await client.search({
        resourceType: 'Patient',
        searchParams: { identifier: `urn:test:${u}|`, family: 'poste' },
        options: { postSearch: true },
      })) as unknown as Bundle;
      expect(matchIds(bundle)).toEqual([a.id]);
    });
  });

  describe('invalid searches', () => {
    it('answers an unknown search parameter with 400 naming it', async () => {
      const { status, outcome } = await failure(client.request('Observation?colour=red'));
      expect(status).toBe(400);
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(outcome.issue[0]!.expression).toEqual(['colour']);
    });

    it('answers an invalid date value with 400', async () => {
      for (const value of ['yesterday', 'ge2024-13', '2024-02-30', 'gt24-01-01']) {
        const { status, outcome } = await failure(client.request(`Observation?date=${value}`));
        expect({ value, status }).toEqual({ value, status: 400 });
        expect(outcome.resourceType).toBe('OperationOutcome');
      }
    });

    it('answers an unsupported modifier, sort key, include, _count or _total with 400', async () => {
      for (const query of [
        'Patient?name:fuzzy=x',
        'Patient?gender:exact=female',
        'Observation?value-quantity=abc',
        'Patient?_sort=colour',
        'Patient?_include=Observation:subject',
        'Observation?_include=Observation:code',
        'Patient?_count=-1',
        'Patient?_count=many',
        'Patient?_total=some',
        'Patient?_cursor=not-a-cursor',
        'Patient?birthdate:missing=maybe',
      ]) {
        const { status } = await failure(client.request(query));
        expect({ query, status }).toEqual({ query, status: 400 });
      }
    });
  });
});
