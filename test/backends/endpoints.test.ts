/** Endpoints: load balancing over replicas, passive ejection, panic mode, a set that changes, placement by priority. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DiscoveredEndpoint } from '../../src/backends/discovery.js';
import { Endpoint, Endpoints, type Balance, type EndpointOptions } from '../../src/backends/endpoints.js';

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

/** A discovered endpoint of `url` (weight 1, no pool, no reported load unless given). */
function found(url: string, more: Partial<DiscoveredEndpoint> = {}): DiscoveredEndpoint {
  return { url, weight: 1, pool: null, load: 0, ...more };
}

/** An empty set of endpoints whose pools are their URLs, filled by `replace`. */
function discovered(list: DiscoveredEndpoint[], options: Partial<EndpointOptions> = {}): Endpoints<string> {
  const e = new Endpoints<string>([], { balance: 'least-outstanding', consecutiveFailures: 3, ejectionMs: 1000, ...options });
  e.replace(list, (d) => `pool of ${d.url}`);
  return e;
}

/** `n` picks (each done at once), counted by URL. */
function spread<P>(e: Endpoints<P>, n: number, priority?: 'high' | 'normal' | 'low'): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const x = e.pick(priority);
    e.done(x, false);
    counts[x.url] = (counts[x.url] ?? 0) + 1;
  }
  return counts;
}

describe('Endpoints that change (discovery)', () => {
  it('keeps the object, counters, ejection and pool of an endpoint that stays, and takes the new weight', () => {
    let now = 0;
    const e = discovered([found('http://a'), found('http://b')], { now: () => now });
    const a = e.list[0] as Endpoint<string>;
    a.outstanding = 2;
    e.eject(a);
    const gone = e.replace([found('http://a', { weight: 3 }), found('http://c')], () => 'new pool');
    assert.deepEqual(
      gone.map((x) => x.url),
      ['http://b'],
    );
    assert.equal(e.list[0], a, 'the same object');
    assert.equal(a.pool, 'pool of http://a', 'its connection pool kept');
    assert.equal(a.outstanding, 2);
    assert.equal(a.weight, 3);
    assert.ok(e.status()[0]?.ejected, 'still ejected');
    assert.equal((e.list[1] as Endpoint<string>).pool, 'new pool');
    now = 2000;
    assert.equal(e.status()[0]?.ejected, false);
  });

  it('gives an endpoint that left no more calls, while its calls in flight still end there', () => {
    const e = discovered([found('http://a'), found('http://b')]);
    const inFlight = e.pick();
    e.replace([found(inFlight.url === 'http://a' ? 'http://b' : 'http://a')], (d) => d.url);
    const left = inFlight.url;
    for (let i = 0; i < 10; i++) assert.notEqual(e.pick().url, left);
    e.done(inFlight, false);
    assert.equal(inFlight.outstanding, 0);
    assert.ok(!e.list.includes(inFlight));
  });

  it('makes one endpoint of a URL listed twice, its weights summed', () => {
    const e = discovered([found('http://a', { weight: 2 }), found('http://a', { weight: 3 })]);
    assert.equal(e.list.length, 1);
    assert.equal(e.list[0]?.weight, 5);
  });

  it('counts the load an endpoint reported when it is more than its calls in flight here', () => {
    const e = discovered([found('http://a', { load: 10 }), found('http://b')]);
    assert.deepEqual(spread(e, 5), { 'http://b': 5 });
  });
});

