/**
 * The bulkhead of a version as a wrapper: a call waits for a slot of the version's admission queue
 * (scheduling/admission.ts) by priority, is shed with 503 `overloaded` when the queue is full or
 * its deadline passes while it waits, and holds its slot until the answer is done: a whole answer
 * when it settles, a stream (the request's `hold`) when the stream ends. A version whose
 * concurrency is not capped has no such wrapper.
 */
import { ClientGoneError } from '../core/call.js';
import { overloadedError, type ApiError } from '../core/errors.js';
import { NO_OBSERVER, type DeploymentObserver } from '../core/observer.js';
import type { Wrapper } from '../core/policy.js';
import { QueueFull, type Admission } from '../scheduling/admission.js';

/** Which version the queue is for (named in the 503), and who is told of queue times and sheds. */
export interface AdmitOptions {
  readonly model: string;
  readonly version: string;
  readonly observer: DeploymentObserver;
}

/** The wrapper that admits calls through `queue`, the version's bulkhead. */
export function admit<V>(queue: Admission, options: AdmitOptions): Wrapper<V> {
  const { observer } = options;
  // Known per version: whether queue times are measured for every call, or only for traced ones.
  const watched = observer !== NO_OBSERVER;
  const atCapacity = `model "${options.model}" version "${options.version}" is at capacity: `;
  const overloaded = (why: string): ApiError => overloadedError(atCapacity + why);
  // One for the version, not one per call: a hold calls it once, whichever call it is for.
  const release = (): void => queue.release();
  return (next) =>
    async function admitted(work, ctx) {
      const trace = ctx.trace;
      const timed = watched || trace !== null;
      const arrived = timed ? performance.now() : 0;
      try {
        await queue.acquire(
          ctx.priority,
          (listener) => ctx.onAbort(listener),
          () => {
            if (!ctx.expired) return new ClientGoneError();
            observer.shed('queue_timeout');
            return overloaded('waited past its deadline in the queue');
          },
        );
      } catch (err) {
        let error = err;
        if (err instanceof QueueFull) {
          observer.shed('queue_full');
          error = overloaded(`all ${queue.active} slots are busy and ${err.message}`);
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
        const result = await next(work, ctx);
        const hold = ctx.hold;
        if (hold === null) return result;
        held = true;
        return hold(result, release);
      } finally {
        if (!held) queue.release();
      }
    };
}
