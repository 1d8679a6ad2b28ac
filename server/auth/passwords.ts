import { randomBytes } from 'node:crypto';
import argon2 from 'argon2';

/**
 * argon2id with the OWASP Password Storage Cheat Sheet parameters (19 MiB, 2 passes, 1 lane):
 * about 20 ms per check on one core, so a login stays quick over a satellite link while an
 * offline guess stays expensive. Hashes made with other parameters are upgraded at the next login.
 */
const PARAMETERS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function hashPassword(password: string): Promise<string> {
  return argon2.hash(password.normalize('NFC'), PARAMETERS);
}

/** False for a wrong password and for a hash that cannot be read: neither lets anyone in. */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2.verify(hash, password.normalize('NFC'));
  } catch {
    return false;
  }
}

export function needsRehash(hash: string): boolean {
  return argon2.needsRehash(hash, PARAMETERS);
}

/**
 * A hash of nothing anyone knows, checked when the username is unknown: a login then costs the
 * same time whether or not the account exists.
 */
let decoy: Promise<string> | undefined;
export function decoyHash(): Promise<string> {
  decoy ??= hashPassword(randomBytes(32).toString('base64url'));
  return decoy;
}
