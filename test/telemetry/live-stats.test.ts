/** The dashboard's live figures: read from a worker's registry, summed over workers, turned into per-second rates and quantiles, fanned out on one timer. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { noFigures, bucketOf } from '../../src/core/figures.js';
import type { MemberTotals } from '../../src/cluster/fleet.js';
import { LiveFeed } from '../../src/telemetry/live-feed.js';
import {
  addPacked,
  bucketQuantileMs,
  FleetRates,
  liveFigures,
  LiveStats,
  packReading,
  readingOf,
  type LiveSnapshot,
} from '../../src/telemetry/live-stats.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { uiFile } from '../../src/api/http/ui/routes.js';

/** A worker's metrics: chat@1 with two calls holding admission slots and five waiting. */
function worker(): Metrics {
  const m = new Metrics({ tenantLabel: true });
  m.watch(() => [{ model: 'chat', version: '1', breaker: null, active: 2, queued: 5, running: null, waiting: null }]);
  return m;
}

/** `n` calls to chat@1 answered with `status` in 3 ms, 4 prompt and 6 completion tokens each, split over two tenants. */
function record(m: Metrics, n: number, status = 200): void {
  for (let i = 0; i < n; i++) m.call('chat', '1', i % 2 === 0 ? 'a' : 'b', status, status === 200 ? '' : 'upstream_error', 0.003, 4, 6, -1);
}

const CHAT = [{ model: 'chat', version: '1' }];

describe('live figures', () => {
  it('reads the series it shows from a registry, summed over tenants, statuses and codes', async () => {
    const m = worker();
    record(m, 10);
    record(m, 2, 502);
    const d = (await readingOf(m.registry)).get('chat\u00001');
    assert.ok(d !== undefined);
    assert.equal(d.calls, 12);
    assert.equal(d.errors, 2);
    assert.equal(d.tokens, 120);
    assert.equal(d.active, 2);
    assert.equal(d.queued, 5);
    assert.equal(d.running, null, 'no backend occupancy: no series');
    assert.equal(d.buckets[d.buckets.length - 1], 12);
    assert.equal(d.buckets[1], 0, 'none in (1 ms, 2.5 ms]');
    assert.equal(d.buckets[2], 12, 'all by 5 ms');
  });

  it("sums workers' readings as they travel between processes", async () => {
    const a = worker();
    const b = worker();
    record(a, 3);
    record(b, 4, 503);
    const sum = addPacked(addPacked(new Map(), packReading(await readingOf(a.registry))), packReading(await readingOf(b.registry)));
    const d = sum.get('chat\u00001');
    assert.equal(d?.calls, 7);
    assert.equal(d?.errors, 4);
    assert.equal(d?.active, 4);
    assert.equal(d?.running, null);
    assert.equal(d?.buckets[d.buckets.length - 1], 7);
  });

  it('interpolates quantiles within a bucket, as histogram_quantile does; null when empty', () => {
    // 10 calls in (2.5 ms, 5 ms]: the median is halfway through it.
    const cumulative = [0, 0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10];
    assert.equal(bucketQuantileMs(cumulative, 0.5), 3.75);
    assert.equal(
      bucketQuantileMs(
        cumulative.map(() => 0),
        0.5,
      ),
      null,
    );
    // Everything beyond the last bound: the last bound is all that can be said.
    const inf = [...new Array<number>(15).fill(0), 4];
    assert.equal(bucketQuantileMs(inf, 0.99), 60_000);
  });

  it('gives per-second rates, error share and latency between two readings, per deployment and in total', async () => {
    const m = worker();
    record(m, 10);
    record(m, 1, 502);
    const before = await readingOf(m.registry);
    record(m, 20);
    record(m, 2, 502);
    const { total, models } = liveFigures(await readingOf(m.registry), before, 2, CHAT);
    assert.equal(total.rps, 11);
    assert.equal(total.error_rate, 0.0909);
    assert.equal(total.tokens_per_s, 110);
    assert.equal(total.in_flight, 2);
    assert.equal(total.queued, 5);
    assert.ok(total.p50_ms !== null && total.p50_ms > 2.5 && total.p50_ms <= 5, String(total.p50_ms));
    assert.deepEqual(
      models.map((r) => [r.model, r.version, r.rps]),
      [['chat', '1', 11]],
    );
  });

  it('lists every deployment in force, and never goes below zero when a worker restarted', async () => {
    const old = worker();
    record(old, 50);
    const restarted = worker();
    record(restarted, 5);
    const { total, models } = liveFigures(await readingOf(restarted.registry), await readingOf(old.registry), 1, [
      ...CHAT,
      { model: 'idle', version: '2' },
    ]);
    assert.equal(total.rps, 0);
    assert.equal(total.p50_ms, null);
    assert.deepEqual(
      models.map((r) => [r.model, r.rps, r.p99_ms]),
      [
        ['chat', 0, null],
        ['idle', 0, null],
      ],
    );
  });

  it('counts calls that reached no model in the total only', async () => {
    const m = worker();
    const before = await readingOf(m.registry);
    for (let i = 0; i < 5; i++) m.call('', '', '', 404, 'model_not_found', 0.0001, 0, 0, -1);
    const { total, models } = liveFigures(await readingOf(m.registry), before, 1, CHAT);
    assert.equal(total.rps, 5);
    assert.equal(total.error_rate, 0, '4xx are not errors');
    assert.deepEqual(
      models.map((r) => r.model),
      ['chat'],
    );
  });

  it('takes a baseline first, then a snapshot per sample; without metrics, zeros flagged metrics: false', async () => {
    let now = 1_000;
    const m = worker();
    const stats = new LiveStats({ read: () => readingOf(m.registry), deployments: () => CHAT, members: null, now: () => now });
    assert.equal(await stats.sample(), null);
    record(m, 4);
    now += 1000;
    const s = (await stats.sample()) as LiveSnapshot;
    assert.equal(s.window_s, 1);
    assert.equal(s.total.rps, 4);
    assert.equal(s.fleet, null);
    stats.reset();
    assert.equal(await stats.sample(), null, 'after a reset, a new baseline');

    const off = new LiveStats({ read: null, deployments: () => CHAT, members: null, now: () => now });
    await off.sample();
    now += 1000;
    const z = (await off.sample()) as LiveSnapshot;
    assert.equal(z.metrics, false);
    assert.equal(z.total.rps, 0);
    assert.equal(z.models[0]?.model, 'chat');
  });
});

