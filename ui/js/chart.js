/**
 * Charts with uPlot (loaded as /ui/vendor/uplot.js, the global `uPlot`): a time-series chart for
 * the live figures and a bar chart for usage. Colours come from the stylesheet's custom
 * properties, so a chart follows the light or dark scheme; it is rebuilt when the scheme changes
 * and resized with its container.
 */
const HEIGHT = 220;
/** Seconds a time chart spans at most, and at least. */
const WINDOW_S = 300;
const MIN_WINDOW_S = 60;
const scheme = matchMedia('(prefers-color-scheme: dark)');

function theme() {
  const css = getComputedStyle(document.documentElement);
  const v = (name) => css.getPropertyValue(name).trim();
  return {
    axis: v('--muted'),
    grid: v('--grid'),
    palette: [1, 2, 3, 4, 5, 6, 7, 8].map((i) => v(`--series-${i}`)),
  };
}

/** The x range of a time chart over data from `min` to `max` (epoch seconds; null: none yet). */
function span(min, max) {
  const hi = max ?? Date.now() / 1000;
  const width = Math.min(WINDOW_S, Math.max(MIN_WINDOW_S, hi - (min ?? hi)));
  return [hi - width, hi];
}

/** A time of day, hh:mm:ss, from epoch seconds. */
function clock(t) {
  return new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

/** The base of both charts: one uPlot in `host`, rebuilt by `build()` when needed. */
class Chart {
  #host;
  #plot = null;
  #resize;
  #rebuild = () => this.rebuild();

  constructor(host) {
    this.#host = host;
    this.#resize = new ResizeObserver(() => {
      if (this.#plot !== null) this.#plot.setSize({ width: this.width(), height: HEIGHT });
    });
    this.#resize.observe(host);
    scheme.addEventListener('change', this.#rebuild);
  }

  width() {
    return Math.max(200, Math.floor(this.#host.clientWidth));
  }

  get plot() {
    return this.#plot;
  }

  /** Makes a new uPlot from `opts` and `data`, replacing the old one. */
  make(opts, data) {
    this.#plot?.destroy();
    this.#plot = new globalThis.uPlot({ ...opts, width: this.width(), height: HEIGHT }, data, this.#host);
  }

  rebuild() {}

  destroy() {
    this.#resize.disconnect();
    scheme.removeEventListener('change', this.#rebuild);
    this.#plot?.destroy();
    this.#plot = null;
  }
}

/** Lines over time: `update(xs, series)` with xs in epoch seconds and series `[{label, values}]` (null: a gap). */
export class TimeChart extends Chart {
  #format;
  #labels = '';
  #data = null;
  #series = [];

  constructor(host, format) {
    super(host);
    this.#format = format;
  }

  update(xs, series) {
    this.#data = [xs, ...series.map((s) => s.values)];
    this.#series = series;
    const labels = series.map((s) => s.label).join('\n');
    if (labels !== this.#labels || this.plot === null) {
      this.#labels = labels;
      this.rebuild();
    } else this.plot.setData(this.#data);
  }

  rebuild() {
    if (this.#data === null) return;
    const t = theme();
    const format = this.#format;
    const axis = { stroke: t.axis, grid: { stroke: t.grid, width: 1 }, ticks: { stroke: t.grid, width: 1 } };
    this.make(
      {
        // The x axis spans what there is, at least a minute (a few seconds are not stretched across) and at most five.
        scales: {
          x: { time: true, range: (_u, min, max) => span(min, max) },
          y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        },
        series: [
          { label: 'time', value: (_u, t) => (t === null ? '–' : clock(t)) },
          ...this.#series.map((s, i) => ({
            label: s.label,
            stroke: t.palette[i % t.palette.length],
            width: i === 0 ? 2.5 : 1.5,
            spanGaps: false,
            points: { show: false },
            value: (_u, v) => format(v),
          })),
        ],
        axes: [
          { ...axis, space: 70, values: (_u, splits) => splits.map(clock) },
          { ...axis, size: 64, values: (_u, splits) => splits.map((v) => format(v)) },
        ],
        legend: { live: true },
      },
      this.#data,
    );
  }
}

/** Bars by category (`labels`): `bars` on the left axis, `line` (points joined) on the right. */
export class BarChart extends Chart {
  #input = null;

  update(labels, bars, line) {
    this.#input = { labels, bars, line };
    this.rebuild();
  }

  rebuild() {
    if (this.#input === null) return;
    const { labels, bars, line } = this.#input;
    const t = theme();
    const axis = { stroke: t.axis, grid: { stroke: t.grid, width: 1 }, ticks: { stroke: t.grid, width: 1 } };
    const xs = labels.map((_l, i) => i);
    const count = (v) => (v === null || v === undefined ? '–' : Math.round(v).toLocaleString('en-US'));
    this.make(
      {
        scales: { x: { time: false, range: () => [-0.5, Math.max(0.5, labels.length - 0.5)] }, y: {}, calls: {} },
        series: [
          { label: 'group', value: (_u, i) => labels[i] ?? '' },
          {
            label: bars.label,
            fill: t.palette[0],
            stroke: t.palette[0],
            paths: globalThis.uPlot.paths.bars({ size: [0.6, 80] }),
            points: { show: false },
            value: (_u, v) => count(v),
          },
          {
            label: line.label,
            scale: 'calls',
            stroke: t.palette[1],
            width: 2,
            points: { show: true, size: 6 },
            value: (_u, v) => count(v),
          },
        ],
        axes: [
          { ...axis, splits: () => xs, values: (_u, splits) => splits.map((i) => labels[i] ?? '') },
          { ...axis, size: 70, values: (_u, s) => s.map(count) },
          { ...axis, scale: 'calls', side: 1, size: 60, grid: { show: false }, values: (_u, s) => s.map(count) },
        ],
      },
      [xs, bars.values, line.values],
    );
  }
}
