/** The observation wrapper: every attempt timed for a watched version, and a backend span for a traced request; nothing otherwise. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { Cancellation, Task } from '../../src/core/call.js';
import { fastError } from '../../src/core/errors.js';
import { NO_OBSERVER, type DeploymentObserver } from '../../src/core/observer.js';
import type { VersionCall } from '../../src/core/policy.js';
import { DeadlineCall } from '../../src/policies/deadline.js';
import { observe } from '../../src/policies/observation.js';
import { RequestTrace } from '../../src/telemetry/tracing.js';

/** Keeps the attempt times it is told. */
class Attempts implements DeploymentObserver {
  readonly seconds: number[] = [];
  attempt(seconds: number): void {
    this.seconds.push(seconds);
  }
  queued(): void {}
  shed(): void {}
  retried(): void {}
  fellBack(): void {}
  executed(): void {}
}

const backend: VersionCall<string> = function backend(work, ctx) {
  return work('1', ctx);
};

function observed(observer: DeploymentObserver, kind = 'mock'): VersionCall<string> {
  const provider = kind === 'openai' ? 'openai' : null;
  return observe<string>({ model: 'm', version: '1', kind, remote: provider !== null, provider, observer })(backend);
}

function call<T>(task: Task = 'chat', trace: RequestTrace | null = null): DeadlineCall<T> {
  const parent = { priority: 'high' as const, trace, signal: new AbortController().signal, onAbort: () => undefined };
  return new DeadlineCall<T>(parent, 60_000, task, null);
}

function tracing(): { trace: RequestTrace; exporter: InMemorySpanExporter } {
  const exporter = new InMemorySpanExporter();
  const tracer = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }).getTracer('test');
  return { trace: new RequestTrace(tracer, tracer.startSpan('request')), exporter };
}

/** Lets the attempt's bookkeeping (it runs when the attempt settles) happen. */
const settled = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('observation wrapper', () => {
  it('passes an untraced call to a version nobody watches straight through: the same context, nothing timed', async () => {
    const ctx = call<string>();
    let seen: Cancellation | null = null;
    const answer = await observed(NO_OBSERVER)((_version, c) => {
      seen = c;
      return Promise.resolve('ok');
    }, ctx);
    assert.equal(answer, 'ok');
    assert.equal(seen, ctx);
  });

  it('times every attempt at a watched version, whether it worked or failed', async () => {
    const attempts = new Attempts();
    const chain = observed(attempts);
    await chain(() => Promise.resolve('ok'), call());
    await assert.rejects(chain(() => Promise.reject(fastError('upstream_error', 'down')), call()));
    await settled();
    assert.equal(attempts.seconds.length, 2);
    assert.ok(attempts.seconds.every((s) => s >= 0));
  });

  it('gives a traced attempt its own span, which the backend sees as its trace scope: a client span for a remote backend', async () => {
    const { trace, exporter } = tracing();
    let traceparent = '';
    let priority = '';
    await observed(NO_OBSERVER, 'openai')(
      (_version, c) => {
        traceparent = c.traceScope?.traceparent ?? '';
        priority = (c as DeadlineCall<string>).priority;
        return Promise.resolve('ok');
      },
      call('chat', trace),
    );
    await settled();
    const span = exporter.getFinishedSpans().find((s) => s.name === 'chat m');
    assert.ok(span !== undefined);
    assert.equal(span.kind, SpanKind.CLIENT);
    assert.deepEqual(span.attributes, {
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'm',
      'infergate.model.version': '1',
      'infergate.backend.kind': 'openai',
      'gen_ai.provider.name': 'openai',
    });
    assert.equal(span.parentSpanContext?.spanId, trace.span.spanContext().spanId);
    assert.equal(traceparent, `00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`);
    assert.equal(priority, 'high', 'the rest of the context is the request’s');
  });

  it('names an in-process backend’s span by its task, internal, and marks a failed attempt with its code', async () => {
    const { trace, exporter } = tracing();
    const chain = observed(new Attempts(), 'onnx');
    await assert.rejects(chain(() => Promise.reject(fastError('upstream_error', 'down')), call('tensor', trace)));
    await settled();
    const span = exporter.getFinishedSpans().find((s) => s.name === 'infer m');
    assert.ok(span !== undefined);
    assert.equal(span.kind, SpanKind.INTERNAL);
    assert.equal(span.attributes['gen_ai.provider.name'], undefined);
    assert.equal(span.attributes['error.type'], 'upstream_error');
    assert.equal(span.status.code, SpanStatusCode.ERROR);
  });
});
