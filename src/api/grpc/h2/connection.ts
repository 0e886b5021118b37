/**
 * The server side of one HTTP/2 connection (RFC 9113) over cleartext TCP, as gRPC uses it: frames,
 * streams, flow control both ways, SETTINGS, PING, GOAWAY and RST_STREAM. It is written for
 * gRPC's traffic (small header blocks, one request message, one reply) and does what a general
 * server must not skip: header blocks are always decoded so HPACK stays in step, windows are
 * honoured in both directions, and a peer that breaks the protocol gets GOAWAY with the error.
 * Writes made during one turn of the event loop leave in one socket write.
 */
import type { Socket } from 'node:net';
import { HpackDecoder, HpackError, type HeaderList } from './hpack.js';

const enum Frame {
  DATA = 0,
  HEADERS = 1,
  PRIORITY = 2,
  RST_STREAM = 3,
  SETTINGS = 4,
  PUSH_PROMISE = 5,
  PING = 6,
  GOAWAY = 7,
  WINDOW_UPDATE = 8,
  CONTINUATION = 9,
}

const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;

/** HTTP/2 error codes (§7). */
export const H2 = {
  NO_ERROR: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
  FLOW_CONTROL_ERROR: 3,
  STREAM_CLOSED: 5,
  FRAME_SIZE_ERROR: 6,
  REFUSED_STREAM: 7,
  CANCEL: 8,
  COMPRESSION_ERROR: 9,
  ENHANCE_YOUR_CALM: 11,
} as const;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const DEFAULT_WINDOW = 65_535;
const MAX_WINDOW = 2 ** 31 - 1;
/** The largest frame payload this side accepts: the protocol's default, never raised. */
const MAX_FRAME = 16_384;
/** A header block (HEADERS and its CONTINUATIONs) this large, still compressed, ends the connection. */
const MAX_HEADER_BLOCK = 256 * 1024;
/** A header block in more frames than this ends the connection. */
const MAX_HEADER_FRAMES = 64;
/**
 * With this many bytes waiting to go out, the connection stops reading until the socket drains: a
 * client that sends PINGs or SETTINGS and never reads the acknowledgements cannot grow the buffer.
 */
const MAX_UNSENT = 4 << 20;
/** A client must send its preface within this many ms of connecting. */
const PREFACE_TIMEOUT_MS = 10_000;
/** More client resets than this within RESET_WINDOW_MS end the connection (the "rapid reset" attack, CVE-2023-44487). */
const MAX_RESETS = 1000;
const RESET_WINDOW_MS = 10_000;

export interface ConnectionOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: streams beyond it are refused (REFUSED_STREAM, which clients retry). */
  readonly maxConcurrentStreams: number;
  /** The receive window of each stream (SETTINGS_INITIAL_WINDOW_SIZE) and of the connection. */
  readonly streamWindow: number;
  readonly connectionWindow: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE: a longer list reaches the handler flagged `oversize`. */
  readonly maxHeaderListSize: number;
}

/** What the layer above does with the connection's streams. */
export interface StreamHandler {
  /** A stream opened: its request headers are decoded. Set the stream's hooks here. */
  onStream(stream: H2Stream): void;
}

type Hook = () => void;
const noop: Hook = () => {};

/** One request stream, as the layer above sees it. */
export class H2Stream {
  /** A piece of the request body. */
  onData: (chunk: Buffer) => void = noop;
  /** The client finished its side. */
  onEnd: Hook = noop;
  /** The stream ended early: the client reset it, or the connection went away. */
  onReset: (code: number) => void = noop;

  /** Whether the client has finished sending. */
  remoteEnded = false;
  /** Whether this side has sent END_STREAM or reset the stream. */
  localEnded = false;
  sendWindow: number;
  recvWindow: number;
  /** Request-body octets consumed since the last WINDOW_UPDATE for this stream. */
  unacked = 0;
  /** Data waiting for a window, then the trailers that end the stream. */
  pending: Buffer[] = [];
  pendingTrailers: Buffer | null = null;
  #drained: Hook[] = [];

