/**
 * gRPC over HTTP/2 (the gRPC project's PROTOCOL-HTTP2 spec), on the server's own HTTP/2 connection
 * code: length-prefixed messages, `grpc-timeout` deadlines, cancellation by RST_STREAM, and
 * statuses in trailers. Services are registered from proto-loader's definitions (the same ones
 * stock clients load), so the messages are encoded by protobuf.js exactly as @grpc/grpc-js would.
 */
import { EventEmitter } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import type { MethodDefinition, ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { H2, H2Connection, type H2Stream } from './h2/connection.js';
import { headerValue, indexed, literal } from './h2/hpack.js';

/** gRPC status codes (the gRPC project's statuscodes.md). */
export const enum Status {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/** Metadata to send, as a flat list: name, value, name, value. Names lower-case; values printable ASCII. */
export type MetadataList = string[];

export interface TransportOptions {
  /** The largest request message accepted, in bytes; a larger one is RESOURCE_EXHAUSTED. */
  readonly maxMessageBytes: number;
  /** Streams one connection may have open at once. */
  readonly maxConcurrentStreams?: number;
  /** The largest request metadata, in bytes (as HTTP/2 counts a header list). */
  readonly maxMetadataBytes?: number;
  /** Told of an exception a handler threw synchronously (a bug): its connection is closed. */
  readonly onError?: (err: unknown) => void;
}

/** A unary or server-streaming method's handler: the request decoded; the answer through `call`. */
export type RequestHandler = (request: unknown, call: GrpcCall) => void;
/** A client- or bidirectional-streaming method's handler: messages arrive through `call.onMessage`. */
export type StreamingHandler = (call: GrpcCall) => void;

interface Route {
  readonly method: MethodDefinition<unknown, unknown>;
  readonly handler: RequestHandler | StreamingHandler;
}

const RESPONSE_HEADERS = (() => {
  const out: number[] = [];
  indexed(out, ':status', '200');
  literal(out, 'content-type', 'application/grpc');
  return Buffer.from(out);
})();
const OK_TRAILERS = block(null, ['grpc-status', '0']);

/** A header block of literals, after `prefix` (OK's status in trailers, or the response headers of a trailers-only answer). */
function block(prefix: Buffer | null, fields: readonly string[]): Buffer {
  const out: number[] = [];
  for (let i = 0; i < fields.length; i += 2) literal(out, fields[i]!, printable(fields[i + 1]!));
  return prefix === null ? Buffer.from(out) : Buffer.concat([prefix, Buffer.from(out)]);
}

/** A metadata value as gRPC allows it: printable ASCII, anything else replaced. */
function printable(value: string): string {
  return /^[\x20-\x7e]*$/.test(value) ? value : value.replace(/[^\x20-\x7e]/g, '?');
}

/** grpc-message's encoding: UTF-8, with bytes outside printable ASCII and '%' percent-encoded. */
function percentEncode(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** `grpc-timeout` as milliseconds; undefined when absent, NaN when malformed. */
function timeoutMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  return match === null ? Number.NaN : Number(match[1]) * TIMEOUT_UNITS[match[2]!]!;
}

/** A well-formed gRPC content type: application/grpc, optionally +proto or with parameters. */
function isGrpcContentType(value: string | undefined): boolean {
  if (value === undefined || !value.startsWith('application/grpc')) return false;
  const rest = value.charCodeAt(16);
  return Number.isNaN(rest) || rest === 0x2b /* + */ || rest === 0x3b; /* ; */
}

type Hook = () => void;

/** One call: the request's metadata, its deadline and cancellation, and the ways to answer it. */
export class GrpcCall {
  /** A request message, for streaming requests. */
  onMessage: (message: unknown) => void = () => {};
  /** The client finished sending, for streaming requests. */
  onHalfClose: Hook = () => {};
  /** When the client's deadline passes: epoch ms, or Infinity. */
  readonly deadline: number;
  #cancelled = false;
  #listeners: Hook[] = [];
  #headersSent = false;
  #done = false;
  #timer: NodeJS.Timeout | null = null;

  constructor(
    readonly path: string,
    private readonly stream: H2Stream,
    private readonly method: MethodDefinition<unknown, unknown> | null,
    timeout: number | undefined,
  ) {
    this.deadline = timeout === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeout;
    if (timeout !== undefined) {
      this.#timer = setTimeout(() => {
        this.fail(Status.DEADLINE_EXCEEDED, 'the deadline passed');
        // Trailers stuck behind data the client is not reading: the stream is reset instead.
        if (this.stream.congested) this.stream.reset(H2.CANCEL);
        this.#cancel();
      }, timeout);
    }
  }

  /** A request metadata value (the first, if sent several times); undefined when absent. */
  metadata(name: string): string | undefined {
    return headerValue(this.stream.headers, name);
  }

  /** Whether the client cancelled (RST_STREAM, a dropped connection) or the deadline passed. */
  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** Whether the call has its status. */
  get done(): boolean {
    return this.#done;
  }

  onCancel(listener: Hook): void {
    if (this.#cancelled) listener();
    else this.#listeners.push(listener);
  }

  /** Answers a unary call: headers, the message and OK with `trailers`, in one write. */
  reply(response: unknown, trailers: MetadataList = []): void {
    if (this.#done) return;
    this.#send(response);
    this.end(trailers);
  }

  /** Sends one message of a streamed answer. */
  write(response: unknown): void {
    if (this.#done) return;
    this.#send(response);
  }

  /** Resolves when more messages would not just pile up (the windows and the socket have room). */
  drained(): Promise<void> {
    return this.stream.drained();
  }

  /** Ends the call with OK. */
  end(trailers: MetadataList = []): void {
    if (this.#finish()) return;
    this.stream.end(trailers.length === 0 ? OK_TRAILERS : block(OK_TRAILERS, trailers));
  }

  /** Ends the call with an error status: trailers-only when nothing was sent yet. */
  fail(code: Status, message: string, trailers: MetadataList = []): void {
    if (this.#finish()) return;
    const fields = ['grpc-status', String(code), 'grpc-message', percentEncode(message), ...trailers];
    if (this.#headersSent) this.stream.end(block(null, fields));
    else this.stream.respond(block(RESPONSE_HEADERS, fields), true);
  }

  /** @internal The transport's cancellation: the stream was reset or the connection is gone. */
  cancel(): void {
    this.#finish();
    this.#cancel();
  }

  #send(response: unknown): void {
    const message = (this.method as MethodDefinition<unknown, unknown>).responseSerialize(response);
    const frame = Buffer.allocUnsafe(5 + message.length);
    frame[0] = 0;
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    if (!this.#headersSent) {
      this.#headersSent = true;
      this.stream.respond(RESPONSE_HEADERS);
    }
    this.stream.write(frame);
  }

  /** Marks the call done; true when it already was. */
  #finish(): boolean {
    if (this.#done) return true;
    this.#done = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    return false;
  }

  #cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    const listeners = this.#listeners;
    this.#listeners = [];
    for (const listener of listeners) listener();
  }
}

/** Reassembles length-prefixed messages from DATA chunks; a message larger than the limit fails the call. */
class MessageReader {
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** The length, prefix included, of the message being read; -1 until its prefix is in. */
  #need = -1;

  constructor(private readonly maxBytes: number) {}

  /** Adds a chunk; returns the complete messages it finished (flag byte and payload), or a reason to fail. */
  push(chunk: Buffer): Array<{ compressed: boolean; payload: Buffer }> | string {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const out: Array<{ compressed: boolean; payload: Buffer }> = [];
    while (this.#buffered >= 5) {
      if (this.#need < 0) {
        const head = (this.#chunks[0] as Buffer).length >= 5 ? (this.#chunks[0] as Buffer) : this.#collapse();
        const length = head.readUInt32BE(1);
        if (length > this.maxBytes)
          return `the request message has ${length} bytes; the most accepted is ${this.maxBytes} (server.body_limit_bytes)`;
        this.#need = 5 + length;
      }
      // A message in many frames is copied together once, when its last byte is in.
      if (this.#buffered < this.#need) break;
      const whole = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : this.#collapse();
      out.push({ compressed: whole[0] !== 0, payload: whole.subarray(5, this.#need) });
      const rest = whole.subarray(this.#need);
      this.#chunks = rest.length > 0 ? [rest] : [];
      this.#buffered = rest.length;
      this.#need = -1;
    }
    return out;
  }

  /** Bytes of an unfinished message. */
  get partial(): number {
    return this.#buffered;
  }

  #collapse(): Buffer {
    const whole = Buffer.concat(this.#chunks);
    this.#chunks = [whole];
    return whole;
  }
}

/** A gRPC server on a TCP port: routes each stream to its method's handler. */
export class GrpcTransport {
  readonly #server: Server;
  readonly #connections = new Set<H2Connection>();
  readonly #routes = new Map<string, Route>();
  readonly #options: Required<TransportOptions>;
  /** Called when the last connection closes, while closing. */
  #idle: Hook | null = null;

  constructor(options: TransportOptions) {
    this.#options = { maxConcurrentStreams: 1000, maxMetadataBytes: 64 * 1024, onError: () => {}, ...options };
    this.#server = createServer((socket) => this.#accept(socket));
  }

  /** Registers a method: `handler` answers through the call. */
  handle(method: MethodDefinition<unknown, unknown>, handler: RequestHandler | StreamingHandler): void {
    this.#routes.set(method.path, { method, handler });
  }

  /**
   * Registers a service the way @grpc/grpc-js's Server.addService does, for implementations written
   * against it: server reflection, whose one method streams both ways. Each call becomes a
   * grpc-js-like duplex (`data` and `end` events in, `write` and `end` out). Only methods with
   * streamed requests are taken; ours are registered with `handle`.
   */
  addService(service: ServiceDefinition, implementation: UntypedServiceImplementation): void {
    for (const [name, method] of Object.entries(service)) {
      const fn = implementation[name] as ((call: EventEmitter) => void) | undefined;
      if (fn === undefined) continue;
      if (!method.requestStream) throw new Error(`addService takes methods with streamed requests; ${method.path} is not one`);
      this.handle(method, (call: GrpcCall) => {
        const stream = Object.assign(new EventEmitter(), {
          write: (message: unknown) => call.write(message),
          end: () => call.end(),
        });
        call.onMessage = (message) => stream.emit('data', message);
        call.onHalfClose = () => stream.emit('end');
        call.onCancel(() => stream.emit('cancelled'));
        fn(stream);
      });
    }
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        const address = this.#server.address();
        resolve(typeof address === 'object' && address !== null ? address.port : port);
      });
    });
  }

  /** Stops taking connections and calls; calls in flight finish within `timeoutMs`, then are cancelled. */
  close(timeoutMs: number): Promise<void> {
    if (this.#server.listening) this.#server.close();
    for (const connection of this.#connections) connection.shutdown();
    if (this.#connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const force = setTimeout(() => {
        for (const connection of [...this.#connections]) connection.destroy();
        resolve();
      }, timeoutMs);
      force.unref();
      this.#idle = () => {
        clearTimeout(force);
        resolve();
      };
    });
  }

  /** Serves a connection accepted elsewhere (the cluster primary's, handed over unread); `onClose` when it ends. */
  adopt(socket: Socket, onClose: () => void): void {
    this.#accept(socket, onClose);
  }

  #accept(socket: Socket, onClose?: () => void): void {
    const connection = new H2Connection(
      socket,
      { onStream: (stream) => this.#stream(stream) },
      {
        maxConcurrentStreams: this.#options.maxConcurrentStreams,
        streamWindow: 1 << 20,
        connectionWindow: 16 << 20,
        maxHeaderListSize: this.#options.maxMetadataBytes,
      },
    );
    this.#connections.add(connection);
    connection.onError = this.#options.onError;
    connection.onClose = () => {
      onClose?.();
      this.#connections.delete(connection);
      if (this.#connections.size === 0) this.#idle?.();
    };
  }

  #stream(stream: H2Stream): void {
    const path = headerValue(stream.headers, ':path') ?? '';
    if (headerValue(stream.headers, ':method') !== 'POST') return this.#http(stream, 405);
    if (!isGrpcContentType(headerValue(stream.headers, 'content-type'))) return this.#http(stream, 415);
    const route = this.#routes.get(path) ?? null;
    const timeout = timeoutMs(headerValue(stream.headers, 'grpc-timeout'));
    const call = new GrpcCall(path, stream, route?.method ?? null, Number.isNaN(timeout) ? undefined : timeout);
    stream.onReset = () => call.cancel();
    if (stream.oversize)
      return call.fail(Status.RESOURCE_EXHAUSTED, `the request metadata is over ${this.#options.maxMetadataBytes} bytes`);
    if (Number.isNaN(timeout))
      return call.fail(Status.INVALID_ARGUMENT, `grpc-timeout "${headerValue(stream.headers, 'grpc-timeout')}" is malformed`);
    if (route === null) return call.fail(Status.UNIMPLEMENTED, `method ${path} is not served here`);
    const { method, handler } = route;
    const encoding = headerValue(stream.headers, 'grpc-encoding');
    const reader = new MessageReader(this.#options.maxMessageBytes);
    let request: unknown = NO_MESSAGE;
    stream.onData = (chunk) => {
      if (call.done) return;
      const messages = reader.push(chunk);
      if (typeof messages === 'string') {
        call.fail(Status.RESOURCE_EXHAUSTED, messages);
        return call.cancel();
      }
      for (const { compressed, payload } of messages) {
        if (compressed) {
          const named = encoding !== undefined && encoding !== 'identity';
          call.fail(
            named ? Status.UNIMPLEMENTED : Status.INTERNAL,
            named
              ? `grpc-encoding "${encoding}" is not supported; send messages uncompressed`
              : 'a compressed message without grpc-encoding',
          );
          return call.cancel();
        }
        let message: unknown;
        try {
          message = method.requestDeserialize(payload);
        } catch {
          call.fail(Status.INVALID_ARGUMENT, `the request is not a valid ${path.slice(1).replace('/', '.')} request message`);
          return call.cancel();
        }
        if (method.requestStream) call.onMessage(message);
        else if (request === NO_MESSAGE) request = message;
        else {
          call.fail(Status.INVALID_ARGUMENT, `${path} takes one request message; a second came`);
          return call.cancel();
        }
      }
    };
    stream.onEnd = () => {
      if (call.done) return;
      if (reader.partial > 0) return call.fail(Status.INVALID_ARGUMENT, 'the request ended inside a message');
      if (method.requestStream) return call.onHalfClose();
      if (request === NO_MESSAGE) return call.fail(Status.INVALID_ARGUMENT, `${path} takes one request message; none came`);
      (handler as RequestHandler)(request, call);
    };
    if (method.requestStream) (handler as StreamingHandler)(call);
  }

  /** An answer in HTTP's terms, to a request that is not gRPC at all. */
  #http(stream: H2Stream, status: number): void {
    const out: number[] = [];
    literal(out, ':status', String(status));
    stream.respond(Buffer.from(out), true);
  }
}

const NO_MESSAGE = Symbol('no message');
