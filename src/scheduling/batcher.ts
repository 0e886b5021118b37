/**
 * Dynamic batching: concurrent requests are merged into one model call of up to `maxBatchSize`
 * rows. While a call runs, new requests queue and go together as soon as it returns, so batches
 * grow with load by themselves. A request that finds the model idle waits for company only after
 * a quiet spell: if a batch returned within the last {@link QUIET_MS} ms (or `maxQueueDelayMs`,
 * if longer) the model is under load, the next batch forms during the call anyway, and the
 * request runs at the end of the current event-loop turn with whatever else arrived in it; after
 * a quieter spell (a lone request, or the first of a burst) it waits up to `maxQueueDelayMs` for
 * others. A queue of `maxBatchSize` rows runs at once. No request waits longer than
 * `maxQueueDelayMs` plus the call in front of it.
 *
 * The batcher owns its queue and is driven only through `submit`; `execute` runs one batch and
 * returns one result per item, in order.
 */

/** A batcher whose last batch returned within this many ms is under load (see the module comment). */
export const QUIET_MS = 100;

/** `maxBatchSize` is in rows; `maxQueueDelayMs` in ms (0: wait only for the current event-loop turn). */
export interface BatcherOptions<Item, Result> {
  readonly maxBatchSize: number;
  readonly maxQueueDelayMs: number;
  /** Rows an item contributes to a batch (its first dimension). */
  readonly rows: (item: Item) => number;
  /** Runs one batch; must return one result per item, in order. */
  readonly execute: (items: Item[]) => Promise<Result[]>;
  /** Reports each executed batch's size in rows (for metrics and tests). */
  readonly onBatch?: (rows: number, items: number) => void;
}

interface Pending<Item, Result> {
  readonly item: Item;
  readonly rows: number;
  readonly resolve: (result: Result) => void;
  readonly reject: (error: unknown) => void;
  readonly traced: Traced | undefined;
}

/** Told, before its item's result, the batch it ran in: rows, items, and when it began executing (`performance.now()`). */
export type Traced = (rows: number, items: number, started: number) => void;

/** Merges concurrent items into batches; each `submit` resolves with its item's result, or rejects with its batch's error. */
export class Batcher<Item, Result> {
  readonly #options: BatcherOptions<Item, Result>;
  #queue: Array<Pending<Item, Result>> = [];
  #queuedRows = 0;
  #running = false;
  #timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  /** When the last batch returned (`performance.now()`); -Infinity before the first. */
  #lastEnded = Number.NEGATIVE_INFINITY;

  constructor(options: BatcherOptions<Item, Result>) {
    this.#options = options;
  }

  /** Items waiting for a batch. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Queues `item` for the next batch; `traced` learns which batch it ran in. */
  submit(item: Item, traced?: Traced): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      const rows = this.#options.rows(item);
      this.#queue.push({ item, rows, resolve, reject, traced });
      this.#queuedRows += rows;
      if (this.#running) return; // the running batch flushes the queue when it returns
      if (this.#queuedRows >= this.#options.maxBatchSize) this.#flush();
      else this.#arm();
    });
  }

  /**
   * Under load (a batch returned within the last QUIET_MS) the queue runs at the end of this
   * event-loop turn instead of after the delay: the requests of the last batch come back while the
   * model is idle, and holding them for the delay only added latency, while those that arrive
   * during the call are batched anyway. Measured (wrk, tiny-mlp over KServe HTTP, 64 connections,
   * 2 workers, max_batch_size 64, max_queue_delay_ms 1, 5 interleaved 4 s rounds on the shared
   * 2-core machine): median 20.2k req/s before, 23.2k with this rule, 26.4k with no wait at all,
   * mock ceiling 31.1k. A window of only `maxQueueDelayMs` (1 ms) left the mean batch at the old
   * batcher's (about 24 rows, against about 13 with no wait): the next requests often came back
   * more than 1 ms after a batch returned, and still waited.
   */
  #arm(): void {
    if (this.#timer !== null) return;
    const delay = this.#options.maxQueueDelayMs;
    const busy = performance.now() - this.#lastEnded < Math.max(delay, QUIET_MS);
    this.#timer = delay > 0 && !busy ? setTimeout(this.#onTimer, delay) : setImmediate(this.#onTimer);
  }

  readonly #onTimer = (): void => {
    this.#timer = null;
    if (!this.#running) this.#flush();
  };

  #flush(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer as NodeJS.Timeout);
      clearImmediate(this.#timer as NodeJS.Immediate);
      this.#timer = null;
    }
    if (this.#queue.length === 0) return;
    const batch = this.#take();
    this.#running = true;
    // #run settles every item itself and never rejects.
    void this.#run(batch).finally(() => {
      this.#running = false;
      this.#lastEnded = performance.now();
      if (this.#queue.length > 0) this.#flush();
    });
  }

  /** Takes items from the front up to maxBatchSize rows (always at least one item). */
  #take(): Array<Pending<Item, Result>> {
    const max = this.#options.maxBatchSize;
    if (this.#queuedRows <= max) {
      const all = this.#queue;
      this.#queue = [];
      this.#queuedRows = 0;
      return all;
    }
    let rows = 0;
    let n = 0;
    while (n < this.#queue.length) {
      const next = (this.#queue[n] as Pending<Item, Result>).rows;
      if (n > 0 && rows + next > max) break;
      rows += next;
      n++;
    }
    const batch = this.#queue.slice(0, n);
    this.#queue = this.#queue.slice(n);
    this.#queuedRows -= rows;
    return batch;
  }

  async #run(batch: Array<Pending<Item, Result>>): Promise<void> {
    try {
      const started = performance.now();
      const results = await this.#options.execute(batch.map((p) => p.item));
      const rows = batch.reduce((n, p) => n + p.rows, 0);
      this.#options.onBatch?.(rows, batch.length);
      for (let i = 0; i < batch.length; i++) {
        const p = batch[i] as Pending<Item, Result>;
        p.traced?.(rows, batch.length, started);
        p.resolve(results[i] as Result);
      }
    } catch (error) {
      for (const p of batch) p.reject(error);
    }
  }
}
