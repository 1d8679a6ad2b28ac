/**
 * Writes one synthetic e-valise exam per rhythm to examples/evalise/, as pretty JSON transaction
 * Bundles that can be POSTed to /fhir/R4 once the demo directory (fhir/demo/demo-data.ts) is loaded.
 *
 *   npx tsx scripts/generate-examples.ts [output-dir]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEMO_IDS } from '../fhir/demo/demo-data.js';
import { generateExam, type EvaliseExamOptions } from '../fhir/evalise/synthetic.js';

const P = DEMO_IDS.practitioners;
// Paul Giordano (Tende), Marguerite Lanteri (La Brigue), Joseph Raiberti (Saint-Martin-Vésubie),
// Simone Ghibaudo (Roquebillière), Odette Fourcade (EHPAD Les Edelweiss).
const [giordano, lanteri, , , raiberti, ghibaudo, , , , , fourcade] = DEMO_IDS.patients;

/** Each exam tells a story the hub must handle: a routine check, then the alerts surveillance should raise. */
const EXAMPLES: { file: string; options: EvaliseExamOptions }[] = [
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

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.resolve(process.argv[2] ?? path.join(root, 'examples', 'evalise'));
mkdirSync(outDir, { recursive: true });

for (const { file, options } of EXAMPLES) {
  const json = JSON.stringify(generateExam(options), null, 2) + '\n';
  writeFileSync(path.join(outDir, file), json);
  console.log(`${path.relative(process.cwd(), path.join(outDir, file))}  ${options.rhythm.padEnd(12)} ${options.patientId}  ${(Buffer.byteLength(json) / 1024).toFixed(0)} KiB`);
}
