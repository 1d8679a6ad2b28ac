import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { z } from 'zod';
import { HUB_ROLES, type HubRole } from '../../fhir/access.js';
import type { Database } from '../../fhir/db.js';
import { ApiError } from '../errors.js';
import type { Account, AccountStore } from './accounts.js';
import type { AuditSink } from './audit-sink.js';
import { InvalidTokenError, type KeyRing } from './keys.js';
import type { ClientInfo, Principal } from './principal.js';

/** What a login or a refresh returns; expiresIn is the access token's lifetime in seconds. */
export interface TokenPair {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
}

export interface SessionSettings {
  accessTokenTtlSeconds: number;
  /** A refresh token not used for this long expires; each refresh starts the period again. */
  refreshTokenTtlDays: number;
}

const claimsSchema = z.object({
  sub: z.string().min(1),
  username: z.string().min(1),
  name: z.string().optional(),
  role: z.enum(HUB_ROLES as [HubRole, ...HubRole[]]),
  practitionerId: z.string().optional(),
  practitionerRoleId: z.string().optional(),
  organizationId: z.string().optional(),
  sid: z.string().optional(),
});

/** The principal an access token speaks for; a token whose claims do not fit is refused. */
export function principalFromClaims(payload: unknown): Principal {
  const parsed = claimsSchema.safeParse(payload);
  if (!parsed.success) throw new InvalidTokenError('wrong-claims', 'the access token does not name a hub account');
  const c = parsed.data;
  return {
    accountId: c.sub,
    username: c.username,
    ...(c.name ? { displayName: c.name } : {}),
    role: c.role,
    ...(c.practitionerId ? { practitionerId: c.practitionerId } : {}),
    ...(c.practitionerRoleId ? { practitionerRoleId: c.practitionerRoleId } : {}),
    ...(c.organizationId ? { organizationId: c.organizationId } : {}),
    ...(c.sid ? { sessionId: c.sid } : {}),
  };
}

const badCredentials = () => new ApiError(401, 'invalid-credentials', 'the username or the password is incorrect');
const invalidRefreshToken = (message: string) => new ApiError(401, 'invalid-refresh-token', message, 'refreshToken');

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

type RefreshOutcome =
  | { kind: 'ok'; accountId: string; familyId: string; refreshToken: string }
  | { kind: 'unknown' | 'reused' | 'expired' | 'disabled' };

/**
 * Login sessions: a login checks the password and opens a session (a refresh-token family); each
 * refresh uses up its refresh token and issues the next one in the family. A refresh token
 * presented twice means it was copied: the whole family is revoked, the thief's copy and the
 * owner's alike, and the owner logs in again. Access tokens are short-lived JWTs, not stored.
 */
export class Sessions {
  constructor(
    private readonly db: Database,
    private readonly keyRing: KeyRing,
    private readonly accounts: AccountStore,
    private readonly audit: AuditSink,
    readonly settings: SessionSettings,
  ) {}

  async login(username: string, password: string, client: ClientInfo = {}): Promise<TokenPair> {
    const check = await this.accounts.checkCredentials(username, password);
    switch (check.outcome) {
      case 'ok': {
        const a = check.account;
        await this.audit.loginSucceeded({
          accountId: a.id,
          username: a.username,
          role: a.role,
          ...(a.practitionerId ? { practitionerId: a.practitionerId } : {}),
          ...client,
        });
        return this.open(a);
      }
      case 'unknown-user':
      case 'bad-password':
        await this.audit.loginFailed({ username, reason: check.outcome, ...client });
        throw badCredentials();
      case 'locked':
        await this.audit.loginFailed({ username, reason: check.account ? 'locked' : 'unknown-user', ...client });
        // 429, as for the per-address rate limit: 423 would say that an account exists and is locked.
        throw new ApiError(429, 'too-many-attempts', 'too many failed logins for this username; try again later', undefined, {
          'Retry-After': String(check.retryAfterSeconds),
        });
      case 'disabled':
        await this.audit.loginFailed({ username, reason: 'disabled', ...client });
        throw new ApiError(403, 'account-disabled', 'this account is disabled; ask the hub administrator');
    }
  }

