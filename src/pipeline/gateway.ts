/**
 * The pipeline behind every transport: route -> execute -> result. Transports decode their wire
 * format into the core request types and encode what comes back; the stages between (auth,
 * limits, admission, policies) plug in here, once, for every protocol. A version's policies are
 * one chain composed when the config loaded (pipeline/policies.ts); here the request only routes
 * and calls it, under its deadline, with fallbacks.
 */
import type { EmbedRequest, EmbedResult, InferRequest, InferResult, Signature, Task } from '../core/call.js';
import type { ChatRequest, TextRequest, TextResponse } from '../core/text.js';
import { degradedAnswer } from './degraded.js';
import { modelNotFound, notReadyError, versionHealth, type Model, type ModelVersion, type Registry } from '../routing/registry.js';
import type { Principal } from '../tenancy/directory.js';
import { meterText } from '../tenancy/metering.js';
import type { Session, Tenancy } from '../tenancy/tenancy.js';
import type { RequestContext } from './context.js';
import type { RateLimit } from '../core/rate-limit.js';
import { DeadlineCall } from '../policies/deadline.js';
import { isDeploymentFailure } from '../policies/governor.js';
import { ApiError, fastError } from '../core/errors.js';
import type { Attempt, Hold } from '../core/policy.js';
import { checkInferRequest } from '../core/signature.js';

/** A result plus the version that served it (reported as `x-model-version`), and what it stood in for. */
export interface Served<T> {
  readonly version: ModelVersion;
  readonly result: T;
  /** `model@version` that failed when a fallback or the degraded answer served; null otherwise. */
  readonly fallbackFrom: string | null;
  /** Where the tenant stands against its rate limits (sent as `x-ratelimit-*`); null: no limit applies. */
  readonly rateLimit: RateLimit | null;
}

function isOverloaded(err: unknown): boolean {
  return err instanceof ApiError && err.code === 'overloaded';
}

/** Failures another deployment may not share: not the client's mistake. */
function canFallBack(err: unknown): boolean {
  if (isDeploymentFailure(err)) return true;
  if (!(err instanceof ApiError)) return false;
  return err.code === 'circuit_open' || err.code === 'model_not_ready' || err.code === 'overloaded' || err.code === 'upstream_rate_limited';
}

/** What a request does at whichever version serves it (fallbacks included). */
type Work<T> = Attempt<ModelVersion, T>;

/** A text answer that streams keeps its slot until the stream ends; a whole one frees it at once. */
const holdText: Hold<TextResponse> = (result, release) => {
  if (result.type === 'events') {
    const events = result.events;
    return {
      ...result,
      events: (async function* held() {
        try {
          yield* events;
        } finally {
          release();
        }
      })(),
    };
  }
  if (result.type === 'raw' && !Buffer.isBuffer(result.body)) {
    const body = result.body;
    if (body.destroyed) release();
    else body.once('close', release);
    return result;
  }
  release();
  return result;
};

/** Who asks, as far as authorization cares. */
type Caller = { readonly principal: Principal | null };

/**
 * The pipeline every transport calls: authorize and limit (with tenancy), route to a version, admit,
 * run under the deadline and policies, fall back. Failures are thrown as ApiErrors (or ClientGoneError).
 */
export class Gateway {
  #registry: Registry;
  readonly #tenancy: Tenancy | null;
  readonly #swapListeners: Array<(next: Registry) => void> = [];

  /** `tenancy`: authorize, limit and record around every call; null when there is nothing to do (no keys, no ledger). */
  constructor(registry: Registry, tenancy: Tenancy | null = null) {
    this.#registry = registry;
    this.#tenancy = tenancy;
  }

  /** Whether a caller may see a model (always, without authentication). */
  visible(model: Model, caller: Caller): boolean {
    return caller.principal === null || caller.principal.mayUse(model);
  }

  /** The authorize stage: the model `name` names, if the caller may use it; else the same 404 as an unknown name, so names do not leak. */
  model(name: string, caller: Caller): Model {
    const model = this.registry.get(name);
    if (!this.visible(model, caller)) throw modelNotFound(name);
    return model;
  }

  /** Every deployment (model@version) being served. */
  deployments(): ModelVersion[] {
    return this.registry.models.flatMap((m) => [...m.versions.values()]);
  }

  /** The models being served; replaced whole by a reload, while calls in flight keep the versions they started with. */
  get registry(): Registry {
    return this.#registry;
  }

