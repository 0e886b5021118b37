/**
 * Guards /admin/*: only the admin key opens it. A tenant's key gets 403 (it is a key, just not
 * this one); no key or a wrong one, 401. Without an admin key the admin API is open on a loopback
 * host (the embedded default) and closed elsewhere.
 */
import { isIP } from 'node:net';
import type { FastifyRequest } from 'fastify';
import { fastError } from '../../../core/errors.js';
import type { Directory } from '../../../tenancy/directory.js';
import { presentedKey, sameSecret } from '../../../tenancy/keys.js';

/** Whether a bind address or host name is loopback: `localhost`, `::1`, or an IPv4 address in 127.0.0.0/8. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/**
 * The onRequest hook that applies these rules. `adminKey` '' means none is set; `host` is the
 * server's bind address; `directory` (null in `none` mode) tells tenant keys (403) from wrong ones (401).
 */
export function adminGuard(adminKey: string, directory: Directory | null, host: string) {
  const open = adminKey === '' && isLoopbackHost(host);
  return async function guardAdmin(request: FastifyRequest): Promise<void> {
    if (open) {
      // Open to local processes, not to every web page a local browser opens (a form or a no-cors
      // fetch to 127.0.0.1 from another site, or a rebound DNS name).
      if (fromAnotherSite(request)) {
        throw fastError('permission_denied', 'the open admin API (no auth.admin_key, on loopback) refuses calls from other web pages');
      }
      return;
    }
    if (adminKey === '') throw fastError('invalid_api_key', 'the admin API is closed on a non-loopback host until auth.admin_key is set');
    const presented = presentedKey(request.headers.authorization, request.headers['x-api-key']);
    if (presented === null) throw fastError('invalid_api_key', 'the admin API needs the admin key (Authorization: Bearer <admin key>)');
    if (sameSecret(presented, adminKey)) return;
    if (directory !== null && isTenantKey(directory, presented)) {
      throw fastError('permission_denied', 'tenant keys cannot use the admin API; use the admin key');
    }
    throw fastError('invalid_api_key', 'the admin key is not valid');
  };
}

/**
 * Whether a browser sent the call from another site: `Sec-Fetch-Site` says so (every current
 * browser sends it), or an `Origin` (or `Host`) that is not this server's loopback address.
 * Command-line clients send neither and pass.
 */
function fromAnotherSite(request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site'];
  if (site === 'cross-site' || site === 'same-site') return true;
  const host = request.headers.host ?? '';
  if (!isLoopbackHost(host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1'))) return true;
  const origin = request.headers.origin;
  if (origin === undefined) return false;
  return !URL.canParse(origin) || new URL(origin).host !== host;
}

function isTenantKey(directory: Directory, key: string): boolean {
  try {
    directory.authenticate(key);
    return true;
  } catch {
    return false;
  }
}
