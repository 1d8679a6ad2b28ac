import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Database, SqlExecutor } from '../../fhir/db.js';

export const TOKEN_ISSUER = 'telemedicine-hub';
export const TOKEN_AUDIENCE = 'hub-api';
const ALGORITHM = 'ES256';
/** RFC 9068: an access token says it is one, so a token minted for another use cannot pass as one. */
const ACCESS_TOKEN_TYPE = 'at+jwt';

/**
 * What a token is for: its `typ` header and audience. Access tokens are the default; other kinds
 * (room tokens) are signed by the same keys but can never pass for an access token, nor the reverse.
 */
export interface TokenKind {
  typ: string;
  audience: string;
}
export const ACCESS_TOKEN: TokenKind = { typ: ACCESS_TOKEN_TYPE, audience: TOKEN_AUDIENCE };
const KID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** Why a token was refused; the message is safe to show to the client. */
export class InvalidTokenError extends Error {
  constructor(
    readonly reason: 'malformed' | 'unknown-key' | 'bad-signature' | 'expired' | 'wrong-claims' | 'account-disabled',
    message: string,
  ) {
    super(message);
  }
}

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  retired: boolean;
  loadedAt: number;
}

interface SigningKeyRow {
  kid: string;
  private_pem: string;
  public_pem: string;
  retired_at: string | null;
}

export interface KeyRingOptions {
  /**
   * How long a node trusts what it read of the signing_key table: a rotation or a retirement made
   * by another node takes effect here within this time.
   */
  cacheMs?: number;
}

/**
 * The ES256 keys that sign and verify access tokens, kept in the signing_key table so that every
 * hub node signs with the same active key and verifies the others' tokens. Rotation adds a newer
 * key; older keys keep verifying until they are retired, so rotation logs nobody out.
 */
export class KeyRing {
  private readonly keys = new Map<string, SigningKey>();
  private active?: { kid: string; loadedAt: number };
  private readonly cacheMs: number;

  private constructor(
    private readonly db: Database,
    options: KeyRingOptions,
  ) {
    this.cacheMs = options.cacheMs ?? 30_000;
  }

  /** Opens the ring and makes sure there is a key to sign with (the first node to start creates it). */
  static async open(db: Database, options: KeyRingOptions = {}): Promise<KeyRing> {
    const ring = new KeyRing(db, options);
    await ring.ensureActiveKey();
    return ring;
  }

  /** The kid of the key that signs, creating one if none is active. Safe when several nodes start at once. */
  async ensureActiveKey(): Promise<string> {
    const kid = await this.db.transaction(async (tx) => {
      const rows = await tx.query<SigningKeyRow>(
        'SELECT kid, private_pem, public_pem, retired_at FROM signing_key WHERE retired_at IS NULL ORDER BY created_at DESC, kid DESC LIMIT 1',
      );
      if (rows[0]) return this.remember(rows[0]).kid;
      return this.remember(await insertNewKey(tx)).kid;
    }, ['auth:signing-key']);
    this.active = { kid, loadedAt: Date.now() };
    return kid;
  }

  /** Adds a new active key and returns its kid; tokens signed with the previous keys stay valid. */
  async rotate(): Promise<string> {
    const row = await this.db.transaction((tx) => insertNewKey(tx), ['auth:signing-key']);
    const kid = this.remember(row).kid;
    this.active = { kid, loadedAt: Date.now() };
    return kid;
  }

  /** Stops a key from verifying (after a leak, or once its tokens have all expired). */
  async retire(kid: string): Promise<void> {
    await this.db.query('UPDATE signing_key SET retired_at = now() WHERE kid = $1 AND retired_at IS NULL', [kid]);
    this.keys.delete(kid);
    if (this.active?.kid === kid) this.active = undefined;
  }

  async activeKid(): Promise<string> {
    if (this.active && Date.now() - this.active.loadedAt < this.cacheMs) return this.active.kid;
    return this.ensureActiveKey();
  }

