/**
 * The pipeline behind every transport: route -> execute -> result. Transports decode their wire
 * format into the core request types and encode what comes back; the stages between (auth,
 * limits, admission, policies) plug in here, once, for every protocol.
 */
import type {
  Cancellation,
  EmbedRequest,
  EmbedResult,
  InferRequest,
  InferResult,
  Signature,
  Task,
  TextRequest,
  TextResponse,
} from '../core/call.js';
import { modelNotFound, notReadyError, versionHealth, type Model, type ModelVersion, type Registry } from '../routing/registry.js';
import type { Principal } from '../tenancy/directory.js';
import { meterText } from '../tenancy/metering.js';
import type { Session, Tenancy } from '../tenancy/tenancy.js';
import type { RequestContext } from './context.js';
import type { RateLimit } from '../core/rate-limit.js';
import { ClientGoneError } from '../core/call.js';
import { MockBackend } from '../backends/mock/mock-backend.js';
import { QueueFull, type Admission } from '../scheduling/admission.js';
import { DeadlineCall } from '../policies/deadline.js';
import { isDeploymentFailure } from '../policies/governor.js';
import { ApiError, fastError, overloadedError } from '../core/errors.js';
import { checkInferRequest } from '../core/signature.js';
import { NO_OBSERVER } from '../core/observer.js';
import { TracedCall } from '../telemetry/trace-scope.js';
import type { RequestTrace, SpanScope } from '../telemetry/tracing.js';

/** A result plus the version that served it (reported as `x-model-version`), and what it stood in for. */
export interface Served<T> {
  readonly version: ModelVersion;
  readonly result: T;
  /** `model@version` that failed when a fallback or the degraded answer served; null otherwise. */
  readonly fallbackFrom: string | null;
  /** Where the tenant stands against its rate limits (sent as `x-ratelimit-*`); null: no limit applies. */
  readonly rateLimit: RateLimit | null;
}

