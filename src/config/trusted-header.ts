/**
 * The cross-field rules of `auth.trusted_header`, checked when the config loads (load.ts), so a
 * server never starts trusting a peer list it cannot read, or no peers at all.
 */
import { parsePeer } from '../core/peers.js';
import type { AuthConfig } from './schema.js';

/** One problem: its path in the document, below the root, and what is wrong. */
export interface TrustedHeaderProblem {
  readonly path: ReadonlyArray<string | number>;
  readonly message: string;
}

/** Headers the trusted headers may not be: they carry API keys, which keep their own meaning. */
const RESERVED = new Set(['authorization', 'x-api-key']);

/** Every problem of `auth.trusted_header`: each peer entry in any mode; in `trusted_header` mode, at least one peer and two distinct, unreserved headers. */
export function trustedHeaderProblems(auth: AuthConfig): TrustedHeaderProblem[] {
  const at = ['auth', 'trusted_header'];
  const { trusted_peers: peers, tenant_header: tenant, key_header: key } = auth.trusted_header;
  const problems: TrustedHeaderProblem[] = [];
  peers.forEach((entry, i) => {
    const range = parsePeer(entry);
    if (typeof range === 'string') problems.push({ path: [...at, 'trusted_peers', i], message: range });
  });
  if (auth.mode !== 'trusted_header') return problems;
  if (peers.length === 0) {
    problems.push({
      path: [...at, 'trusted_peers'],
      message:
        '`trusted_header` mode needs at least one trusted peer: the addresses of the proxy or mesh that sets the headers, e.g. [10.0.0.0/8]',
    });
  }
  for (const [name, value] of [
    ['tenant_header', tenant],
    ['key_header', key],
  ] as const) {
    if (RESERVED.has(value.toLowerCase())) problems.push({ path: [...at, name], message: `must not be ${value}, which carries API keys` });
  }
  if (tenant.toLowerCase() === key.toLowerCase()) {
    problems.push({ path: [...at, 'key_header'], message: `must differ from tenant_header, got ${key} for both` });
  }
  return problems;
}
