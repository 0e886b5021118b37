/**
 * Reading a remote upstream's answer body, for every remote kind: the data of each Server-Sent
 * Event as it arrives, or the whole JSON body gathered; the body is destroyed when reading ends
 * (a client that left cancels the upstream request), and a body that fails while it is read
 * becomes the catalogue's upstream error.
 */
import type { Readable } from 'node:stream';
import { ClientGoneError, isClientGone } from '../core/call.js';
import { ApiError } from '../core/errors.js';
import { SseParser } from '../core/sse.js';
import { undici } from './upstream-call.js';

/** The data of each event of a Server-Sent Events body, in order (what ends the stream, such as `[DONE]`, is the reader's to say). */
export async function* sseData(body: Buffer | Readable): AsyncGenerator<string, void, undefined> {
  const parser = new SseParser();
  if (Buffer.isBuffer(body)) {
    for (const event of parser.push(body.toString('utf8'))) yield event.data;
    return;
  }
  body.setEncoding('utf8');
  try {
    for await (const piece of body as AsyncIterable<string>) {
      for (const event of parser.push(piece)) yield event.data;
    }
  } catch (err) {
    throw streamFailure(err);
  } finally {
    body.destroy(); // a client that left cancels the upstream request
  }
}

/** A whole JSON body, gathered. */
export async function* wholeData(body: Buffer | Readable): AsyncGenerator<string, void, undefined> {
  if (Buffer.isBuffer(body)) {
    yield body.toString('utf8');
    return;
  }
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of body as AsyncIterable<Buffer | string>) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  } catch (err) {
    throw streamFailure(err);
  } finally {
    body.destroy();
  }
  yield Buffer.concat(chunks).toString('utf8');
}

/**
 * Why reading an answer's body failed: the client leaving stays what it is; the upstream cutting
 * the body or falling silent is the upstream's failure, after it had started the call.
 */
function streamFailure(err: unknown): unknown {
  if (err instanceof ApiError || isClientGone(err)) return err;
  const undiciErrors = undici().errors;
  if (err instanceof undiciErrors.RequestAbortedError) return new ClientGoneError();
  if (err instanceof undiciErrors.BodyTimeoutError) {
    return new ApiError('upstream_timeout', 'the upstream model server stopped sending its answer (no data within the time-out)', null, {
      cause: err,
      mayHaveRun: true,
    });
  }
  const code = (err as { code?: unknown } | null)?.code;
  const why = typeof code === 'string' ? code : (err as Error | null)?.message;
  return new ApiError('upstream_unavailable', `the upstream model server cut its answer short (${why ?? 'unknown'})`, null, {
    cause: err,
    mayHaveRun: true,
  });
}
