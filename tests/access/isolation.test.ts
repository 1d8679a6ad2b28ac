import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from 'fhir-kit-client';
import type { Bundle, CareTeam, Observation, Patient } from '@medplum/fhirtypes';
import { INS_NIR_SYSTEM } from '../../fhir/demo/demo-data.js';
import { backends, type TestHub } from '../fhir/harness.js';
import {
  HEART_RATE,
  ORG,
  PRACT,
  SPO2,
  USER,
  create,
  createdIds,
  examEntries,
  failure,
  fhirBody,
  httpStatus,
  idsOf,
  newPatient,
  notFoundOutcome,
  read,
  ref,
  refsOf,
  search,
  sorted,
  startAccessHub,
  transaction,
  unique,
  update,
  vital,
} from './support.js';

/**
 * Cross-organization isolation: the GP of Saint-Martin-Vésubie reaches nothing of the patients the
 * MSP of Tende follows, and cannot even learn that they exist (404, never 403).
 */
describe.each(backends())('isolation between care teams on $name', (backend) => {
  let hub: TestHub;
  let tende: Client;
  let vesubie: Client;
  /** The Tende GP's patient and the exam they uploaded. */
  let tendePatient: Patient;
  let tendeNir: string;
  let tendeFamily: string;
  let tendeObs: Observation[];
  /** The Vésubie GP's own patient and reading. */
  let vesubiePatient: Patient;
  let vesubieObs: Observation;
  /** Everything the Vésubie GP creates along the tests, as Type/id: what their searches may return. */
  const vesubieOwn: string[] = [];

  beforeAll(async () => {
    hub = await startAccessHub(backend);
    tende = await hub.clientAs(USER.gpTende);
    vesubie = await hub.clientAs(USER.gpVesubie);

    tendeFamily = unique('Giordanengo');
    const p = newPatient(ORG.mspTende, tendeFamily, 'Paulette');
    tendeNir = p.identifier![0]!.value!;
    tendePatient = await create(tende, p);
    const exam = await transaction(tende, examEntries(tendePatient.id!, PRACT.gpTende));
    tendeObs = await Promise.all(createdIds(exam).map((id) => read<Observation>(tende, 'Observation', id)));

    vesubiePatient = await create(vesubie, newPatient(ORG.mspVesubie, unique('Ghibaudo'), 'Rose'));
    vesubieObs = await create(vesubie, vital(vesubiePatient.id!, PRACT.gpVesubie, HEART_RATE));
    vesubieOwn.push(`Patient/${vesubiePatient.id}`, `Observation/${vesubieObs.id}`);
  });
  afterAll(async () => {
    await hub?.close();
  });

  const missingId = () => randomUUID();

  it('answers the Vésubie GP 404 with an OperationOutcome, exactly as for a record that does not exist, when reading the Tende patient or their Observations', async () => {
    const patient = await failure(read(vesubie, 'Patient', tendePatient.id!));
    expect(patient).toEqual({ status: 404, outcome: notFoundOutcome(`Patient/${tendePatient.id}`) });
    for (const obs of tendeObs) {
      expect(await failure(read(vesubie, 'Observation', obs.id!))).toEqual({ status: 404, outcome: notFoundOutcome(`Observation/${obs.id}`) });
    }
    const missing = missingId();
    expect(await failure(read(vesubie, 'Patient', missing))).toEqual({ status: 404, outcome: notFoundOutcome(`Patient/${missing}`) });
    // The Tende GP reads them, and the Vésubie GP reads their own.
    expect((await read<Patient>(tende, 'Patient', tendePatient.id!)).id).toBe(tendePatient.id);
    expect((await read<Observation>(vesubie, 'Observation', vesubieObs.id!)).id).toBe(vesubieObs.id);
  });

  it('answers 404 to vread and instance history of the Tende records, and leaves them out of type history', async () => {
    expect(await failure(vesubie.vread({ resourceType: 'Patient', id: tendePatient.id!, version: '1' }))).toEqual({
      status: 404,
      outcome: notFoundOutcome(`Patient/${tendePatient.id}/_history/1`),
    });
    expect(await failure(vesubie.vread({ resourceType: 'Observation', id: tendeObs[0]!.id!, version: '1' }))).toEqual({
      status: 404,
      outcome: notFoundOutcome(`Observation/${tendeObs[0]!.id}/_history/1`),
    });
    expect(await failure(vesubie.history({ resourceType: 'Patient', id: tendePatient.id! }))).toEqual({
      status: 404,
      outcome: notFoundOutcome(`Patient/${tendePatient.id}`),
    });
    expect(await failure(vesubie.history({ resourceType: 'Observation', id: tendeObs[1]!.id! }))).toEqual({
      status: 404,
      outcome: notFoundOutcome(`Observation/${tendeObs[1]!.id}`),
    });
    const patientHistory = (await vesubie.history({ resourceType: 'Patient' })) as unknown as Bundle;
    expect(idsOf(patientHistory)).not.toContain(tendePatient.id);
    expect(idsOf(patientHistory)).toContain(vesubiePatient.id);
    const observationHistory = (await vesubie.history({ resourceType: 'Observation' })) as unknown as Bundle;
    expect(idsOf(observationHistory)).toEqual([vesubieObs.id]);
  });

  it('returns empty searches, with an accurate total of 0, for every way of looking for the Tende patient and their data', async () => {
    const queries: [string, Record<string, string>][] = [
      ['Patient', { _id: tendePatient.id! }],
      ['Patient', { identifier: `${INS_NIR_SYSTEM}|${tendeNir}` }],
      ['Patient', { name: tendeFamily }],
      ['Patient', { family: tendeFamily, birthdate: '1950-04-12' }],
      ['Observation', { subject: `Patient/${tendePatient.id}` }],
      ['Observation', { patient: tendePatient.id! }],
      ['Observation', { _id: tendeObs.map((o) => o.id!).join(',') }],
      ['Observation', { 'subject:Patient.name': tendeFamily }],
      ['Observation', { 'subject:Patient.identifier': `${INS_NIR_SYSTEM}|${tendeNir}` }],
      ['Observation', { 'patient.family': tendeFamily }],
      ['Observation', { performer: `Practitioner/${PRACT.gpTende}` }],
    ];
    for (const [type, params] of queries) {
      const bundle = await search(vesubie, type, { ...params, _total: 'accurate' });
      expect({ query: [type, params], total: bundle.total, entries: bundle.entry ?? [] }).toEqual({ query: [type, params], total: 0, entries: [] });
    }
    // The same code finds the Vésubie GP's own reading only.
    const heartRates = await search(vesubie, 'Observation', { code: `http://loinc.org|${HEART_RATE.loinc}`, _total: 'accurate' });
    expect(heartRates.total).toBe(1);
    expect(idsOf(heartRates)).toEqual([vesubieObs.id]);
    // The Tende GP does find them (the queries are right).
    expect((await search(tende, 'Observation', { 'subject:Patient.name': tendeFamily, _total: 'accurate' })).total).toBe(3);
  });

  it('returns nothing of the Tende patient from Observation/$lastn', async () => {
    const byPatient = (await vesubie.operation({ name: '$lastn', resourceType: 'Observation', method: 'GET', input: { patient: `Patient/${tendePatient.id}` } })) as unknown as Bundle;
    expect(byPatient.total).toBe(0);
    expect(byPatient.entry ?? []).toEqual([]);
    const byCode = (await vesubie.operation({ name: '$lastn', resourceType: 'Observation', method: 'GET', input: { code: `http://loinc.org|${HEART_RATE.loinc}`, max: '10' } })) as unknown as Bundle;
    expect(idsOf(byCode)).toEqual([vesubieObs.id]);
    const own = (await tende.operation({ name: '$lastn', resourceType: 'Observation', method: 'GET', input: { patient: `Patient/${tendePatient.id}` } })) as unknown as Bundle;
    expect(idsOf(own)).toEqual(tendeObs.map((o) => o.id!).sort());
  });

  it('answers 404 to update, patch and delete of the Tende records and leaves them unchanged', async () => {
    const patientAttempt = { ...tendePatient, name: [{ family: 'Usurpé' }], managingOrganization: ref('Organization', ORG.mspVesubie) };
    expect(await failure(update(vesubie, patientAttempt))).toEqual({ status: 404, outcome: notFoundOutcome(`Patient/${tendePatient.id}`) });
    const obs = tendeObs[0]!;
    // Moving the reading to one of their own patients would take it over: refused the same way.
    const moved = { ...obs, subject: ref('Patient', vesubiePatient.id!), performer: [ref('Practitioner', PRACT.gpVesubie)] };
    expect(await failure(update(vesubie, moved))).toEqual({ status: 404, outcome: notFoundOutcome(`Observation/${obs.id}`) });
    expect(await failure(vesubie.patch({ resourceType: 'Observation', id: obs.id!, jsonPatch: [{ op: 'replace', path: '/status', value: 'entered-in-error' }] }))).toEqual({
      status: 404,
      outcome: notFoundOutcome(`Observation/${obs.id}`),
    });
    expect(await failure(vesubie.patch({ resourceType: 'Patient', id: tendePatient.id!, jsonPatch: [{ op: 'replace', path: '/active', value: false }] }))).toEqual({
      status: 404,
      outcome: notFoundOutcome(`Patient/${tendePatient.id}`),
    });
    expect(await failure(vesubie.delete({ resourceType: 'Observation', id: obs.id! }))).toEqual({ status: 404, outcome: notFoundOutcome(`Observation/${obs.id}`) });
    expect(await failure(vesubie.delete({ resourceType: 'Patient', id: tendePatient.id! }))).toEqual({ status: 404, outcome: notFoundOutcome(`Patient/${tendePatient.id}`) });

    const patientNow = await read<Patient>(tende, 'Patient', tendePatient.id!);
    expect(patientNow).toEqual(tendePatient);
    const obsNow = await read<Observation>(tende, 'Observation', obs.id!);
    expect(obsNow).toEqual(obs);
    expect(obsNow.meta!.versionId).toBe('1');
  });

  it('answers 404 to creating an Observation or a CareTeam for the Tende patient, and stores nothing', async () => {
    const reading = vital(tendePatient.id!, PRACT.gpVesubie, SPO2);
    expect(await failure(create(vesubie, reading))).toEqual({ status: 404, outcome: notFoundOutcome(`Patient/${tendePatient.id}`) });
    // Naming oneself in a care team of the patient is how access is given: it is refused too.
    const team: CareTeam = {
      resourceType: 'CareTeam',
      status: 'active',
      subject: ref('Patient', tendePatient.id!),
      participant: [{ member: ref('Practitioner', PRACT.gpVesubie), onBehalfOf: ref('Organization', ORG.mspVesubie) }],
    };
    expect(await failure(create(vesubie, team))).toEqual({ status: 404, outcome: notFoundOutcome(`Patient/${tendePatient.id}`) });
    // A patient that does not exist gets the same answer.
    const missing = missingId();
    expect(await failure(create(vesubie, vital(missing, PRACT.gpVesubie, SPO2)))).toEqual({ status: 404, outcome: notFoundOutcome(`Patient/${missing}`) });

    expect((await search(tende, 'Observation', { subject: `Patient/${tendePatient.id}`, _total: 'accurate' })).total).toBe(3);
    expect((await search(tende, 'CareTeam', { patient: `Patient/${tendePatient.id}`, _total: 'accurate' })).total).toBe(0);
    await expect(failure(read(vesubie, 'Patient', tendePatient.id!))).resolves.toMatchObject({ status: 404 });
  });

  it('does not let a conditional create or a conditional update find the Tende records', async () => {
    // Registering "the same" patient (same INS) with If-None-Exist creates the Vésubie file, not a link to Tende's.
    const duplicate = newPatient(ORG.mspVesubie, tendeFamily, 'Paulette', tendeNir);
    const result = await vesubie.create({
      resourceType: 'Patient',
      body: fhirBody(duplicate),
      options: { headers: { 'If-None-Exist': `identifier=${INS_NIR_SYSTEM}|${tendeNir}` } },
    });
    expect(httpStatus(result)).toBe(201);
    expect((result as unknown as Patient).id).not.toBe(tendePatient.id);
    expect((result as unknown as Patient).managingOrganization).toEqual(ref('Organization', ORG.mspVesubie));

    // A reading with the identifier of a Tende reading.
    const tendeIdentifier = tendeObs[0]!.identifier![0]!;
    const condition = `identifier=${tendeIdentifier.system}|${tendeIdentifier.value}`;
    // Aimed at the Tende patient: not matched either, and 404 as for any write to them.
    const foreign = { ...vital(tendePatient.id!, PRACT.gpVesubie, SPO2), identifier: [tendeIdentifier] };
    expect(await failure(vesubie.create({ resourceType: 'Observation', body: fhirBody(foreign), options: { headers: { 'If-None-Exist': condition } } }))).toEqual({
      status: 404,
      outcome: notFoundOutcome(`Patient/${tendePatient.id}`),
    });
    // A conditional update on that identifier matches nothing the Vésubie GP may read: it creates their own reading.
    const own = { ...vital(vesubiePatient.id!, PRACT.gpVesubie, SPO2), identifier: [tendeIdentifier] };
    const put = await vesubie.update({
      resourceType: 'Observation',
      searchParams: { identifier: `${tendeIdentifier.system}|${tendeIdentifier.value}` },
      body: fhirBody(own),
    });
    expect(httpStatus(put)).toBe(201);
    const ownId = (put as unknown as Observation).id!;
    expect(ownId).not.toBe(tendeObs[0]!.id);
    vesubieOwn.push(`Observation/${ownId}`);
    // If-None-Exist on it now finds that reading, never the Tende one.
    const again = await vesubie.create({ resourceType: 'Observation', body: fhirBody(own), options: { headers: { 'If-None-Exist': condition } } });
    expect(httpStatus(again)).toBe(200);
    expect((again as unknown as Observation).id).toBe(ownId);
    expect(await read<Observation>(tende, 'Observation', tendeObs[0]!.id!)).toEqual(tendeObs[0]);
    // The Tende GP still sees one patient with that INS: theirs.
    expect(idsOf(await search(tende, 'Patient', { identifier: `${INS_NIR_SYSTEM}|${tendeNir}` }))).toEqual([tendePatient.id]);
  });

  it('answers 404 entries in a batch that reads the Tende records, and 404 for a transaction that does, writing nothing', async () => {
    const batch = await transaction(
      vesubie,
      [
        { request: { method: 'GET', url: `Patient/${tendePatient.id}` } },
        { request: { method: 'GET', url: `Observation/${tendeObs[0]!.id}` } },
        { request: { method: 'GET', url: `Observation?subject=Patient/${tendePatient.id}&_total=accurate` } },
        { request: { method: 'GET', url: `Patient/${vesubiePatient.id}` } },
      ],
      'batch',
    );
    expect(batch.type).toBe('batch-response');
    const [p, o, s, own] = batch.entry!;
    expect(p).toEqual({ response: { status: '404', outcome: notFoundOutcome(`Patient/${tendePatient.id}`) } });
    expect(o).toEqual({ response: { status: '404', outcome: notFoundOutcome(`Observation/${tendeObs[0]!.id}`) } });
    expect(s!.response!.status).toBe('200 OK');
    expect((s!.resource as Bundle).total).toBe(0);
    expect((s!.resource as Bundle).entry ?? []).toEqual([]);
    expect(own!.response!.status).toBe('200 OK');
    expect(own!.resource!.id).toBe(vesubiePatient.id);

    const before = (await search(vesubie, 'Observation', { subject: `Patient/${vesubiePatient.id}`, _total: 'accurate' })).total;
    const refused = await failure(
      transaction(vesubie, [
        { fullUrl: `urn:uuid:${randomUUID()}`, resource: vital(vesubiePatient.id!, PRACT.gpVesubie, SPO2), request: { method: 'POST', url: 'Observation' } },
        { request: { method: 'GET', url: `Patient/${tendePatient.id}` } },
      ]),
    );
    expect(refused).toEqual({ status: 404, outcome: notFoundOutcome(`Patient/${tendePatient.id}`) });
    expect((await search(vesubie, 'Observation', { subject: `Patient/${vesubiePatient.id}`, _total: 'accurate' })).total).toBe(before);
  });

  it('answers a vread of a deleted version of a Tende record with 404, as for a version that never existed', async () => {
    const extra = await create(tende, vital(tendePatient.id!, PRACT.gpTende, SPO2, '2026-03-03T10:00:00Z'));
    await tende.delete({ resourceType: 'Observation', id: extra.id! });
    // The Tende GP sees the deletion.
    expect((await failure(tende.vread({ resourceType: 'Observation', id: extra.id!, version: '2' }))).status).toBe(410);
    expect(await failure(vesubie.read({ resourceType: 'Observation', id: extra.id! }))).toEqual({ status: 404, outcome: notFoundOutcome(`Observation/${extra.id}`) });
    expect(await failure(vesubie.history({ resourceType: 'Observation', id: extra.id! }))).toEqual({ status: 404, outcome: notFoundOutcome(`Observation/${extra.id}`) });
    // A 410 here would tell the Vésubie GP that the record existed.
    expect(await failure(vesubie.vread({ resourceType: 'Observation', id: extra.id!, version: '2' }))).toEqual({
      status: 404,
      outcome: notFoundOutcome(`Observation/${extra.id}/_history/2`),
    });
  });

  it('answers a DELETE of a Tende record exactly as a DELETE of a record that does not exist', async () => {
    const answer = async (id: string) => {
      try {
        const result = await vesubie.delete({ resourceType: 'Observation', id });
        return { status: httpStatus(result), outcome: undefined };
      } catch (err) {
        const { status, data } = (err as { response: { status: number; data: unknown } }).response;
        return { status, outcome: data };
      }
    };
    const missing = missingId();
    const foreign = await answer(tendeObs[2]!.id!);
    const absent = await answer(missing);
    expect(foreign).toEqual({ status: 404, outcome: notFoundOutcome(`Observation/${tendeObs[2]!.id}`) });
    expect(absent).toEqual({ status: 404, outcome: notFoundOutcome(`Observation/${missing}`) });
  });

  // ---------------------------------------------------------------- _include and _revinclude

  describe('with references that cross the two teams', () => {
    /** A Vésubie reading that points at the Tende patient and readings (focus, derivedFrom, hasMember). */
    let crossing: Observation;
    /** A Tende reading that points at the Vésubie patient and reading. */
    let tendeCrossing: Observation;

    beforeAll(async () => {
      crossing = await create(vesubie, {
        ...vital(vesubiePatient.id!, PRACT.gpVesubie, SPO2),
        focus: [ref('Patient', tendePatient.id!)],
        derivedFrom: [ref('Observation', tendeObs[0]!.id!)],
        hasMember: [ref('Observation', tendeObs[1]!.id!)],
      });
      vesubieOwn.push(`Observation/${crossing.id}`);
      tendeCrossing = await create(tende, {
        ...vital(tendePatient.id!, PRACT.gpTende, SPO2),
        focus: [ref('Patient', vesubiePatient.id!)],
        derivedFrom: [ref('Observation', vesubieObs.id!)],
      });
    });

    it('includes only what the Vésubie GP may read with _include', async () => {
      const bundle = await search(vesubie, 'Observation', {
        _id: crossing.id!,
        _include: ['Observation:subject', 'Observation:focus', 'Observation:derived-from', 'Observation:has-member', 'Observation:performer'],
      });
      expect(refsOf(bundle)).toEqual(sorted([`Observation/${crossing.id}`, `Patient/${vesubiePatient.id}`, `Practitioner/${PRACT.gpVesubie}`]));

      // Every Vésubie reading with its patient, and nothing else.
      const all = await search(vesubie, 'Observation', { _include: 'Observation:subject', _count: '1000' });
      expect(refsOf(all)).toEqual(sorted(vesubieOwn));
      // And the other way round: the Tende reading pointing at the Vésubie patient includes nothing of theirs.
      const tendeSide = await search(tende, 'Observation', { _id: tendeCrossing.id!, _include: ['Observation:focus', 'Observation:derived-from', 'Observation:subject'] });
      expect(refsOf(tendeSide)).toEqual(sorted([`Observation/${tendeCrossing.id}`, `Patient/${tendePatient.id}`]));
    });

    it('revincludes only what the Vésubie GP may read with _revinclude', async () => {
      const patients = await search(vesubie, 'Patient', {
        _id: vesubiePatient.id!,
        _revinclude: ['Observation:subject', 'Observation:focus', 'Observation:derived-from'],
      });
      // The patient and every Vésubie reading about them; not the Tende reading whose focus is them.
      expect(refsOf(patients)).toEqual(sorted(vesubieOwn));
      const everyPatient = await search(vesubie, 'Patient', { _revinclude: 'Observation:subject', _count: '1000' });
      const refs = refsOf(everyPatient);
      expect(refs).not.toContain(`Patient/${tendePatient.id}`);
      for (const o of [...tendeObs, tendeCrossing]) expect(refs).not.toContain(`Observation/${o.id}`);
      const readings = await search(vesubie, 'Observation', { _id: vesubieObs.id!, _revinclude: ['Observation:derived-from', 'Observation:focus'] });
      expect(refsOf(readings)).toEqual([`Observation/${vesubieObs.id}`]);
    });

    it('does not let a chained search through such a reference probe the Tende patient or readings', async () => {
      // Each of these would tell the Vésubie GP the name, INS or a measured value of someone they do not care for.
      const probes: Record<string, string>[] = [
        { 'focus:Patient.name': tendeFamily },
        { 'focus:Patient.identifier': `${INS_NIR_SYSTEM}|${tendeNir}` },
        { 'focus:Patient.birthdate': '1950-04-12' },
        { 'derived-from:Observation.value-quantity': String(HEART_RATE.value) },
        { 'has-member:Observation.code': `http://loinc.org|${SPO2.loinc}` },
      ];
      const answers = [];
      for (const probe of probes) {
        const bundle = await search(vesubie, 'Observation', { ...probe, _total: 'accurate' });
        answers.push({ probe, total: bundle.total, ids: idsOf(bundle) });
      }
      expect(answers).toEqual(probes.map((probe) => ({ probe, total: 0, ids: [] })));
    });
  });
});
