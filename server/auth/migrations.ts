import type { Migration } from '../../fhir/migrations.js';

/**
 * Schema of the server's authentication (component "auth"), applied with
 * `migrate(db, 'auth', AUTH_MIGRATIONS)` after the FHIR store opens, in the same database: hub
 * nodes share accounts, sessions and signing keys through it. Never edit a shipped migration.
 */
export const AUTH_MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'accounts, refresh tokens, signing keys, login throttling',
    sql: `
      -- A professional's login, linked to their FHIR Practitioner, PractitionerRole and organization (ids, not references).
      CREATE TABLE account (
        id text PRIMARY KEY,
        username text NOT NULL,
        password_hash text NOT NULL,
        role text NOT NULL CHECK (role IN ('gp', 'specialist', 'nurse', 'samu-correspondent', 'regulator', 'coordinator', 'admin')),
        practitioner_id text,
        practitioner_role_id text,
        organization_id text,
        display_name text NOT NULL,
        disabled boolean NOT NULL DEFAULT false,
        failed_logins integer NOT NULL DEFAULT 0,
        last_failed_login_at timestamptz,
        locked_until timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      -- Usernames are unique whatever their case: "Dr.Pastorelli" is "dr.pastorelli".
      CREATE UNIQUE INDEX account_username ON account (lower(username));

      -- Refresh tokens, stored as the SHA-256 of the opaque value. A family is one login session:
      -- each refresh uses one token and issues the next in the same family.
      CREATE TABLE refresh_token (
        id text PRIMARY KEY,
        account_id text NOT NULL REFERENCES account (id),
        family_id text NOT NULL,
        token_hash text NOT NULL,
        issued_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        used_at timestamptz,
        revoked_at timestamptz,
        revoked_reason text
      );
      CREATE UNIQUE INDEX refresh_token_hash ON refresh_token (token_hash);
      CREATE INDEX refresh_token_family ON refresh_token (family_id);
      CREATE INDEX refresh_token_account ON refresh_token (account_id);

      -- ES256 keys that sign access tokens, shared by every hub node. The newest key that is not
      -- retired signs; every key that is not retired verifies.
      CREATE TABLE signing_key (
        kid text PRIMARY KEY,
        algorithm text NOT NULL,
        private_pem text NOT NULL,
        public_pem text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        retired_at timestamptz
      );

      -- Failed logins for usernames that have no account, keyed by a hash of the normalised name,
      -- so that lockout answers the same whether or not an account exists.
      CREATE TABLE login_throttle (
        username_hash text PRIMARY KEY,
        failed_logins integer NOT NULL DEFAULT 0,
        last_failed_login_at timestamptz,
        locked_until timestamptz
      );
      CREATE INDEX login_throttle_last_failed ON login_throttle (last_failed_login_at);
    `,
  },
];
