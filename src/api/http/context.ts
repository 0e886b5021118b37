/**
 * One HTTP model call through the envelope (../envelope.ts): its request is the body, read with a
 * limit, parsed and checked against its route's compiled schema; it answers with a status, headers
 * and a body written whole or streamed, and errors in its protocol's JSON shape.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline, type Readable } from 'node:stream';
import type { ValidateFunction } from 'ajv';
import type { TraceAttributes } from '../../core/call.js';
import { ApiError, clientClosedError, ERROR_CATALOGUE, fastError } from '../../core/errors.js';
import { parseJsonBody, type JsonBodyOptions } from '../../core/json.js';
import type { RequestContext } from '../../pipeline/context.js';
import type { Principal } from '../../tenancy/directory.js';
import { drained } from '../drain.js';
import { CallContext, type CallRoute, type Envelope, type Peer, type RequestHeaders } from '../envelope.js';
import { validationError, type AjvError } from '../errors.js';
import { errorHeaders, kserveErrorBody } from './errors.js';
import { openaiErrorBody } from '../../protocols/openai/errors.js';
import { anthropicErrorBody, anthropicStatus } from '../../protocols/anthropic/errors.js';

/** The error shape of a route: OpenAI's, the Open Inference Protocol's, or Anthropic's. */
export type HttpProtocol = 'openai' | 'kserve' | 'anthropic';

/** What a handler answers: status, headers, and a body to write whole or to stream. */
export interface HttpResult {
  readonly status: number;
  /** A fresh object per result: the writer adds `x-request-id` and `content-length` to it. */
  readonly headers: Record<string, string>;
  readonly body: string | Buffer | Readable | EventStream;
}

/** Text chunks written as they come (Server-Sent Events), each straight to the socket. */
export interface EventStream {
  readonly chunks: AsyncIterable<string>;
}

/** Path parameters of KServe URLs. */
export interface CallParams {
  readonly model: string | undefined;
  readonly version: string | undefined;
}

/** A model-call route as compiled once (model-calls.ts): its body check, error shape and handler. */
export interface HttpRoute extends CallRoute {
  readonly validate: ValidateFunction;
  readonly protocol: HttpProtocol;
  readonly handle: (body: unknown, ctx: RequestContext, params: CallParams) => Promise<HttpResult>;
}

/** What every model call of one HTTP server reads the same way: body limits, and whether it is draining. */
export interface HttpWire {
  /** The largest body accepted, in bytes (`server.body_limit_bytes`). */
  readonly bodyLimit: number;
  /** Nesting bounded (`server.max_json_depth`) and prototype poisoning refused. */
  readonly json: JsonBodyOptions;
  /** While draining, each answer asks its client to open its next request elsewhere. */
  readonly lifecycle: { readonly draining: boolean };
}

const CLIENT_CLOSED = ERROR_CATALOGUE.client_closed_request.status;

/**
 * An HTTP model call as the pipeline's RequestContext: a version pinned by the URL wins over the
 * `x-model-version` header; `x-request-timeout-ms` asks for a deadline; the signal aborts when the
 * client leaves before the answer is complete.
 */
export class HttpContext extends CallContext<string, HttpResult> {
  readonly #wire: HttpWire;
  readonly #route: HttpRoute;
  readonly #params: CallParams;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;

  /** `path`: the request's path, without its query. */
  constructor(
    envelope: Envelope,
    wire: HttpWire,
    route: HttpRoute,
    params: CallParams,
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
  ) {
    super(envelope, route, req.headers['x-request-id'], req.headers.traceparent, path);
    this.#wire = wire;
    this.#route = route;
    this.#params = params;
    this.#req = req;
    this.#res = res;
  }

  get method(): string {
    return 'POST';
  }

  get url(): string | undefined {
    return this.#req.url;
  }

  onAbort(listener: () => void): void {
    const res = this.#res;
    if (res.closed) {
      if (!res.writableFinished) listener();
      return;
    }
    res.once('close', () => res.writableFinished || listener());
  }

  protected header(name: string): string | string[] | undefined {
    return this.#req.headers[name];
  }

  protected get requestHeaders(): RequestHeaders {
    return this.#req.headers;
  }

  protected get peer(): Peer {
    return this.#req.socket;
  }