  /** Serves `next` from now on (a reload), after telling whoever listens (the fleet re-applies its weight overrides to it). */
  swap(next: Registry): void {
    for (const listener of this.#swapListeners) listener(next);
    this.#registry = next;
  }

  /** Calls `listener` with each registry a reload is about to serve, before its first call. */
  onSwap(listener: (next: Registry) => void): void {
    this.#swapListeners.push(listener);
  }

  generate(request: TextRequest, ctx: RequestContext): Promise<Served<TextResponse>> {
    const tenancy = this.#tenancy;
    if (tenancy === null) return this.#generate(request, ctx);
    // A metered answer must say its exact usage; it reaches the client only if the client asked.
    const metered: TextRequest = request.reportUsage ? request : { ...request, reportUsage: true };
    return this.#session(tenancy, request.model, ctx, async (session, model) => {
      const served = await this.#generate(metered, ctx, model);
      session.served(served.version);
      return { ...served, result: meterText(served.result, session, request.includeUsage, request.stream) };
    });
  }

  #generate(request: TextRequest, ctx: RequestContext, model: Model | string = request.model): Promise<Served<TextResponse>> {
    return this.#execute(
      model,
      ctx,
      request.kind,
      (v, call) => v.backend.generate(request, call),
      (text) => degradedAnswer(request, text),
      holdText,
    );
  }

  /**
   * The tokens `request`'s prompt takes at the version that would serve it (Anthropic's
   * `count_tokens`): authorized, limited and routed like a call, and recorded in the ledger with 0
   * tokens (nothing is generated, so none are charged). 400 `unsupported_operation` where the
   * backend cannot count. `rateLimit`: where the tenant stands, as for a call; null without limits.
   */
  async countTokens(
    request: ChatRequest,
    ctx: RequestContext,
  ): Promise<{ readonly version: ModelVersion; readonly tokens: number; readonly rateLimit: RateLimit | null }> {
    const tenancy = this.#tenancy;
    const served =
      tenancy === null
        ? await this.#countTokens(request, ctx, this.model(request.model, ctx))
        : await this.#session(tenancy, request.model, ctx, async (session, model) => {
            const counted = await this.#countTokens(request, ctx, model);
            session.served(counted.version);
            session.finish(0, 0, 200);
            return counted;
          });
    return { version: served.version, tokens: served.result, rateLimit: served.rateLimit };
  }

  async #countTokens(request: ChatRequest, ctx: RequestContext, model: Model): Promise<Served<number>> {
    const version = this.#route(model, ctx.pinnedVersion, 'chat');
    const backend = version.backend;
    if (backend.countTokens === undefined) {
      throw fastError('unsupported_operation', `a ${backend.kind} backend cannot count tokens without generating`, 'model');
    }
    const call = new DeadlineCall(
      ctx,
      Math.min(ctx.timeoutMs ?? version.policies.timeout_ms, version.policies.max_timeout_ms),
      'chat',
      null,
    );
    try {
      return { version, result: await backend.countTokens(request, call), fallbackFrom: null, rateLimit: null };
    } finally {
      call.clear();
    }
  }

  embed(model: string, request: EmbedRequest, ctx: RequestContext): Promise<Served<EmbedResult>> {
    const run = (target: Model | string): Promise<Served<EmbedResult>> =>
      this.#execute(target, ctx, 'embedding', (v, call) => v.backend.embed(request, call));
    const tenancy = this.#tenancy;
    if (tenancy === null) return run(model);
    return this.#session(tenancy, model, ctx, async (session, m) => {
      const served = await run(m);
      session.served(served.version);
      session.finish(served.result.promptTokens, 0, 200);
      return served;
    });
  }

  infer(model: string, request: InferRequest, ctx: RequestContext): Promise<Served<InferResult>> {
    const run = (target: Model | string): Promise<Served<InferResult>> =>
      this.#execute(target, ctx, 'tensor', (v, call) => v.backend.infer(checkInferRequest(this.signature(v), request), call));
    const tenancy = this.#tenancy;
    if (tenancy === null) return run(model);
    return this.#session(tenancy, model, ctx, async (session, m) => {
      const served = await run(m);
      session.served(served.version);
      session.finish(0, 0, 200);
      return served;
    });
  }

  /**
   * Authorizes and admits a call for its tenant, runs it, and adds the tenant's rate-limit headers;
   * a failure is recorded. The model is looked up once, here, and `call` is given it: a reload
   * while the tenant's limits are checked must not make the call serve another model than the
   * one they were checked for.
   */
  async #session<T>(
    tenancy: Tenancy,
    name: string,
    ctx: RequestContext,
    call: (session: Session, model: Model) => Promise<Served<T>>,
  ): Promise<Served<T>> {
    const trace = ctx.trace;
    const started = trace === null ? 0 : performance.now();
    let model: Model;
    let session: Session;
    try {
      model = this.model(name, ctx);
      session = await tenancy.open(model, ctx);
    } catch (err) {
      trace?.failed('limit', started, performance.now(), err);
      throw err;
    }
    if (trace !== null) trace.stage('limit', started, performance.now());
    try {
      const served = await call(session, model);
      const rateLimit = session.rateLimit;
      return rateLimit === null ? served : { version: served.version, result: served.result, fallbackFrom: served.fallbackFrom, rateLimit };
    } catch (err) {
      session.fail(err);
      throw err;
    }
  }

  /** A version's tensor signature; 503 while it loads. */
  signature(version: ModelVersion): Signature {
    if (!version.backend.tasks.has('tensor')) {
      throw fastError('unsupported_operation', `model "${version.model.name}" is not a tensor model; use the OpenAI endpoints`, 'model');
    }
    const signature = version.backend.signature();
    if (signature === null || version.loadError !== null) throw notReadyError(version);
    return signature;
  }

  /** Looks up a model the caller may see and a version: the pinned one, else the default (for metadata, not traffic). */
  resolve(
    model: string,
    pinned: string | undefined,
    ctx: { readonly principal: Principal | null },
  ): { model: Model; version: ModelVersion } {
    const m = this.registry.get(model);
    if (!this.visible(m, ctx)) throw modelNotFound(model);
    return { model: m, version: pinned === undefined ? m.defaultVersion : m.select(pinned) };
  }

  /**
   * Execute with policies: routes, then calls the version's policy chain (admission, retries and
   * breaker, observation) under the request's deadline; on a failure that is not the client's,
   * tries the model's fallbacks in order, then its degraded answer. The deadline covers all of it.
   * `target` is the model, or its name when nothing looked it up before.
   */
  async #execute<T>(
    target: Model | string,
    ctx: RequestContext,
    task: Task,
    work: Work<T>,
    degraded?: (text: string) => T,
    hold?: Hold<T>,
  ): Promise<Served<T>> {
    const trace = ctx.trace;
    const started = trace === null ? 0 : performance.now();
    const model = typeof target === 'string' ? this.registry.get(target) : target;
    const version = this.#route(model, ctx.pinnedVersion, task);
    if (trace !== null) trace.stage('route', started, performance.now(), { 'infergate.model.version': version.version });
    ctx.routed(version);
    const policies = version.policies;
    const call = new DeadlineCall(ctx, Math.min(ctx.timeoutMs ?? policies.timeout_ms, policies.max_timeout_ms), task, hold ?? null);
    try {
      return { version, result: await version.call(work, call), fallbackFrom: null, rateLimit: null };
    } catch (err) {
      // Past the deadline: 504, unless the call never left the queue (503 overloaded says so).
      if (call.expired) throw isOverloaded(err) ? err : call.timeoutError();
      if (!canFallBack(err) || (model.fallbacks.length === 0 && (degraded === undefined || model.degradedText === null))) throw err;
      const from = `${model.name}@${version.version}`;
      version.observer.fellBack();
      for (const fallback of model.fallbacks) {
        try {
          const v = this.#route(this.registry.get(fallback.model), fallback.version, task);
          ctx.routed(v);
          return { version: v, result: await v.call(work, call), fallbackFrom: from, rateLimit: null };
        } catch (e) {
          if (call.expired) throw isOverloaded(e) ? e : call.timeoutError();
          if (!canFallBack(e)) throw e;
        }
      }
      if (degraded !== undefined && model.degradedText !== null) {
        return { version, result: degraded(model.degradedText), fallbackFrom: from, rateLimit: null };
      }
      throw err;
    } finally {
      call.clear();
    }
  }

  #route(model: Model, pinned: string | undefined, task: Task): ModelVersion {
    const version = model.select(pinned);
    const backend = version.backend;
    if (!backend.tasks.has(task)) {
      throw fastError(
        'unsupported_operation',
        `model "${model.name}" does not serve ${task} requests (it serves ${[...backend.tasks].join(', ')})`,
        'model',
      );
    }
    if (!versionHealth(version).ready) throw notReadyError(version);
    return version;
  }
}
