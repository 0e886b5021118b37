/**
 * Counters and histograms for the request path, cheaper than prom-client's: a series is an object
 * the caller keeps (found once per label combination), and recording is plain arithmetic. prom-client's
 * children hash their label values on every observation, which cost 15 % of the throughput of a
 * mock model's calls. These families register in a prom-client Registry (they implement what it
 * reads: name, help, type, aggregator and `get()`), so exposition and cluster aggregation stay its own.
 */

/** Buckets from 1 ms to 60 s, fit for a tensor call and a long generation alike (metrics.ts exports it too). */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

type Labels = Readonly<Record<string, string>>;

/** What prom-client's Registry reads from a metric to write it out and to aggregate it over workers. */
interface Exported {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  readonly values: ReadonlyArray<{ metricName?: string; labels: Readonly<Record<string, string | number>>; value: number }>;
}

/** One labelled series of a counter. */
export class CounterSeries {
  value = 0;
  constructor(readonly labels: Labels) {}
}

/** One labelled series of a histogram: counts per bucket (not cumulative), sum and count. */
export class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: readonly number[];

  constructor(
    readonly labels: Labels,
    bounds: readonly number[],
  ) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    if (i < bounds.length) this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += value;
    this.count++;
  }
}

/** A metric family: its series, made on demand by the callers that keep them, and written out by `get()`. */
abstract class Family<S> {
  abstract readonly type: Exported['type'];
  readonly aggregator = 'sum';
  protected readonly all: S[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  /** A new series with these labels: the caller keeps it (ask once per label combination). */
  series(labels: Labels): S {
    const s = this.make(labels);
    this.all.push(s);
    return s;
  }

  async get(): Promise<Exported> {
    return { name: this.name, help: this.help, type: this.type, aggregator: 'sum', values: this.values() };
  }

  reset(): void {}

  protected abstract make(labels: Labels): S;
  protected abstract values(): Exported['values'];
}

/** A counter family, registrable in a prom-client Registry; its holders add to each series' `value`. */
export class CounterFamily extends Family<CounterSeries> {
  readonly type = 'counter';

  protected make(labels: Labels): CounterSeries {
    return new CounterSeries(labels);
  }

  protected values(): Exported['values'] {
    return this.all.map((s) => ({ labels: s.labels, value: s.value }));
  }
}

/** A histogram family with the bucket upper bounds `bounds`, ascending (`+Inf` is added on export). */
export class HistogramFamily extends Family<HistogramSeries> {
  readonly type = 'histogram';

  constructor(
    name: string,
    help: string,
    readonly bounds: readonly number[],
  ) {
    super(name, help);
  }

  protected make(labels: Labels): HistogramSeries {
    return new HistogramSeries(labels, this.bounds);
  }

  protected values(): Exported['values'] {
    const values: Array<Exported['values'][number]> = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.all) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += s.counts[i] as number;
        values.push({ metricName: bucket, labels: { le, ...s.labels }, value: acc });
      });
      values.push({ metricName: bucket, labels: { le: '+Inf', ...s.labels }, value: s.count });
      values.push({ metricName: `${this.name}_sum`, labels: s.labels, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: s.labels, value: s.count });
    }
    return values;
  }
}