function overloaded(version: ModelVersion, why: string): ApiError {
  return overloadedError(`model "${version.model.name}" version "${version.version}" is at capacity: ${why}`);
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

type Work<T> = (version: ModelVersion, call: Cancellation) => Promise<T>;

/** GenAI semantic-convention operation names of the tasks (`infer` for tensors, which the conventions do not name). */
const OPERATIONS: Readonly<Record<Task, string>> = {
  chat: 'chat',
  completion: 'text_completion',
  embedding: 'embeddings',
  tensor: 'infer',
};

/** The span of one attempt at a version's backend: `chat my-model`, a client span when the backend is a remote server. */
function backendSpan(trace: RequestTrace, version: ModelVersion, task: Task, started: number): SpanScope {
  const operation = OPERATIONS[task];
  const kind = version.backend.kind;
  const attributes: Record<string, string> = {
    'gen_ai.operation.name': operation,
    'gen_ai.request.model': version.model.name,
    'infergate.model.version': version.version,
    'infergate.backend.kind': kind,
  };
  if (kind === 'openai') attributes['gen_ai.provider.name'] = 'openai';
  return trace.child(`${operation} ${version.model.name}`, started, kind === 'openai', attributes);
}
/** Keeps an admission slot until the result is consumed (a stream), calling `release` once. */
/** Whether a call to this version is timed: its observer records timings, or the request is traced. */
function observed(version: ModelVersion, ctx: RequestContext): boolean {
  return version.observer !== NO_OBSERVER || ctx.trace !== null;
}

type Hold<T> = (result: T, release: () => void) => T;

/** A text answer that streams keeps its slot until the stream ends; a whole one frees it at once. */
const holdText: Hold<TextResponse> = (result, release) => {
  if (result.type === 'events') {
    const events = result.events;
    return {
      type: 'events',
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

/** One attempt at a version under its policies (retries, breaker), or plainly when it has none. */
function governed<T>(version: ModelVersion, call: Cancellation, work: Work<T>): Promise<T> {
  const governor = version.governor;
  return governor === null ? work(version, call) : governor.run(call, (c) => work(version, c));
}

/** Who asks, as far as authorization cares. */
type Caller = { readonly principal: Principal | null };

/**
 * The pipeline every transport calls: authorize and limit (with tenancy), route to a version, admit,
 * run under the deadline and policies, fall back. Failures are thrown as ApiErrors (or ClientGoneError).
 */
export class Gateway {
  #registry: Registry;
  readonly #tenancy: Tenancy | null;

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

  /** Serves `next` from now on (a reload). */
  swap(next: Registry): void {
    this.#registry = next;
  }

  generate(request: TextRequest, ctx: RequestContext): Promise<Served<TextResponse>> {
    const tenancy = this.#tenancy;
    if (tenancy === null) return this.#generate(request, ctx);
    const body = request.body as { stream_options?: { include_usage?: unknown } | null };
    const wantsUsage = body.stream_options?.include_usage === true;
    // Streams are asked for their exact usage; the chunk carrying it is passed on only if the client asked.
    const metered =
      request.stream && !wantsUsage
        ? { ...request, body: { ...request.body, stream_options: { ...body.stream_options, include_usage: true } } }
        : request;
    return this.#session(tenancy, request.model, ctx, async (session) => {
      const served = await this.#generate(metered, ctx);
      session.served(served.version);
      return { ...served, result: meterText(served.result, session, wantsUsage) };
    });
  }

  #generate(request: TextRequest, ctx: RequestContext): Promise<Served<TextResponse>> {
    return this.#execute(
      request.model,
      ctx,
      request.kind,
      (v, call) => v.backend.generate(request, call),
      (text, call) => new MockBackend({ kind: 'mock', latency_ms: 0, text, embedding_dim: 1, stream_chunks: 1 }).generate(request, call),
      holdText,
    );
  }

  embed(model: string, request: EmbedRequest, ctx: RequestContext): Promise<Served<EmbedResult>> {
    const run = (): Promise<Served<EmbedResult>> => this.#execute(model, ctx, 'embedding', (v, call) => v.backend.embed(request, call));
    const tenancy = this.#tenancy;
    if (tenancy === null) return run();
    return this.#session(tenancy, model, ctx, async (session) => {
      const served = await run();
      session.served(served.version);
      session.finish(served.result.promptTokens, 0, 200);
      return served;
    });
  }

  infer(model: string, request: InferRequest, ctx: RequestContext): Promise<Served<InferResult>> {
    const run = (): Promise<Served<InferResult>> =>
      this.#execute(model, ctx, 'tensor', (v, call) => v.backend.infer(checkInferRequest(this.signature(v), request), call));
    const tenancy = this.#tenancy;
    if (tenancy === null) return run();
    return this.#session(tenancy, model, ctx, async (session) => {
      const served = await run();
      session.served(served.version);
      session.finish(0, 0, 200);
      return served;
    });
  }

  /** Authorizes and admits a call for its tenant, runs it, and adds the tenant's rate-limit headers; a failure is recorded. */
  async #session<T>(
    tenancy: Tenancy,
    model: string,
    ctx: RequestContext,
    call: (session: Session) => Promise<Served<T>>,
  ): Promise<Served<T>> {
    const trace = ctx.trace;
    const started = trace === null ? 0 : performance.now();
    let session: Session;
    try {
      session = await tenancy.open(this.model(model, ctx), ctx);
    } catch (err) {
      trace?.failed('limit', started, performance.now(), err);
      throw err;
    }
    if (trace !== null) trace.stage('limit', started, performance.now());
    try {
      const served = await call(session);
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
   * Execute with policies: routes, then calls the version under the request's deadline and the
   * version's governor (retries, breaker); on a failure that is not the client's, tries the
   * model's fallbacks in order, then its degraded answer. The deadline covers all of it.
   */
  async #execute<T>(
    name: string,
    ctx: RequestContext,
    task: Task,
    work: Work<T>,
    degraded?: (text: string, call: Cancellation) => Promise<T>,
    hold?: Hold<T>,
  ): Promise<Served<T>> {
    const trace = ctx.trace;
    const started = trace === null ? 0 : performance.now();
    const model = this.registry.get(name);
    const version = this.#route(model, ctx.pinnedVersion, task);
    if (trace !== null) trace.stage('route', started, performance.now(), { 'infergate.model.version': version.version });
    ctx.routed(version);
    const policies = version.policies;
    const deadline = new DeadlineCall(ctx, Math.min(ctx.timeoutMs ?? policies.timeout_ms, policies.max_timeout_ms));
    try {
      return { version, result: await this.#call(version, deadline, ctx, task, work, hold), fallbackFrom: null, rateLimit: null };
    } catch (err) {
      // Past the deadline: 504, unless the call never left the queue (503 overloaded says so).
      if (deadline.expired) throw isOverloaded(err) ? err : deadline.timeoutError();
      if (!canFallBack(err) || (model.fallbacks.length === 0 && (degraded === undefined || model.degradedText === null))) throw err;
      const from = `${model.name}@${version.version}`;
      version.observer.fellBack();
      for (const fallback of model.fallbacks) {
        try {
          const v = this.#route(this.registry.get(fallback.model), fallback.version, task);
          ctx.routed(v);
          return { version: v, result: await this.#call(v, deadline, ctx, task, work, hold), fallbackFrom: from, rateLimit: null };
        } catch (e) {
          if (deadline.expired) throw isOverloaded(e) ? e : deadline.timeoutError();
          if (!canFallBack(e)) throw e;
        }
      }
      if (degraded !== undefined && model.degradedText !== null) {
        return { version, result: await degraded(model.degradedText, deadline), fallbackFrom: from, rateLimit: null };
      }
      throw err;
    } finally {
      deadline.clear();
    }
  }

  #call<T>(
    version: ModelVersion,
    call: DeadlineCall,
    ctx: RequestContext,
    task: Task,
    untimed: Work<T>,
    hold: Hold<T> | undefined,
  ): Promise<T> {
    const observer = version.observer;
    const trace = ctx.trace;
    // Each attempt (retries included) is timed and traced, only when something observes it.
    const work: Work<T> = !observed(version, ctx)
      ? untimed
      : (v, c) => {
          const started = performance.now();
          const span = trace === null ? null : backendSpan(trace, v, task, started);
          const done = (error?: unknown): void => {
            const now = performance.now();
            observer.attempt((now - started) / 1000);
            span?.end(now, error);
          };
          const attempt = untimed(v, span === null ? c : new TracedCall(c, span));
          attempt.then(() => done(), done);
          return attempt;
        };
    if (version.admission === null) return governed(version, call, work);
    return this.#admitted(version, version.admission, call, ctx, work, hold);
  }

  /** A call through the version's bulkhead: waits for a slot by priority, holds it until the answer (or its stream) is done. */
  async #admitted<T>(
    version: ModelVersion,
    admission: Admission,
    call: DeadlineCall,
    ctx: RequestContext,
    work: Work<T>,
    hold: Hold<T> | undefined,
  ): Promise<T> {
    const observer = version.observer;
    const trace = ctx.trace;
    const timed = observed(version, ctx);
    const arrived = timed ? performance.now() : 0;
    try {
      await admission.acquire(
        ctx.priority,
        (listener) => call.onAbort(listener),
        () => {
          if (!call.expired) return new ClientGoneError();
          observer.shed('queue_timeout');
          return overloaded(version, 'waited past its deadline in the queue');
        },
      );
    } catch (err) {
      let error = err;
      if (err instanceof QueueFull) {
        observer.shed('queue_full');
        error = overloaded(version, `all ${admission.active} slots are busy and ${err.message}`);
      }
      trace?.failed('queue', arrived, performance.now(), error);
      throw error;
    }
    if (timed) {
      const now = performance.now();
      observer.queued((now - arrived) / 1000);
      trace?.stage('queue', arrived, now);
    }
    let held = false;
    try {
      const result = await governed(version, call, work);
      if (hold === undefined) return result;
      held = true;
      return hold(result, () => admission.release());
    } finally {
      if (!held) admission.release();
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
