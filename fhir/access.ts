/**
 * Who is asking: the store decides what a request may see and change from this alone.
 * The server builds it from the authenticated account (server/auth); fhir/ never sees tokens.
 */
export type HubRole = 'gp' | 'specialist' | 'nurse' | 'samu-correspondent' | 'regulator' | 'coordinator' | 'admin';

export const HUB_ROLES: readonly HubRole[] = ['gp', 'specialist', 'nurse', 'samu-correspondent', 'regulator', 'coordinator', 'admin'];

export interface UserContext {
  kind: 'user';
  accountId: string;
  username: string;
  role: HubRole;
  /** Practitioner id (not a reference) of the professional behind the account. */
  practitionerId?: string;
  practitionerRoleId?: string;
  /** The organization of the PractitionerRole (an MSP, an EHPAD, a CHU department…). */
  organizationId?: string;
  /** Where the request came from, for the audit trail. */
  ip?: string;
  userAgent?: string;
}

/** The hub itself (migrations, demo data, audit writes): not subject to care-based access. */
export interface SystemContext {
  kind: 'system';
  reason: string;
}

export type AccessContext = UserContext | SystemContext;

export const SYSTEM: SystemContext = { kind: 'system', reason: 'hub' };
