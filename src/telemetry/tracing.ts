/**
 * OpenTelemetry traces: a server span per model call with a child span per pipeline stage
 * (authenticate, limit, route, queue, backend, batch), GenAI semantic-convention attributes, the
 * client's W3C `traceparent` honoured and passed on to remote backends, exported over OTLP/HTTP by
 * the OpenTelemetry SDK to where the standard OTEL_EXPORTER_OTLP_* variables point.
 *
 * Spans are made explicitly from times the stages already read, and the trace travels in the
 * request context: no AsyncLocalStorage context manager (its async hooks tax every request, traced
 * or not), no auto-instrumentation. The head-sampling decision comes first, so a request that is
 * not sampled costs one random draw and nothing else.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Span, type Tracer } from '@opentelemetry/api';
import { parseTraceParent } from '@opentelemetry/core';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOnSampler, BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { TraceAttributes, TraceScope } from '../core/call.js';
import type { TracingSettings } from './tracing-settings.js';

/** This process's tracer: starts each sampled request's trace and exports spans over OTLP in batches; `shutdown` flushes. */
export class Tracing {
  readonly #provider: TracerProvider;
  readonly #tracer: Tracer;
  readonly #ratio: number;

  constructor(settings: TracingSettings, version: string) {
    this.#ratio = settings.sampleRatio;
    this.#provider = new TracerProvider({
      // Sampled here, before a span exists (see `start`); what reaches the SDK is recorded.
      sampler: new AlwaysOnSampler(),
      resource: resourceFromAttributes({ 'service.name': settings.serviceName, 'service.version': version }),
      // Protobuf by default: serialising spans to it cost half of what JSON did (CPU per call at 1 % sampling).
      spanProcessors: [
        new BatchSpanProcessor({
          exporter: settings.protocol === 'http/json' ? new JsonExporter() : new ProtobufExporter(),
          scheduledDelayMillis: 1000,
        }),
      ],
    });
    this.#tracer = this.#provider.getTracer('infergate', version);
  }

  /**
   * The trace of one request, or null when it is not sampled: a client's `traceparent` decides by
   * its sampled flag (parent-based), else a draw at the configured ratio. `attributes` are made
   * only for a sampled request.
   */
  start(
    name: string,
    traceparent: string | string[] | undefined,
    startTime: number,
    attributes: () => TraceAttributes,
  ): RequestTrace | null {
    const parent = typeof traceparent === 'string' ? parseTraceParent(traceparent) : null;
    if (parent !== null ? (parent.traceFlags & TraceFlags.SAMPLED) === 0 : Math.random() >= this.#ratio) return null;
    const context = parent === null ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, { ...parent, isRemote: true });
    const root = this.#tracer.startSpan(name, { kind: SpanKind.SERVER, startTime, attributes: attributes() }, context);
    return new RequestTrace(this.#tracer, root);
  }

  /** Exports what is buffered; on shutdown. */
  shutdown(): Promise<void> {
    return this.#provider.shutdown();
  }
}

/** A span that stages add children to. */
export class SpanScope implements TraceScope {
  constructor(
    protected readonly tracer: Tracer,
    readonly span: Span,
  ) {}

  get traceparent(): string {
    const c = this.span.spanContext();
    return `00-${c.traceId}-${c.spanId}-0${c.traceFlags & TraceFlags.SAMPLED}`;
  }

  stage(name: string, start: number, end: number, attributes?: TraceAttributes): void {
    this.#open(name, start, SpanKind.INTERNAL, attributes).end(end);
  }

  /** A stage that failed with `error`, as a child span marked failed with its code. */
  failed(name: string, start: number, end: number, error: unknown): void {
    endSpan(this.#open(name, start, SpanKind.INTERNAL), end, error);
  }

  /** A child span that stays open for its own children (a backend call); `remote`: a call to another server. */
  child(name: string, start: number, remote: boolean, attributes: TraceAttributes): SpanScope {
    return new SpanScope(this.tracer, this.#open(name, start, remote ? SpanKind.CLIENT : SpanKind.INTERNAL, attributes));
  }

  /** Ends this span: failed when `error` is given. */
  end(end: number, error?: unknown): void {
    endSpan(this.span, end, error);
  }

  #open(name: string, start: number, kind: SpanKind, attributes?: TraceAttributes): Span {
    return this.tracer.startSpan(name, { kind, startTime: start, attributes }, trace.setSpan(ROOT_CONTEXT, this.span));
  }
}

/** The server span of one request, ended by the record stage. */
export class RequestTrace extends SpanScope {
  /** Ends the request's span with its outcome: `error.type` names a failure's code; a server error (not the client's) marks it failed. */
  finish(serverError: boolean, code: string, end: number, attributes: TraceAttributes): void {
    const span = this.span;
    span.setAttributes(attributes);
    if (code !== '') span.setAttribute('error.type', code);
    if (serverError) span.setStatus({ code: SpanStatusCode.ERROR, message: code });
    span.end(end);
  }
}

/** Ends a span with the outcome of its work: an error's code as `error.type`. */
function endSpan(span: Span, end: number, error: unknown): void {
  if (error !== undefined) {
    const code = (error as { code?: unknown }).code;
    const type = typeof code === 'string' ? code : error instanceof Error ? error.name : 'error';
    span.setAttribute('error.type', type);
    span.setStatus({ code: SpanStatusCode.ERROR, message: type });
  }
  span.end(end);
}
