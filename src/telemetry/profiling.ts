/**
 * Profiles on demand, like Go's pprof endpoints: a CPU profile over N seconds (Chrome DevTools'
 * `.cpuprofile`) and a heap snapshot (`.heapsnapshot`), taken in the worker that serves the call
 * through the inspector module. Nothing runs until asked; one profile at a time per worker.
 */
import { Session } from 'node:inspector/promises';
import { PassThrough, type Readable } from 'node:stream';
import { fastError } from '../core/errors.js';

/** Longest CPU profile, in seconds: longer ones would hold a connection past most proxies' timeouts. */
export const MAX_PROFILE_SECONDS = 60;

let busy = false;

function claim(): void {
  if (busy) throw fastError('invalid_request', 'a profile is already being taken in this worker; try again when it is done');
  busy = true;
}

/** Samples the CPU for `seconds` (every 100 µs by default) and returns the profile as JSON. */
export async function cpuProfile(seconds: number, intervalUs = 100): Promise<string> {
  claim();
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: intervalUs });
    await session.post('Profiler.start');
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    const { profile } = await session.post('Profiler.stop');
    return JSON.stringify(profile);
  } finally {
    session.disconnect();
    busy = false;
  }
}

/** A heap snapshot, streamed as V8 writes it (it can be hundreds of megabytes). The process pauses while V8 walks the heap. */
export function heapSnapshot(): Readable {
  claim();
  const out = new PassThrough();
  const session = new Session();
  session.connect();
  session.on('HeapProfiler.addHeapSnapshotChunk', (m) => out.write(m.params.chunk));
  session
    .post('HeapProfiler.takeHeapSnapshot', { reportProgress: false })
    .then(
      () => out.end(),
      (err: Error) => out.destroy(err),
    )
    .finally(() => {
      session.disconnect();
      busy = false;
    });
  return out;
}
