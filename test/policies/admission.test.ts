/** The admission wrapper: a call waits for a slot of its version by priority, is shed with 503 overloaded, and holds the slot while its answer streams. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { ClientGoneError, signalOf, type Cancellation } from '../../src/core/call.js';
import { ApiError } from '../../src/core/errors.js';
import { NO_OBSERVER, type DeploymentObserver } from '../../src/core/observer.js';
import type { Hold, VersionCall } from '../../src/core/policy.js';
import { admit } from '../../src/policies/admission.js';
import { DeadlineCall } from '../../src/policies/deadline.js';
import { Admission } from '../../src/scheduling/admission.js';
import { RequestTrace } from '../../src/telemetry/tracing.js';

/** A client that can leave. */
class Client implements Cancellation {
  readonly #listeners: Array<() => void> = [];
  get signal(): AbortSignal {
    return signalOf(this);
  }
  onAbort(listener: () => void): void {
    this.#listeners.push(listener);
  }
  leave(): void {
    for (const listener of this.#listeners.splice(0)) listener();
  }
}

/** What a deployment reports, in order. */
class Recorder implements DeploymentObserver {
  readonly events: string[] = [];
  queued(): void {
    this.events.push('queued');
  }
  shed(reason: string): void {
    this.events.push(`shed ${reason}`);
  }
  attempt(): void {
    this.events.push('attempt');
  }
  retried(): void {
    this.events.push('retried');
  }
  fellBack(): void {
    this.events.push('fellBack');
  }
  executed(): void {
    this.events.push('executed');
  }
}

const backend: VersionCall<string> = function backend(work, ctx) {
  return work('1', ctx);
};

function bulkhead(maxConcurrent: number, queueSize: number): Admission {
  return new Admission({ maxConcurrent, queueSize, slaMs: { high: 100, normal: 1000, low: 5000 }, now: () => 0 });
}

function admitted(queue: Admission, observer: DeploymentObserver = NO_OBSERVER): VersionCall<string> {
  return admit<string>(queue, { model: 'm', version: '1', observer })(backend);
}

interface CallOptions<T> {
  readonly client?: Client;
  readonly timeoutMs?: number;
  readonly hold?: Hold<T>;
  readonly trace?: RequestTrace;
}

function call<T>(options: CallOptions<T> = {}): DeadlineCall<T> {
  const client = options.client ?? new Client();
  const parent = {
    priority: 'normal' as const,
    trace: options.trace ?? null,
    signal: client.signal,
    onAbort: (l: () => void) => client.onAbort(l),
  };
  return new DeadlineCall<T>(parent, options.timeoutMs ?? 60_000, 'chat', options.hold ?? null);
}

/** Work that runs until `finish` is called. */
function pending(): { work: () => Promise<string>; finish: () => void } {
  let finish = (): void => undefined;
  const done = new Promise<string>((resolve) => (finish = () => resolve('done')));
  return { work: () => done, finish };
}

/** A stream's hold, as the gateway's for text: the slot is released when the stream ends. */
const holdStream: Hold<AsyncIterable<number>> = (result, release) =>
  (async function* held() {
    try {
      yield* result;
    } finally {
      release();
    }
  })();

async function* numbers(): AsyncIterable<number> {
  yield 1;
  yield 2;
}

describe('admission wrapper', () => {
  it('sheds a call with 503 overloaded when every slot is busy and the queue is full, and counts it as queue_full', async () => {
    const queue = bulkhead(1, 0);
    const observer = new Recorder();
    const chain = admitted(queue, observer);
    const first = pending();
    const running = chain(first.work, call());
    await Promise.resolve();
    await assert.rejects(chain(first.work, call()), (e: ApiError) => {
      assert.equal(e.code, 'overloaded');
      assert.equal(e.status, 503);
      assert.equal(e.retryAfterS, 1);
      assert.equal(e.message, 'model "m" version "1" is at capacity: all 1 slots are busy and the queue of 0 is full');
      return true;
    });
    first.finish();
    assert.equal(await running, 'done');
    assert.deepEqual(observer.events, ['queued', 'shed queue_full']);
    assert.equal(queue.active, 0);
  });

  it('sheds a call whose deadline passes while it waits with 503 overloaded (queue_timeout), and drops it from the queue', async () => {
    const queue = bulkhead(1, 1);
    const observer = new Recorder();
    const chain = admitted(queue, observer);
    const first = pending();
    const running = chain(first.work, call());
    const late = call<string>({ timeoutMs: 5 });
    const shed = assert.rejects(chain(first.work, late), (e: ApiError) => {
      assert.equal(e.code, 'overloaded');
      assert.match(e.message, /is at capacity: waited past its deadline in the queue$/);
      return true;
    });
    await sleep(20); // the deadline's timer does not keep the process alive
    await shed;
    assert.equal(queue.queued, 0);
    first.finish();
    await running;
    assert.deepEqual(observer.events, ['queued', 'shed queue_timeout']);
  });

  it('gives a waiter whose client leaves ClientGoneError, shedding nothing', async () => {
    const queue = bulkhead(1, 1);
    const observer = new Recorder();
    const chain = admitted(queue, observer);
    const first = pending();
    const running = chain(first.work, call());
    const client = new Client();
    const waiting = chain(first.work, call({ client }));
    await Promise.resolve();
    client.leave();
    await assert.rejects(waiting, ClientGoneError);
    first.finish();
    await running;
    assert.deepEqual(observer.events, ['queued']);
    assert.equal(queue.active, 0);
  });

  it('holds the slot while the answer streams, and gives it to the next call when the stream ends', async () => {
    const queue = bulkhead(1, 1);
    const chain = admit<string>(queue, { model: 'm', version: '1', observer: NO_OBSERVER })(backend);
    const stream = await chain(() => Promise.resolve(numbers()), call({ hold: holdStream }));
    assert.equal(queue.active, 1, 'the stream has not been read yet');
    let next = false;
    const after = chain(() => Promise.resolve('next'), call<string>()).then((r) => (next = r === 'next'));
    await sleep(1);
    assert.equal(next, false, 'the next call waits for the stream');
    const read: number[] = [];
    for await (const n of stream) read.push(n);
    assert.deepEqual(read, [1, 2]);
    await after;
    assert.equal(next, true);
    assert.equal(queue.active, 0);
  });

  it('releases the slot as soon as a whole answer settles, or the call fails', async () => {
    const queue = bulkhead(1, 0);
    const chain = admitted(queue);
    assert.equal(await chain(() => Promise.resolve('whole'), call()), 'whole');
    assert.equal(queue.active, 0);
    await assert.rejects(
      chain(() => Promise.reject(new Error('down')), call()),
      /down/,
    );
    assert.equal(queue.active, 0);
    const failing: Hold<string> = () => {
      throw new Error('never held');
    };
    await assert.rejects(
      chain<string>(() => Promise.reject(new Error('down')), call({ hold: failing })),
      /down/,
    );
    assert.equal(queue.active, 0, 'a failed call is not held');
  });

  it('traces the wait as a queue stage, and a shed call as a failed one', async () => {
    const exporter = new InMemorySpanExporter();
    const tracer = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }).getTracer('test');
    const trace = new RequestTrace(tracer, tracer.startSpan('request'));
    const queue = bulkhead(1, 0);
    const chain = admitted(queue);
    const first = pending();
    const running = chain(first.work, call({ trace }));
    await Promise.resolve();
    await assert.rejects(chain(first.work, call({ trace })), ApiError);
    first.finish();
    await running;
    const queued = exporter.getFinishedSpans().filter((s) => s.name === 'queue');
    assert.equal(queued.length, 2);
    assert.equal(queued[0]?.status.code, 0, 'admitted: unset status');
    assert.equal(queued[1]?.attributes['error.type'], 'overloaded');
  });
});