  // Authentication came first (CallContext.run): an unknown caller costs no reading or parsing.
  protected read(): Promise<string> {
    return readBody(this.#req, this.#wire.bodyLimit);
  }

  protected serve(text: string, principal: Principal | null): Promise<HttpResult> {
    const route = this.#route;
    const body = parse(text, this.#wire.json);
    if (!route.validate(body)) throw validationError(route.validate.errors as AjvError[]);
    if (this.trace !== null) this.trace.span.setAttributes(requestAttributes(body));
    // `Model-Version` is the design's name for the pin; `x-model-version` the one this server answers with.
    const headers = this.#req.headers;
    const header = headers['x-model-version'] ?? headers['model-version'];
    this.open(principal, this.#params.version ?? (typeof header === 'string' && header !== '' ? header : undefined));
    return route.handle(body, this, this.#params);
  }

  protected requestTimeout(): number | undefined {
    return requestTimeout(this.#req.headers['x-request-timeout-ms']);
  }

  protected answer(result: HttpResult): number | null {
    if (this.#wire.lifecycle.draining) result.headers.connection = 'close';
    const body = result.body;
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      write(this.#res, this.id, result.status, result.headers, body, null);
      return result.status;
    }
    const observed = this.observed;
    write(this.#res, this.id, result.status, result.headers, body, observed ? this : null);
    if (observed) this.#recordStream(result.status);
    return null;
  }

  protected refuse(e: ApiError): boolean {
    const res = this.#res;
    if (res.headersSent) {
      res.destroy();
      return false;
    }
    if (!this.#req.complete) this.#req.resume(); // a body left unread (refused before reading) is discarded
    const protocol = this.#route.protocol;
    const body = protocol === 'openai' ? openaiErrorBody(e) : protocol === 'anthropic' ? anthropicErrorBody(e) : kserveErrorBody(e);
    const status = protocol === 'anthropic' ? anthropicStatus(e) : e.status;
    write(res, this.id, status, { ...errorHeaders(e), 'content-type': 'application/json' }, body, null);
    return true;
  }

  protected outcome(status: number): TraceAttributes {
    return { 'http.response.status_code': status };
  }

  /** A stream is recorded when it ends: as 499 `client_closed_request` when the client cut it before its end. */
  #recordStream(status: number): void {
    const res = this.#res;
    if (res.writableFinished) return this.ended(status, '');
    res.once('close', () => {
      // The headers said 200; what the call came to is the client leaving before the last byte.
      const cut = !res.writableFinished;
      this.ended(cut ? CLIENT_CLOSED : status, cut ? 'client_closed_request' : '');
    });
  }
}

/** GenAI request attributes of a traced call: the sampling parameters it asked for. */
function requestAttributes(body: unknown): TraceAttributes {
  const b = body as Record<string, unknown>;
  const attributes: Record<string, number> = {};
  const maxTokens = b.max_completion_tokens ?? b.max_tokens ?? b.max_output_tokens;
  if (typeof maxTokens === 'number') attributes['gen_ai.request.max_tokens'] = maxTokens;
  if (typeof b.temperature === 'number') attributes['gen_ai.request.temperature'] = b.temperature;
  if (typeof b.top_p === 'number') attributes['gen_ai.request.top_p'] = b.top_p;
  return attributes;
}

/** `x-request-timeout-ms`: a positive whole number of milliseconds, else 400. */
function requestTimeout(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const ms = Number(header);
  if (typeof header !== 'string' || !/^\d+$/.test(header) || ms < 1) {
    throw fastError(
      'invalid_request',
      `the header x-request-timeout-ms must be a positive whole number of milliseconds, got ${JSON.stringify(header).slice(0, 40)}`,
      'x-request-timeout-ms',
    );
  }
  return ms;
}

/**
 * Writes a result; `headers` is the handler's fresh object, completed here rather than copied.
 * A stream marks `timed`'s first byte (its first token: backends send nothing before one).
 */
function write(
  res: ServerResponse,
  id: string,
  status: number,
  headers: Record<string, string>,
  body: HttpResult['body'],
  timed: HttpContext | null,
): void {
  headers['x-request-id'] = id;
  if (typeof body === 'string' || Buffer.isBuffer(body)) {
    headers['content-length'] = String(Buffer.byteLength(body));
    res.writeHead(status, headers);
    res.end(body);
    return;
  }
  res.writeHead(status, headers);
  const first = timed === null ? null : () => (timed.firstByteAt = performance.now());
  if ('chunks' in body) return void writeChunks(res, body.chunks[Symbol.asyncIterator](), first);
  // pipeline destroys the body when the client goes away: that cancels an upstream request or a generator.
  pipeline(body, res, () => undefined);
  if (first !== null) body.once('data', first);
}

/**
 * Writes each chunk as soon as it is produced (a stream.Readable in between costs a few
 * allocations and ticks per chunk, and per-token chunks are the hot path of generation). Waits
 * for `drain` when the socket is full; when the client goes away it ends the iterator, which
 * cancels the generation behind it.
 */
async function writeChunks(res: ServerResponse, chunks: AsyncIterator<string>, first: (() => void) | null): Promise<void> {
  try {
    let next = await chunks.next();
    if (next.done !== true) first?.();
    for (; next.done !== true; next = await chunks.next()) {
      if (res.destroyed) break;
      if (!res.write(next.value)) await drained(res);
    }
  } catch {
    // The producer failed after the headers went out; it has written its own error event where it could.
  } finally {
    if (res.destroyed) await chunks.return?.();
    else res.end();
  }
}

/** Reads the whole body as text; a declared or actual size over `limit` is a 413 before more is read. */
function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) {
    req.resume();
    return Promise.reject(tooLarge(limit));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    // Decoded once at the end, so a multi-byte character split across chunks stays whole.
    req.once('end', () => resolve(chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8')));
    // The request stream fails only when the connection does (`aborted`, a reset): the client went away.
    req.once('error', () => reject(clientClosedError()));
  });
}

function tooLarge(limit: number): ApiError {
  return fastError('body_too_large', `the body is larger than the limit of ${limit} bytes`);
}

/** The body as JSON: depth bounded, prototype poisoning refused, the parser's message kept. */
function parse(text: string, options: JsonBodyOptions): unknown {
  if (text.length === 0) throw fastError('invalid_json', 'the body is empty; send a JSON object');
  return parseJsonBody(text, options);
}
