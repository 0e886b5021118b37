/** `auth.mode: trusted_header` in the config: its defaults, and each problem reported with its path. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/load.js';

const ADMIN = "admin_key: 'an-admin-key-of-16+'";

function problems(auth: string): string[] {
  try {
    parseConfig(`auth: ${auth}\nmodels: []\n`, 'test.yaml');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
  assert.fail('expected the config to be rejected');
}

describe('trusted_header config', () => {
  it('fills the header names and takes peers of both families', () => {
    const config = parseConfig(
      `auth: { mode: trusted_header, ${ADMIN}, trusted_header: { trusted_peers: [10.0.0.0/8, 'fd00::/8', 127.0.0.2] } }\nmodels: []\n`,
      'test.yaml',
    );
    assert.deepEqual(config.auth.trusted_header, {
      tenant_header: 'x-tenant-id',
      key_header: 'x-key-id',
      trusted_peers: ['10.0.0.0/8', 'fd00::/8', '127.0.0.2'],
    });
  });

  it('needs at least one trusted peer, and says where', () => {
    assert.deepEqual(problems(`{ mode: trusted_header, ${ADMIN} }`), [
      'auth.trusted_header.trusted_peers: `trusted_header` mode needs at least one trusted peer: the addresses of the proxy or mesh that sets the headers, e.g. [10.0.0.0/8]',
    ]);
  });

  it('needs an admin key, as keys mode does', () => {
    assert.match(
      problems('{ mode: trusted_header, trusted_header: { trusted_peers: [10.0.0.1] } }').join('\n'),
      /^auth\.admin_key: `trusted_header` mode needs an admin key/,
    );
  });

  it('reports each peer that is not an address or CIDR range by its index, in any mode', () => {
    assert.deepEqual(
      problems(`{ mode: trusted_header, ${ADMIN}, trusted_header: { trusted_peers: [10.0.0.0/8, proxy.local, 10.0.0.0/40] } }`),
      [
        'auth.trusted_header.trusted_peers[1]: must be an IPv4 or IPv6 address or a CIDR range (10.0.0.0/8, fd00::/8), got "proxy.local"',
        'auth.trusted_header.trusted_peers[2]: the prefix length of an IPv4 range must be 0 to 32, got "10.0.0.0/40"',
      ],
    );
    assert.deepEqual(problems('{ trusted_header: { trusted_peers: [nope] } }'), [
      'auth.trusted_header.trusted_peers[0]: must be an IPv4 or IPv6 address or a CIDR range (10.0.0.0/8, fd00::/8), got "nope"',
    ]);
  });

  it('refuses header names that carry API keys, that coincide, or that are not header names', () => {
    const peers = 'trusted_peers: [10.0.0.1]';
    assert.deepEqual(problems(`{ mode: trusted_header, ${ADMIN}, trusted_header: { ${peers}, tenant_header: Authorization } }`), [
      'auth.trusted_header.tenant_header: must not be Authorization, which carries API keys',
    ]);
    assert.deepEqual(problems(`{ mode: trusted_header, ${ADMIN}, trusted_header: { ${peers}, key_header: X-Tenant-ID } }`), [
      'auth.trusted_header.key_header: must differ from tenant_header, got X-Tenant-ID for both',
    ]);
    assert.match(
      problems(`{ mode: trusted_header, ${ADMIN}, trusted_header: { ${peers}, tenant_header: 'x tenant' } }`).join('\n'),
      /^auth\.trusted_header\.tenant_header: /,
    );
  });

  it('refuses unknown options under trusted_header', () => {
    assert.match(
      problems(`{ mode: trusted_header, ${ADMIN}, trusted_header: { trusted_peers: [10.0.0.1], peers: [] } }`).join('\n'),
      /auth\.trusted_header\.peers/,
    );
  });
});
