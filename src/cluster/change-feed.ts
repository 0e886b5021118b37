/**
 * The change feed: how a tenant or key change made in one process reaches every other process that
 * authenticates calls (sibling workers through the cluster primary, other replicas through Redis),
 * and how the admin call that made it learns that each has applied it. A process confirms a change
 * only after its directory holds it, so once `publish` resolves, every process that confirmed
 * refuses a revoked key and accepts a new one.
 */

/** One way of telling the other processes of a change, and of hearing theirs. */
export interface ChangeFeed {
  /**
   * Tells every other live process that tenants or keys changed, and waits until each confirmed it
   * reloaded them, or the ack time-out passed. Resolves with the names of those that did not
   * confirm in time (empty: all did); `*` when none could be told (Redis unreachable). Never rejects.
   */
  publish(): Promise<string[]>;
  /**
   * Runs `reload` for every change another process publishes, and confirms the change once it
   * resolves (not when it rejects: that process then stays unconfirmed). Call it before the first
   * load of the directory, so no change falls between that load and the subscription.
   */
  subscribe(reload: () => Promise<void>): Promise<void>;
}

interface Pending {
  readonly left: Set<string>;
  readonly timer: NodeJS.Timeout;
  readonly resolve: (unconfirmed: string[]) => void;
}

/** The confirmations awaited for changes in flight: per change id, the names yet to confirm it. */
export class Confirmations {
  readonly #pending = new Map<string, Pending>();

  /** Resolves once every name in `expected` confirmed `id`, or after `timeoutMs` with those that did not. */
  wait(id: string, expected: Iterable<string>, timeoutMs: number): Promise<string[]> {
    const left = new Set(expected);
    if (left.size === 0) return Promise.resolve([]);
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#settle(id), timeoutMs);
      this.#pending.set(id, { left, timer, resolve });
    });
  }

  /** `by` applied change `id`. Confirmations of changes not awaited, or from names not expected, are ignored. */
  confirm(id: string, by: string): void {
    const p = this.#pending.get(id);
    if (p !== undefined && p.left.delete(by) && p.left.size === 0) this.#settle(id);
  }

  /** `name` is gone (a worker that exited): no change waits for it any longer. */
  forget(name: string): void {
    for (const [id, p] of this.#pending) if (p.left.delete(name) && p.left.size === 0) this.#settle(id);
  }

  #settle(id: string): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    this.#pending.delete(id);
    clearTimeout(p.timer);
    p.resolve([...p.left]);
  }
}
