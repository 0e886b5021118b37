/**
 * API keys: 256 random bits, shown once; only their SHA-256 is stored. A fast hash is right here
 * (unlike passwords): the keys are random, so there is nothing to guess from the hash.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Every key starts with this, so secret scanners and people can recognise one. */
export const KEY_PREFIX = 'ig-';

/** A freshly made key: everything to store, and the secret to show once. */
export interface NewKey {
  readonly id: string;
  /** The key itself: given to the caller once, never stored. */
  readonly secret: string;
  readonly hash: string;
  /** The first characters, stored for lists ("ig-3kQ9..."). */
  readonly prefix: string;
}

/** Makes a new random key and its id, hash and listed prefix. */
export function generateKey(): NewKey {
  const secret = KEY_PREFIX + randomBytes(32).toString('base64url');
  return { id: `key_${randomBytes(8).toString('hex')}`, secret, hash: hashKey(secret), prefix: secret.slice(0, 9) };
}

/** The SHA-256 of a key as lowercase hex: what is stored and looked up. */
export function hashKey(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** Compares two secrets in time independent of where they differ (their hashes have equal length). */
export function sameSecret(presented: string, expected: string): boolean {
  return timingSafeEqual(createHash('sha256').update(presented).digest(), createHash('sha256').update(expected).digest());
}

/** The key in `Authorization: Bearer <key>` or `x-api-key`; null when neither is there. */
export function presentedKey(authorization: string | undefined, apiKey: string | string[] | undefined): string | null {
  if (authorization !== undefined) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return m === null ? '' : (m[1] as string);
  }
  return typeof apiKey === 'string' ? apiKey : null;
}
