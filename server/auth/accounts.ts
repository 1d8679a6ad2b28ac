import { createHash, randomUUID } from 'node:crypto';
import { HUB_ROLES, type HubRole } from '../../fhir/access.js';
import type { Database } from '../../fhir/db.js';
import { ApiError } from '../errors.js';
import { decoyHash, hashPassword, needsRehash, verifyPassword } from './passwords.js';

/** A professional's login. The FHIR side of the person is the Practitioner and PractitionerRole it points to. */
export interface Account {
  id: string;
  username: string;
  displayName: string;
  role: HubRole;
  practitionerId?: string;
  practitionerRoleId?: string;
  /** The organization of the PractitionerRole (an MSP, an EHPAD, a CHU department…). */
  organizationId?: string;
  disabled: boolean;
}

export interface NewAccount {
  id?: string;
  username: string;
  password: string;
  displayName: string;
  role: HubRole;
  practitionerId?: string;
  practitionerRoleId?: string;
  organizationId?: string;
  disabled?: boolean;
}

/**
 * Temporary lockout against password guessing: after maxFailures failed logins in a row (each
 * within lockSeconds of the previous one) the username is locked for lockSeconds, correct password
 * or not. Unknown usernames are counted the same way, so a lockout reveals nothing.
 */
export interface LockoutPolicy {
  maxFailures: number;
  lockSeconds: number;
}

export const DEFAULT_LOCKOUT: LockoutPolicy = { maxFailures: 5, lockSeconds: 15 * 60 };

export type CredentialCheck =
  | { outcome: 'ok'; account: Account }
  | { outcome: 'unknown-user' }
  | { outcome: 'bad-password'; account: Account }
  /** account is absent when the locked username has no account. */
  | { outcome: 'locked'; retryAfterSeconds: number; account?: Account }
  | { outcome: 'disabled'; account: Account };

export interface AccountStoreOptions {
  lockout?: LockoutPolicy;
  /** How long the disabled flag read by authenticate() is trusted (a disabled account is refused within this time). */
  statusCacheMs?: number;
}

const USERNAME = /^[a-z0-9][a-z0-9._-]{1,63}$/i;
const MIN_PASSWORD_LENGTH = 12;

interface AccountRow {
  id: string;
  username: string;
  display_name: string;
  role: string;
  practitioner_id: string | null;
  practitioner_role_id: string | null;
  organization_id: string | null;
  disabled: boolean;
  password_hash: string;
  locked_for: number;
}

const ACCOUNT_COLUMNS = `id, username, display_name, role, practitioner_id, practitioner_role_id, organization_id, disabled, password_hash,
  CASE WHEN locked_until > now() THEN ceil(extract(epoch FROM locked_until - now()))::int ELSE 0 END AS locked_for`;

/**
 * The failure counter after one more failure: it restarts when the previous failure is older than
 * the lock time or a lock has expired. $2 = lock seconds. Used for accounts and unknown usernames alike.
 */
const NEXT_FAILURES = (t: string) => `CASE
  WHEN ${t}.last_failed_login_at IS NULL
    OR ${t}.last_failed_login_at < now() - make_interval(secs => $2::float8)
    OR (${t}.locked_until IS NOT NULL AND ${t}.locked_until <= now())
  THEN 1 ELSE ${t}.failed_logins + 1 END`;

/** Accounts in the shared database: lookups, creation, password checks with lockout, disabling. */
export class AccountStore {
  private readonly lockout: LockoutPolicy;
  private readonly statusCacheMs: number;
  private readonly status = new Map<string, { account: Account | undefined; at: number }>();
  private lastPrune = 0;

  constructor(
    private readonly db: Database,
    options: AccountStoreOptions = {},
  ) {
    this.lockout = options.lockout ?? DEFAULT_LOCKOUT;
    this.statusCacheMs = options.statusCacheMs ?? 5_000;
  }

