/**
 * The GP's session with the hub: logs in with the account's credentials, keeps the access token
 * fresh (refresh token first, a new login when the refresh is refused) and hands it to the FHIR
 * client. Credentials come from the environment or a file, never from the command line, where
 * any user of the machine could read them in the process list.
 */
export interface Credentials {
  username: string;
  password: string;
}

interface Tokens {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
}

/** The hub refused the credentials: retrying will not help, the GP must fix the configuration. */
export class LoginRefused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'LoginRefused';
  }
}

export class Session {
  private tokens?: Tokens;
  private expiresAt = 0;

  constructor(
    private readonly serverUrl: string,
    private readonly credentials: Credentials,
    private readonly timeoutMs: number,
  ) {}

  /** A valid access token, logging in or refreshing when needed. Network errors propagate (the caller retries later). */
  async accessToken(): Promise<string> {
    if (this.tokens && Date.now() < this.expiresAt) return this.tokens.accessToken;
    if (this.tokens) {
      const refreshed = await this.post('/api/auth/refresh', { refreshToken: this.tokens.refreshToken }).catch((err: unknown) => {
        if (err instanceof LoginRefused) return undefined;
        throw err;
      });
      if (refreshed) return this.keep(refreshed);
    }
    return this.keep(await this.post('/api/auth/login', this.credentials));
  }

  /** The hub said 401 to a token we thought valid (revoked, keys rotated): start over. */
  invalidate(): void {
    this.tokens = undefined;
    this.expiresAt = 0;
  }

  private keep(tokens: Tokens): string {
    this.tokens = tokens;
    // A minute of margin: a token must not expire while a slow upload is on the wire.
    this.expiresAt = Date.now() + Math.max(10, tokens.expiresIn - 60) * 1000;
    return tokens.accessToken;
  }

  private async post(path: string, body: unknown): Promise<Tokens> {
    const response = await fetch(new URL(path, this.serverUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await response.text();
    if (response.status === 200) return JSON.parse(text) as Tokens;
    let message = text;
    try {
      message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
    } catch {
      // not JSON: keep the text
    }
    // 401/400: wrong credentials. 429 (lockout, rate limit) and 5xx are temporary.
    if (response.status === 401 || response.status === 400 || response.status === 403) {
      throw new LoginRefused(response.status, `connexion refusée pour ${this.credentials.username} (HTTP ${response.status}) : ${message}`);
    }
    throw new Error(`login: HTTP ${response.status} ${message}`);
  }
}
