import path from 'node:path';
import { z } from 'zod';

const schema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default('0.0.0.0'),
  /** postgres://… selects PostgreSQL; unset, the hub stores its data with PGlite in DATA_DIR. */
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'DATABASE_URL must start with postgres:// or postgresql://')
    .optional(),
  DATA_DIR: z.string().default('./data'),
  /** Public base URL of the hub (used in FHIR fullUrl and links); defaults to http://localhost:PORT. */
  PUBLIC_URL: z.string().url().optional(),
  FHIR_BODY_LIMIT: z.string().default('25mb'),
  LOAD_DEMO_DATA: z
    .enum(['true', 'false'])
    .default('true')
    .transform((v) => v === 'true'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface HubConfig {
  port: number;
  host: string;
  databaseUrl?: string;
  dataDir: string;
  publicUrl?: string;
  fhirBodyLimit: string;
  loadDemoData: boolean;
  logLevel: string;
}

/** Reads and validates the environment once; errors name the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): HubConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid configuration: ${problems}`);
  }
  const c = parsed.data;
  return {
    port: c.PORT,
    host: c.HOST,
    databaseUrl: c.DATABASE_URL,
    dataDir: path.resolve(c.DATA_DIR),
    publicUrl: c.PUBLIC_URL?.replace(/\/$/, ''),
    fhirBodyLimit: c.FHIR_BODY_LIMIT,
    loadDemoData: c.LOAD_DEMO_DATA,
    logLevel: c.LOG_LEVEL,
  };
}
