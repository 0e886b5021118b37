/**
 * A fixed set of slots (e.g. a context's sequences) handed out one per request, with a bounded
 * first-in-first-out queue in front: a request that finds every slot busy waits its turn; one
 * that finds the queue full is refused at once (the caller answers 503 with Retry-After), so
 * load beyond capacity costs a queue entry, never memory or a second copy of the model.
 */

/** How a waiter learns that its client went away (see Cancellation). */
export interface AbortHook {
  onAbort(listener: () => void): void;
}

interface Waiter<T> {
  resolve: ((slot: T) => void) | null;
  reject: (error: unknown) => void;
}

export class QueueFullError extends Error {
  constructor(readonly queueSize: number) {
    super(`all slots are busy and the queue of ${queueSize} is full`);
    this.name = 'QueueFullError';
  }
}

export class Slots<T> {
  readonly #free: T[];
  readonly #total: number;
  readonly #queueSize: number;
  /** Waiters in arrival order; cancelled ones stay as holes (resolve null) until they reach the head. */
  #waiting: Array<Waiter<T>> = [];
  #head = 0;
  #queued = 0;

  constructor(slots: readonly T[], queueSize: number) {
    this.#free = [...slots];
    this.#total = slots.length;
    this.#queueSize = queueSize;
  }

  /** Requests waiting for a slot. */
  get queued(): number {
    return this.#queued;
  }

  /** Slots in use right now. */
  get busy(): number {
    return this.#total - this.#free.length;
  }

  /** Slots free right now. */
  get free(): number {
    return this.#free.length;
  }

  /**
   * A free slot, at once if one is free, else when one is released. Rejects with
   * {@link QueueFullError} when the queue is full, or with `cancelled()` if the client leaves first.
   */
  acquire(call: AbortHook, cancelled: () => Error): Promise<T> {
    const slot = this.#free.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    if (this.#queued >= this.#queueSize) return Promise.reject(new QueueFullError(this.#queueSize));
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = { resolve, reject };
      this.#waiting.push(waiter);
      this.#queued++;
      call.onAbort(() => {
        if (waiter.resolve === null) return; // already served
        waiter.resolve = null;
        this.#queued--;
        reject(cancelled());
      });
    });
  }

  /** Returns a slot: the longest-waiting live request gets it, else it goes back to the free list. */
  release(slot: T): void {
    while (this.#head < this.#waiting.length) {
      const waiter = this.#waiting[this.#head++] as Waiter<T>;
      const resolve = waiter.resolve;
      if (resolve === null) continue;
      waiter.resolve = null;
      this.#queued--;
      this.#compact();
      resolve(slot);
      return;
    }
    this.#compact();
    this.#free.push(slot);
  }

  /** Drops served and cancelled waiters from the front once they are half the array (amortised O(1)). */
  #compact(): void {
    if (this.#head > 32 && this.#head * 2 >= this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#head);
      this.#head = 0;
    }
  }
}
