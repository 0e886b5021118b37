/**
 * One timer for every open dashboard stream: while at least one subscriber listens, a snapshot is
 * taken once a second and the same encoded event goes to all of them, so ten open dashboards cost
 * what one does. The timer starts with the first subscriber and stops with the last.
 */
import type { Logger } from 'pino';
import type { LiveSnapshot } from './live-stats.js';

/** What the feed samples: the snapshot since the last sample (null for a baseline) and a reset between watchers. */
export interface LiveSampler {
  sample(): Promise<LiveSnapshot | null>;
  reset(): void;
}

/** Settings of a LiveFeed. */
export interface LiveFeedOptions {
  readonly sampler: LiveSampler;
  readonly log: Logger;
  /** Milliseconds between samples; 1000. */
  readonly intervalMs?: number;
  /** A `: ping` comment every this many intervals; 15. */
  readonly pingEvery?: number;
  /** A sample that has not answered in this long (a worker's scrape the primary never answered) is given up; 10 000 ms. */
  readonly sampleTimeoutMs?: number;
}

/** A subscriber: writes one chunk of the event stream. */
export type LiveListener = (chunk: string) => void;

/** The `stats` events of /admin/ui/stream, for every subscriber together. */
export class LiveFeed {
  readonly #sampler: LiveSampler;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #pingEvery: number;
  readonly #sampleTimeoutMs: number;
  readonly #listeners = new Set<LiveListener>();
  #timer: NodeJS.Timeout | null = null;
  #ticks = 0;
  /** The sample in flight: its number and when it began; 0 when none. */
  #inFlight = 0;
  #inFlightSince = 0;
  #generation = 0;

  constructor(options: LiveFeedOptions) {
    this.#sampler = options.sampler;
    this.#log = options.log;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#pingEvery = options.pingEvery ?? 15;
    this.#sampleTimeoutMs = options.sampleTimeoutMs ?? 10_000;
  }

  /** Subscribers now. */
  get size(): number {
    return this.#listeners.size;
  }

  /** Whether the timer runs (someone listens). */
  get running(): boolean {
    return this.#timer !== null;
  }

  /** Adds a subscriber; returns what removes it (idempotent). The first one starts the timer. */
  subscribe(listener: LiveListener): () => void {
    this.#listeners.add(listener);
    if (this.#timer === null) this.#start();
    return () => {
      if (!this.#listeners.delete(listener) || this.#listeners.size > 0) return;
      this.#stop();
    };
  }

  /** Removes every subscriber and stops (server shutdown); `end` is called for each, to end its response. */
  close(end: (listener: LiveListener) => void = () => undefined): void {
    const all = [...this.#listeners];
    this.#listeners.clear();
    this.#stop();
    for (const l of all) end(l);
  }

  #start(): void {
    this.#ticks = 0;
    this.#sampler.reset();
    this.#timer = setInterval(() => this.#tick(), this.#intervalMs);
    this.#timer.unref();
    // The baseline, at once: the first event, a second from now, has a whole second to compare with.
    this.#sample();
  }

  #stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    // A sample still in flight is ignored when it lands.
    this.#generation++;
    this.#inFlight = 0;
  }

  #tick(): void {
    if (++this.#ticks % this.#pingEvery === 0) this.#broadcast(': ping\n\n');
    this.#sample();
  }

  /** One sample at a time: a tick that finds one in flight (a slow scrape) skips, unless it has hung. */
  #sample(): void {
    const now = Date.now();
    if (this.#inFlight !== 0 && now - this.#inFlightSince < this.#sampleTimeoutMs) return;
    const id = ++this.#generation;
    this.#inFlight = id;
    this.#inFlightSince = now;
    this.#sampler.sample().then(
      (snapshot) => {
        if (this.#inFlight !== id) return;
        this.#inFlight = 0;
        if (snapshot !== null) this.#broadcast(`event: stats\ndata: ${JSON.stringify(snapshot)}\n\n`);
      },
      (err: unknown) => {
        if (this.#inFlight !== id) return;
        this.#inFlight = 0;
        this.#log.warn({ err }, 'dashboard stream: reading the metrics failed; trying again next second');
      },
    );
  }

  #broadcast(chunk: string): void {
    for (const l of this.#listeners) l(chunk);
  }
}
