/**
 * A fixed set of slots (e.g. a context's sequences) handed out one per request: the
 * {@link Admission} bulkhead with one slot per object and a single priority class, so a request
 * that finds every slot busy waits its turn in a bounded FIFO queue, and one that finds the queue
 * full is refused at once (the caller answers 503 with Retry-After).
 */
import { Admission, QueueFull } from './admission.js';

export { QueueFull as QueueFullError };

/** How a waiter learns that its client went away (see Cancellation). */
export interface AbortHook {
  onAbort(listener: () => void): void;
}

/** The pool: acquire() a slot, then release() it exactly once when done with it. */
export class Slots<T> {
  readonly #free: T[];
  readonly #admission: Admission;

  constructor(slots: readonly T[], queueSize: number) {
    this.#free = [...slots];
    // One class: no aging needed, first in first out.
    const never = Number.MAX_SAFE_INTEGER;
    this.#admission = new Admission({ maxConcurrent: slots.length, queueSize, slaMs: { high: never, normal: never, low: never } });
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.#admission.queued;
  }

  /** Slots in use right now. */
  get busy(): number {
    return this.#admission.active;
  }

  /** Slots free right now. */
  get free(): number {
    return this.#free.length;
  }

  /**
   * A free slot, at once if one is free, else when one is released. Rejects with
   * {@link QueueFullError} when the queue is full, or with `cancelled()` if the client leaves first.
   */
  async acquire(call: AbortHook, cancelled: () => Error): Promise<T> {
    await this.#admission.acquire('normal', (listener) => call.onAbort(listener), cancelled);
    return this.#free.pop() as T;
  }

  /** Returns a slot: the longest-waiting request gets it, else it goes back to the free list. */
  release(slot: T): void {
    this.#free.push(slot);
    this.#admission.release();
  }
}