  async create(input: NewAccount): Promise<Account> {
    if (!USERNAME.test(input.username)) {
      throw new ApiError(400, 'invalid-username', 'a username is 2 to 64 letters, digits, dots, dashes or underscores', 'username');
    }
    if (!HUB_ROLES.includes(input.role)) throw new ApiError(400, 'invalid-role', `unknown role "${input.role}"`, 'role');
    if (input.password.length < MIN_PASSWORD_LENGTH) {
      throw new ApiError(400, 'weak-password', `a password has at least ${MIN_PASSWORD_LENGTH} characters`, 'password');
    }
    const id = input.id ?? randomUUID();
    const passwordHash = await hashPassword(input.password);
    try {
      await this.db.query(
        `INSERT INTO account (id, username, password_hash, role, practitioner_id, practitioner_role_id, organization_id, display_name, disabled)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [
          id,
          input.username,
          passwordHash,
          input.role,
          input.practitionerId ?? null,
          input.practitionerRoleId ?? null,
          input.organizationId ?? null,
          input.displayName,
          input.disabled ?? false,
        ],
      );
    } catch (err) {
      const { code, constraint } = err as { code?: string; constraint?: string };
      if (code === '23505' && constraint === 'account_username') {
        throw new ApiError(409, 'username-taken', `the username "${input.username}" is already taken`, 'username');
      }
      if (code === '23505') throw new ApiError(409, 'account-exists', `an account with id "${id}" already exists`, 'id');
      throw err;
    }
    return (await this.byId(id))!;
  }

  async byUsername(username: string): Promise<Account | undefined> {
    const row = await this.rowByUsername(username);
    return row && toAccount(row);
  }

  async byId(id: string): Promise<Account | undefined> {
    const rows = await this.db.query<AccountRow>(`SELECT ${ACCOUNT_COLUMNS} FROM account WHERE id = $1`, [id]);
    return rows[0] && toAccount(rows[0]);
  }

  /**
   * The account if it exists and is not disabled, as authenticate() needs on every request;
   * cached for a few seconds so a busy node does not read the row each time.
   */
  async active(id: string): Promise<Account | undefined> {
    const cached = this.status.get(id);
    if (cached && Date.now() - cached.at < this.statusCacheMs) return cached.account;
    const account = await this.byId(id);
    const result = account && !account.disabled ? account : undefined;
    if (this.status.size > 10_000) this.status.clear();
    this.status.set(id, { account: result, at: Date.now() });
    return result;
  }

  async setDisabled(id: string, disabled: boolean): Promise<void> {
    await this.db.query('UPDATE account SET disabled = $2, updated_at = now() WHERE id = $1', [id, disabled]);
    this.status.delete(id);
  }

  async setPassword(id: string, password: string): Promise<void> {
    await this.db.query('UPDATE account SET password_hash = $2, updated_at = now() WHERE id = $1', [id, await hashPassword(password)]);
  }

  /** Lifts a lockout (an administrator's action) and forgets past failures. */
  async unlock(id: string): Promise<void> {
    await this.db.query('UPDATE account SET failed_logins = 0, locked_until = NULL, last_failed_login_at = NULL WHERE id = $1', [id]);
  }

  /**
   * Checks a username and password, counting failures towards the lockout. A locked username is
   * refused before its password is looked at; an unknown one costs the same argon2 check as a
   * known one and is counted and locked the same way.
   */
  async checkCredentials(username: string, password: string): Promise<CredentialCheck> {
    const row = await this.rowByUsername(username);
    if (!row) return this.checkUnknown(username, password);
    const account = toAccount(row);
    if (row.locked_for > 0) return { outcome: 'locked', retryAfterSeconds: row.locked_for, account };
    if (!(await verifyPassword(row.password_hash, password))) {
      await this.db.query(
        `UPDATE account a SET failed_logins = ${NEXT_FAILURES('a')},
           locked_until = CASE WHEN ${NEXT_FAILURES('a')} >= $3 THEN now() + make_interval(secs => $2::float8) ELSE NULL END,
           last_failed_login_at = now()
         WHERE id = $1`,
        [row.id, this.lockout.lockSeconds, this.lockout.maxFailures],
      );
      return { outcome: 'bad-password', account };
    }
    // The password is right: only now may the caller learn that the account is disabled.
    if (account.disabled) return { outcome: 'disabled', account };
    await this.db.query(
      `UPDATE account SET failed_logins = 0, locked_until = NULL, last_failed_login_at = NULL
       WHERE id = $1 AND (failed_logins <> 0 OR locked_until IS NOT NULL)`,
      [row.id],
    );
    if (needsRehash(row.password_hash)) await this.setPassword(row.id, password);
    return { outcome: 'ok', account };
  }

  private async checkUnknown(username: string, password: string): Promise<CredentialCheck> {
    const key = createHash('sha256').update(normalise(username)).digest('hex');
    const rows = await this.db.query<{ locked_for: number }>(
      `SELECT CASE WHEN locked_until > now() THEN ceil(extract(epoch FROM locked_until - now()))::int ELSE 0 END AS locked_for
       FROM login_throttle WHERE username_hash = $1`,
      [key],
    );
    const lockedFor = rows[0]?.locked_for ?? 0;
    if (lockedFor > 0) return { outcome: 'locked', retryAfterSeconds: lockedFor };
    await verifyPassword(await decoyHash(), password);
    await this.db.query(
      `INSERT INTO login_throttle AS t (username_hash, failed_logins, last_failed_login_at, locked_until)
       VALUES ($1, 1, now(), CASE WHEN 1 >= $3 THEN now() + make_interval(secs => $2::float8) END)
       ON CONFLICT (username_hash) DO UPDATE SET
         failed_logins = ${NEXT_FAILURES('t')},
         locked_until = CASE WHEN ${NEXT_FAILURES('t')} >= $3 THEN now() + make_interval(secs => $2::float8) ELSE NULL END,
         last_failed_login_at = now()`,
      [key, this.lockout.lockSeconds, this.lockout.maxFailures],
    );
    await this.pruneThrottle();
    return { outcome: 'unknown-user' };
  }

  /** Forgets unknown usernames nobody has tried for a day (at most once every ten minutes per node). */
  private async pruneThrottle(): Promise<void> {
    if (Date.now() - this.lastPrune < 10 * 60_000) return;
    this.lastPrune = Date.now();
    await this.db.query(
      `DELETE FROM login_throttle WHERE last_failed_login_at < now() - interval '1 day' AND (locked_until IS NULL OR locked_until < now())`,
    );
  }

  private async rowByUsername(username: string): Promise<AccountRow | undefined> {
    const rows = await this.db.query<AccountRow>(`SELECT ${ACCOUNT_COLUMNS} FROM account WHERE lower(username) = $1`, [normalise(username)]);
    return rows[0];
  }
}

function normalise(username: string): string {
  return username.trim().normalize('NFC').toLowerCase();
}

function toAccount(row: AccountRow): Account {
  return {
    id: row.id,
    username: row.username,
    displayName: row.display_name,
    role: row.role as HubRole,
    ...(row.practitioner_id ? { practitionerId: row.practitioner_id } : {}),
    ...(row.practitioner_role_id ? { practitionerRoleId: row.practitioner_role_id } : {}),
    ...(row.organization_id ? { organizationId: row.organization_id } : {}),
    disabled: row.disabled,
  };
}
