/**
 * The logged-in professional: tokens from POST /api/auth/login, kept in memory and in
 * sessionStorage (a reload keeps the session, closing the tab ends it), refreshed before they
 * expire. Refresh tokens are single-use and a reused one closes the whole session on the hub, so
 * at most one refresh is in flight at a time.
 */

const STORAGE_KEY = 'hub.session';
/** Refresh the access token when it has less than this left (a satellite round trip is ~600 ms). */
const REFRESH_MARGIN_MS = 60_000;

export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
}

/** What the hub puts in an access token (server/auth/tokens.ts principalFromClaims). */
export interface Claims {
  sub: string;
  username: string;
  name?: string;
  role: string;
  practitionerId?: string;
  practitionerRoleId?: string;
  organizationId?: string;
  exp?: number;
}

/** An HTTP error of the hub's /api routes: `{ error: { code, message, field? } }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Reads the claims of a JWT without checking it: the hub checks; the app only shows who is logged in. */
export function decodeClaims(token: string): Claims {
  const part = token.split('.')[1];
  if (!part) throw new Error('not a JWT');
  const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const claims = JSON.parse(new TextDecoder().decode(bytes)) as Partial<Claims>;
  if (typeof claims.sub !== 'string' || typeof claims.username !== 'string' || typeof claims.role !== 'string') {
    throw new Error('the access token does not name a hub account');
  }
  return claims as Claims;
}

export async function apiError(response: Response): Promise<ApiError> {
  let code = `http-${response.status}`;
  let message = response.statusText || `HTTP ${response.status}`;
  let field: string | undefined;
  try {
    const body = (await response.json()) as { error?: { code?: string; message?: string; field?: string }; issue?: { diagnostics?: string }[] };
    if (body.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      field = body.error.field;
    } else if (body.issue?.[0]?.diagnostics) {
      message = body.issue[0].diagnostics;
    }
  } catch {
    // not JSON: keep the status text
  }
  return new ApiError(response.status, code, message, field);
}

interface Stored {
  tokens: TokenPair;
  /** Epoch ms at which the access token expires (by this browser's clock). */
  expiresAt: number;
}

export class Session {
  #tokens: TokenPair;
  #expiresAt: number;
  #refreshing: Promise<void> | undefined;
  readonly claims: Claims;
  #onEnded: (() => void) | undefined;

  private constructor(stored: Stored) {
    this.#tokens = stored.tokens;
    this.#expiresAt = stored.expiresAt;
    this.claims = decodeClaims(stored.tokens.accessToken);
  }

  static async login(username: string, password: string): Promise<Session> {
    const response = await fetch('/api/auth/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    if (!response.ok) throw await apiError(response);
    const tokens = (await response.json()) as TokenPair;
    const session = new Session({ tokens, expiresAt: Date.now() + tokens.expiresIn * 1000 });
    session.#save();
    return session;
  }

  /** The session of this tab, if one was opened before a reload. */
  static restore(): Session | undefined {
    try {
      const raw = sessionStorage.getItem(STORAGE_KEY);
      if (!raw) return undefined;
      return new Session(JSON.parse(raw) as Stored);
    } catch {
      sessionStorage.removeItem(STORAGE_KEY);
      return undefined;
    }
  }

  /** Called once when the hub refuses the refresh token (session closed elsewhere, expired). */
  onEnded(listener: () => void): void {
    this.#onEnded = listener;
  }

  get displayName(): string {
    return this.claims.name ?? this.claims.username;
  }

  /** A valid access token, refreshed first when it is about to expire. */
  async accessToken(): Promise<string> {
    if (Date.now() > this.#expiresAt - REFRESH_MARGIN_MS) await this.refresh();
    return this.#tokens.accessToken;
  }

  async refresh(): Promise<void> {
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    const response = await fetch('/api/auth/refresh', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken: this.#tokens.refreshToken }),
    });
    if (!response.ok) {
      const error = await apiError(response);
      if (response.status === 401) this.#end();
      throw error;
    }
    const tokens = (await response.json()) as TokenPair;
    this.#tokens = tokens;
    this.#expiresAt = Date.now() + tokens.expiresIn * 1000;
    this.#save();
  }

  /**
   * fetch() with the access token. A 401 (the token expired early, the clock is off) gets one
   * refresh and one retry.
   */
  async fetch(input: string, init: RequestInit = {}): Promise<Response> {
    const send = async () => {
      const headers = new Headers(init.headers);
      headers.set('Authorization', `Bearer ${await this.accessToken()}`);
      return fetch(input, { ...init, headers });
    };
    const response = await send();
    if (response.status !== 401) return response;
    await this.refresh();
    return send();
  }

  /** JSON request to the hub; non-2xx answers become ApiError. */
  async json<T>(input: string, init: RequestInit & { body?: string } = {}): Promise<T> {
    const headers = new Headers(init.headers);
    if (init.body !== undefined && !headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
    headers.set('Accept', 'application/json, application/fhir+json');
    const response = await this.fetch(input, { ...init, headers });
    if (!response.ok) throw await apiError(response);
    return (await response.json()) as T;
  }

  async logout(): Promise<void> {
    const refreshToken = this.#tokens.refreshToken;
    this.#end();
    await fetch('/api/auth/logout', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ refreshToken }),
    }).catch(() => undefined);
  }

  #save(): void {
    const stored: Stored = { tokens: this.#tokens, expiresAt: this.#expiresAt };
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(stored));
  }

  #end(): void {
    sessionStorage.removeItem(STORAGE_KEY);
    const listener = this.#onEnded;
    this.#onEnded = undefined;
    listener?.();
  }
}
