import type { Logger } from 'pino';
import type { HubRole } from '../../fhir/access.js';

export interface LoginSucceeded {
  accountId: string;
  username: string;
  role: HubRole;
  practitionerId?: string;
  ip?: string;
  userAgent?: string;
}

export type LoginFailureReason = 'unknown-user' | 'bad-password' | 'locked' | 'disabled';

export interface LoginFailed {
  /** The username as typed (it may not exist). */
  username: string;
  reason: LoginFailureReason;
  ip?: string;
  userAgent?: string;
}

/**
 * Where authentication reports every login attempt, for the legal traceability of access. The
 * hub's implementation records AuditEvents in the FHIR store. A login succeeds only once its
 * success is recorded: if the sink throws, no tokens are issued.
 */
export interface AuditSink {
  loginSucceeded(e: LoginSucceeded): Promise<void>;
  loginFailed(e: LoginFailed): Promise<void>;
}

/** Writes login events to the log: a stand-in until the AuditEvent sink is wired in. */
export function logAuditSink(logger: Logger): AuditSink {
  return {
    loginSucceeded: async (e) => logger.info({ audit: 'login', outcome: 'success', ...e }, 'login succeeded'),
    loginFailed: async (e) => logger.warn({ audit: 'login', outcome: 'failure', ...e }, 'login failed'),
  };
}
