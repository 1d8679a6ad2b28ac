/**
 * The browser side of the end-to-end tests and of the join benchmark: Debian's Chromium driven by
 * playwright-core (no downloaded browser), with a fake camera and microphone, opening the web app
 * the hub serves (client/web/dist, built by `npm run build:web`). Each professional gets their
 * own browser context (own sessionStorage, own tokens) and logs in through the login page.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { HubDebugState, HubDebugStats, HubDebugTimings, HubDebugVitalsSent, HubWindow } from '../../client/web/src/debug-api.js';
import type { VitalsSummary } from '../../client/web/src/teleassistance/vitals.js';
import { demoPassword } from '../../server/auth/demo-accounts.js';

export const WEB_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../client/web/dist');
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** The built app, or an error that says how to build it. */
export function builtWebApp(): string {
  if (!existsSync(path.join(WEB_ROOT, 'index.html'))) {
    throw new Error(`the web app is not built (${path.relative(process.cwd(), WEB_ROOT)}/index.html is missing): run \`npm run build:web\` first`);
  }
  return WEB_ROOT;
}

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not installed at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      // This closed network refuses Chromium's own background connections.
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      '--autoplay-policy=no-user-gesture-required',
      // Two or three pages share two cores: keep timers and rendering of unfocused pages running.
      '--disable-renderer-backgrounding',
      '--disable-background-timer-throttling',
      '--disable-backgrounding-occluded-windows',
    ],
  });
}

/** Polls `check` until it returns a value that is not undefined/false, or fails with `what` and the last value seen. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 20_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** One professional in their own browser context, on the hub's web app. */
export class AppUser {
  readonly logs: string[] = [];

  private constructor(
    readonly username: string,
    readonly baseUrl: string,
    readonly context: BrowserContext,
    readonly page: Page,
  ) {
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') this.logs.push(`[${m.type()}] ${m.text()}`);
    });
    page.on('pageerror', (err) => this.logs.push(`[pageerror] ${err.message}`));
  }

  /** Opens the app at `path` (the login page first, since nobody is logged in) and logs in through the form. */
  static async login(browser: Browser, baseUrl: string, username: string, path = '/'): Promise<AppUser> {
    const context = await browser.newContext({ baseURL: baseUrl, locale: 'fr-FR', viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const user = new AppUser(username, baseUrl, context, page);
    await page.goto(path);
    await page.getByLabel('Identifiant').fill(username);
    await page.getByLabel('Mot de passe').fill(demoPassword(username));
    await page.getByRole('button', { name: 'Se connecter' }).click();
    await page.getByTestId('user-name').waitFor();
    return user;
  }

  /** From the home page: the "Rejoindre" button of a consultation or teleassistance request. */
  async joinFromHome(kind: 'consultation' | 'assistance', id: string): Promise<void> {
    const row = this.page.getByTestId(`${kind}-${id}`);
    await row.waitFor({ timeout: 15_000 });
    await row.getByRole('button', { name: 'Rejoindre' }).click();
    await this.page.getByTestId('room').waitFor();
  }

  async state(): Promise<HubDebugState | undefined> {
    return this.page.evaluate(() => (globalThis as unknown as HubWindow).__hub?.state());
  }

  async waitForState(what: string, predicate: (s: HubDebugState) => boolean, timeoutMs = 20_000): Promise<HubDebugState> {
    return eventually(
      `${this.username}: ${what}`,
      async () => {
        const s = await this.state();
        return s && predicate(s) ? s : undefined;
      },
      timeoutMs,
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${this.logs.slice(-20).join('\n')}`);
    });
  }

  async stats(): Promise<HubDebugStats> {
    return this.page.evaluate(() => (globalThis as unknown as HubWindow).__hub!.stats());
  }

  async timings(): Promise<HubDebugTimings> {
    return this.page.evaluate(() => (globalThis as unknown as HubWindow).__hub!.timings());
  }

  async vitals(): Promise<VitalsSummary | undefined> {
    return this.page.evaluate(() => (globalThis as unknown as HubWindow).__hub!.vitals());
  }

  async vitalsSent(): Promise<HubDebugVitalsSent> {
    return this.page.evaluate(() => (globalThis as unknown as HubWindow).__hub!.vitalsSent());
  }

  async lastSnapshot(): Promise<string[] | undefined> {
    return this.page.evaluate(() => (globalThis as unknown as HubWindow).__hub!.lastSnapshot());
  }

  async close(): Promise<void> {
    await this.context.close().catch(() => undefined);
  }
}

/**
 * Waits until the user has decoded a few remote video frames and received remote audio. Not just
 * one frame: a new simulcast stream can stall a second or more after its first keyframe, while
 * the hub moves the consumer to a higher layer and waits for that layer's keyframe.
 */
export async function decoding(user: AppUser, timeoutMs = 30_000): Promise<void> {
  await eventually(
    `${user.username} decodes remote video and receives audio`,
    async () => {
      const { audio, video } = await user.stats();
      return (video.framesDecoded ?? 0) >= 30 && audio.bytesReceived > 0;
    },
    timeoutMs,
    200,
  );
}

/** Two stats samples `gapMs` apart: what was received and decoded in between, per kind. */
export async function mediaFlow(user: AppUser, gapMs = 1_500): Promise<{ before: HubDebugStats; after: HubDebugStats }> {
  const before = await user.stats();
  await new Promise((r) => setTimeout(r, gapMs));
  const after = await user.stats();
  return { before, after };
}