describe('p2c-ewma', () => {
  it('sends most calls to the endpoint that answers faster', () => {
    let now = 0;
    let seed = 1;
    // A fixed sequence (xorshift), so the test says the same each run.
    const random = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    const e = discovered([found('http://fast'), found('http://slow'), found('http://mid')], {
      balance: 'p2c-ewma',
      now: () => now,
      random,
    });
    const latency: Record<string, number> = { 'http://fast': 10, 'http://slow': 400, 'http://mid': 60 };
    const counts: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      now += 20;
      const x = e.pick();
      e.observe(x, latency[x.url] as number);
      e.done(x, false);
      counts[x.url] = (counts[x.url] ?? 0) + 1;
    }
    // Two of three pairs hold the fast one, which wins them; the third pair is the middle one's.
    assert.ok((counts['http://fast'] ?? 0) >= 170, JSON.stringify(counts));
    assert.ok((counts['http://mid'] ?? 0) >= 70, JSON.stringify(counts));
    assert.ok((counts['http://slow'] ?? 0) <= 5, JSON.stringify(counts));
  });

  it('weighs latency by calls in flight: a fast endpoint that is busy loses to an idle slower one', () => {
    const e = discovered([found('http://fast'), found('http://slow')], { balance: 'p2c-ewma', now: () => 0 });
    const [fast, slow] = e.list as Array<Endpoint<string>>;
    e.observe(fast as Endpoint<string>, 10);
    e.observe(slow as Endpoint<string>, 50);
    assert.equal(e.pick().url, 'http://fast');
    (fast as Endpoint<string>).outstanding = 10;
    assert.equal(e.pick().url, 'http://slow', 'cost 10 * 11 > 50 * 1');
  });

  it('starts a new endpoint at the median latency of the others', () => {
    const e = discovered([found('http://a'), found('http://b'), found('http://c')], { balance: 'p2c-ewma', now: () => 0 });
    [10, 30, 500].forEach((ms, i) => e.observe(e.list[i] as Endpoint<string>, ms));
    e.replace([...e.list.map((x) => found(x.url)), found('http://new')], (d) => d.url);
    assert.equal(e.list.find((x) => x.url === 'http://new')?.latency, 30);
  });
});

describe('pools by priority', () => {
  const pools = { prefer: { high: 'reserved', low: 'spot' }, saturation: 2 } as const;
  const fleet = (): Endpoints<string> =>
    discovered([found('http://r1', { pool: 'reserved' }), found('http://r2', { pool: 'reserved' }), found('http://s1', { pool: 'spot' })], {
      pools,
      now: () => 0,
    });

  it("sends a call to its priority's preferred pool", () => {
    const e = fleet();
    assert.deepEqual(spread(e, 6, 'high'), { 'http://r1': 3, 'http://r2': 3 });
    assert.deepEqual(spread(e, 3, 'low'), { 'http://s1': 3 });
  });

  it('spreads a priority that prefers no pool over every endpoint', () => {
    assert.deepEqual(spread(fleet(), 6, 'normal'), { 'http://r1': 2, 'http://r2': 2, 'http://s1': 2 });
  });

  it('spills over to the other pools when the preferred endpoints are saturated', () => {
    const e = fleet();
    const held = Array.from({ length: 4 }, () => e.pick('high'));
    assert.deepEqual(held.map((x) => x.url).sort(), ['http://r1', 'http://r1', 'http://r2', 'http://r2'], 'two each up to saturation');
    assert.equal(e.pick('high').url, 'http://s1', 'then the spot pool');
    e.done(held[0] as Endpoint<string>, false);
    assert.equal(e.pick('high').url, held[0]?.url, 'back once one has room');
  });

  it('counts reported load toward saturation', () => {
    const e = discovered([found('http://r1', { pool: 'reserved', load: 5 }), found('http://s1', { pool: 'spot' })], {
      pools,
      now: () => 0,
    });
    assert.equal(e.pick('high').url, 'http://s1');
  });

  it('spills over when the preferred endpoints are ejected, and panics only when every endpoint is', () => {
    const e = fleet();
    for (const x of e.list.filter((x) => x.poolName === 'reserved')) e.eject(x);
    assert.deepEqual(spread(e, 3, 'high'), { 'http://s1': 3 });
    e.eject(e.list[2] as Endpoint<string>);
    assert.ok(['http://r1', 'http://r2', 'http://s1'].includes(e.pick('high').url), 'panic mode still sends it somewhere');
  });

  it('keeps sending to saturated preferred endpoints when no other endpoint can take the call', () => {
    const e = discovered([found('http://r1', { pool: 'reserved', load: 9 })], { pools, now: () => 0 });
    e.replace([found('http://r1', { pool: 'reserved', load: 9 }), found('http://r2', { pool: 'reserved', load: 9 })], (d) => d.url);
    assert.ok(['http://r1', 'http://r2'].includes(e.pick('high').url));
  });
});
