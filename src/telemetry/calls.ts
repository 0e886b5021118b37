/**
 * The record stage, for every transport: a finished model call counted in the metrics, written to
 * the access log, and its trace ended with what it came to.
 */
import type { TraceAttributes } from '../core/call.js';
import { NO_MODEL } from '../core/call.js';
import type { ModelVersion } from '../routing/registry.js';
import type { Principal } from '../tenancy/directory.js';
import type { AccessLog } from './access-log.js';
import type { Metrics } from './metrics.js';
import type { RequestTrace } from './tracing.js';

/** What the record stage reads of a call's context, once the call is done. */
export interface CallFacts {
  readonly principal: Principal | null;
  /** The model and version that served (or last tried); NO_MODEL when none did. */
  readonly model: string;
  readonly version: string;
  /** Tokens, when the usage ledger counted them. */
  readonly promptTokens: number | null;
  readonly completionTokens: number | null;
  /** When a streamed answer's first token went out (performance.now()); 0: not streamed. */
  readonly firstByteAt: number;
}

/** The facts a call gathers as it goes (what served it, its tokens, its first byte): the base of each transport's context. */
export abstract class CallState implements CallFacts {
  abstract readonly principal: Principal | null;
  model = NO_MODEL;
  version = NO_MODEL;
  promptTokens: number | null = null;
  completionTokens: number | null = null;
  firstByteAt = 0;

  /** Told the version chosen to serve the call (each fallback tried tells again). */
  routed(version: ModelVersion): void {
    this.model = version.model.name;
    this.version = version.version;
  }

  /** Told the call's tokens once they are known. */
  counted(prompt: number, completion: number): void {
    this.promptTokens = prompt;
    this.completionTokens = completion;
  }
}

/** Records finished calls to the metrics and access log (each optional) and ends their traces. */
export class CallRecorder {
  constructor(
    readonly metrics: Metrics | null,
    readonly accessLog: AccessLog | null,
  ) {}

  /**
   * Records a call that ended now with `status` (HTTP's, or its equivalent) and error `code` ('' on
   * success). `ctx` is null when the call failed before it had one; `outcome` is the transport's
   * status attribute for the trace.
   */
  finished(
    id: string,
    ctx: CallFacts | null,
    trace: RequestTrace | null,
    status: number,
    code: string,
    started: number,
    outcome: TraceAttributes,
  ): void {
    const now = performance.now();
    const seconds = (now - started) / 1000;
    const tenant = ctx?.principal?.tenant.id ?? '';
    const model = ctx?.model ?? NO_MODEL;
    const version = ctx?.version ?? NO_MODEL;
    const firstToken = ctx === null || ctx.firstByteAt === 0 ? -1 : (ctx.firstByteAt - started) / 1000;
    this.metrics?.call(model, version, tenant, status, code, seconds, ctx?.promptTokens ?? 0, ctx?.completionTokens ?? 0, firstToken);
    this.accessLog?.write({
      id,
      tenant,
      key: ctx?.principal?.key.id ?? '',
      model,
      version,
      status,
      code,
      ms: Math.round(seconds * 1e4) / 10,
      promptTokens: ctx?.promptTokens ?? null,
      completionTokens: ctx?.completionTokens ?? null,
    });
    if (trace !== null) trace.finish(status >= 500, code, now, { ...outcome, ...responseAttributes(ctx, tenant, firstToken) });
  }
}

/** What a traced call ended with: the model and version that served, the tenant, and GenAI token usage. */
function responseAttributes(ctx: CallFacts | null, tenant: string, firstToken: number): TraceAttributes {
  const attributes: Record<string, string | number> = {};
  if (ctx === null) return attributes;
  if (ctx.model !== NO_MODEL) {
    attributes['gen_ai.request.model'] = ctx.model;
    attributes['infergate.model.version'] = ctx.version;
  }
  if (tenant !== '') attributes['infergate.tenant'] = tenant;
  if (ctx.promptTokens !== null) attributes['gen_ai.usage.input_tokens'] = ctx.promptTokens;
  if (ctx.completionTokens !== null) attributes['gen_ai.usage.output_tokens'] = ctx.completionTokens;
  if (firstToken >= 0) attributes['infergate.time_to_first_token_ms'] = Math.round(firstToken * 1e6) / 1000;
  return attributes;
}
