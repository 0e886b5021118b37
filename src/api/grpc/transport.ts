/**
 * gRPC over HTTP/2 (the gRPC project's PROTOCOL-HTTP2 spec) on node:http2: nghttp2 does the frames,
 * HPACK, flow control and the RFC's rules; this routes each stream to its method, reads its
 * length-prefixed messages, and answers through a GrpcCall (call.ts). Services are registered from
 * proto-loader's definitions (the same ones stock clients load), so the messages are encoded by
 * protobuf.js exactly as @grpc/grpc-js would.
 */
import { EventEmitter } from 'node:events';
import {
  constants,
  createSecureServer,
  createServer,
  type Http2SecureServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type SecureServerOptions,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { MethodDefinition, ServiceDefinition, UntypedServiceImplementation } from '@grpc/grpc-js';
import { GrpcCall, Status } from './call.js';
import { checkPreface, Connection } from './connection.js';

export { GrpcCall, Status, type MetadataList } from './call.js';

/** A GrpcTransport's limits, time-outs and TLS; an optional one left out takes its default. */
export interface TransportOptions {
  /** The largest request message accepted, in bytes; a larger one is RESOURCE_EXHAUSTED. */
  readonly maxMessageBytes: number;
  /** Bytes of unfinished request messages one connection may hold, summed over its calls (default: 2 x maxMessageBytes). */
  readonly maxConnectionBufferBytes?: number;
  /** Streams one connection may have open at once (default 100). */
  readonly maxConcurrentStreams?: number;
  /** Open connections accepted (default 10,000); past it, new ones are closed at once. */
  readonly maxConnections?: number;
  /** A connection with no call open for this long is closed (default 300 s). */
  readonly idleTimeoutMs?: number;
  /** The TLS handshake and the HTTP/2 preface must arrive within this (default 10 s). */
  readonly handshakeTimeoutMs?: number;
  /** A connection silent this long gets a PING, and is closed if that is not answered within as long again (default 30 s). */
  readonly keepaliveMs?: number;
  /** PEM certificate chain and key: serve TLS with ALPN h2; null: cleartext (h2c with prior knowledge). */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | null;
  /** Told of an exception a handler threw synchronously (a bug): its connection is closed. */
  readonly onError?: (err: unknown) => void;
}

/** A unary or server-streaming method's handler: the request decoded; the answer through `call`. */
export type RequestHandler = (request: unknown, call: GrpcCall) => void;
/** A client- or bidirectional-streaming method's handler: messages arrive through `call.onMessage`. */
export type StreamingHandler = (call: GrpcCall) => void;
/**
 * A check of a call's metadata before any of its request is read (authentication): its result is
 * `call.admitted`. If it throws, the request is not read, `call.refusal` holds what it threw, and the
 * handler runs at once (a unary one with the method's empty request), to answer with that refusal.
 */
export type Admit = (call: GrpcCall) => unknown;

interface Route {
  readonly method: MethodDefinition<unknown, unknown>;
  readonly handler: RequestHandler | StreamingHandler;
  readonly admit: Admit | null;
  /** The request message with every field at its default, for a refused call's handler. */
  readonly empty: unknown;
}

/** The largest request metadata, in bytes as HTTP/2 counts a header list (SETTINGS_MAX_HEADER_LIST_SIZE). */
const MAX_METADATA_BYTES = 64 * 1024;
/** Per-stream and per-connection receive windows: a 1 MiB tensor in one round trip, 16 calls' worth in flight. */
const STREAM_WINDOW = 1 << 20;
const CONNECTION_WINDOW = 16 << 20;

const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/** `grpc-timeout` as milliseconds; undefined when absent, NaN when malformed. */
function timeoutMs(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = typeof value === 'string' ? /^(\d{1,8})([HMSmun])$/.exec(value) : null;
  return match === null ? Number.NaN : Number(match[1]) * TIMEOUT_UNITS[match[2]!]!;
}

/** A well-formed gRPC content type: application/grpc, optionally +proto or with parameters. */
function isGrpcContentType(value: string | undefined): boolean {
  if (value === undefined || !value.startsWith('application/grpc')) return false;
  const rest = value.charCodeAt(16);
  return Number.isNaN(rest) || rest === 0x2b /* + */ || rest === 0x3b; /* ; */
}

/** A header list's size as HTTP/2 counts it (RFC 9113 §6.5.2): each field's name and value, plus 32. */
function headerListSize(raw: string[]): number {
  let size = 16 * raw.length;
  for (let i = 0; i < raw.length; i++) size += raw[i]!.length;
  return size;
}

const NO_MESSAGE = Symbol('no message');
const INBOUND = Symbol('grpc inbound');
const CONNECTION = Symbol('grpc connection');
type Tagged = ServerHttp2Stream & { [INBOUND]: Inbound };
type NotACall = ServerHttp2Stream & { [CONNECTION]: Connection };

/**
 * A call's request side: reassembles length-prefixed messages from DATA chunks, counting the bytes
 * of an unfinished one against the connection. Listeners are shared functions (below), not closures.
 */
class Inbound {
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** The length, prefix included, of the message being read; -1 until its prefix is in. */
  #need = -1;
  #request: unknown = NO_MESSAGE;

  constructor(
    readonly call: GrpcCall,
    readonly route: Route,
    readonly connection: Connection,
    readonly maxBytes: number,
  ) {}

  data(chunk: Buffer): void {
    const call = this.call;
    if (call.done) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    this.connection.buffered += chunk.length;
    while (this.#buffered >= 5) {
      if (this.#need < 0) {
        const head = this.#chunks[0]!.length >= 5 ? this.#chunks[0]! : this.#collapse();
        const length = head.readUInt32BE(1);
        if (length > this.maxBytes)
          return this.#refuse(
            Status.RESOURCE_EXHAUSTED,
            `the request message has ${length} bytes; the most accepted is ${this.maxBytes} (server.body_limit_bytes)`,
          );
        this.#need = 5 + length;
      }
      // A message in many frames is copied together once, when its last byte is in.
      if (this.#buffered < this.#need) break;
      const whole = this.#chunks.length === 1 ? this.#chunks[0]! : this.#collapse();
      const rest = whole.subarray(this.#need);
      this.connection.buffered -= this.#need;
      this.#chunks = rest.length > 0 ? [rest] : [];
      this.#buffered = rest.length;
      const need = this.#need;
      this.#need = -1;
      if (!this.#message(whole[0] !== 0, whole.subarray(5, need))) return;
    }
    const limit = this.connection.limits.maxBufferedBytes;
    if (this.connection.buffered > limit)
      this.#refuse(
        Status.RESOURCE_EXHAUSTED,
        `this connection's calls hold over ${limit} bytes of unfinished request messages (grpc.max_connection_buffer_bytes)`,
      );
  }

  end(): void {
    const call = this.call;
    call.requestEnded = true;
    if (call.done) return;
    const { method, handler } = this.route;
    if (this.#buffered > 0) return call.fail(Status.INVALID_ARGUMENT, 'the request ended inside a message');
    if (method.requestStream) return call.onHalfClose();
    if (this.#request === NO_MESSAGE) return call.fail(Status.INVALID_ARGUMENT, `${call.path} takes one request message; none came`);
    (handler as RequestHandler)(this.#request, call);
  }

  /** The stream closed: what it still buffered leaves the connection's count; a call still going is cancelled. */
  closed(stream: ServerHttp2Stream): void {
    this.#drop();
    this.connection.closed(stream);
    if (!this.call.done) this.call.cancel();
  }

  /** One whole message; false when it ended the call. */
  #message(compressed: boolean, payload: Buffer): boolean {
    const { call, route } = this;
    if (compressed) {
      const encoding = call.metadata('grpc-encoding');
      const named = encoding !== undefined && encoding !== 'identity';
      this.#refuse(
        named ? Status.UNIMPLEMENTED : Status.INTERNAL,
        named ? `grpc-encoding "${encoding}" is not supported; send messages uncompressed` : 'a compressed message without grpc-encoding',
      );
      return false;
    }
    let message: unknown;
    try {
      message = route.method.requestDeserialize(payload);
    } catch {
      this.#refuse(Status.INVALID_ARGUMENT, `the request is not a valid ${call.path.slice(1).replace('/', '.')} request message`);
      return false;
    }
    if (route.method.requestStream) call.onMessage(message);
    else if (this.#request === NO_MESSAGE) this.#request = message;
    else {
      this.#refuse(Status.INVALID_ARGUMENT, `${call.path} takes one request message; a second came`);
      return false;
    }
    return true;
  }

  #refuse(code: Status, message: string): void {
    this.#drop();
    this.call.fail(code, message);
    this.call.cancel();
  }

  #drop(): void {
    this.connection.buffered -= this.#buffered;
    this.#chunks = [];
    this.#buffered = 0;
  }

  #collapse(): Buffer {
    const whole = Buffer.concat(this.#chunks);
    this.#chunks = [whole];
    return whole;
  }
}

function onData(this: Tagged, chunk: Buffer): void {
  this[INBOUND].data(chunk);
}
function onEnd(this: Tagged): void {
  this[INBOUND].end();
}
function onClose(this: Tagged): void {
  this[INBOUND].closed(this);
}
function ignore(): void {}

/** A stream that is not a call (an HTTP answer, UNIMPLEMENTED): only its close is counted. */
function onOtherClose(this: NotACall): void {
  this[CONNECTION].closed(this);
}

/** nghttp2's rate limit on RST_STREAM from clients (node:http2's `streamResetBurst`/`streamResetRate`, which its types omit). */
interface ResetLimit {
  readonly streamResetBurst: number;
  readonly streamResetRate: number;
}

/** A gRPC server on a TCP port: routes each stream to its method's handler. */
export class GrpcTransport {
  readonly #server: Http2Server | Http2SecureServer;
  readonly #connections = new Set<Connection>();
  readonly #routes = new Map<string, Route>();
  readonly #options: Required<TransportOptions>;
  /** Sockets handed over by the cluster primary (`adopt`) and still open. */
  #adopted = 0;
  /** The socket whose session node:http2 is making (its 'session' event comes within the call that starts it). */
  #starting: Socket | null = null;
  /** Called when the last connection closes, while closing. */
  #idle: (() => void) | null = null;

  constructor(options: TransportOptions) {
    this.#options = {
      maxConnectionBufferBytes: 2 * options.maxMessageBytes,
      maxConcurrentStreams: 100,
      maxConnections: 10_000,
      idleTimeoutMs: 300_000,
      handshakeTimeoutMs: 10_000,
      keepaliveMs: 30_000,
      tls: null,
      onError: () => {},
      ...options,
    };
    const o = this.#options;
    const http2Options: SecureServerOptions & ResetLimit = {
      settings: {
        maxConcurrentStreams: o.maxConcurrentStreams,
        initialWindowSize: STREAM_WINDOW,
        maxHeaderListSize: MAX_METADATA_BYTES,
        enablePush: false,
      },
      // Header lists over 64 KiB or 64 fields reset their stream (ENHANCE_YOUR_CALM; clients read RESOURCE_EXHAUSTED).
      maxHeaderListPairs: 64,
      // nghttp2's own allocations and the answers queued for a connection, in MB: past it new streams are refused.
      maxSessionMemory: Math.max(10, Math.ceil((2 * o.maxConnectionBufferBytes) / 2 ** 20)),
      // PINGs of ours (the keep-alive probe) unanswered at once; a client's PING flood is nghttp2's own check.
      maxOutstandingPings: 10,
      // Malformed frames and header blocks (each a reset nghttp2 sends) before the connection is closed.
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
      // Rapid reset (CVE-2023-44487): a burst of 1,000 client resets, then 33 a second, as nghttp2's default.
      streamResetBurst: 1000,
      streamResetRate: 33,
      unknownProtocolTimeout: o.handshakeTimeoutMs,
    };
    this.#server =
      o.tls === null
        ? createServer(http2Options)
        : createSecureServer({ ...http2Options, cert: o.tls.cert, key: o.tls.key, handshakeTimeout: o.handshakeTimeoutMs });
    this.#server.maxConnections = o.maxConnections;
    this.#server.on('session', (session: ServerHttp2Session) => this.#session(session));
    this.#gate(o.tls === null ? 'connection' : 'secureConnection');
  }

  /** Registers a method: `admit` checks its metadata first (null: none); `handler` answers through the call. */
  handle(method: MethodDefinition<unknown, unknown>, handler: RequestHandler | StreamingHandler, admit: Admit | null = null): void {
    const empty = method.requestStream ? null : method.requestDeserialize(Buffer.alloc(0));
    this.#routes.set(method.path, { method, handler, admit, empty });
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
    // GOAWAY NO_ERROR: calls open go on, new ones go elsewhere; each session closes after its last stream.
    for (const connection of this.#connections) connection.session.close();
    if (this.#connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const force = setTimeout(() => {
        for (const connection of [...this.#connections]) connection.session.destroy();
        resolve();
      }, timeoutMs);
      force.unref();
      this.#idle = () => {
        clearTimeout(force);
        resolve();
      };
    });
  }

  /**
   * Serves a connection accepted elsewhere (the cluster primary's, handed over unread); `onClose`
   * when it ends. It goes the way a listened one does: TLS first when configured, then the preface.
   */
  adopt(socket: Socket, onClose: () => void): void {
    socket.once('close', () => {
      this.#adopted--;
      onClose();
    });
    // server.maxConnections counts only what the server itself accepted.
    if (++this.#adopted > this.#options.maxConnections) socket.destroy();
    else this.#server.emit('connection', socket);
  }

  /** Puts the preface check in front of node:http2's own listener for the event that starts HTTP/2 on a socket. */
  #gate(event: 'connection' | 'secureConnection'): void {
    const server = this.#server;
    const [start] = server.listeners(event) as Array<(socket: Socket) => void>;
    if (start === undefined) throw new Error(`node:http2's server has no ${event} listener to put the preface check before`);
    server.removeListener(event, start);
    const timeoutMs = this.#options.handshakeTimeoutMs;
    const serve = (socket: Socket): void => {
      this.#starting = socket;
      try {
        start.call(server, socket);
      } finally {
        this.#starting = null;
      }
    };
    server.on(event, (socket: Socket) => {
      socket.on('error', ignore); // before a session owns it; a reset while reading the preface is not an error of ours
      checkPreface(socket, timeoutMs, serve);
    });
  }

  #session(session: ServerHttp2Session): void {
    const o = this.#options;
    const limits = { maxBufferedBytes: o.maxConnectionBufferBytes, idleTimeoutMs: o.idleTimeoutMs, keepaliveMs: o.keepaliveMs };
    const connection = new Connection(session, this.#starting as Socket, limits);
    this.#connections.add(connection);
    session.setLocalWindowSize(CONNECTION_WINDOW);
    if (this.#idle !== null) session.close(); // a connection accepted while closing
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, raw: string[]) => {
      try {
        this.#stream(connection, stream, headers, raw);
      } catch (err) {
        o.onError(err);
        session.destroy();
      }
    });
    session.once('close', () => {
      this.#connections.delete(connection);
      if (this.#connections.size === 0) this.#idle?.();
    });
  }

  #stream(connection: Connection, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, raw: string[]): void {
    connection.opened();
    stream.on('error', ignore); // a reset or a lost connection: the close below ends the call
    if (headers[':method'] !== 'POST') return this.#http(connection, stream, 405);
    if (!isGrpcContentType(headers['content-type'])) return this.#http(connection, stream, 415);
    // nghttp2 has checked the pseudo-headers (RFC 9113 §8.3.1): a POST has its :path.
    const path = headers[':path'] as string;
    const route = this.#routes.get(path) ?? null;
    const timeout = timeoutMs(headers['grpc-timeout']);
    const call = new GrpcCall(path, stream, headers, route?.method ?? null, Number.isNaN(timeout) ? undefined : timeout);
    const metadataBytes = headerListSize(raw);
    if (route === null || Number.isNaN(timeout) || metadataBytes > MAX_METADATA_BYTES) {
      stream.resume(); // a request body, if any, dropped unread
      (stream as NotACall)[CONNECTION] = connection;
      stream.once('close', onOtherClose);
      // nghttp2 holds a client to SETTINGS_MAX_HEADER_LIST_SIZE only once it has acknowledged them, not in its first calls.
      if (metadataBytes > MAX_METADATA_BYTES)
        return call.fail(
          Status.RESOURCE_EXHAUSTED,
          `the request metadata has ${metadataBytes} bytes; the most accepted is ${MAX_METADATA_BYTES}`,
        );
      if (route === null) return call.fail(Status.UNIMPLEMENTED, `method ${path} is not served here`);
      return call.fail(Status.INVALID_ARGUMENT, `grpc-timeout "${String(headers['grpc-timeout'])}" is malformed`);
    }
    const inbound = new Inbound(call, route, connection, this.#options.maxMessageBytes);
    (stream as Tagged)[INBOUND] = inbound;
    stream.once('close', onClose);
    if (route.admit !== null) {
      try {
        call.admitted = route.admit(call);
      } catch (err) {
        // Refused on its metadata: what comes of its request is dropped unread (never buffered), until the
        // client takes the RST_STREAM NO_ERROR that follows the answer.
        stream.resume();
        call.refusal = err;
        if (route.method.requestStream) return (route.handler as StreamingHandler)(call);
        return (route.handler as RequestHandler)(route.empty, call);
      }
    }
    stream.on('data', onData);
    stream.on('end', onEnd);
    if (route.method.requestStream) (route.handler as StreamingHandler)(call);
  }

  /** An answer in HTTP's terms, to a request that is not gRPC at all. */
  #http(connection: Connection, stream: ServerHttp2Stream, status: number): void {
    (stream as NotACall)[CONNECTION] = connection;
    stream.once('close', onOtherClose);
    stream.resume();
    stream.respond({ ':status': status }, { endStream: true });
    if (!stream.endAfterHeaders) stream.close(constants.NGHTTP2_NO_ERROR);
  }
}