describe('fleet rates', () => {
  const member = (id: string, instance: string, renewed: number, calls: number, faults = 0): MemberTotals => {
    const figures = noFigures();
    figures.calls = calls;
    figures.faults = faults;
    figures.latency[bucketOf(4)] = calls;
    return { instance, member: id, renewed_at: renewed, figures, in_flight: 1, queued: 0 };
  };

  it("takes each member's rate over its own renewal interval and sums the members", () => {
    const rates = new FleetRates();
    assert.equal(rates.next([member('a', 'r1', 0, 0), member('b', 'r2', 500, 0)]).total.rps, 0, 'a first record is a baseline');
    const r = rates.next([member('a', 'r1', 1000, 10, 1), member('b', 'r2', 1500, 20)]);
    assert.equal(r.replicas, 2);
    assert.equal(r.total.rps, 30);
    assert.equal(r.total.error_rate, 0.0333);
    assert.equal(r.total.in_flight, 2);
    assert.ok(r.total.p50_ms !== null && r.total.p50_ms >= 4 && r.total.p50_ms < 4.5);
    assert.equal(r.total.tokens_per_s, null);
    // No renewal since: the same rates, not zero.
    assert.equal(rates.next([member('a', 'r1', 1000, 10, 1), member('b', 'r2', 1500, 20)]).total.rps, 30);
  });

  it('forgets members that left and starts again for one that restarted', () => {
    const rates = new FleetRates();
    rates.next([member('a', 'r1', 0, 100), member('b', 'r1', 0, 0)]);
    rates.next([member('a', 'r1', 1000, 150), member('b', 'r1', 1000, 10)]);
    const r = rates.next([member('a', 'r1', 2000, 3)]);
    assert.equal(r.replicas, 1);
    assert.equal(r.total.rps, 0);
  });
});

describe('live feed', () => {
  const log = pino({ level: 'silent' });

  it('samples once for every subscriber, starts with the first and stops with the last', async () => {
    let samples = 0;
    let resets = 0;
    const sampler = {
      async sample(): Promise<LiveSnapshot | null> {
        samples++;
        return samples === 1 ? null : ({ at: samples } as unknown as LiveSnapshot);
      },
      reset: () => void resets++,
    };
    const feed = new LiveFeed({ sampler, log, intervalMs: 20, pingEvery: 2 });
    const a: string[] = [];
    const b: string[] = [];
    const offA = feed.subscribe((c) => a.push(c));
    const offB = feed.subscribe((c) => b.push(c));
    assert.equal(feed.running, true);
    await new Promise((r) => setTimeout(r, 130));
    const events = a.filter((c) => c.startsWith('event: stats'));
    assert.ok(events.length >= 3, String(events.length));
    assert.ok(a.includes(': ping\n\n'));
    assert.deepEqual(a, b, 'every subscriber gets the same chunks');
    assert.ok(samples <= events.length + 2, 'one sample per tick, not per subscriber');
    offA();
    offA();
    assert.equal(feed.running, true);
    offB();
    assert.equal(feed.running, false);
    assert.equal(feed.size, 0);
    const after = samples;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(samples, after, 'no sampling with nobody listening');
    feed.subscribe(() => undefined);
    assert.equal(resets, 2, 'a new watcher after none gets a new baseline');
    feed.close();
    assert.equal(feed.running, false);
  });

  it('skips ticks while a sample is in flight', async () => {
    let started = 0;
    let release: (() => void) | null = null;
    const sampler = {
      sample: () => {
        started++;
        return new Promise<LiveSnapshot | null>((resolve) => (release = () => resolve(null)));
      },
      reset: () => undefined,
    };
    const feed = new LiveFeed({ sampler, log, intervalMs: 10 });
    feed.subscribe(() => undefined);
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(started, 1);
    (release as unknown as () => void)();
    await new Promise((r) => setTimeout(r, 30));
    assert.ok(started >= 2);
    feed.close();
  });
});

describe('ui paths', () => {
  it('maps /ui paths to files in the folder and refuses anything that could leave it', () => {
    assert.equal(uiFile('/srv/ui', '/ui/'), '/srv/ui/index.html');
    assert.equal(uiFile('/srv/ui', '/ui/js/app.js?v=2'), '/srv/ui/js/app.js');
    assert.equal(uiFile('/srv/ui', '/ui/a%20b.css'), '/srv/ui/a b.css');
    for (const bad of [
      '/ui/../x.js',
      '/ui/%2e%2e/x.js',
      '/ui/a/..%2f..%2fx.js',
      '/ui/..%5cx.js',
      '/ui//x.js',
      '/ui/js/',
      '/ui/x%00.js',
      '/ui/%E0%A4%A',
      '/ui/package',
      '/ui/x.ts',
    ]) {
      assert.equal(uiFile('/srv/ui', bad), null, bad);
    }
  });
});
