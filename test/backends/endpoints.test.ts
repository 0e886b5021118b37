/** Endpoints: load balancing over replicas, passive ejection, panic mode. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Endpoint, Endpoints, type Balance } from '../../src/backends/endpoints.js';

function replicas(balance: Balance, weights = [1, 1, 1], now = () => 0): Endpoints<null> {
  const list = weights.map((w, i) => new Endpoint(`http://r${i}`, w, null));
  return new Endpoints(list, { balance, consecutiveFailures: 3, ejectionMs: 1000, now });
}

describe('Endpoints', () => {
  it('sends each call to the replica with the fewest in flight', () => {
    const e = replicas('least-outstanding');
    const a = e.pick();
    const b = e.pick();
    const c = e.pick();
    assert.equal(new Set([a.url, b.url, c.url]).size, 3, 'one each while all are busy');
    e.done(b, false);
    assert.equal(e.pick().url, b.url, 'the one that finished gets the next');
  });

  it('deals round robin', () => {
    const e = replicas('round-robin');
    const urls = Array.from({ length: 6 }, () => {
      const x = e.pick();
      e.done(x, false);
      return x.url;
    });
    assert.deepEqual(urls, ['http://r0', 'http://r1', 'http://r2', 'http://r0', 'http://r1', 'http://r2']);
  });

  it('spreads by weight, smoothly', () => {
    const e = replicas('weighted', [5, 1, 1]);
    const counts: Record<string, number> = {};
    const order: string[] = [];
    for (let i = 0; i < 7; i++) {
      const x = e.pick();
      e.done(x, false);
      counts[x.url] = (counts[x.url] ?? 0) + 1;
      order.push(x.url);
    }
    assert.deepEqual(counts, { 'http://r0': 5, 'http://r1': 1, 'http://r2': 1 });
    assert.notDeepEqual(order.slice(0, 5), Array(5).fill('http://r0'), 'interleaved, not in a block');
  });

  it('ejects a replica after consecutive failures for the ejection time, then takes it back', () => {
    let now = 0;
    const e = replicas('round-robin', [1, 1], () => now);
    const bad = e.list[0] as Endpoint<null>;
    for (let i = 0; i < 3; i++) {
      bad.outstanding++;
      e.done(bad, true);
    }
    assert.ok(e.status()[0]?.ejected);
    for (let i = 0; i < 4; i++) assert.equal(e.pick().url, 'http://r1');
    now = 1001;
    const urls = new Set(Array.from({ length: 4 }, () => e.pick().url));
    assert.ok(urls.has('http://r0'), 'back after the ejection time');
  });

  it('a success resets the failure count', () => {
    const e = replicas('round-robin', [1, 1]);
    const r = e.list[0] as Endpoint<null>;
    for (const failed of [true, true, false, true, true]) {
      r.outstanding++;
      e.done(r, failed);
    }
    assert.equal(e.status()[0]?.ejected, false);
  });

  it('still sends calls somewhere when every replica is ejected (panic mode)', () => {
    const e = replicas('least-outstanding', [1, 1], () => 0);
    for (const r of e.list) e.eject(r);
    assert.ok(['http://r0', 'http://r1'].includes(e.pick().url));
  });
});
