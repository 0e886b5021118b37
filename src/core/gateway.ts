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
} from '../backends/backend.js';
import type { Model, ModelVersion, Registry } from '../routing/registry.js';
import type { RequestContext } from './context.js';
import { MockBackend } from '../backends/mock/mock-backend.js';
import { DeadlineCall } from '../policies/deadline.js';
import { isDeploymentFailure } from '../policies/governor.js';
import { ApiError, fastError } from './errors.js';
import { checkInferRequest } from './signature.js';

/** A result plus the version that served it (reported as `x-model-version`), and what it stood in for. */
export interface Served<T> {
  readonly version: ModelVersion;
  readonly result: T;
  /** `model@version` that failed when a fallback or the degraded answer served; null otherwise. */
  readonly fallbackFrom: string | null;
}

/** Failures another deployment may not share: not the client's mistake. */
function canFallBack(err: unknown): boolean {
  if (isDeploymentFailure(err)) return true;
  if (!(err instanceof ApiError)) return false;
  return err.code === 'circuit_open' || err.code === 'model_not_ready' || err.code === 'overloaded' || err.code === 'upstream_rate_limited';
}

type Work<T> = (version: ModelVersion, call: Cancellation) => Promise<T>;

export class Gateway {
  readonly registry: Registry;

  constructor(registry: Registry) {
    this.registry = registry;
  }

  generate(request: TextRequest, ctx: RequestContext): Promise<Served<TextResponse>> {
    return this.#execute(
      request.model,
      ctx,
      request.kind,
      (v, call) => v.backend.generate(request, call),
      (text, call) => new MockBackend({ kind: 'mock', latency_ms: 0, text, embedding_dim: 1, stream_chunks: 1 }).generate(request, call),
    );
  }

  embed(model: string, request: EmbedRequest, ctx: RequestContext): Promise<Served<EmbedResult>> {
    return this.#execute(model, ctx, 'embedding', (v, call) => v.backend.embed(request, call));
  }

  infer(model: string, request: InferRequest, ctx: RequestContext): Promise<Served<InferResult>> {
    return this.#execute(model, ctx, 'tensor', (v, call) => v.backend.infer(checkInferRequest(this.signature(v), request), call));
  }

  /** A version's tensor signature; 503 while it loads. */
  signature(version: ModelVersion): Signature {
    if (!version.backend.tasks.has('tensor')) {
      throw fastError('unsupported_operation', `model "${version.model.name}" is not a tensor model; use the OpenAI endpoints`, 'model');
    }
    const signature = version.backend.signature();
    if (signature === null) throw fastError('model_not_ready', `model "${version.model.name}" version "${version.version}" is not loaded`);
    return signature;
  }

  /** Looks up a model and a version: the pinned one, else the default (for metadata, not traffic). */
  resolve(model: string, pinned: string | undefined): { model: Model; version: ModelVersion } {
    const m = this.registry.get(model);
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
  ): Promise<Served<T>> {
    const model = this.registry.get(name);
    const version = this.#route(model, ctx.pinnedVersion, task);
    const policies = version.policies;
    const deadline = new DeadlineCall(ctx, Math.min(ctx.timeoutMs ?? policies.timeout_ms, policies.max_timeout_ms));
    try {
      return { version, result: await this.#call(version, deadline, work), fallbackFrom: null };
    } catch (err) {
      if (deadline.expired) throw deadline.timeoutError();
      if (!canFallBack(err) || (model.fallbacks.length === 0 && (degraded === undefined || model.degradedText === null))) throw err;
      const from = `${model.name}@${version.version}`;
      for (const fallback of model.fallbacks) {
        try {
          const v = this.#route(this.registry.get(fallback.model), fallback.version, task);
          return { version: v, result: await this.#call(v, deadline, work), fallbackFrom: from };
        } catch (e) {
          if (deadline.expired) throw deadline.timeoutError();
          if (!canFallBack(e)) throw e;
        }
      }
      if (degraded !== undefined && model.degradedText !== null) {
        return { version, result: await degraded(model.degradedText, deadline), fallbackFrom: from };
      }
      throw err;
    } finally {
      deadline.clear();
    }
  }

  #call<T>(version: ModelVersion, call: Cancellation, work: Work<T>): Promise<T> {
    const governor = version.governor;
    return governor === null ? work(version, call) : governor.run(call, (c) => work(version, c));
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
    if (!backend.health().ready) throw fastError('model_not_ready', `model "${model.name}" version "${version.version}" is not loaded`);
    return version;
  }
}
