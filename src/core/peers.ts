/**
 * Lists of peer addresses, as config names them (`auth.trusted_header.trusted_peers`): single IPv4
 * or IPv6 addresses and CIDR ranges, matched with node:net's BlockList. BlockList matches an
 * IPv4-mapped IPv6 address (`::ffff:127.0.0.2`, what a dual-stack socket reports for an IPv4
 * client) against IPv4 entries, and an IPv4 address against mapped entries, so either spelling works.
 */
import { BlockList, isIP } from 'node:net';

/** One entry of a peer list, parsed: an address, its family, and the prefix length of its range. */
export interface PeerRange {
  readonly address: string;
  readonly family: 'ipv4' | 'ipv6';
  /** 32 (IPv4) or 128 (IPv6) for a single address. */
  readonly prefix: number;
}

/** An entry (`10.0.0.0/8`, `fd00::/8`, `127.0.0.2`) as a range, or a message saying what is wrong with it. */
export function parsePeer(entry: string): PeerRange | string {
  const slash = entry.indexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return `must be an IPv4 or IPv6 address or a CIDR range (10.0.0.0/8, fd00::/8), got ${JSON.stringify(entry)}`;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const bits = version === 4 ? 32 : 128;
  if (slash === -1) return { address, family, prefix: bits };
  const text = entry.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(text) ? Number(text) : NaN;
  if (!(prefix <= bits))
    return `the prefix length of an ${family === 'ipv4' ? 'IPv4' : 'IPv6'} range must be 0 to ${bits}, got ${JSON.stringify(entry)}`;
  return { address, family, prefix };
}

/**
 * Matches addresses against a peer list, built once. A peer's verdict is cached by address (a
 * connection's requests, and a proxy's connections, share a few), so a call costs a map lookup;
 * the cache is emptied when it reaches `CACHE_LIMIT` addresses, bounding what many peers can hold.
 */
export class PeerList {
  readonly #list = new BlockList();
  readonly #seen = new Map<string, boolean>();

  /** `entries`: as parsePeer accepts them; config loading has checked them already, so a bad one throws. */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const range = parsePeer(entry);
      if (typeof range === 'string') throw new Error(`trusted peer ${range}`);
      this.#list.addSubnet(range.address, range.prefix, range.family);
    }
  }

  /** Whether `address` (a socket's remoteAddress; undefined once it has closed) is in the list. */
  has(address: string | undefined): boolean {
    if (address === undefined) return false;
    const known = this.#seen.get(address);
    if (known !== undefined) return known;
    const version = isIP(address);
    const found = version !== 0 && this.#list.check(address, version === 4 ? 'ipv4' : 'ipv6');
    if (this.#seen.size >= CACHE_LIMIT) this.#seen.clear();
    this.#seen.set(address, found);
    return found;
  }
}

/** Addresses whose verdict is remembered before the cache starts again. */
const CACHE_LIMIT = 1024;
