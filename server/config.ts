import path from 'node:path';
import { z } from 'zod';

const emptyAsUnset = (v: unknown) => (v === '' ? undefined : v);

/** An origin as browsers send it: scheme, host and port, nothing else. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.origin === value;
  } catch {
    return false;
  }
}

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
  /** Browser origins allowed to call the API (comma-separated); requests without Origin are not browsers and pass. */
  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((o) => o.trim().replace(/\/$/, ''))
        .filter((o) => o.length > 0),
    )
    .refine((list) => list.every(isOrigin), 'CORS_ORIGINS must list origins such as https://app.example.org, separated by commas'),
  /** redis://… : socket.io fans out through Redis, so several hub nodes share rooms; unset, in-process. */
  REDIS_URL: z.preprocess(emptyAsUnset, z.string().regex(/^rediss?:\/\//, 'REDIS_URL must start with redis:// or rediss://').optional()),
  ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(60).max(86_400).default(900),
  REFRESH_TOKEN_TTL_DAYS: z.coerce.number().int().min(1).max(365).default(30),
  LOGIN_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).max(100_000).default(20),
  /**
   * Proxies in front of the hub whose X-Forwarded-For is believed (express "trust proxy"): false,
   * true, a hop count, or addresses/subnets. Client addresses feed the login rate limit and the audit trail.
   */
  TRUST_PROXY: z
    .string()
    .default('false')
    .transform((v): boolean | number | string => (v === 'true' ? true : v === 'false' ? false : /^\d+$/.test(v) ? Number(v) : v)),
  /** mediasoup workers (processes); default one per core. */
  SFU_WORKERS: z.coerce.number().int().min(1).max(256).optional(),
  /** Forwarded streams a worker may carry before it takes no new room (bench:sfu: ~1,350 per core at 92 % CPU). */
  SFU_MAX_STREAMS_PER_WORKER: z.coerce.number().int().min(1).max(100_000).default(1000),
  /** Address media (ICE/DTLS/RTP) listens on; 0.0.0.0 on a server, with RTC_ANNOUNCED_IP. */
  RTC_LISTEN_IP: z.string().ip({ message: 'RTC_LISTEN_IP must be an IP address' }).default('127.0.0.1'),
  /** The public address browsers reach the media on, when the hub is behind NAT or in a container. */
  RTC_ANNOUNCED_IP: z.preprocess(emptyAsUnset, z.string().min(1).optional()),
  RTC_MIN_PORT: z.coerce.number().int().min(1024).max(65535).default(40000),
  RTC_MAX_PORT: z.coerce.number().int().min(1024).max(65535).default(49999),
  /** How long a participant whose connection dropped keeps its place in a room. */
  ROOM_GRACE_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  /** The organization that assists teleassistance calls naming none (the SAMU's Organization id). */
  TELEASSISTANCE_ORGANIZATION: z.preprocess(emptyAsUnset, z.string().regex(/^[A-Za-z0-9\-.]{1,64}$/, 'an Organization id').optional()),
}).refine((c) => c.RTC_MIN_PORT <= c.RTC_MAX_PORT, { message: 'RTC_MIN_PORT must not be above RTC_MAX_PORT', path: ['RTC_MIN_PORT'] });

export interface HubConfig {
  port: number;
  host: string;
  databaseUrl?: string;
  dataDir: string;
  publicUrl?: string;
  fhirBodyLimit: string;
  loadDemoData: boolean;
  logLevel: string;
  corsOrigins: string[];
  redisUrl?: string;
  accessTokenTtlSeconds: number;
  refreshTokenTtlDays: number;
  loginRateLimitPerMinute: number;
  trustProxy: boolean | number | string;
  sfu: {
    workers?: number;
    maxStreamsPerWorker: number;
    listenIp: string;
    announcedIp?: string;
    rtcMinPort: number;
    rtcMaxPort: number;
  };
  roomGraceSeconds: number;
  teleassistanceOrganization?: string;
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
    corsOrigins: c.CORS_ORIGINS,
    redisUrl: c.REDIS_URL,
    accessTokenTtlSeconds: c.ACCESS_TOKEN_TTL_SECONDS,
    refreshTokenTtlDays: c.REFRESH_TOKEN_TTL_DAYS,
    loginRateLimitPerMinute: c.LOGIN_RATE_LIMIT_PER_MINUTE,
    trustProxy: c.TRUST_PROXY,
    sfu: {
      ...(c.SFU_WORKERS ? { workers: c.SFU_WORKERS } : {}),
      maxStreamsPerWorker: c.SFU_MAX_STREAMS_PER_WORKER,
      listenIp: c.RTC_LISTEN_IP,
      ...(c.RTC_ANNOUNCED_IP ? { announcedIp: c.RTC_ANNOUNCED_IP } : {}),
      rtcMinPort: c.RTC_MIN_PORT,
      rtcMaxPort: c.RTC_MAX_PORT,
    },
    roomGraceSeconds: c.ROOM_GRACE_SECONDS,
    ...(c.TELEASSISTANCE_ORGANIZATION ? { teleassistanceOrganization: c.TELEASSISTANCE_ORGANIZATION } : {}),
  };
}
