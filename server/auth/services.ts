import type { Database } from '../../fhir/db.js';
import { migrate } from '../../fhir/migrations.js';
import { AccountStore, type LockoutPolicy } from './accounts.js';
import type { AuditSink } from './audit-sink.js';
import { KeyRing } from './keys.js';
import { AUTH_MIGRATIONS } from './migrations.js';
import { Sessions, type SessionSettings } from './tokens.js';

/** The authentication parts the HTTP app and the realtime server share. */
export interface Auth {
  keyRing: KeyRing;
  accounts: AccountStore;
  sessions: Sessions;
}

export interface AuthOptions extends SessionSettings {
  audit: AuditSink;
  lockout?: LockoutPolicy;
}

/**
 * Opens authentication over the hub's database (after the FHIR store has opened it): applies the
 * "auth" migrations and makes sure a signing key is active.
 */
export async function openAuth(db: Database, options: AuthOptions): Promise<Auth> {
  await migrate(db, 'auth', AUTH_MIGRATIONS);
  const keyRing = await KeyRing.open(db);
  const accounts = new AccountStore(db, { ...(options.lockout ? { lockout: options.lockout } : {}) });
  const sessions = new Sessions(db, keyRing, accounts, options.audit, {
    accessTokenTtlSeconds: options.accessTokenTtlSeconds,
    refreshTokenTtlDays: options.refreshTokenTtlDays,
  });
  return { keyRing, accounts, sessions };
}
