/**
 * Observation of each attempt at a version's backend, as a wrapper: its duration goes to the
 * version's observer (metrics) and, for a sampled request, it gets a backend span (`chat my-model`,
 * a client span when the backend is another server) that the backend sees as its trace scope, so
 * a remote call carries the span's id. Innermost in the chain: retries are timed and traced one by
 * one. Whether metrics watch is known per version when the chain is composed; tracing is decided
 * per request, so an unwatched version's wrapper only checks the request's trace.
 */
import type { Task, TraceAttributes, TraceScope } from '../core/call.js';
import { NO_OBSERVER, type DeploymentObserver } from '../core/observer.js';
import type { CallContext, CallSpan, CallTrace, Hold, Wrapper } from '../core/policy.js';

/** The version whose attempts are observed: names for its spans, its backend's kind, and its observer. */
export interface ObserveOptions {
  readonly model: string;
  readonly version: string;
  /** The backend's kind (`infergate.backend.kind`). */
  readonly kind: string;
  /** Whether the backend is another server (its spans are client spans), as its plug-in says. */
  readonly remote: boolean;
  /** `gen_ai.provider.name` of its calls, as its plug-in says; null: none (in process). */
  readonly provider: string | null;
  readonly observer: DeploymentObserver;
}

/** GenAI semantic-convention operation names of the tasks (`infer` for tensors, which the conventions do not name). */
const OPERATIONS: Readonly<Record<Task, string>> = {
  chat: 'chat',
  completion: 'text_completion',
  embedding: 'embeddings',
  tensor: 'infer',
};

/** A backend span's name and attributes for one task. */
interface SpanSpec {
  readonly name: string;
  readonly attributes: TraceAttributes;
}

/** The span specs of a version, one per task, made once when its chain is composed rather than per traced attempt. */
function spanSpecs(options: ObserveOptions): Readonly<Record<Task, SpanSpec>> {
  const spec = (task: Task): SpanSpec => {
    const operation = OPERATIONS[task];
    const attributes: Record<string, string> = {
      'gen_ai.operation.name': operation,
      'gen_ai.request.model': options.model,
      'infergate.model.version': options.version,
      'infergate.backend.kind': options.kind,
    };
    if (options.provider !== null) attributes['gen_ai.provider.name'] = options.provider;
    return { name: `${operation} ${options.model}`, attributes: Object.freeze(attributes) };
  };
  return { chat: spec('chat'), completion: spec('completion'), embedding: spec('embedding'), tensor: spec('tensor') };
}

/** The wrapper that times (and, when the request is traced, spans) every attempt at the version. */
export function observe<V>(options: ObserveOptions): Wrapper<V> {
  const observer = options.observer;
  const watched = observer !== NO_OBSERVER;
  const remote = options.remote;
  const specs = spanSpecs(options);
  return (next) =>
    function observed(work, ctx) {
      const trace = ctx.trace;
      if (!watched && trace === null) return next(work, ctx);
      const started = performance.now();
      let span: CallSpan | null = null;
      let attempt = ctx;
      if (trace !== null) {
        const spec = specs[ctx.task];
        span = trace.child(spec.name, started, remote, spec.attributes);
        attempt = new SpanCall(ctx, span);
      }
      const done = (error?: unknown): void => {
        const now = performance.now();
        observer.attempt((now - started) / 1000);
        span?.end(now, error);
      };
      const result = next(work, attempt);
      result.then(() => done(), done);
      return result;
    };
}

/** The request's context as one traced attempt sees it: the same call, inside the attempt's span. */
class SpanCall<T> implements CallContext<T> {
  readonly #call: CallContext<T>;
  readonly traceScope: TraceScope;

  constructor(call: CallContext<T>, span: CallSpan) {
    this.#call = call;
    this.traceScope = span;
  }

  get signal(): AbortSignal {
    return this.#call.signal;
  }

  get expired(): boolean {
    return this.#call.expired;
  }

  get priority(): CallContext<T>['priority'] {
    return this.#call.priority;
  }

  get trace(): CallTrace | null {
    return this.#call.trace;
  }

  get task(): Task {
    return this.#call.task;
  }

  get hold(): Hold<T> | null {
    return this.#call.hold;
  }

  onAbort(listener: () => void): void {
    this.#call.onAbort(listener);
  }
}