  /** Uses up a refresh token and returns new tokens in the same session. */
  async refresh(refreshToken: string): Promise<TokenPair> {
    const hash = hashToken(refreshToken);
    const outcome = await this.db.transaction(async (tx): Promise<RefreshOutcome> => {
      const rows = await tx.query<{ account_id: string; family_id: string; used: boolean; revoked: boolean; expired: boolean; disabled: boolean }>(
        `SELECT r.account_id, r.family_id, r.used_at IS NOT NULL AS used, r.revoked_at IS NOT NULL AS revoked,
                r.expires_at <= now() AS expired, a.disabled
         FROM refresh_token r JOIN account a ON a.id = r.account_id
         WHERE r.token_hash = $1 FOR UPDATE OF r`,
        [hash],
      );
      const row = rows[0];
      if (!row) return { kind: 'unknown' };
      const revokeFamily = (reason: string) =>
        tx.query(`UPDATE refresh_token SET revoked_at = now(), revoked_reason = $2 WHERE family_id = $1 AND revoked_at IS NULL`, [
          row.family_id,
          reason,
        ]);
      if (row.used || row.revoked) {
        await revokeFamily('reuse-detected');
        return { kind: 'reused' };
      }
      if (row.expired) return { kind: 'expired' };
      if (row.disabled) {
        await revokeFamily('account-disabled');
        return { kind: 'disabled' };
      }
      await tx.query('UPDATE refresh_token SET used_at = now() WHERE token_hash = $1', [hash]);
      const next = await this.insertRefreshToken(tx, row.account_id, row.family_id);
      return { kind: 'ok', accountId: row.account_id, familyId: row.family_id, refreshToken: next };
    });
    switch (outcome.kind) {
      case 'unknown':
        throw invalidRefreshToken('the refresh token is not valid');
      case 'reused':
        throw invalidRefreshToken('the refresh token was already used: the session is closed, log in again');
      case 'expired':
        throw invalidRefreshToken('the refresh token has expired: log in again');
      case 'disabled':
        throw invalidRefreshToken('the account is disabled');
      case 'ok': {
        const account = await this.accounts.byId(outcome.accountId);
        if (!account) throw invalidRefreshToken('the account no longer exists');
        return { accessToken: await this.accessToken(account, outcome.familyId), refreshToken: outcome.refreshToken, expiresIn: this.settings.accessTokenTtlSeconds };
      }
    }
  }

  /** Closes the session the refresh token belongs to. Unknown or already closed: nothing to do. */
  async logout(refreshToken: string): Promise<void> {
    await this.db.query(
      `UPDATE refresh_token SET revoked_at = now(), revoked_reason = 'logout'
       WHERE family_id = (SELECT family_id FROM refresh_token WHERE token_hash = $1) AND revoked_at IS NULL`,
      [hashToken(refreshToken)],
    );
  }

  /** Closes every session of an account (password change, account disabled, suspected theft). */
  async revokeAll(accountId: string, reason: string): Promise<void> {
    await this.db.query('UPDATE refresh_token SET revoked_at = now(), revoked_reason = $2 WHERE account_id = $1 AND revoked_at IS NULL', [
      accountId,
      reason,
    ]);
  }

  /** An access token for the account in a session; claims are read from the account as it is now. */
  accessToken(account: Account, sessionId: string): Promise<string> {
    return this.keyRing.sign(
      {
        username: account.username,
        name: account.displayName,
        role: account.role,
        ...(account.practitionerId ? { practitionerId: account.practitionerId } : {}),
        ...(account.practitionerRoleId ? { practitionerRoleId: account.practitionerRoleId } : {}),
        ...(account.organizationId ? { organizationId: account.organizationId } : {}),
        sid: sessionId,
      },
      { subject: account.id, expiresInSeconds: this.settings.accessTokenTtlSeconds },
    );
  }

  private async open(account: Account): Promise<TokenPair> {
    const familyId = randomUUID();
    const refreshToken = await this.insertRefreshToken(this.db, account.id, familyId);
    return { accessToken: await this.accessToken(account, familyId), refreshToken, expiresIn: this.settings.accessTokenTtlSeconds };
  }

  private async insertRefreshToken(tx: Pick<Database, 'query'>, accountId: string, familyId: string): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    await tx.query(
      `INSERT INTO refresh_token (id, account_id, family_id, token_hash, issued_at, expires_at)
       VALUES ($1, $2, $3, $4, now(), now() + make_interval(days => $5::int))`,
      [randomUUID(), accountId, familyId, hashToken(token), this.settings.refreshTokenTtlDays],
    );
    return token;
  }
}
