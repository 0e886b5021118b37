/**
 * Dynamic batching: concurrent requests are merged into one model call of up to `maxBatchSize`
 * rows. A request waits at most `maxQueueDelayMs` for others to join; while a call runs, new
 * requests queue and go together as soon as it returns, so batches grow with load by themselves.
 *
 * The batcher owns its queue and is driven only through `submit`; `execute` runs one batch and
 * returns one result per item, in order.
 */

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

  #arm(): void {
    if (this.#timer !== null) return;
    const delay = this.#options.maxQueueDelayMs;
    this.#timer = delay > 0 ? setTimeout(this.#onTimer, delay) : setImmediate(this.#onTimer);
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
