/**
 * The pipeline behind every transport: route -> execute -> result. Transports decode their wire
 * format into the core request types and encode what comes back; the stages between (auth,
 * limits, admission, policies) plug in here, once, for every protocol.
 */
import type {
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
import { fastError } from './errors.js';
import { checkInferRequest } from './signature.js';

/** A result plus the version that served it (reported as `x-model-version`). */
export interface Served<T> {
  readonly version: ModelVersion;
  readonly result: T;
}

export class Gateway {
  readonly registry: Registry;

  constructor(registry: Registry) {
    this.registry = registry;
  }

  async generate(request: TextRequest, ctx: RequestContext): Promise<Served<TextResponse>> {
    const version = this.#route(request.model, ctx.pinnedVersion, request.kind);
    return { version, result: await version.backend.generate(request, ctx) };
  }

  async embed(model: string, request: EmbedRequest, ctx: RequestContext): Promise<Served<EmbedResult>> {
    const version = this.#route(model, ctx.pinnedVersion, 'embedding');
    return { version, result: await version.backend.embed(request, ctx) };
  }

  async infer(model: string, request: InferRequest, ctx: RequestContext): Promise<Served<InferResult>> {
    const version = this.#route(model, ctx.pinnedVersion, 'tensor');
    const checked = checkInferRequest(this.signature(version), request);
    return { version, result: await version.backend.infer(checked, ctx) };
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

  #route(name: string, pinned: string | undefined, task: Task): ModelVersion {
    const version = this.registry.get(name).select(pinned);
    const backend = version.backend;
    if (!backend.tasks.has(task)) {
      throw fastError(
        'unsupported_operation',
        `model "${name}" does not serve ${task} requests (it serves ${[...backend.tasks].join(', ')})`,
        'model',
      );
    }
    if (!backend.health().ready) throw fastError('model_not_ready', `model "${name}" version "${version.version}" is not loaded`);
    return version;
  }
}
