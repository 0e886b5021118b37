/**
 * Overview: the live totals (updated each second from the stream), the last five minutes as
 * charts (requests per second and p99 latency, total and per model version), each version's
 * figures, and the server's facts and warnings from /admin/ui/info.
 */
import { TimeChart } from '../chart.js';
import { age, fill, h, int, keyed, ms, num, percent, rowCells, scroller, setText, table, when } from '../dom.js';
import { seriesKey } from '../live.js';

const TILES = [
  ['rps', 'Requests/s', (t) => num(t.rps, 1)],
  ['p50_ms', 'p50 latency', (t) => ms(t.p50_ms)],
  ['p99_ms', 'p99 latency', (t) => ms(t.p99_ms)],
  ['error_rate', 'Error rate', (t) => percent(t.error_rate)],
  ['tokens_per_s', 'Tokens/s', (t) => num(t.tokens_per_s, 1)],
  ['in_flight', 'In flight', (t) => int(t.in_flight)],
  ['queued', 'Queued', (t) => int(t.queued)],
];

/** The seven figures as tiles; `attribute` marks each value (`data-stat` for this replica, `data-fleet-stat` for the fleet). */
function tiles(label, attribute) {
  const cells = new Map();
  const list = h(
    'dl',
    { class: 'tiles', 'aria-label': label },
    TILES.map(([key, name]) => {
      const dd = h('dd', { [attribute]: key, text: '–' });
      cells.set(key, dd);
      return h('div', { class: 'tile' }, h('dt', { text: name }), dd);
    }),
  );
  return {
    el: list,
    update(total) {
      for (const [key, , format] of TILES) setText(cells.get(key), total === null ? '–' : format(total));
    },
  };
}

function infoList(info) {
  if (info === null) return h('p', { class: 'muted', text: 'This server does not describe itself (no /admin/ui/info).' });
  const rows = [
    ['Version', info.version],
    ['Started', `${when(info.started_at)} (${age(Date.now() - Date.parse(info.started_at))} ago)`],
    ['Start-up time', ms(info.startup_ms)],
    ['Workers', String(info.workers)],
    ['Authentication', info.auth_mode],
    ['Database', info.storage?.database ?? '–'],
    ['Limits state', info.storage?.state ?? '–'],
    ['Fleet store', info.storage?.fleet ?? '–'],
  ];
  return h(
    'dl',
    { class: 'facts' },
    rows.map(([k, v]) => h('div', {}, h('dt', { text: k }), h('dd', { text: v ?? '–' }))),
  );
}

function warnings(info) {
  const list = info?.warnings ?? [];
  if (list.length === 0) return null;
  return h(
    'section',
    { class: 'warnings', 'aria-labelledby': 'warnings-title' },
    h('h2', { id: 'warnings-title', text: 'Warnings' }),
    h(
      'ul',
      {},
      list.map((w) => h('li', { text: w })),
    ),
  );
}

/** Series for a chart: this replica's total first, the fleet's when there is one, then each model version seen in the history. */
function chartSeries(history, pick) {
  const keys = [];
  const seen = new Set();
  for (const s of history) {
    for (const m of s.models) {
      const k = seriesKey(m);
      if (seen.has(k)) continue;
      seen.add(k);
      keys.push(k);
    }
  }
  keys.sort();
  const xs = history.map((s) => s.at / 1000);
  const series = [{ label: 'total', values: history.map((s) => pick(s.total)) }];
  // With a shared fleet store, every replica's total too.
  if (history.some((s) => s.fleet !== null && s.fleet !== undefined)) {
    series.push({ label: 'fleet', values: history.map((s) => (s.fleet ? pick(s.fleet.total) : null)) });
  }
  for (const k of keys) {
    series.push({
      label: k,
      values: history.map((s) => {
        const row = s.models.find((m) => seriesKey(m) === k);
        return row === undefined ? null : pick(row);
      }),
    });
  }
  return { xs, series };
}

