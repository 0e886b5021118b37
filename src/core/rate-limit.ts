/** Where a caller stands against its rate limits, as numbers; each transport writes it its own way (HTTP: OpenAI's `x-ratelimit-*`). */

/** One kind of limit (requests or tokens per minute), for the scope closest to it. */
export interface RateWindow {
  readonly limit: number;
  readonly remaining: number;
  /**
   * Milliseconds until the rolling minute is back to its full limit; in a 429, for the limit that
   * refused the call, until a call fits again (the instant its `Retry-After` names).
   */
  readonly resetMs: number;
}

/** Where a caller stands against each kind of limit; null for a kind with no limit, or none checked before a refusal. */
export interface RateLimit {
  readonly requests: RateWindow | null;
  readonly tokens: RateWindow | null;
}
