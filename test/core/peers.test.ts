/** Peer lists (`auth.trusted_header.trusted_peers`): which entries parse, and which addresses they match. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePeer, PeerList } from '../../src/core/peers.js';

describe('peer lists', () => {
  it('parses single addresses and CIDR ranges of both families', () => {
    assert.deepEqual(parsePeer('127.0.0.2'), { address: '127.0.0.2', family: 'ipv4', prefix: 32 });
    assert.deepEqual(parsePeer('10.0.0.0/8'), { address: '10.0.0.0', family: 'ipv4', prefix: 8 });
    assert.deepEqual(parsePeer('fd00::/8'), { address: 'fd00::', family: 'ipv6', prefix: 8 });
    assert.deepEqual(parsePeer('::1'), { address: '::1', family: 'ipv6', prefix: 128 });
  });

  it('names what is wrong with an entry that is not an address or range', () => {
    for (const bad of ['localhost', '10.0.0', '10.0.0.0/', '10.0.0.0/x', '', '10.0.0.0/8/8'])
      assert.match(parsePeer(bad) as string, /must be an IPv4 or IPv6 address or a CIDR range|prefix length/, bad);
    assert.match(parsePeer('10.0.0.0/33') as string, /prefix length of an IPv4 range must be 0 to 32, got "10.0.0.0\/33"/);
    assert.match(parsePeer('fd00::/129') as string, /prefix length of an IPv6 range must be 0 to 128/);
  });

  it('matches addresses in its ranges, and IPv4-mapped IPv6 addresses against IPv4 entries', () => {
    const peers = new PeerList(['127.0.0.2/32', '10.1.0.0/16', 'fd00::/8']);
    assert.equal(peers.has('127.0.0.2'), true);
    assert.equal(peers.has('::ffff:127.0.0.2'), true);
    assert.equal(peers.has('127.0.0.1'), false);
    assert.equal(peers.has('::ffff:127.0.0.1'), false);
    assert.equal(peers.has('10.1.255.7'), true);
    assert.equal(peers.has('10.2.0.1'), false);
    assert.equal(peers.has('fd12:3456::1'), true);
    assert.equal(peers.has('fe80::1'), false);
    assert.equal(peers.has(undefined), false);
    // Asked again, from the cache: the same answers.
    assert.equal(peers.has('127.0.0.2'), true);
    assert.equal(peers.has('127.0.0.1'), false);
  });

  it('gives the same answers after its cache of verdicts fills and starts again', () => {
    const peers = new PeerList(['10.0.0.0/24']);
    for (let i = 0; i < 3000; i++) assert.equal(peers.has(`10.0.${i >> 8}.${i & 255}`), i < 256);
  });

  it('refuses to be built from an entry config loading would have reported', () => {
    assert.throws(() => new PeerList(['not-an-address']), /trusted peer must be an IPv4 or IPv6 address/);
  });
});