  constructor(
    readonly id: number,
    readonly headers: HeaderList,
    /** The header list was over SETTINGS_MAX_HEADER_LIST_SIZE; `headers` holds what fitted. */
    readonly oversize: boolean,
    private readonly connection: H2Connection,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  /** Sends the response headers (a HEADERS frame; with END_STREAM when `end`, as for a trailers-only answer). */
  respond(block: Buffer, end = false): void {
    if (this.localEnded) return;
    this.connection.headers(this, block, end);
  }

  /** Sends body data as DATA frames as the windows allow; the rest waits for WINDOW_UPDATE. */
  write(data: Buffer): void {
    if (this.localEnded) return;
    if (this.pending.length > 0) this.pending.push(data);
    else this.connection.data(this, data);
  }

  /** Ends the stream with trailers, after any data still waiting for a window. */
  end(trailers: Buffer): void {
    if (this.localEnded) return;
    if (this.pending.length > 0) this.pendingTrailers = trailers;
    else this.connection.headers(this, trailers, true);
  }

  /** Resets the stream (RST_STREAM); its onReset is not called. */
  reset(code: number): void {
    if (this.localEnded && this.remoteEnded) return;
    this.connection.reset(this, code, false);
  }

  /** Whether more writes would only queue: data waits for a window, or the socket's buffer is full. */
  get congested(): boolean {
    return this.pending.length > 0 || this.connection.congested;
  }

  /** Resolves once the stream is no longer congested (or has ended). */
  drained(): Promise<void> {
    if (!this.congested || this.localEnded) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  /** @internal the connection calls this when windows or the socket free up. */
  notifyDrained(): void {
    if (this.#drained.length === 0 || (this.congested && !this.localEnded)) return;
    const waiting = this.#drained;
    this.#drained = [];
    for (const resolve of waiting) resolve();
  }
}

export class H2Connection {
  readonly #socket: Socket;
  readonly #handler: StreamHandler;
  readonly #options: ConnectionOptions;
  readonly #decoder = new HpackDecoder();
  readonly #streams = new Map<number, H2Stream>();
  #buffer: Buffer | null = null;
  #prefaceSeen = false;
  #lastStreamId = 0;
  /** A header block still taking CONTINUATION frames. */
  #block: { streamId: number; endStream: boolean; parts: Buffer[]; size: number } | null = null;

  /** What the peer allows this side to send. */
  #peerStreamWindow = DEFAULT_WINDOW;
  #peerMaxFrame = MAX_FRAME;
  #sendWindow = DEFAULT_WINDOW;
  /** Streams holding data for lack of a window. */
  readonly #blocked = new Set<H2Stream>();

  #recvWindow: number;
  #unacked = 0;

  #out: Buffer[] = [];
  #flushQueued = false;
  #goingAway = false;
  #closed = false;
  #resets = 0;
  #resetsSince = 0;
  /** Called once the connection is gone. */
  onClose: Hook = noop;
  /** Called with an exception thrown by the layer above while handling a frame; the connection then fails. */
  onError: (err: unknown) => void = noop;

  constructor(socket: Socket, handler: StreamHandler, options: ConnectionOptions) {
    this.#socket = socket;
    this.#handler = handler;
    this.#options = options;
    this.#recvWindow = options.connectionWindow;
    socket.setNoDelay(true);
    socket.setTimeout(PREFACE_TIMEOUT_MS, () => {
      if (!this.#prefaceSeen) socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('drain', () => this.#drained());
    socket.on('error', () => this.#gone());
    socket.on('close', () => this.#gone());
    // The server's preface: its SETTINGS, then the connection window raised to what it was configured at.
    const settings = Buffer.alloc(18);
    settings.writeUInt16BE(0x3, 0);
    settings.writeUInt32BE(options.maxConcurrentStreams, 2);
    settings.writeUInt16BE(0x4, 6);
    settings.writeUInt32BE(options.streamWindow, 8);
    settings.writeUInt16BE(0x6, 12);
    settings.writeUInt32BE(options.maxHeaderListSize, 14);
    this.#frame(Frame.SETTINGS, 0, 0, settings);
    if (options.connectionWindow > DEFAULT_WINDOW) this.#windowUpdate(0, options.connectionWindow - DEFAULT_WINDOW);
  }

  /** Streams open now. */
  get active(): number {
    return this.#streams.size;
  }

  get congested(): boolean {
    return this.#socket.writableNeedDrain;
  }

  /** Graceful close: GOAWAY with the last stream taken; streams in flight finish, new ones are refused; then the socket ends. */
  shutdown(): void {
    if (this.#goingAway || this.#closed) return;
    this.#goAway(H2.NO_ERROR, '');
    this.#maybeEnd();
  }

  /** Immediate close: every stream is reset and the socket destroyed. */
  destroy(): void {
    if (!this.#goingAway) this.#goAway(H2.NO_ERROR, 'server shutting down');
    this.#flush();
    this.#socket.destroy();
    this.#gone();
  }

  // ---- receiving ----

  #receive(chunk: Buffer): void {
    let buf = this.#buffer === null ? chunk : Buffer.concat([this.#buffer, chunk]);
    this.#buffer = null;
    if (!this.#prefaceSeen) {
      const n = Math.min(buf.length, PREFACE.length);
      if (buf.compare(PREFACE, 0, n, 0, n) !== 0) {
        // Not HTTP/2 with prior knowledge (an HTTP/1 client, say): nothing to answer in its terms.
        this.#socket.destroy();
        return;
      }
      if (buf.length < PREFACE.length) {
        this.#buffer = buf;
        return;
      }
      this.#prefaceSeen = true;
      this.#socket.setTimeout(0);
      buf = buf.subarray(PREFACE.length);
    }
    let at = 0;
    while (buf.length - at >= 9 && !this.#closed) {
      const length = buf.readUIntBE(at, 3);
      if (length > MAX_FRAME) return this.#fail(H2.FRAME_SIZE_ERROR, `a frame of ${length} bytes; the most is ${MAX_FRAME}`);
      if (buf.length - at < 9 + length) break;
      const type = buf[at + 3]!;
      const flags = buf[at + 4]!;
      const streamId = buf.readUInt32BE(at + 5) & 0x7fffffff;
      const payload = buf.subarray(at + 9, at + 9 + length);
      at += 9 + length;
      try {
        this.#onFrame(type, flags, streamId, payload);
      } catch (err) {
        if (err instanceof HpackError) return this.#fail(H2.COMPRESSION_ERROR, err.message);
        this.onError(err);
        return this.#fail(H2.INTERNAL_ERROR, 'the server failed handling a frame');
      }
    }
    if (at < buf.length && !this.#closed) this.#buffer = buf.subarray(at);
  }

  #onFrame(type: number, flags: number, streamId: number, payload: Buffer): void {
    if (this.#block !== null && type !== Frame.CONTINUATION) return this.#fail(H2.PROTOCOL_ERROR, 'a header block was interrupted');
    switch (type) {
      case Frame.DATA:
        return this.#onData(flags, streamId, payload);
      case Frame.HEADERS:
        return this.#onHeaders(flags, streamId, payload);
      case Frame.CONTINUATION:
        return this.#onContinuation(flags, streamId, payload);
      case Frame.PRIORITY:
        if (streamId === 0) return this.#fail(H2.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        if (payload.length !== 5) this.#resetId(streamId, H2.FRAME_SIZE_ERROR);
        return;
      case Frame.RST_STREAM:
        return this.#onReset(streamId, payload);
      case Frame.SETTINGS:
        return this.#onSettings(flags, streamId, payload);
      case Frame.PING:
        if (streamId !== 0) return this.#fail(H2.PROTOCOL_ERROR, 'PING on a stream');
        if (payload.length !== 8) return this.#fail(H2.FRAME_SIZE_ERROR, 'PING payload is not 8 bytes');
        if ((flags & ACK) === 0) this.#frame(Frame.PING, ACK, 0, Buffer.from(payload));
        return;
      case Frame.GOAWAY:
        if (streamId !== 0) return this.#fail(H2.PROTOCOL_ERROR, 'GOAWAY on a stream');
        this.#goingAway = true;
        return this.#maybeEnd();
      case Frame.WINDOW_UPDATE:
        return this.#onWindowUpdate(streamId, payload);
      case Frame.PUSH_PROMISE:
        return this.#fail(H2.PROTOCOL_ERROR, 'a client sent PUSH_PROMISE');
      default:
        return; // unknown frame types are ignored (§5.5)
    }
  }

  #onData(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0) return this.#fail(H2.PROTOCOL_ERROR, 'DATA on stream 0');
    const body = this.#unpad(flags, payload);
    if (body === null) return;
    // The whole frame counts against the windows, padding included (§6.9.1).
    this.#recvWindow -= payload.length;
    if (this.#recvWindow < 0) return this.#fail(H2.FLOW_CONTROL_ERROR, 'DATA beyond the connection window');
    this.#unacked += payload.length;
    if (this.#unacked >= this.#options.connectionWindow / 2) {
      this.#windowUpdate(0, this.#unacked);
      this.#recvWindow += this.#unacked;
      this.#unacked = 0;
    }
    const stream = this.#streams.get(streamId);
    if (stream === undefined) {
      if (streamId > this.#lastStreamId) return this.#fail(H2.PROTOCOL_ERROR, `DATA on idle stream ${streamId}`);
      return; // a stream this side closed: ignored, its octets already credited back
    }
    if (stream.remoteEnded) return this.reset(stream, H2.STREAM_CLOSED, true);
    stream.recvWindow -= payload.length;
    if (stream.recvWindow < 0) return this.reset(stream, H2.FLOW_CONTROL_ERROR, true);
    const end = (flags & END_STREAM) !== 0;
    if (!end) {
      stream.unacked += payload.length;
      if (stream.unacked >= this.#options.streamWindow / 2) {
        this.#windowUpdate(streamId, stream.unacked);
        stream.recvWindow += stream.unacked;
        stream.unacked = 0;
      }
    }
    if (body.length > 0) stream.onData(body);
    if (end && !stream.localEnded) this.#remoteEnd(stream);
  }

  #onHeaders(flags: number, streamId: number, payload: Buffer): void {
    if (streamId === 0 || streamId % 2 === 0) return this.#fail(H2.PROTOCOL_ERROR, `HEADERS on stream ${streamId}`);
    let fragment = this.#unpad(flags, payload);
    if (fragment === null) return;
    if (flags & PRIORITY_FLAG) {
      if (fragment.length < 5) return this.#fail(H2.FRAME_SIZE_ERROR, 'HEADERS too short for its priority');
      fragment = fragment.subarray(5);
    }
    const endStream = (flags & END_STREAM) !== 0;
    if (flags & END_HEADERS) return this.#headerBlock(streamId, endStream, fragment);
    this.#block = { streamId, endStream, parts: [fragment], size: fragment.length };
  }

  #onContinuation(flags: number, streamId: number, payload: Buffer): void {
    const block = this.#block;
    if (block === null || block.streamId !== streamId) return this.#fail(H2.PROTOCOL_ERROR, 'CONTINUATION without a header block');
    block.parts.push(payload);
    block.size += payload.length;
    // Bounded in bytes and in frames: empty CONTINUATIONs would grow the list forever (the "CONTINUATION flood").
    if (block.size > MAX_HEADER_BLOCK || block.parts.length > MAX_HEADER_FRAMES)
      return this.#fail(H2.ENHANCE_YOUR_CALM, 'header block too large');
    if ((flags & END_HEADERS) === 0) return;
    this.#block = null;
    this.#headerBlock(streamId, block.endStream, Buffer.concat(block.parts));
  }

  #headerBlock(streamId: number, endStream: boolean, block: Buffer): void {
    // Decoded whatever becomes of the stream: the dynamic table must stay in step with the client's.
    const { list, oversize } = this.#decoder.decode(block, this.#options.maxHeaderListSize);
    const stream = this.#streams.get(streamId);
    if (stream !== undefined) {
      // Trailers from the client: gRPC has no use for them beyond ending the stream.
      if (!endStream) return this.reset(stream, H2.PROTOCOL_ERROR, true);
      if (!stream.remoteEnded && !stream.localEnded) this.#remoteEnd(stream);
      return;
    }
    if (streamId <= this.#lastStreamId) return; // a stream already closed
    this.#lastStreamId = streamId;
    if (this.#goingAway || this.#streams.size >= this.#options.maxConcurrentStreams) return this.#resetId(streamId, H2.REFUSED_STREAM);
    const opened = new H2Stream(streamId, list, oversize, this, this.#peerStreamWindow, this.#options.streamWindow);
    this.#streams.set(streamId, opened);
    this.#handler.onStream(opened);
    if (endStream && !opened.localEnded) this.#remoteEnd(opened);
  }

  #remoteEnd(stream: H2Stream): void {
    stream.remoteEnded = true;
    stream.onEnd();
    if (stream.localEnded) this.#close(stream);
  }

  #onReset(streamId: number, payload: Buffer): void {
    if (streamId === 0) return this.#fail(H2.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) return this.#fail(H2.FRAME_SIZE_ERROR, 'RST_STREAM payload is not 4 bytes');
    if (streamId > this.#lastStreamId) return this.#fail(H2.PROTOCOL_ERROR, `RST_STREAM on idle stream ${streamId}`);
    const stream = this.#streams.get(streamId);
    if (stream === undefined) return;
    const now = Date.now();
    if (now - this.#resetsSince > RESET_WINDOW_MS) {
      this.#resetsSince = now;
      this.#resets = 0;
    }
    if (++this.#resets > MAX_RESETS) return this.#fail(H2.ENHANCE_YOUR_CALM, 'too many streams reset');
    stream.localEnded = true;
    stream.remoteEnded = true;
    this.#close(stream);
    stream.onReset(payload.readUInt32BE(0));
  }

  #onSettings(flags: number, streamId: number, payload: Buffer): void {
    if (streamId !== 0) return this.#fail(H2.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & ACK) {
      if (payload.length !== 0) this.#fail(H2.FRAME_SIZE_ERROR, 'SETTINGS ACK with a payload');
      return;
    }
    if (payload.length % 6 !== 0) return this.#fail(H2.FRAME_SIZE_ERROR, 'SETTINGS payload is not a multiple of 6 bytes');
    for (let at = 0; at < payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      if (id === 0x4) {
        if (value > MAX_WINDOW) return this.#fail(H2.FLOW_CONTROL_ERROR, 'SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1');
        const delta = value - this.#peerStreamWindow;
        this.#peerStreamWindow = value;
        for (const stream of this.#streams.values()) {
          stream.sendWindow += delta;
          if (stream.sendWindow > MAX_WINDOW) return this.#fail(H2.FLOW_CONTROL_ERROR, 'a stream window over 2^31-1');
        }
        if (delta > 0) this.#unblock();
      } else if (id === 0x5) {
        if (value < MAX_FRAME || value > 0xffffff) return this.#fail(H2.PROTOCOL_ERROR, `SETTINGS_MAX_FRAME_SIZE ${value} out of range`);
        this.#peerMaxFrame = value;
      } else if (id === 0x2 && value > 1) {
        return this.#fail(H2.PROTOCOL_ERROR, 'SETTINGS_ENABLE_PUSH neither 0 nor 1');
      }
      // HEADER_TABLE_SIZE needs nothing: this side never indexes what it sends. The rest are advisory.
    }
    this.#frame(Frame.SETTINGS, ACK, 0);
  }

  #onWindowUpdate(streamId: number, payload: Buffer): void {
    if (payload.length !== 4) return this.#fail(H2.FRAME_SIZE_ERROR, 'WINDOW_UPDATE payload is not 4 bytes');
    const increment = payload.readUInt32BE(0) & 0x7fffffff;
    if (streamId === 0) {
      if (increment === 0) return this.#fail(H2.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
      this.#sendWindow += increment;
      if (this.#sendWindow > MAX_WINDOW) return this.#fail(H2.FLOW_CONTROL_ERROR, 'the connection window over 2^31-1');
      return this.#unblock();
    }
    const stream = this.#streams.get(streamId);
    if (stream === undefined) {
      if (streamId > this.#lastStreamId) return this.#fail(H2.PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${streamId}`);
      return;
    }
    if (increment === 0) return this.reset(stream, H2.PROTOCOL_ERROR, true);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.reset(stream, H2.FLOW_CONTROL_ERROR, true);
    this.#pump(stream);
  }

  /** The payload without its padding; null (and the connection failed) when the padding does not fit. */
  #unpad(flags: number, payload: Buffer): Buffer | null {
    if ((flags & PADDED) === 0) return payload;
    const pad = payload.length > 0 ? payload[0]! : 0;
    if (payload.length === 0 || pad >= payload.length) {
      this.#fail(H2.PROTOCOL_ERROR, 'padding longer than the frame');
      return null;
    }
    return payload.subarray(1, payload.length - pad);
  }

  // ---- sending ----

  /** @internal H2Stream.respond and end: a header block (with CONTINUATIONs past the peer's frame size). */
  headers(stream: H2Stream, block: Buffer, end: boolean): void {
    const max = this.#peerMaxFrame;
    const flags = end ? END_STREAM : 0;
    if (block.length <= max) this.#frame(Frame.HEADERS, flags | END_HEADERS, stream.id, block);
    else {
      this.#frame(Frame.HEADERS, flags, stream.id, block.subarray(0, max));
      for (let at = max; at < block.length; at += max) {
        const last = at + max >= block.length;
        this.#frame(Frame.CONTINUATION, last ? END_HEADERS : 0, stream.id, block.subarray(at, at + max));
      }
    }
    if (!end) return;
    stream.localEnded = true;
    if (stream.remoteEnded) this.#close(stream);
    // The answer is complete before the request is: the client is told to stop sending (§8.1).
    else this.reset(stream, H2.NO_ERROR, false);
  }

  /** @internal H2Stream.write: as much as the windows allow now, the rest queued on the stream. */
  data(stream: H2Stream, data: Buffer): void {
    const room = Math.min(stream.sendWindow, this.#sendWindow);
    if (data.length <= room && data.length <= this.#peerMaxFrame) {
      stream.sendWindow -= data.length;
      this.#sendWindow -= data.length;
      this.#frame(Frame.DATA, 0, stream.id, data);
      return;
    }
    stream.pending.push(data);
    this.#pump(stream);
  }

  /** Sends what a stream holds as far as the windows allow; then its trailers, if they were waiting. */
  #pump(stream: H2Stream): void {
    while (stream.pending.length > 0) {
      const room = Math.min(stream.sendWindow, this.#sendWindow, this.#peerMaxFrame);
      if (room <= 0) {
        this.#blocked.add(stream);
        return;
      }
      const head = stream.pending[0]!;
      const piece = head.length <= room ? head : head.subarray(0, room);
      if (piece === head) stream.pending.shift();
      else stream.pending[0] = head.subarray(room);
      stream.sendWindow -= piece.length;
      this.#sendWindow -= piece.length;
      this.#frame(Frame.DATA, 0, stream.id, piece);
    }
    this.#blocked.delete(stream);
    const trailers = stream.pendingTrailers;
    if (trailers !== null) {
      stream.pendingTrailers = null;
      this.headers(stream, trailers, true);
    }
    stream.notifyDrained();
  }

  #unblock(): void {
    for (const stream of [...this.#blocked]) {
      if (this.#sendWindow <= 0) return;
      this.#pump(stream);
    }
  }

  /** @internal RST_STREAM for a stream; `notify`: tell the layer above (the reset came from a protocol fault, not from it). */
  reset(stream: H2Stream, code: number, notify: boolean): void {
    const wasOpen = this.#streams.has(stream.id);
    stream.localEnded = true;
    stream.remoteEnded = true;
    this.#close(stream);
    if (wasOpen) this.#resetId(stream.id, code);
    if (notify) stream.onReset(code);
  }

  #resetId(streamId: number, code: number): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(code, 0);
    this.#frame(Frame.RST_STREAM, 0, streamId, payload);
  }

  #windowUpdate(streamId: number, increment: number): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(increment, 0);
    this.#frame(Frame.WINDOW_UPDATE, 0, streamId, payload);
  }

  #goAway(code: number, debug: string): void {
    this.#goingAway = true;
    const payload = Buffer.alloc(8 + Buffer.byteLength(debug));
    payload.writeUInt32BE(this.#lastStreamId, 0);
    payload.writeUInt32BE(code, 4);
    payload.write(debug, 8);
    this.#frame(Frame.GOAWAY, 0, 0, payload);
  }

  /** A connection error (§5.4.1): GOAWAY with the code, then the socket closes and every stream is reset. */
  #fail(code: number, debug: string): void {
    if (this.#closed) return;
    this.#goAway(code, debug);
    this.#flush();
    this.#socket.end();
    this.#gone();
  }

  #close(stream: H2Stream): void {
    if (!this.#streams.delete(stream.id)) return;
    this.#blocked.delete(stream);
    stream.pending = [];
    stream.notifyDrained();
    this.#maybeEnd();
  }

  #maybeEnd(): void {
    if (this.#goingAway && this.#streams.size === 0 && !this.#closed) {
      this.#flush();
      this.#socket.end();
    }
  }

  #frame(type: Frame, flags: number, streamId: number, payload?: Buffer): void {
    if (this.#closed) return;
    const header = Buffer.allocUnsafe(9);
    const length = payload === undefined ? 0 : payload.length;
    header.writeUIntBE(length, 0, 3);
    header[3] = type;
    header[4] = flags;
    header.writeUInt32BE(streamId, 5);
    this.#out.push(header);
    if (length > 0) this.#out.push(payload as Buffer);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      process.nextTick(() => this.#flush());
    }
  }

  #flush(): void {
    this.#flushQueued = false;
    const out = this.#out;
    if (out.length === 0 || this.#socket.destroyed) return;
    this.#out = [];
    this.#socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    if (this.#socket.writableLength > MAX_UNSENT) this.#socket.pause();
  }

  #drained(): void {
    if (this.#socket.isPaused()) this.#socket.resume();
    for (const stream of this.#streams.values()) stream.notifyDrained();
  }

  #gone(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#block = null;
    this.#buffer = null;
    const open = [...this.#streams.values()];
    this.#streams.clear();
    for (const stream of open) {
      stream.localEnded = true;
      stream.remoteEnded = true;
      stream.notifyDrained();
      stream.onReset(H2.CANCEL);
    }
    this.onClose();
  }
}
