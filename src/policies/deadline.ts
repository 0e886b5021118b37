/**
 * A request's deadline as a Cancellation: it aborts when the client leaves or when the deadline
 * passes, whichever comes first, so every backend that already stops on a client leaving also
 * stops on a time-out. The timer is unref'd and cleared as soon as the call settles.
 */
import type { Cancellation } from '../backends/backend.js';
import { fastError, type ApiError } from '../core/errors.js';

export class DeadlineCall implements Cancellation {
  readonly #listeners: Array<() => void> = [];
  readonly #timeoutMs: number;
  #timer: NodeJS.Timeout | null;
  #aborted = false;
  #expired = false;
  #signal: AbortSignal | null = null;
  #onExpire: (() => void) | null = null;

  constructor(parent: Cancellation, timeoutMs: number) {
    this.#timeoutMs = timeoutMs;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#expired = true;
      this.#onExpire?.();
      this.#abort();
    }, timeoutMs);
    this.#timer.unref();
    parent.onAbort(() => this.#abort());
  }

  /** Whether the deadline passed (rather than the client leaving). */
  get expired(): boolean {
    return this.#expired;
  }

  get signal(): AbortSignal {
    if (this.#signal !== null) return this.#signal;
    const controller = new AbortController();
    this.onAbort(() => controller.abort());
    return (this.#signal = controller.signal);
  }

  onAbort(listener: () => void): void {
    if (this.#aborted) listener();
    else this.#listeners.push(listener);
  }

  /**
   * Runs `work` under the deadline: rejects with 504 `upstream_timeout` when it passes, even if the
   * work ignores the abort (its result is then dropped).
   */
  run<T>(work: (call: Cancellation) => Promise<T>): Promise<T> {
    if (this.#expired) return Promise.reject(this.timeoutError());
    return new Promise<T>((resolve, reject) => {
      this.#onExpire = () => reject(this.timeoutError());
      work(this).then(resolve, (err: unknown) => reject(this.#expired ? this.timeoutError() : err));
    });
  }

  timeoutError(): ApiError {
    return fastError('upstream_timeout', `the call did not finish within its deadline of ${this.#timeoutMs} ms`);
  }

  /** The call settled: stop the timer. */
  clear(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #abort(): void {
    if (this.#aborted) return;
    this.#aborted = true;
    for (const listener of this.#listeners.splice(0)) listener();
  }
}
