/**
 * Demo directory for the hub: a CHU with three departments, two mountain MSPs, an EHPAD and the
 * SAMU 06, their practitioners and roles, twelve patients and one care team per patient.
 *
 * Every entry is a PUT on a stable id, so loading the bundle again rewrites the same resources
 * instead of duplicating them. References use literal `Type/id` (the ids are known), which works
 * whether or not a server rewrites urn:uuid references. All people and numbers are fictitious;
 * identifiers carry valid check keys so that validation code downstream can be exercised.
 * No credentials live here: user accounts are the server's concern.
 */
import { createHash } from 'node:crypto';
import type {
  Address,
  Bundle,
  BundleEntry,
  CareTeam,
  CodeableConcept,
  Coding,
  Identifier,
  Organization,
  Patient,
  Practitioner,
  PractitionerRole,
  Resource,
} from '@medplum/fhirtypes';

// ---------------------------------------------------------------------------------------------
// Identifier systems and code systems
// ---------------------------------------------------------------------------------------------

/** INS-NIR (FR Core). FR Core reserves urn:oid:1.2.250.1.213.1.4.10 (test) and .11 (demo) for fictitious patients. */
export const INS_NIR_SYSTEM = 'urn:oid:1.2.250.1.213.1.4.8';
export const RPPS_SYSTEM = 'https://rpps.esante.gouv.fr';
export const FINESS_SYSTEM = 'urn:oid:1.2.250.1.71.4.2.2';
/** Staff without an RPPS number (administrative staff) are identified by the hub itself. */
export const HUB_STAFF_SYSTEM = 'https://hub.example/staff';
/** The hub's own role vocabulary, read by the access-control layer. */
export const HUB_ROLE_SYSTEM = 'https://hub.example/role';

export type HubRole = 'gp' | 'specialist' | 'nurse' | 'samu-correspondent' | 'regulator' | 'coordinator' | 'admin';

const FR_IDENTIFIER_TYPE_SYSTEM = 'https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203';
const PROFESSION_SYSTEM = 'https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante';
const HL7_PRACTITIONER_ROLE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/practitioner-role';
const HL7_ORGANIZATION_TYPE_SYSTEM = 'http://terminology.hl7.org/CodeSystem/organization-type';
const SNOMED = 'http://snomed.info/sct';

// ---------------------------------------------------------------------------------------------
// Stable ids
// ---------------------------------------------------------------------------------------------

export const DEMO_IDS = {
  organizations: {
    chu: 'org-chu-nice',
    cardiology: 'org-chu-nice-cardiologie',
    pulmonology: 'org-chu-nice-pneumologie',
    geriatrics: 'org-chu-nice-geriatrie',
    mspTende: 'org-msp-tende',
    mspVesubie: 'org-msp-saint-martin-vesubie',
    ehpad: 'org-ehpad-edelweiss',
    samu: 'org-samu-06',
  },
  practitioners: {
    gpTende: 'pract-gp-tende',
    gpVesubie: 'pract-gp-vesubie',
    cardiologist: 'pract-cardio-chu',
    pulmonologist: 'pract-pneumo-chu',
    geriatrician: 'pract-geriatre-chu',
    ehpadNurse: 'pract-ide-ehpad',
    samuCorrespondent: 'pract-mcs-vesubie',
    regulator: 'pract-regulateur-samu',
    coordinator: 'pract-coordination-chu',
    admin: 'pract-admin-chu',
  },
  practitionerRoles: {
    gpTende: 'role-gp-tende',
    gpVesubie: 'role-gp-vesubie',
    cardiologist: 'role-cardio-chu',
    pulmonologist: 'role-pneumo-chu',
    geriatrician: 'role-geriatre-chu',
    ehpadNurse: 'role-ide-ehpad',
    samuCorrespondent: 'role-mcs-vesubie',
    regulator: 'role-regulateur-samu',
    coordinator: 'role-coordination-chu',
    admin: 'role-admin-chu',
  },
  patients: [
    'patient-001',
    'patient-002',
    'patient-003',
    'patient-004',
    'patient-005',
    'patient-006',
    'patient-007',
    'patient-008',
    'patient-009',
    'patient-010',
    'patient-011',
    'patient-012',
  ],
  careTeams: [
    'careteam-patient-001',
    'careteam-patient-002',
    'careteam-patient-003',
    'careteam-patient-004',
    'careteam-patient-005',
    'careteam-patient-006',
    'careteam-patient-007',
    'careteam-patient-008',
    'careteam-patient-009',
    'careteam-patient-010',
    'careteam-patient-011',
    'careteam-patient-012',
  ],
} as const;

