/**
 * The authenticate stage of `auth.mode: trusted_header`, for a gateway behind an authenticating
 * proxy or service mesh: a call from one of `trusted_peers` that names its tenant in the tenant
 * header (`x-tenant-id`) is that tenant's, with the key id the key header (`x-key-id`) names. From
 * any other peer those headers are ignored: the call needs an API key, as in `keys` mode, and
 * without one it is 401. A trusted peer's call without the tenant header is checked by its key too.
 *
 * The peer is the TCP connection's: a proxy must connect from a trusted address itself. Headers
 * such as `X-Forwarded-For` are never read, since any client can send them.
 */
import type { TrustedHeaderConfig } from '../config/schema.js';
import { fastError } from '../core/errors.js';
import { PeerList } from '../core/peers.js';
import { unauthorized, type Directory } from '../tenancy/directory.js';
import { keyAuthentication, type Authenticate } from './envelope.js';

/** The key id of a vouched-for call whose key header is absent or empty. */
export const TRUSTED_KEY_ID = 'trusted';

/** What a key id may be: what usage records hold (32 characters), in characters safe in logs and metric labels. */
const KEY_ID = /^[A-Za-z0-9._:@-]{1,32}$/;

/**
 * The authenticate stage for a directory: `trusted_header` mode's when `trusted` holds its
 * settings, else `keys` mode's; null, no authentication, without a directory (`none` mode).
 */
export function authentication(directory: Directory | null, trusted: TrustedHeaderConfig | null): Authenticate | null {
  if (directory === null) return null;
  return trusted === null ? keyAuthentication(directory) : trustedHeaderAuthentication(directory, trusted);
}

/** `trusted_header` mode's authenticate stage: the tenant a trusted peer names, else an API key. */
export function trustedHeaderAuthentication(directory: Directory, settings: TrustedHeaderConfig): Authenticate {
  const peers = new PeerList(settings.trusted_peers);
  // Node gives header names in lower case, HTTP/1.1 and HTTP/2 alike.
  const tenantHeader = settings.tenant_header.toLowerCase();
  const keyHeader = settings.key_header.toLowerCase();
  const byKey = keyAuthentication(directory) as Authenticate;
  return function authenticateTrusted(headers, peer) {
    const tenant = headers[tenantHeader];
    if (tenant === undefined) return byKey(headers, peer);
    if (!peers.has(peer.remoteAddress)) {
      if (headers.authorization === undefined && headers['x-api-key'] === undefined) {
        throw unauthorized(`${tenantHeader} is not accepted from this address; send an API key (Authorization: Bearer <key> or x-api-key)`);
      }
      return byKey(headers, peer);
    }
    if (typeof tenant !== 'string')
      throw fastError('invalid_request', `${tenantHeader} must be sent once, got ${tenant.length} values`, tenantHeader);
    const principal = directory.vouchedFor(tenant, keyId(headers[keyHeader], keyHeader));
    if (principal === null) throw unauthorized(`the tenant ${quoted(tenant)} named by ${tenantHeader} is not known`);
    return principal;
  };
}

/** The key id a trusted peer sent in `header`: TRUSTED_KEY_ID when absent or empty; 400 when malformed. */
function keyId(value: string | string[] | undefined, header: string): string {
  if (value === undefined || value === '') return TRUSTED_KEY_ID;
  if (typeof value === 'string' && KEY_ID.test(value)) return value;
  throw fastError(
    'invalid_request',
    `${header} must be 1 to 32 of A-Z a-z 0-9 . _ : @ -, sent once; got ${typeof value === 'string' ? quoted(value) : `${value.length} values`}`,
    header,
  );
}

/** A value a client sent, quoted and cut short for a message. */
function quoted(value: string): string {
  const text = JSON.stringify(value);
  return text.length > 66 ? `${text.slice(0, 64)}..."` : text;
}
