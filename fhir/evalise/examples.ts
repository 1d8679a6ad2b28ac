/**
 * The example e-valise exams of the demo: one per rhythm, each a story the hub must handle (a
 * routine check, then what surveillance and tele-expertise should catch), for patients and
 * practitioners of the demo directory (fhir/demo/demo-data.ts). Loaded into the demo hub at its
 * first start, written as files by `npx tsx scripts/generate-examples.ts` for the uploader.
 */
import type { Bundle } from '@medplum/fhirtypes';
import { DEMO_IDS } from '../demo/demo-data.js';
import { generateExam, type EvaliseExamOptions } from './synthetic.js';

const P = DEMO_IDS.practitioners;
// Paul Giordano (Tende), Marguerite Lanteri (La Brigue), Joseph Raiberti (Saint-Martin-Vésubie),
// Simone Ghibaudo (Roquebillière), Odette Fourcade (EHPAD Les Edelweiss).
const [giordano, lanteri, , , raiberti, ghibaudo, , , , , fourcade] = DEMO_IDS.patients;

export const EXAMPLE_EXAMS: readonly { file: string; options: EvaliseExamOptions }[] = [
  {
    file: 'exam-sinus.json',
    options: { rhythm: 'sinus', patientId: giordano, performerId: P.gpTende, deviceSerial: 'EV-06-TENDE-01', time: '2025-03-14T09:30:00+01:00' },
  },
  {
    file: 'exam-afib.json',
    options: { rhythm: 'afib', patientId: ghibaudo, performerId: P.gpVesubie, deviceSerial: 'EV-06-VESUBIE-01', time: '2025-03-14T11:05:00+01:00' },
  },
  {
    file: 'exam-stemi.json',
    options: { rhythm: 'stemi', patientId: raiberti, performerId: P.gpVesubie, deviceSerial: 'EV-06-VESUBIE-01', time: '2025-03-15T06:42:00+01:00' },
  },
  {
    file: 'exam-hypoxia.json',
    options: { rhythm: 'hypoxia', patientId: fourcade, performerId: P.ehpadNurse, deviceSerial: 'EV-31-EDELWEISS-01', time: '2025-03-15T14:20:00+01:00' },
  },
  {
    file: 'exam-hypertension.json',
    options: { rhythm: 'hypertension', patientId: lanteri, performerId: P.gpTende, deviceSerial: 'EV-06-TENDE-01', time: '2025-03-17T10:15:00+01:00' },
  },
];

export function exampleExams(): { file: string; options: EvaliseExamOptions; bundle: Bundle }[] {
  return EXAMPLE_EXAMS.map((e) => ({ ...e, bundle: generateExam(e.options) }));
}
