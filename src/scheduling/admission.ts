/**
 * Admission to one deployment (a bulkhead): at most `maxConcurrent` calls run at once; others wait
 * in a bounded queue served by priority, high before normal before low. A request that has waited
 * longer than its class's SLA counts as one class higher for each SLA period waited (aging), so
 * low priority is never starved. A full queue refuses at once; a caller whose deadline passes or
 * whose client leaves while waiting is dropped from the queue. Logic only: the clock is injected.
 */

import { Fifo } from './fifo.js';

/** A call's priority class: its tenant's, or a lower one the call asks for (`x-priority`). */
export type Priority = 'high' | 'normal' | 'low';
/** The classes from best to worst: a class's index is its rank in the queue. */
export const PRIORITIES: readonly Priority[] = ['high', 'normal', 'low'];

/** The bulkhead's size and queue; `now` (for tests) is Date.now by default. */
export interface AdmissionOptions {
  readonly maxConcurrent: number;
  readonly queueSize: number;
  /** Wait per class after which a request is promoted one class, in ms. */
  readonly slaMs: Readonly<Record<Priority, number>>;
  readonly now?: () => number;
}

interface Waiter {
  readonly rank: number;
  readonly since: number;
  resolve: (() => void) | null;
  readonly reject: (error: unknown) => void;
}

/** The refusal of `acquire` when `queueSize` calls already wait (the gateway answers 503 `overloaded`). */
export class QueueFull extends Error {
  constructor(readonly queueSize: number) {
    super(`the queue of ${queueSize} is full`);
    this.name = 'QueueFull';
  }
}

/** One deployment's bulkhead and priority queue, per process. */
export class Admission {
  readonly #max: number;
  readonly #queueSize: number;
  readonly #sla: readonly number[];
  readonly #now: () => number;
  /** One FIFO per class; cancelled waiters stay (resolve null) until they reach the head. */
  readonly #queues: ReadonlyArray<Fifo<Waiter>> = [new Fifo(), new Fifo(), new Fifo()];
  #active = 0;
  #queued = 0;

  constructor(options: AdmissionOptions) {
    this.#max = options.maxConcurrent;
    this.#queueSize = options.queueSize;
    this.#sla = PRIORITIES.map((p) => options.slaMs[p]);
    this.#now = options.now ?? Date.now;
  }

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#queued;
  }

  /**
   * Resolves when the call may run (then `release` must be called once it is done). Rejects with
   * {@link QueueFull} at once when the queue is full, or with `cancelled()` if `onAbort` fires first.
   */
  acquire(priority: Priority, onAbort: (listener: () => void) => void, cancelled: () => unknown): Promise<void> {
    if (this.#active < this.#max) {
      this.#active++;
      return Promise.resolve();
    }
    if (this.#queued >= this.#queueSize) return Promise.reject(new QueueFull(this.#queueSize));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { rank: PRIORITIES.indexOf(priority), since: this.#now(), resolve, reject };
      (this.#queues[waiter.rank] as Fifo<Waiter>).push(waiter);
      this.#queued++;
      onAbort(() => {
        if (waiter.resolve === null) return;
        waiter.resolve = null;
        this.#queued--;
        reject(cancelled());
      });
    });
  }

  /** A call finished: the best waiter runs next, or the slot frees. */
  release(): void {
    const next = this.#next();
    if (next === null) {
      this.#active--;
      return;
    }
    const resolve = next.resolve as () => void;
    next.resolve = null;
    this.#queued--;
    resolve();
  }

  /** The head with the best aged rank (class minus SLA periods waited); ties go to the longest waiting. */
  #next(): Waiter | null {
    const now = this.#now();
    let best: Waiter | null = null;
    let bestQueue = -1;
    let bestRank = Infinity;
    for (let q = 0; q < this.#queues.length; q++) {
      const queue = this.#queues[q] as Fifo<Waiter>;
      while (queue.length > 0 && (queue.peek() as Waiter).resolve === null) queue.shift(); // cancelled
      const head = queue.peek();
      if (head === undefined) continue;
      const rank = head.rank - Math.floor((now - head.since) / (this.#sla[head.rank] as number));
      if (rank < bestRank || (rank === bestRank && best !== null && head.since < best.since)) {
        best = head;
        bestQueue = q;
        bestRank = rank;
      }
    }
    if (best !== null) (this.#queues[bestQueue] as Fifo<Waiter>).shift();
    return best;
  }
}