  /** Signs an access token with the active key; `kid` in the header names the key for verifiers. */
  async sign(claims: Record<string, unknown>, options: { subject: string; expiresInSeconds: number; kind?: TokenKind }): Promise<string> {
    const kind = options.kind ?? ACCESS_TOKEN;
    const kid = await this.activeKid();
    const key = await this.key(kid);
    if (!key || key.retired) throw new Error(`signing key ${kid} is not available`);
    return jwt.sign(claims, key.privateKey, {
      algorithm: ALGORITHM,
      header: { alg: ALGORITHM, typ: kind.typ, kid },
      subject: options.subject,
      issuer: TOKEN_ISSUER,
      audience: kind.audience,
      expiresIn: options.expiresInSeconds,
    });
  }

  /**
   * Verifies an access token: ES256 only (never "none", never an HMAC keyed with a public key),
   * a known and unretired kid, signature, expiry, issuer and audience. Returns the claims.
   */
  async verify(token: string, kind: TokenKind = ACCESS_TOKEN): Promise<jwt.JwtPayload> {
    const decoded = decodeQuietly(token);
    if (!decoded || typeof decoded.payload === 'string') throw new InvalidTokenError('malformed', 'the access token is malformed');
    const { kid, alg, typ } = decoded.header;
    if (alg !== ALGORITHM) throw new InvalidTokenError('bad-signature', 'the access token is not signed with ES256');
    if (typ !== kind.typ) throw new InvalidTokenError('wrong-claims', kind === ACCESS_TOKEN ? 'the token is not an access token' : `the token is not a ${kind.typ} token`);
    if (typeof kid !== 'string' || !KID_PATTERN.test(kid)) throw new InvalidTokenError('unknown-key', 'the access token names no known key');
    const key = await this.key(kid);
    if (!key || key.retired) throw new InvalidTokenError('unknown-key', 'the access token names no known key');
    try {
      const payload = jwt.verify(token, key.publicKey, {
        algorithms: [ALGORITHM],
        issuer: TOKEN_ISSUER,
        audience: kind.audience,
        complete: false,
      });
      if (typeof payload === 'string') throw new InvalidTokenError('malformed', 'the access token is malformed');
      return payload;
    } catch (err) {
      if (err instanceof InvalidTokenError) throw err;
      if (err instanceof jwt.TokenExpiredError) throw new InvalidTokenError('expired', 'the access token has expired');
      if (err instanceof jwt.JsonWebTokenError && /audience|issuer/.test(err.message)) {
        throw new InvalidTokenError('wrong-claims', 'the access token is not meant for this hub');
      }
      throw new InvalidTokenError('bad-signature', 'the access token signature is invalid');
    }
  }

  /** A key by kid: from the cache while fresh, else from the table (another node may have added it). */
  private async key(kid: string): Promise<SigningKey | undefined> {
    const cached = this.keys.get(kid);
    if (cached && Date.now() - cached.loadedAt < this.cacheMs) return cached;
    const rows = await this.db.query<SigningKeyRow>('SELECT kid, private_pem, public_pem, retired_at FROM signing_key WHERE kid = $1', [kid]);
    if (!rows[0]) {
      this.keys.delete(kid);
      return undefined;
    }
    return this.remember(rows[0]);
  }

  private remember(row: SigningKeyRow): SigningKey {
    const key: SigningKey = {
      kid: row.kid,
      privateKey: createPrivateKey(row.private_pem),
      publicKey: createPublicKey(row.public_pem),
      retired: row.retired_at !== null,
      loadedAt: Date.now(),
    };
    this.keys.set(row.kid, key);
    return key;
  }
}

function decodeQuietly(token: string): jwt.Jwt | null {
  try {
    return jwt.decode(token, { complete: true });
  } catch {
    return null;
  }
}

async function insertNewKey(tx: SqlExecutor): Promise<SigningKeyRow> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const row: SigningKeyRow = {
    kid: randomBytes(12).toString('base64url'),
    private_pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    public_pem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    retired_at: null,
  };
  // clock_timestamp(), not now(): two rotations in one transaction would otherwise tie.
  await tx.query('INSERT INTO signing_key (kid, algorithm, private_pem, public_pem, created_at) VALUES ($1, $2, $3, $4, clock_timestamp())', [
    row.kid,
    ALGORITHM,
    row.private_pem,
    row.public_pem,
  ]);
  return row;
}
