/**
 * Writes the demo's e-valise exams (fhir/evalise/examples.ts, one per rhythm) to examples/evalise/
 * as pretty JSON transaction Bundles, as an e-valise exports them: hand them to the uploader
 * (`npm run evalise -- send examples/evalise`) or POST them to /fhir/R4.
 *
 *   npx tsx scripts/generate-examples.ts [output-dir]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { exampleExams } from '../fhir/evalise/examples.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.resolve(process.argv[2] ?? path.join(root, 'examples', 'evalise'));
mkdirSync(outDir, { recursive: true });

for (const { file, options, bundle } of exampleExams()) {
  const json = JSON.stringify(bundle, null, 2) + '\n';
  writeFileSync(path.join(outDir, file), json);
  console.log(`${path.relative(process.cwd(), path.join(outDir, file))}  ${options.rhythm.padEnd(12)} ${options.patientId}  ${(Buffer.byteLength(json) / 1024).toFixed(0)} KiB`);
}
