/**
 * The tenancy stages around a model call, in the order of DESIGN.md: limit (429) and record (one usage record when the
 * call, or its stream, ends). Authentication happens in the transport, which puts the principal on
 * the request context. Absent when neither keys nor the ledger are configured.
 */
import { ApiError, ERROR_CATALOGUE } from '../core/errors.js';
import type { RateLimit } from '../core/rate-limit.js';
import type { Model, ModelVersion } from '../routing/registry.js';
import type { Grant, Limiter } from './limits.js';
import type { Ledger } from './ledger.js';
import type { Principal } from './directory.js';
import { statusOf, type Meter } from './metering.js';

const CLIENT_CLOSED = ERROR_CATALOGUE.client_closed_request.status;
const TIMED_OUT = ERROR_CATALOGUE.upstream_timeout.status;

/** Tenant id recorded for calls made without authentication (`auth.mode: none`). */
export const ANONYMOUS = 'anonymous';

/** What a session reads of the request context (the pipeline's RequestContext is one). */
export interface SessionContext {
  readonly id: string;
  /** The tenant and key that authenticated; null without authentication. */
  readonly principal: Principal | null;
  /** True once a deadline (rather than the client leaving) cancelled the call. */
  readonly expired?: boolean;
  /** Told the call's tokens once they are known. */
  counted(prompt: number, completion: number): void;
}

/** The limit and record stages: `open` admits a call against its caller's limits (or throws 429) and returns its Session. */
export class Tenancy {
  readonly #limiter: Limiter | null;
  readonly #ledger: Ledger | null;
  readonly #now: () => number;

  constructor(limiter: Limiter | null, ledger: Ledger | null, now: () => number = Date.now) {
    this.#limiter = limiter;
    this.#ledger = ledger;
    this.#now = now;
  }

  /** Admits a call to `model` (already authorized by the gateway); its session records it when it ends. */
  async open(model: Model, ctx: SessionContext): Promise<Session> {
    const started = this.#now();
    const grant = ctx.principal === null || this.#limiter === null ? null : await this.#limiter.admit(ctx.principal);
    return new Session(ctx, model, grant, this.#ledger, started, this.#now);
  }
}

/** One admitted call: its limits' grant and what the ledger will record. */
export class Session implements Meter {
  readonly #ctx: SessionContext;
  readonly #grant: Grant | null;
  readonly #ledger: Ledger | null;
  readonly #started: number;
  readonly #now: () => number;
  #model: string;
  #version = '-';
  #finished = false;
  #charged = 0;

  constructor(ctx: SessionContext, model: Model, grant: Grant | null, ledger: Ledger | null, started: number, now: () => number) {
    this.#ctx = ctx;
    this.#grant = grant;
    this.#ledger = ledger;
    this.#started = started;
    this.#now = now;
    this.#model = model.name;
  }

  /** Where the tenant stands against its rate limits; null when none applies. */
  get rateLimit(): RateLimit | null {
    return this.#grant === null ? null : this.#grant.rateLimit;
  }

  get allowance(): number {
    return this.#grant?.allowance ?? Infinity;
  }

  charge(tokens: number): Promise<number> {
    this.#charged += tokens;
    return this.#grant === null ? Promise.resolve(Infinity) : this.#grant.charge(tokens);
  }

  /** The version that answered (a fallback may be another model). */
  served(version: ModelVersion): void {
    this.#model = version.model.name;
    this.#version = version.version;
  }

  finish(prompt: number, completion: number, status: number): void {
    this.#end(prompt, completion, status, true);
  }

  /**
   * The call failed before an answer. Recorded when the deployment failed or the client left
   * (status 499 and up, and an upstream's 429); a request refused as invalid (other 4xx: an unknown
   * version, a bad tensor) never reached a model and is not.
   */
  fail(error: unknown): void {
    const status = statusOf(error);
    const reachedModel = status >= 499 || (error instanceof ApiError && error.code === 'upstream_rate_limited');
    this.#end(0, 0, status, reachedModel);
  }

  #end(prompt: number, completion: number, given: number, record: boolean): void {
    if (this.#finished) return;
    this.#finished = true;
    // A stream the client's own deadline ended (gRPC) was cut by the deadline, not by the client leaving.
    const status = given === CLIENT_CLOSED && this.#ctx.expired === true ? TIMED_OUT : given;
    const grant = this.#grant;
    if (grant !== null) {
      // Whatever was not charged as it flowed (all of a whole answer; a stream's prompt and rounding).
      const rest = prompt + completion - this.#charged;
      if (rest > 0) void grant.charge(rest);
      grant.release();
    }
    this.#ctx.counted(prompt, completion);
    if (this.#ledger === null || !record) return;
    const principal = this.#ctx.principal;
    const now = this.#now();
    this.#ledger.record({
      ts: now,
      request_id: this.#ctx.id,
      tenant_id: principal?.tenant.id ?? ANONYMOUS,
      key_id: principal?.key.id ?? null,
      model: this.#model,
      version: this.#version,
      status,
      prompt_tokens: prompt,
      completion_tokens: completion,
      latency_ms: now - this.#started,
    });
  }
}
