import type { HubRole, UserContext } from '../../fhir/access.js';

/** The authenticated professional behind a request or a socket, as read from a verified access token. */
export interface Principal {
  accountId: string;
  username: string;
  displayName?: string;
  role: HubRole;
  practitionerId?: string;
  practitionerRoleId?: string;
  organizationId?: string;
  /** The login session (refresh-token family) the access token was issued in. */
  sessionId?: string;
}

/** Where a request came from, kept for the audit trail. */
export interface ClientInfo {
  ip?: string;
  userAgent?: string;
}

/** The store's view of the caller (fhir/access.ts): what care-based access control decides on. */
export function userContext(principal: Principal, client: ClientInfo): UserContext {
  return {
    kind: 'user',
    accountId: principal.accountId,
    username: principal.username,
    role: principal.role,
    ...(principal.practitionerId ? { practitionerId: principal.practitionerId } : {}),
    ...(principal.practitionerRoleId ? { practitionerRoleId: principal.practitionerRoleId } : {}),
    ...(principal.organizationId ? { organizationId: principal.organizationId } : {}),
    ...(client.ip ? { ip: client.ip } : {}),
    ...(client.userAgent ? { userAgent: client.userAgent } : {}),
  };
}
