/**
 * A global retry budget per worker, in the manner of Envoy's and Finagle's: retries may add at
 * most `ratio` of the calls made, plus `minPerSecond` so a quiet server can still retry. When an
 * upstream is down every call fails and would be retried; the budget keeps that from multiplying
 * the load on it. Counted over one-second windows; the clock is injectable for tests.
 */
export class RetryBudget {
  readonly #ratio: number;
  readonly #minPerSecond: number;
  readonly #now: () => number;
  #windowStart = 0;
  #calls = 0;
  #retries = 0;

  constructor(ratio: number, minPerSecond: number, now: () => number = Date.now) {
    this.#ratio = ratio;
    this.#minPerSecond = minPerSecond;
    this.#now = now;
  }

  /** Counts a call (its first try). */
  call(): void {
    this.#roll();
    this.#calls++;
  }

  /** Takes one retry from the budget; false when it is spent for this second. */
  tryRetry(): boolean {
    this.#roll();
    if (this.#retries >= this.#minPerSecond + this.#ratio * this.#calls) return false;
    this.#retries++;
    return true;
  }

  #roll(): void {
    const now = this.#now();
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#calls = 0;
      this.#retries = 0;
    }
  }
}
