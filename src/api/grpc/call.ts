/**
 * One gRPC call on a node:http2 stream: its metadata, deadline and cancellation, and the ways to
 * answer it (the gRPC project's PROTOCOL-HTTP2 spec): length-prefixed messages, then the status in
 * trailers, or a trailers-only answer (status in the one HEADERS frame) when nothing was sent.
 */
import { constants, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { MethodDefinition } from '@grpc/grpc-js';
import { drained } from '../drain.js';

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

type Hook = () => void;

// Built once: node:http2 copies what it is given, so these are shared by every call.
const RESPONSE_HEADERS: OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/grpc' };
const OK_TRAILERS: OutgoingHttpHeaders = { 'grpc-status': '0' };
// `sendDate` is an option node:http2 reads (its types omit it): gRPC clients have no use for `date`.
const WITH_TRAILERS = { waitForTrailers: true, sendDate: false };
const TRAILERS_ONLY = { endStream: true, sendDate: false };
const RESOLVED = Promise.resolve();

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

/** `fields` (a MetadataList) added to a copy of `base`. */
function withFields(base: OutgoingHttpHeaders, fields: readonly string[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ...base };
  for (let i = 0; i < fields.length; i += 2) out[fields[i]!] = printable(fields[i + 1]!);
  return out;
}

/** The stream's 'wantTrailers' (after the last message was flushed): the trailers the call chose. */
function sendTrailers(this: ServerHttp2Stream & { [CALL]?: GrpcCall }): void {
  this.sendTrailers(this[CALL]!.trailers);
}

/** Where a stream keeps its call, for listeners shared by every stream. */
export const CALL = Symbol('grpc call');

/** One call: the request's metadata, its deadline and cancellation, and the ways to answer it. */
export class GrpcCall {
  /** A request message, for streaming requests. */
  onMessage: (message: unknown) => void = () => {};
  /** The client finished sending, for streaming requests. */
  onHalfClose: Hook = () => {};
  /** When the client's deadline passes: epoch ms, or Infinity. */
  readonly deadline: number;
  /** What the method's admission check found when the headers came (the server keeps the caller's principal here); null without one. */
  admitted: unknown = null;
  /** What the admission check threw, if it refused the call (its request is then not read); null otherwise. */
  refusal: unknown = null;
  /** @internal The trailers to send once the last message is out. */
  trailers: OutgoingHttpHeaders = OK_TRAILERS;
  /** @internal Whether the client's END_STREAM came: if not when the call ends, the stream is reset with NO_ERROR (RFC 9113 §8.1). */
  requestEnded: boolean;
  #cancelled = false;
  #listeners: Hook[] = [];
  #headersSent = false;
  #done = false;
  #timer: NodeJS.Timeout | null = null;
  readonly #stream: ServerHttp2Stream;
  readonly #headers: IncomingHttpHeaders;
  readonly #method: MethodDefinition<unknown, unknown> | null;

  constructor(
    readonly path: string,
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    method: MethodDefinition<unknown, unknown> | null,
    timeout: number | undefined,
  ) {
    this.#stream = stream;
    this.#headers = headers;
    this.#method = method;
    this.requestEnded = stream.endAfterHeaders;
    this.deadline = timeout === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeout;
    if (timeout !== undefined) this.#timer = setTimeout(() => this.#expire(), timeout);
  }

  /** The request's metadata by lower-case name, as node:http2 gives it (pseudo-headers included). */
  get headers(): IncomingHttpHeaders {
    return this.#headers;
  }

  /** The peer's IP address, as its connection's socket has it; undefined once the session is gone. Read only when asked (`trusted_header` mode). */
  get remoteAddress(): string | undefined {
    return this.#stream.session?.socket.remoteAddress;
  }

  /** A request metadata value (the first, if sent several times); undefined when absent. */
  metadata(name: string): string | undefined {
    const value = this.#headers[name];
    return typeof value === 'string' || value === undefined ? value : value[0];
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

  /** Answers a unary call: headers, the message and OK with `trailers`. */
  reply(response: unknown, trailers: MetadataList = []): void {
    if (this.#done) return;
    const frame = this.#frame(response);
    this.#finish();
    if (this.#stream.closed) return;
    this.trailers = trailers.length === 0 ? OK_TRAILERS : withFields(OK_TRAILERS, trailers);
    if (!this.#headersSent) this.#respond();
    this.#stream.end(frame);
    this.#stopRequest();
  }

  /** Sends one message of a streamed answer. */
  write(response: unknown): void {
    if (this.#done || this.#stream.closed) return;
    const frame = this.#frame(response);
    if (!this.#headersSent) this.#respond();
    this.#stream.write(frame);
  }

  /** Resolves when more messages would not just pile up (the client's windows and the socket have room). */
  drained(): Promise<void> {
    const stream = this.#stream;
    return !stream.writableNeedDrain || stream.closed ? RESOLVED : drained(stream);
  }

  /** Ends the call with OK. */
  end(trailers: MetadataList = []): void {
    if (this.#finish() || this.#stream.closed) return;
    this.trailers = trailers.length === 0 ? OK_TRAILERS : withFields(OK_TRAILERS, trailers);
    if (!this.#headersSent) this.#respond();
    this.#stream.end();
    this.#stopRequest();
  }

  /** Ends the call with an error status: trailers-only when nothing was sent yet. */
  fail(code: Status, message: string, trailers: MetadataList = []): void {
    if (this.#finish() || this.#stream.closed) return;
    const status = { 'grpc-status': String(code), 'grpc-message': percentEncode(message) };
    if (this.#headersSent) {
      this.trailers = withFields(status, trailers);
      this.#stream.end();
    } else {
      this.#headersSent = true;
      this.#stream.respond(withFields({ ...RESPONSE_HEADERS, ...status }, trailers), TRAILERS_ONLY);
    }
    this.#stopRequest();
  }

  /** @internal The transport's cancellation: the stream was reset or the connection is gone. */
  cancel(): void {
    this.#finish();
    this.#cancel();
  }

  #respond(): void {
    this.#headersSent = true;
    (this.#stream as ServerHttp2Stream & { [CALL]?: GrpcCall })[CALL] = this;
    this.#stream.once('wantTrailers', sendTrailers);
    this.#stream.respond(RESPONSE_HEADERS, WITH_TRAILERS);
  }

  #frame(response: unknown): Buffer {
    const message = (this.#method as MethodDefinition<unknown, unknown>).responseSerialize(response);
    const frame = Buffer.allocUnsafe(5 + message.length);
    frame[0] = 0;
    frame.writeUInt32BE(message.length, 1);
    frame.set(message, 5);
    return frame;
  }

  /** The answer is complete while the client may still be sending: ask it to stop, without error (RFC 9113 §8.1). */
  #stopRequest(): void {
    if (!this.requestEnded) this.#stream.close(constants.NGHTTP2_NO_ERROR);
  }

  #expire(): void {
    // Trailers would be stuck behind answers the client is not reading: the stream is reset instead.
    if (this.#stream.writableLength > 0) {
      this.#finish();
      this.#stream.close(constants.NGHTTP2_CANCEL);
    } else this.fail(Status.DEADLINE_EXCEEDED, 'the deadline passed');
    this.#cancel();
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
