/**
 * One HTTP call to an upstream over undici's dispatch API. Measured cheaper than `pool.request`
 * on the proxy path (no Readable per response unless the caller streams, no AbortController):
 * a whole body is gathered into one Buffer; a stream is a Readable whose backpressure pauses
 * the upstream socket, and whose destruction (client gone) aborts the upstream request.
 */
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ClientGoneError, type Cancellation } from '../core/call.js';
import { lazyModule } from '../core/lazy-module.js';

/**
 * undici, loaded when the first upstream pool is made. Every process that reads a config loads the backend kinds, and undici's 400
 * modules cost about 4 MiB of heap (8 MiB RSS) in each, the cluster primary's too, where no config calls out.
 * Its errors are only ever tested after a pool made one, when it is loaded already.
 */
export const undici = lazyModule<typeof import('undici')>('undici');

/** An upstream's answer, whatever its status: one of 400 or more always comes with its whole body. */
export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  /** The whole body, or a stream of it when `stream` was asked and the status is < 400. */
  readonly body: Buffer | Readable;
}

/**
 * A call that failed before it settled (no answer, or one cut short). `sent`: whether the request may have reached the
 * upstream. undici calls `onRequestStart` on a connected socket just before it writes the
 * request, and 7.x's handler API has no `onRequestSent` (its UnwrapHandler drops it; even that
 * fires when the body is handed to the socket, not when the upstream read it). So an error before
 * `onRequestStart` (refused, connect time-out, reset or TLS failure while connecting) proves that
 * nothing was sent; any error after it may follow a request the upstream received and started.
 */
export class UpstreamCallError extends Error {
  readonly sent: boolean;

  constructor(cause: Error, sent: boolean) {
    super(cause.message, { cause });
    this.name = 'UpstreamCallError';
    this.sent = sent;
  }
}

/** The reason an upstream call is aborted when its client disconnects. */
type Controller = Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestStart']>>[0];

/** Sends one request; rejects with an {@link UpstreamCallError} when it fails. */
export function upstreamCall(
  dispatcher: Dispatcher,
  options: Dispatcher.DispatchOptions,
  call: Cancellation,
  stream: boolean,
): Promise<UpstreamResponse> {
  return new Promise<UpstreamResponse>((resolve, reject) => {
    let chunks: Buffer[] = [];
    let readable: Readable | null = null;
    let status = 0;
    let headers: Record<string, string | string[] | undefined> = {};
    let settled = false;
    let ended = false;
    let sent = false;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(controller: Controller) {
        sent = true;
        call.onAbort(() => ended || controller.abort(new ClientGoneError()));
      },
      onResponseStart(controller: Controller, statusCode: number, responseHeaders: Record<string, string | string[]>) {
        status = statusCode;
        headers = responseHeaders;
        if (!stream || statusCode >= 400) return;
        readable = new Readable({
          read: () => controller.resume(),
          destroy: (err, done) => {
            if (!ended) controller.abort(err ?? new ClientGoneError());
            done(err);
          },
        });
        settled = true;
        resolve({ status, headers, body: readable });
      },
      onResponseData(controller: Controller, chunk: Buffer) {
        if (readable === null) chunks.push(chunk);
        else if (!readable.push(chunk)) controller.pause();
      },
      onResponseEnd() {
        ended = true;
        if (readable !== null) return void readable.push(null);
        settled = true;
        const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
        chunks = [];
        resolve({ status, headers, body });
      },
      onResponseError(_controller: Controller, error: Error) {
        ended = true;
        if (!settled) {
          settled = true;
          reject(new UpstreamCallError(error, sent));
        } else readable?.destroy(error);
      },
    };
    dispatcher.dispatch(options, handler);
  });
}