export const overview = {
  title: 'Overview',
  mount(root, ctx) {
    const total = tiles('Totals over the last second', 'data-stat');
    const fleetTiles = tiles('Every replica over the last second', 'data-fleet-stat');
    const fleetTitle = h('h2', { id: 'fleet-title', text: 'Fleet' });
    const fleetSection = h('section', { 'aria-labelledby': 'fleet-title', hidden: true }, fleetTitle, fleetTiles.el);
    const rpsHost = h('div', { class: 'chart' });
    const p99Host = h('div', { class: 'chart' });
    const rpsFigure = h(
      'figure',
      { 'data-chart': 'rps', 'aria-label': 'Requests per second, last 5 minutes' },
      h('figcaption', { text: 'Requests per second' }),
      rpsHost,
    );
    const p99Figure = h(
      'figure',
      { 'data-chart': 'p99', 'aria-label': 'p99 latency, last 5 minutes' },
      h('figcaption', { text: 'p99 latency (ms)' }),
      p99Host,
    );
    const rpsChart = new TimeChart(rpsHost, (v) => num(v, 1));
    const p99Chart = new TimeChart(p99Host, (v) => (v === null ? '–' : num(v, v < 10 ? 1 : 0)));
    const headings = ['Model', 'Version', 'Requests/s', 'p50', 'p99', 'Error rate', 'Tokens/s', 'In flight', 'Queued'];
    const perModel = table('Each model version over the last second', headings, { stack: true });
    const empty = h('p', { class: 'muted', text: 'Waiting for the first figures…' });
    const infoBox = h('div', {}, infoList(ctx.info));

    fill(
      root,
      h('h1', { tabindex: '-1', text: 'Overview' }),
      warnings(ctx.info),
      ctx.info?.metrics === false
        ? h('p', {
            class: 'note',
            text: 'Metrics are off (metrics.enabled: false): the live figures stay at zero.',
          })
        : null,
      h('section', { 'aria-labelledby': 'now-title' }, h('h2', { id: 'now-title', text: 'Now' }), total.el, empty),
      fleetSection,
      h(
        'section',
        { class: 'charts', 'aria-labelledby': 'charts-title' },
        h('h2', { id: 'charts-title', text: 'Last 5 minutes' }),
        h('div', { class: 'chart-grid' }, rpsFigure, p99Figure),
      ),
      h(
        'section',
        { 'aria-labelledby': 'models-title' },
        h('h2', { id: 'models-title', text: 'Models' }),
        scroller('Model figures', perModel.table),
      ),
      h('section', { 'aria-labelledby': 'server-title' }, h('h2', { id: 'server-title', text: 'Server' }), infoBox),
    );

    const render = () => {
      const latest = ctx.live.latest;
      empty.hidden = latest !== null;
      total.update(latest?.total ?? null);
      if (latest === null) return;
      fleetSection.hidden = latest.fleet === null || latest.fleet === undefined;
      if (!fleetSection.hidden) {
        setText(fleetTitle, `Fleet: ${latest.fleet.replicas} replicas`);
        fleetTiles.update(latest.fleet.total);
      }
      const rows = [...latest.models].sort((a, b) => seriesKey(a).localeCompare(seriesKey(b)));
      keyed(
        perModel.body,
        rows,
        seriesKey,
        () => h('tr', {}, rowCells(headings)),
        (tr, m) => {
          const values = [
            m.model,
            m.version,
            num(m.rps, 1),
            ms(m.p50_ms),
            ms(m.p99_ms),
            percent(m.error_rate),
            num(m.tokens_per_s, 1),
            int(m.in_flight),
            int(m.queued),
          ];
          values.forEach((v, i) => setText(tr.children[i], v));
        },
      );
      const history = ctx.live.history;
      const rps = chartSeries(history, (r) => r.rps);
      rpsChart.update(rps.xs, rps.series);
      rpsFigure.dataset.last = String(latest.total.rps);
      rpsFigure.dataset.points = String(history.length);
      const p99 = chartSeries(history, (r) => r.p99_ms);
      p99Chart.update(p99.xs, p99.series);
    };
    render();
    const unsubscribe = ctx.live.subscribe((sample) => {
      if (sample !== null) render();
    });
    return () => {
      unsubscribe();
      rpsChart.destroy();
      p99Chart.destroy();
    };
  },
};
