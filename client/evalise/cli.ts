/**
 * The e-valise uploader, for GPs who send exams over satellite links:
 *
 *   npm run evalise -- send <file|folder>...   queue exams, then deliver everything queued
 *   npm run evalise -- send                    deliver what is queued (after a crash, a reboot)
 *   npm run evalise -- watch <folder>          queue what the device exports there, deliver, forever
 *   npm run evalise -- status [--json]         what is queued, delivered, refused
 *
 * Configuration (environment, or the options of the same name):
 *   EVALISE_SERVER    the hub, e.g. https://hub.chu-nice.fr   (--server; default http://localhost:8080)
 *   EVALISE_USER      the GP's account                        (--user)
 *   EVALISE_PASSWORD  or EVALISE_PASSWORD_FILE: never on the command line
 *   EVALISE_OUTBOX    where exams wait                        (--outbox; default ~/.telehub/evalise)
 *   EVALISE_IDLE_TIMEOUT_SECONDS   abandon an attempt when nothing moved for this long (default 30)
 *   EVALISE_BACKOFF_BASE_MS, EVALISE_BACKOFF_MAX_MS   retry delays (default 2 s doubling up to 5 min)
 *
 * Exit status: 0 everything delivered (or handed to a running watcher), 1 some exams refused by
 * the hub, 2 wrong usage or configuration, 3 the hub refused the credentials, 130 interrupted.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { Outbox } from './outbox.js';
import { ProgressBar, formatBytes, formatDuration } from './progress.js';
import { DEFAULT_BACKOFF, Sender, sleep } from './sender.js';
import { LoginRefused, Session } from './session.js';
import { FolderScanner, examFiles, queueFile } from './watch.js';

class UsageError extends Error {}

const USAGE = `usage: npm run evalise -- <send [file|folder...] | watch <folder> | status [--json]>
  [--server URL] [--user NAME] [--outbox DIR]
  password: EVALISE_PASSWORD or EVALISE_PASSWORD_FILE`;

const configSchema = z.object({
  server: z.string().url('EVALISE_SERVER / --server must be a URL such as https://hub.example.fr'),
  user: z.string().min(1, 'EVALISE_USER / --user is required: the account of the GP who sends the exams'),
  password: z.string().min(1, 'EVALISE_PASSWORD or EVALISE_PASSWORD_FILE is required'),
  outbox: z.string().min(1),
  idleTimeoutSeconds: z.coerce.number().positive('EVALISE_IDLE_TIMEOUT_SECONDS must be a positive number of seconds'),
  backoffBaseMs: z.coerce.number().int().positive('EVALISE_BACKOFF_BASE_MS must be a positive integer'),
  backoffMaxMs: z.coerce.number().int().positive('EVALISE_BACKOFF_MAX_MS must be a positive integer'),
  scanIntervalMs: z.coerce.number().int().positive('EVALISE_SCAN_INTERVAL_MS must be a positive integer'),
});
type Config = z.infer<typeof configSchema>;

function readConfig(values: Record<string, string | boolean | undefined>, env: NodeJS.ProcessEnv, needsServer: boolean): Config {
  let password = env.EVALISE_PASSWORD;
  if (!password && env.EVALISE_PASSWORD_FILE) {
    try {
      password = readFileSync(env.EVALISE_PASSWORD_FILE, 'utf8').trim();
    } catch (err) {
      throw new UsageError(`EVALISE_PASSWORD_FILE: cannot read ${env.EVALISE_PASSWORD_FILE} (${(err as Error).message})`);
    }
  }
  const raw = {
    server: (values.server as string | undefined) ?? env.EVALISE_SERVER ?? 'http://localhost:8080',
    // status reads the outbox only: it needs no account.
    user: (values.user as string | undefined) || env.EVALISE_USER || (needsServer ? '' : '-'),
    password: password || (needsServer ? '' : '-'),
    outbox: (values.outbox as string | undefined) ?? env.EVALISE_OUTBOX ?? path.join(os.homedir(), '.telehub', 'evalise'),
    idleTimeoutSeconds: env.EVALISE_IDLE_TIMEOUT_SECONDS ?? 30,
    backoffBaseMs: env.EVALISE_BACKOFF_BASE_MS ?? DEFAULT_BACKOFF.baseMs,
    backoffMaxMs: env.EVALISE_BACKOFF_MAX_MS ?? DEFAULT_BACKOFF.maxMs,
    scanIntervalMs: env.EVALISE_SCAN_INTERVAL_MS ?? 1000,
  };
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new UsageError(parsed.error.issues.map((i) => i.message).join('\n'));
  return parsed.data;
}

function senderFor(config: Config, outbox: Outbox): Sender {
  const session = new Session(config.server, { username: config.user, password: config.password }, config.idleTimeoutSeconds * 1000);
  return new Sender({
    fhirBaseUrl: new URL('fhir/R4', config.server.endsWith('/') ? config.server : `${config.server}/`).toString(),
    session,
    outbox,
    idleTimeoutMs: config.idleTimeoutSeconds * 1000,
    backoff: { baseMs: config.backoffBaseMs, maxMs: config.backoffMaxMs },
    progress: new ProgressBar(process.stderr),
  });
}

const say = (line: string) => process.stdout.write(`${line}\n`);

async function send(targets: string[], config: Config, signal: AbortSignal): Promise<number> {
  const outbox = await Outbox.open(config.outbox);
  let invalid = 0;
  for (const target of targets) {
    for (const file of await examFiles(path.resolve(target))) {
      await queueFile(
        outbox,
        file,
        {
          queued: (f, id) => say(`mis en file : ${path.basename(f)} (${id})`),
          invalid: (f, reason) => {
            invalid++;
            say(`refusé avant envoi : ${reason}`);
          },
          known: (f, id, state) => say(`${path.basename(f)} : ${state === 'sent' ? 'déjà reçu par le serveur' : 'déjà en file'} (${id})`),
        },
        // Handing an exam over again by hand is a decision: an exam refused earlier is tried again.
        { retryRejected: true },
      );
    }
  }
  const lock = await outbox.lock();
  if ('heldBy' in lock) {
    say(`un envoi est déjà en cours (processus ${lock.heldBy}) : il enverra aussi ces examens. Suivi : npm run evalise -- status`);
    return 0;
  }
  try {
    const pending = await outbox.pending();
    if (pending.length === 0) {
      say('rien à envoyer : la file est vide.');
      return invalid ? 1 : 0;
    }
    say(`${pending.length} examen(s) à envoyer (${formatBytes(pending.reduce((s, e) => s + e.gzipBytes, 0))} compressés) vers ${config.server}`);
    const summary = await senderFor(config, outbox).drain(signal);
    if (signal.aborted) {
      say(`interrompu : ${summary.pending} examen(s) restent en file et partiront au prochain lancement.`);
      return 130;
    }
    say(`terminé : ${summary.sent} reçu(s) par le serveur, ${summary.rejected} refusé(s).`);
    return summary.rejected || invalid ? 1 : 0;
  } finally {
    await lock.release();
  }
}

async function watch(dir: string, config: Config, signal: AbortSignal): Promise<number> {
  const outbox = await Outbox.open(config.outbox);
  const lock = await outbox.lock();
  if ('heldBy' in lock) throw new UsageError(`un autre envoi surveille déjà cette file (processus ${lock.heldBy})`);
  try {
    const scanner = new FolderScanner(path.resolve(dir), outbox, {
      queued: (f, id) => say(`mis en file : ${path.basename(f)} (${id})`),
      invalid: (_f, reason) => say(`refusé avant envoi : ${reason}`),
      known: (f, id, state) => {
        if (state === 'rejected') say(`${path.basename(f)} : refusé précédemment, voir rejected/${id}.txt (npm run evalise -- send ${f} pour le renvoyer)`);
      },
    });
    const sender = senderFor(config, outbox);
    say(`surveillance de ${path.resolve(dir)} ; envoi vers ${config.server} (Ctrl-C pour arrêter)`);
    // Exams queued before a crash or a reboot leave first.
    const scanning = (async () => {
      let lastProblem = '';
      while (!signal.aborted) {
        // The export folder may vanish (USB stick pulled, share unmounted): say it once, keep watching.
        await scanner.scan().then(
          () => (lastProblem = ''),
          (err: unknown) => {
            const problem = (err as Error).message;
            if (problem !== lastProblem) say(`dossier surveillé inaccessible : ${problem} ; nouvel essai en continu`);
            lastProblem = problem;
          },
        );
        await sleep(config.scanIntervalMs, signal);
      }
    })();
    while (!signal.aborted) {
      await sender.drain(signal, config.scanIntervalMs);
      await sleep(config.scanIntervalMs, signal);
    }
    await scanning;
    return 130;
  } finally {
    await lock.release();
  }
}

async function status(config: Config, json: boolean): Promise<number> {
  const outbox = await Outbox.open(config.outbox);
  const [pending, sent, rejected] = await Promise.all([outbox.pending(), outbox.sent(), outbox.rejected()]);
  if (json) {
    say(JSON.stringify({ outbox: outbox.home, pending, sent, rejected }, null, 2));
    return 0;
  }
  say(`file : ${outbox.home}`);
  say(`en attente : ${pending.length}${pending.length ? ` (${formatBytes(pending.reduce((s, e) => s + e.gzipBytes, 0))})` : ''}`);
  const now = Date.now();
  for (const e of pending) {
    const next = e.nextAttemptAt > now ? `, prochain essai dans ${formatDuration(e.nextAttemptAt - now)}` : '';
    say(`  ${e.id}  ${e.label}  ${e.attempts} tentative(s)${e.lastError ? `, dernière erreur : ${e.lastError}` : ''}${next}`);
  }
  say(`envoyés : ${sent.length}`);
  for (const r of sent.slice(-10)) say(`  ${r.id}  ${r.label}  le ${r.sentAt} après ${r.attempts} tentative(s)`);
  say(`refusés : ${rejected.length}`);
  for (const r of rejected) say(`  ${r.id}  ${r.label}  ${r.message.split('\n')[0]}  (voir rejected/${r.id}.txt)`);
  return 0;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        server: { type: 'string' },
        user: { type: 'string' },
        outbox: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    const [command, ...rest] = positionals;
    if (values.help || !command) {
      say(USAGE);
      return values.help ? 0 : 2;
    }
    switch (command) {
      case 'send':
        return await send(rest, readConfig(values, env, true), controller.signal);
      case 'watch':
        if (rest.length !== 1) throw new UsageError('watch takes one folder: npm run evalise -- watch <folder>');
        return await watch(rest[0]!, readConfig(values, env, true), controller.signal);
      case 'status':
        return await status(readConfig(values, env, false), values.json === true);
      default:
        throw new UsageError(`unknown command "${command}"\n${USAGE}`);
    }
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`evalise: ${(err as Error).message}\n`);
      return 2;
    }
    if (err instanceof LoginRefused) {
      process.stderr.write(`evalise: ${err.message}\nLes examens restent en file ; corrigez EVALISE_USER / EVALISE_PASSWORD puis relancez.\n`);
      return 3;
    }
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      process.stderr.write(`evalise: ${(err as Error).message}\n`);
      return 2;
    }
    throw err;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('client/evalise/cli.ts')) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`evalise: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