export type DemoOrganizationKey = keyof typeof DEMO_IDS.organizations;
export type DemoPractitionerKey = keyof typeof DEMO_IDS.practitioners;
export type DemoOrganizationId = (typeof DEMO_IDS.organizations)[DemoOrganizationKey];
export type DemoPractitionerId = (typeof DEMO_IDS.practitioners)[DemoPractitionerKey];
export type DemoPatientId = (typeof DEMO_IDS.patients)[number];

// ---------------------------------------------------------------------------------------------
// Check keys
// ---------------------------------------------------------------------------------------------

/** The INS-NIR key: 97 - (the 13-digit number mod 97), on two digits. */
export function insNirKey(first13: string): string {
  if (!/^[0-9]{13}$/.test(first13)) throw new Error(`an INS-NIR body is 13 digits, got "${first13}"`);
  return String(97n - (BigInt(first13) % 97n)).padStart(2, '0');
}

/** FINESS and RPPS numbers end with a Luhn check digit. */
export function luhnCheckDigit(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let d = Number(body[body.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return String((10 - (sum % 10)) % 10);
}

/** FINEJ: the legal entity (the CHU); FINEG: a geographic establishment (a site, an MSP, an EHPAD). */
function finess(body8: string, kind: 'FINEJ' | 'FINEG' = 'FINEG'): Identifier {
  const display = kind === 'FINEJ' ? 'FINESS d\'entité juridique' : 'FINESS d\'entité géographique';
  return {
    use: 'official',
    type: { coding: [{ system: FR_IDENTIFIER_TYPE_SYSTEM, code: kind, display }] },
    system: FINESS_SYSTEM,
    value: body8 + luhnCheckDigit(body8),
  };
}

function rpps(body10: string): Identifier {
  return {
    use: 'official',
    type: { coding: [{ system: FR_IDENTIFIER_TYPE_SYSTEM, code: 'RPPS', display: 'N° RPPS' }] },
    system: RPPS_SYSTEM,
    value: body10 + luhnCheckDigit(body10),
  };
}

function insNir(first13: string): Identifier {
  return {
    use: 'official',
    type: { coding: [{ system: FR_IDENTIFIER_TYPE_SYSTEM, code: 'INS-NIR', display: 'NIR définitif' }] },
    system: INS_NIR_SYSTEM,
    value: first13 + insNirKey(first13),
  };
}

// ---------------------------------------------------------------------------------------------
// Organizations
// ---------------------------------------------------------------------------------------------

const ORG = DEMO_IDS.organizations;
const PRACT = DEMO_IDS.practitioners;
const ROLE = DEMO_IDS.practitionerRoles;

function ref(type: string, id: string, display?: string): { reference: string; display?: string } {
  return display ? { reference: `${type}/${id}`, display } : { reference: `${type}/${id}` };
}

function addressFr(line: string[], postalCode: string, city: string, district: string): Address {
  return { use: 'work', type: 'physical', line, postalCode, city, district, country: 'FR' };
}

function orgType(code: 'prov' | 'dept', text: string): CodeableConcept[] {
  const display = code === 'prov' ? 'Healthcare Provider' : 'Hospital Department';
  return [{ coding: [{ system: HL7_ORGANIZATION_TYPE_SYSTEM, code, display }], text }];
}

const chuAddress = addressFr(['Hôpital Pasteur 2', '30 voie Romaine'], '06000', 'Nice', 'Alpes-Maritimes');

function organizations(): Organization[] {
  return [
    {
      resourceType: 'Organization',
      id: ORG.chu,
      identifier: [finess('06078500', 'FINEJ')],
      active: true,
      type: orgType('prov', 'Centre hospitalier universitaire'),
      name: 'CHU de Nice',
      alias: ['Centre hospitalier universitaire de Nice'],
      telecom: [{ system: 'phone', value: '+33 4 92 03 33 33', use: 'work' }],
      address: [chuAddress],
    },
    department(ORG.cardiology, '06000461', 'Service de cardiologie', 'cardiologie'),
    department(ORG.pulmonology, '06000462', 'Service de pneumologie', 'pneumologie'),
    department(ORG.geriatrics, '06000463', 'Service de gériatrie', 'gériatrie'),
    {
      resourceType: 'Organization',
      id: ORG.mspTende,
      identifier: [finess('06002174')],
      active: true,
      type: orgType('prov', 'Maison de santé pluriprofessionnelle'),
      name: 'MSP de Tende',
      alias: ['Maison de santé pluriprofessionnelle de la Haute-Roya'],
      telecom: [{ system: 'phone', value: '+33 4 93 04 60 10', use: 'work' }],
      address: [addressFr(['12 avenue du 16 Septembre 1947'], '06430', 'Tende', 'Alpes-Maritimes')],
    },
    {
      resourceType: 'Organization',
      id: ORG.mspVesubie,
      identifier: [finess('06002218')],
      active: true,
      type: orgType('prov', 'Maison de santé pluriprofessionnelle'),
      name: 'MSP de Saint-Martin-Vésubie',
      alias: ['Maison de santé pluriprofessionnelle de la Haute-Vésubie'],
      telecom: [{ system: 'phone', value: '+33 4 93 03 20 45', use: 'work' }],
      address: [addressFr(['4 place Félix Faure'], '06450', 'Saint-Martin-Vésubie', 'Alpes-Maritimes')],
    },
    {
      resourceType: 'Organization',
      id: ORG.ehpad,
      identifier: [finess('31079412')],
      active: true,
      type: orgType('prov', 'Établissement d\'hébergement pour personnes âgées dépendantes'),
      name: 'EHPAD Les Edelweiss',
      telecom: [{ system: 'phone', value: '+33 5 61 79 22 40', use: 'work' }],
      address: [addressFr(['18 allée des Bains'], '31110', 'Bagnères-de-Luchon', 'Haute-Garonne')],
    },
    {
      resourceType: 'Organization',
      id: ORG.samu,
      identifier: [finess('06000470')],
      active: true,
      type: orgType('dept', 'Service d\'aide médicale urgente (SAMU) — Centre de réception et de régulation des appels'),
      name: 'SAMU 06 — Centre 15',
      alias: ['SAMU 06', 'Centre 15 des Alpes-Maritimes'],
      telecom: [{ system: 'phone', value: '15', use: 'work' }],
      address: [chuAddress],
      partOf: ref('Organization', ORG.chu, 'CHU de Nice'),
    },
  ];
}

function department(id: string, finess8: string, name: string, specialty: string): Organization {
  return {
    resourceType: 'Organization',
    id,
    identifier: [finess(finess8)],
    active: true,
    type: orgType('dept', `Service hospitalier de ${specialty}`),
    name: `CHU de Nice — ${name}`,
    address: [chuAddress],
    partOf: ref('Organization', ORG.chu, 'CHU de Nice'),
  };
}

// ---------------------------------------------------------------------------------------------
// Practitioners and roles
// ---------------------------------------------------------------------------------------------

interface StaffMember {
  key: DemoPractitionerKey;
  /** 10 digits of the RPPS number, before its Luhn key; absent for staff who are not health professionals. */
  rpps?: string;
  staffNumber?: string;
  prefix?: string;
  given: string;
  family: string;
  gender: 'male' | 'female';
  organization: DemoOrganizationId;
  hubRole: HubRole;
  roleText: string;
  profession?: 'doctor' | 'nurse';
  specialty?: Coding;
  email: string;
  phone: string;
}

const SPECIALTY = {
  generalPractice: { system: SNOMED, code: '394814009', display: 'General practice' },
  cardiology: { system: SNOMED, code: '394579002', display: 'Cardiology' },
  pulmonology: { system: SNOMED, code: '418112009', display: 'Pulmonary medicine' },
  geriatrics: { system: SNOMED, code: '394811001', display: 'Geriatric medicine' },
  emergency: { system: SNOMED, code: '773568002', display: 'Emergency medicine' },
} satisfies Record<string, Coding>;

const STAFF: StaffMember[] = [
  {
    key: 'gpTende', rpps: '1000348127', prefix: 'Dr', given: 'Laure', family: 'Pastorelli', gender: 'female',
    organization: ORG.mspTende, hubRole: 'gp', roleText: 'Médecin généraliste', profession: 'doctor',
    specialty: SPECIALTY.generalPractice, email: 'laure.pastorelli@msp-tende.example', phone: '+33 4 93 04 60 11',
  },
  {
    key: 'gpVesubie', rpps: '1000517304', prefix: 'Dr', given: 'Mathieu', family: 'Ghigo', gender: 'male',
    organization: ORG.mspVesubie, hubRole: 'gp', roleText: 'Médecin généraliste', profession: 'doctor',
    specialty: SPECIALTY.generalPractice, email: 'mathieu.ghigo@msp-vesubie.example', phone: '+33 4 93 03 20 46',
  },
  {
    key: 'cardiologist', rpps: '1000229875', prefix: 'Pr', given: 'Hélène', family: 'Bermond', gender: 'female',
    organization: ORG.cardiology, hubRole: 'specialist', roleText: 'Cardiologue', profession: 'doctor',
    specialty: SPECIALTY.cardiology, email: 'helene.bermond@chu-nice.example', phone: '+33 4 92 03 77 01',
  },
  {
    key: 'pulmonologist', rpps: '1000630518', prefix: 'Dr', given: 'Karim', family: 'Benali', gender: 'male',
    organization: ORG.pulmonology, hubRole: 'specialist', roleText: 'Pneumologue', profession: 'doctor',
    specialty: SPECIALTY.pulmonology, email: 'karim.benali@chu-nice.example', phone: '+33 4 92 03 88 14',
  },
  {
    key: 'geriatrician', rpps: '1000412096', prefix: 'Dr', given: 'Sophie', family: 'Lacroix', gender: 'female',
    organization: ORG.geriatrics, hubRole: 'specialist', roleText: 'Gériatre', profession: 'doctor',
    specialty: SPECIALTY.geriatrics, email: 'sophie.lacroix@chu-nice.example', phone: '+33 4 92 03 41 27',
  },
  {
    key: 'ehpadNurse', rpps: '1000873342', given: 'Marie', family: 'Cazenave', gender: 'female',
    organization: ORG.ehpad, hubRole: 'nurse', roleText: 'Infirmière diplômée d\'État', profession: 'nurse',
    email: 'marie.cazenave@ehpad-edelweiss.example', phone: '+33 5 61 79 22 41',
  },
  {
    key: 'samuCorrespondent', rpps: '1000705661', prefix: 'Dr', given: 'Antoine', family: 'Raybaud', gender: 'male',
    organization: ORG.samu, hubRole: 'samu-correspondent', roleText: 'Médecin correspondant du SAMU (vallée de la Vésubie)',
    profession: 'doctor', specialty: SPECIALTY.emergency, email: 'antoine.raybaud@mcs-vesubie.example', phone: '+33 6 12 48 73 05',
  },
  {
    key: 'regulator', rpps: '1000158763', prefix: 'Dr', given: 'Claire', family: 'Fabre', gender: 'female',
    organization: ORG.samu, hubRole: 'regulator', roleText: 'Médecin régulateur', profession: 'doctor',
    specialty: SPECIALTY.emergency, email: 'claire.fabre@chu-nice.example', phone: '+33 4 92 03 15 15',
  },
  {
    key: 'coordinator', rpps: '1000961240', given: 'Nathalie', family: 'Orsini', gender: 'female',
    organization: ORG.chu, hubRole: 'coordinator', roleText: 'Infirmière coordinatrice de télémédecine', profession: 'nurse',
    email: 'nathalie.orsini@chu-nice.example', phone: '+33 4 92 03 60 80',
  },
  {
    key: 'admin', staffNumber: 'ADM-0042', given: 'Julien', family: 'Marchetti', gender: 'male',
    organization: ORG.chu, hubRole: 'admin', roleText: 'Administrateur de la plateforme de télémédecine',
    email: 'julien.marchetti@chu-nice.example', phone: '+33 4 92 03 60 81',
  },
];

function practitioner(s: StaffMember): Practitioner {
  const identifier: Identifier[] = [];
  if (s.rpps) identifier.push(rpps(s.rpps));
  if (s.staffNumber) identifier.push({ use: 'official', system: HUB_STAFF_SYSTEM, value: s.staffNumber });
  return {
    resourceType: 'Practitioner',
    id: PRACT[s.key],
    identifier,
    active: true,
    name: [{ use: 'official', family: s.family, given: [s.given], ...(s.prefix ? { prefix: [s.prefix] } : {}) }],
    gender: s.gender,
    telecom: [
      { system: 'email', value: s.email, use: 'work' },
      { system: 'phone', value: s.phone, use: 'work' },
    ],
  };
}

function practitionerRole(s: StaffMember): PractitionerRole {
  const code: CodeableConcept[] = [
    { coding: [{ system: HUB_ROLE_SYSTEM, code: s.hubRole, display: s.roleText }], text: s.roleText },
  ];
  if (s.profession === 'doctor') {
    code.push({
      coding: [
        { system: HL7_PRACTITIONER_ROLE_SYSTEM, code: 'doctor', display: 'Doctor' },
        { system: PROFESSION_SYSTEM, code: '10', display: 'Médecin' },
      ],
      text: 'Médecin',
    });
  } else if (s.profession === 'nurse') {
    code.push({
      coding: [
        { system: HL7_PRACTITIONER_ROLE_SYSTEM, code: 'nurse', display: 'Nurse' },
        { system: PROFESSION_SYSTEM, code: '60', display: 'Infirmier' },
      ],
      text: 'Infirmier',
    });
  }
  return {
    resourceType: 'PractitionerRole',
    id: ROLE[s.key],
    active: true,
    practitioner: ref('Practitioner', PRACT[s.key], `${s.prefix ? s.prefix + ' ' : ''}${s.given} ${s.family}`),
    organization: ref('Organization', s.organization),
    code,
    ...(s.specialty ? { specialty: [{ coding: [s.specialty], text: s.specialty.display }] } : {}),
    telecom: [{ system: 'email', value: s.email, use: 'work' }],
  };
}

// ---------------------------------------------------------------------------------------------
// Patients and care teams
// ---------------------------------------------------------------------------------------------

interface DemoPatient {
  id: DemoPatientId;
  /** sex, YY, MM, birth department (99 = born abroad), commune or country, order number. */
  nir13: string;
  given: string;
  family: string;
  gender: 'male' | 'female';
  birthDate: string;
  address: Address;
  phone?: string;
  follower: 'tende' | 'vesubie' | 'ehpad';
}

function home(line: string, postalCode: string, city: string, district: string): Address {
  return { use: 'home', type: 'physical', line: [line], postalCode, city, district, country: 'FR' };
}

const EHPAD_ADDRESS = home('EHPAD Les Edelweiss, 18 allée des Bains', '31110', 'Bagnères-de-Luchon', 'Haute-Garonne');

const PATIENTS: DemoPatient[] = [
  {
    id: 'patient-001', nir13: '1480306163012', given: 'Paul', family: 'Giordano', gender: 'male', birthDate: '1948-03-12',
    address: home('7 rue de la Ciapagne', '06430', 'Tende', 'Alpes-Maritimes'), phone: '+33 4 93 04 71 18', follower: 'tende',
  },
  {
    id: 'patient-002', nir13: '2520706088147', given: 'Marguerite', family: 'Lanteri', gender: 'female', birthDate: '1952-07-02',
    address: home('3 place Saint-Martin', '06430', 'La Brigue', 'Alpes-Maritimes'), phone: '+33 4 93 04 62 90', follower: 'tende',
  },
  {
    id: 'patient-003', nir13: '1611199127038', given: 'Lucien', family: 'Ferrero', gender: 'male', birthDate: '1961-11-25',
    address: home('21 avenue Louis Périssol', '06540', 'Breil-sur-Roya', 'Alpes-Maritimes'), phone: '+33 6 71 20 43 88', follower: 'tende',
  },
  {
    id: 'patient-004', nir13: '2850506088421', given: 'Élodie', family: 'Cassini', gender: 'female', birthDate: '1985-05-19',
    address: home('2 chemin de Saint-Sauveur', '06430', 'Tende', 'Alpes-Maritimes'), phone: '+33 6 33 58 12 07', follower: 'tende',
  },
  {
    id: 'patient-005', nir13: '1440106127005', given: 'Joseph', family: 'Raiberti', gender: 'male', birthDate: '1944-01-08',
    address: home('11 rue du Docteur Cagnoli', '06450', 'Saint-Martin-Vésubie', 'Alpes-Maritimes'), phone: '+33 4 93 03 21 64', follower: 'vesubie',
  },
  {
    id: 'patient-006', nir13: '2390906103011', given: 'Simone', family: 'Ghibaudo', gender: 'female', birthDate: '1939-09-30',
    address: home('5 avenue Corniglion-Molinier', '06450', 'Roquebillière', 'Alpes-Maritimes'), phone: '+33 4 93 03 45 12', follower: 'vesubie',
  },
  {
    id: 'patient-007', nir13: '1570406074026', given: 'Henri', family: 'Baudoin', gender: 'male', birthDate: '1957-04-14',
    address: home('9 place de la Mairie', '06450', 'Lantosque', 'Alpes-Maritimes'), phone: '+33 6 08 91 55 30', follower: 'vesubie',
  },
  {
    id: 'patient-008', nir13: '2900206088563', given: 'Chloé', family: 'Martini', gender: 'female', birthDate: '1990-02-27',
    address: home('14 allée de la Madone de Fenestre', '06450', 'Saint-Martin-Vésubie', 'Alpes-Maritimes'), phone: '+33 6 45 77 02 19', follower: 'vesubie',
  },
  {
    id: 'patient-009', nir13: '2311031042007', given: 'Germaine', family: 'Cazaux', gender: 'female', birthDate: '1931-10-03',
    address: EHPAD_ADDRESS, follower: 'ehpad',
  },
  {
    id: 'patient-010', nir13: '1360631483019', given: 'Raymond', family: 'Soulé', gender: 'male', birthDate: '1936-06-21',
    address: EHPAD_ADDRESS, follower: 'ehpad',
  },
  {
    id: 'patient-011', nir13: '2291265440052', given: 'Odette', family: 'Fourcade', gender: 'female', birthDate: '1929-12-09',
    address: EHPAD_ADDRESS, follower: 'ehpad',
  },
  {
    id: 'patient-012', nir13: '1340831555214', given: 'Jean', family: 'Abadie', gender: 'male', birthDate: '1934-08-16',
    address: EHPAD_ADDRESS, follower: 'ehpad',
  },
];

/** Who follows a patient: the managing organization and the professional of that organization in the care team. */
const FOLLOWERS = {
  tende: { organization: ORG.mspTende, orgName: 'MSP de Tende', staff: 'gpTende', roleCode: 'gp', roleText: 'Médecin traitant' },
  vesubie: { organization: ORG.mspVesubie, orgName: 'MSP de Saint-Martin-Vésubie', staff: 'gpVesubie', roleCode: 'gp', roleText: 'Médecin traitant' },
  ehpad: { organization: ORG.ehpad, orgName: 'EHPAD Les Edelweiss', staff: 'ehpadNurse', roleCode: 'nurse', roleText: 'Infirmière référente' },
} as const satisfies Record<DemoPatient['follower'], { organization: DemoOrganizationId; orgName: string; staff: DemoPractitionerKey; roleCode: HubRole; roleText: string }>;

function patient(p: DemoPatient): Patient {
  const follower = FOLLOWERS[p.follower];
  return {
    resourceType: 'Patient',
    id: p.id,
    identifier: [insNir(p.nir13)],
    active: true,
    name: [{ use: 'official', family: p.family, given: [p.given] }],
    gender: p.gender,
    birthDate: p.birthDate,
    ...(p.phone ? { telecom: [{ system: 'phone' as const, value: p.phone, use: 'home' as const }] } : {}),
    address: [p.address],
    ...(follower.roleCode === 'gp' ? { generalPractitioner: [ref('Practitioner', PRACT[follower.staff])] } : {}),
    managingOrganization: ref('Organization', follower.organization, follower.orgName),
  };
}

function careTeam(p: DemoPatient, index: number): CareTeam {
  const follower = FOLLOWERS[p.follower];
  const member = STAFF.find((s) => s.key === follower.staff)!;
  return {
    resourceType: 'CareTeam',
    id: DEMO_IDS.careTeams[index]!,
    status: 'active',
    name: `Équipe de soins de ${p.given} ${p.family}`,
    subject: ref('Patient', p.id, `${p.given} ${p.family}`),
    participant: [
      {
        role: [{ coding: [{ system: HUB_ROLE_SYSTEM, code: follower.roleCode }], text: follower.roleText }],
        member: ref('Practitioner', PRACT[follower.staff], `${member.prefix ? member.prefix + ' ' : ''}${member.given} ${member.family}`),
        onBehalfOf: ref('Organization', follower.organization, follower.orgName),
      },
    ],
    managingOrganization: [ref('Organization', follower.organization, follower.orgName)],
  };
}

// ---------------------------------------------------------------------------------------------
// Bundle
// ---------------------------------------------------------------------------------------------

/** A stable urn:uuid per resource (name-based, UUID v5 layout), so the bundle is byte-identical on every run. */
function stableUuid(name: string): string {
  const h = createHash('sha1').update(`telemedicine-hub/demo/${name}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const hex = h.subarray(0, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

function putEntry(resource: Resource & { id?: string }): BundleEntry {
  const url = `${resource.resourceType}/${resource.id}`;
  return { fullUrl: `urn:uuid:${stableUuid(url)}`, resource, request: { method: 'PUT', url } };
}

/** The demo directory as a FHIR R4 transaction Bundle of idempotent PUTs. */
export function demoBundle(): Bundle {
  const resources: Resource[] = [
    ...organizations(),
    ...STAFF.map(practitioner),
    ...STAFF.map(practitionerRole),
    ...PATIENTS.map(patient),
    ...PATIENTS.map(careTeam),
  ];
  return { resourceType: 'Bundle', type: 'transaction', entry: resources.map(putEntry) };
}
