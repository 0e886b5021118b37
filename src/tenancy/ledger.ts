/**
 * The usage ledger's writer: one record per finished model call, buffered and written in one
 * transaction every `usage.flush_interval_ms`, and on shutdown. A crash loses at most one interval;
 * a failed write keeps its records for the next attempt (up to a bound, beyond which the oldest go, logged).
 */
import type { Logger } from 'pino';
import type { UsageRecord, UsageStore } from '../store/usage.js';

/** Records held while the database is unreachable, beyond which the oldest are dropped. */
const MAX_BUFFERED = 200_000;

export class Ledger {
  readonly #store: UsageStore;
  readonly #log: Logger;
  #buffer: UsageRecord[] = [];
  #timer: NodeJS.Timeout;
  #flushing: Promise<void> = Promise.resolve();

  constructor(store: UsageStore, intervalMs: number, log: Logger) {
    this.#store = store;
    this.#log = log;
    this.#timer = setInterval(() => void this.flush(), intervalMs);
    this.#timer.unref();
  }

  record(record: UsageRecord): void {
    this.#buffer.push(record);
  }

  /** Writes what is buffered; flushes never overlap, so records are written in order. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#write());
    return this.#flushing;
  }

  /** Stops the timer and writes the rest: called on graceful shutdown, after the last request ended. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }

  async #write(): Promise<void> {
    const batch = this.#buffer;
    if (batch.length === 0) return;
    this.#buffer = [];
    try {
      await this.#store.insert(batch);
    } catch (err) {
      this.#buffer = batch.concat(this.#buffer);
      const over = this.#buffer.length - MAX_BUFFERED;
      if (over > 0) this.#buffer.splice(0, over);
      this.#log.error({ err, buffered: this.#buffer.length, dropped: Math.max(0, over) }, 'writing usage records failed; will retry');
    }
  }
}
