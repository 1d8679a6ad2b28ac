import { authenticationEvent } from '../../fhir/audit.js';
import type { FhirRepository } from '../../fhir/repository.js';
import type { AuditSink } from './audit-sink.js';

/** Login successes and failures as AuditEvents in the FHIR store (DICOM "User Authentication"). */
export function fhirAuditSink(repo: FhirRepository): AuditSink {
  return {
    loginSucceeded: (e) =>
      repo.recordAuditEvent(
        authenticationEvent({
          action: 'login',
          outcome: 'success',
          username: e.username,
          accountId: e.accountId,
          role: e.role,
          ...(e.practitionerId ? { practitionerId: e.practitionerId } : {}),
          ...(e.ip ? { ip: e.ip } : {}),
        }),
      ),
    loginFailed: (e) =>
      repo.recordAuditEvent(
        authenticationEvent({ action: 'login', outcome: 'failed', username: e.username, reason: e.reason, ...(e.ip ? { ip: e.ip } : {}) }),
      ),
  };
}
