/** DNS discovery: a DnsSource follows the A and SRV records of a real DNS server on loopback as they change. */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DnsSource, type DiscoveredEndpoint, type DiscoveryLog, type DnsDiscovery } from '../../src/backends/discovery.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';

/** Resolves with the source's list once `accept` takes it (checked at once, then on each change); rejects after `ms`. */
function until(
  source: DnsSource,
  accept: (list: readonly DiscoveredEndpoint[]) => boolean,
  ms = 4_000,
): Promise<readonly DiscoveredEndpoint[]> {
  return new Promise((resolve, reject) => {
    if (accept(source.current())) return resolve(source.current());
    const timer = setTimeout(() => reject(new Error(`list still ${JSON.stringify(source.current())} after ${ms} ms`)), ms);
    source.onChange((list) => {
      if (!accept(list)) return;
      clearTimeout(timer);
      resolve(list);
    });
  });
}

const urls = (list: readonly DiscoveredEndpoint[]): string[] => list.map((e) => e.url);

describe('DNS discovery', () => {
  let dns: DnsServer;
  const sources: DnsSource[] = [];

  /** A source on the test server, closed after the test. */
  function source(spec: Partial<DnsDiscovery> & Pick<DnsDiscovery, 'name'>, log: DiscoveryLog | null = null): DnsSource {
    const s = new DnsSource({ type: 'A', scheme: 'http', path: '', refresh_ms: 30_000, servers: [dns.address], ...spec }, log);
    sources.push(s);
    return s;
  }

  before(async () => {
    dns = await startDnsServer();
  });
  beforeEach(() => {
    for (const s of sources.splice(0)) s.close();
    dns.records.clear();
    dns.failing = false;
  });
  after(async () => {
    for (const s of sources.splice(0)) s.close();
    await dns.close();
  });

  it('lists the A records as base URLs, and follows them as they are added and removed, when their TTL ends', async () => {
    dns.records.set('api.test', { A: [{ address: '10.0.0.1', ttl: 1 }] });
    const s = source({ name: 'api.test', port: 8000, path: '/v1' });
    await s.ready();
    assert.deepEqual(s.current(), [{ url: 'http://10.0.0.1:8000/v1', weight: 1, pool: null, load: 0 }]);
    dns.records.set('api.test', {
      A: [
        { address: '10.0.0.1', ttl: 1 },
        { address: '10.0.0.2', ttl: 1 },
      ],
    });
    const started = Date.now();
    assert.deepEqual(urls(await until(s, (l) => l.length === 2)), ['http://10.0.0.1:8000/v1', 'http://10.0.0.2:8000/v1']);
    // refresh_ms is 30 s: only the 1 s TTL can have brought the lookup forward.
    assert.ok(Date.now() - started < 2_500, 'looked up again when the TTL ended');
    dns.records.set('api.test', { A: [{ address: '10.0.0.2', ttl: 1 }] });
    assert.deepEqual(urls(await until(s, (l) => l.length === 1)), ['http://10.0.0.2:8000/v1']);
  });

  it('lists SRV targets with their ports and weights, the lowest priority only, every refresh_ms', async () => {
    dns.records.set('_http._tcp.llm.test', {
      SRV: [
        { target: 'a.llm.test', port: 9001, weight: 5, ttl: 60 },
        { target: 'b.llm.test', port: 9002, weight: 0, ttl: 60 },
        { target: 'backup.llm.test', port: 9003, priority: 10, ttl: 60 },
      ],
    });
    const s = source({ name: '_http._tcp.llm.test', type: 'SRV', scheme: 'https', refresh_ms: 200 });
    await s.ready();
    assert.deepEqual(s.current(), [
      { url: 'https://a.llm.test:9001', weight: 5, pool: null, load: 0 },
      { url: 'https://b.llm.test:9002', weight: 1, pool: null, load: 0 },
    ]);
    dns.records.set('_http._tcp.llm.test', { SRV: [{ target: 'c.llm.test', port: 9004, ttl: 60 }] });
    assert.deepEqual(urls(await until(s, (l) => l.length === 1, 1_500)), ['https://c.llm.test:9004']);
  });

  it('brackets AAAA addresses', async () => {
    dns.records.set('v6.test', { AAAA: [{ address: '::1', ttl: 30 }] });
    const s = source({ name: 'v6.test', type: 'AAAA', port: 8080 });
    await s.ready();
    assert.deepEqual(urls(s.current()), ['http://[::1]:8080']);
  });

  it('empties the list when the name has no records any more (NXDOMAIN), and fills it again when they come back', async () => {
    dns.records.set('gone.test', { A: [{ address: '10.0.0.9', ttl: 1 }] });
    const s = source({ name: 'gone.test', port: 80, refresh_ms: 200 });
    await s.ready();
    assert.equal(s.current().length, 1);
    dns.records.delete('gone.test');
    assert.deepEqual(await until(s, (l) => l.length === 0, 1_500), []);
    dns.records.set('gone.test', { A: [{ address: '10.0.0.9', ttl: 1 }] });
    assert.equal((await until(s, (l) => l.length === 1, 1_500)).length, 1);
  });

  it('keeps the last list while lookups fail (SERVFAIL), warning once per streak of failures', async () => {
    dns.records.set('flaky.test', { A: [{ address: '10.0.0.3', ttl: 1 }] });
    const warnings: unknown[][] = [];
    const s = source({ name: 'flaky.test', port: 80, refresh_ms: 150 }, { warn: (...args: unknown[]) => void warnings.push(args) });
    await s.ready();
    dns.failing = true;
    const before = dns.queries;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    assert.ok(dns.queries - before >= 3, `looked up again while failing (${dns.queries - before} queries)`);
    assert.deepEqual(urls(s.current()), ['http://10.0.0.3:80'], 'the last good list');
    assert.equal(warnings.length, 1, 'one warning for the streak');
    dns.failing = false;
    dns.records.set('flaky.test', { A: [{ address: '10.0.0.4', ttl: 1 }] });
    await until(s, (l) => l[0]?.url === 'http://10.0.0.4:80', 1_500);
    dns.failing = true;
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(warnings.length, 2, 'a new streak warns again');
  });

  it('is ready with an empty list when the name has no records, and stops looking up once closed', async () => {
    const s = source({ name: 'nothing.test', port: 80, refresh_ms: 100 });
    await s.ready();
    assert.deepEqual(s.current(), []);
    s.close();
    const queries = dns.queries;
    await new Promise((resolve) => setTimeout(resolve, 400));
    assert.equal(dns.queries, queries, 'no lookups after close');
  });
});
