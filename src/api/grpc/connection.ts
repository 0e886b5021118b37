/**
 * What node:http2 leaves to its user on a server connection, kept here for the gRPC port: the
 * connection preface checked before a session exists (RFC 9113 §3.4) within a time-out, the bytes
 * of unfinished request messages one connection holds, an idle time-out, a budget for the streams
 * the server resets because of the client's faults ("MadeYouReset"), and GOAWAY codes as RFC 9113
 * names them where node:http2 would send INTERNAL_ERROR.
 */
import { constants, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';

const MAGIC = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** The magic and the header of the frame after it. */
const PREFACE_HEAD = MAGIC.length + 9;
const FRAME_SETTINGS = 0x4;
const FLAG_ACK = 0x1;

/** An empty SETTINGS (the server's preface) and GOAWAY(last stream 0, PROTOCOL_ERROR): the answer to a preface without SETTINGS. */
const PREFACE_REFUSED = Buffer.from([
  ...[0, 0, 0, FRAME_SETTINGS, 0, 0, 0, 0, 0],
  ...[0, 0, 8, 0x7, 0, 0, 0, 0, 0],
  ...[0, 0, 0, 0, 0, 0, 0, constants.NGHTTP2_PROTOCOL_ERROR],
]);

/**
 * Reads a new connection's first bytes: the HTTP/2 magic, then the header of a SETTINGS frame (RFC
 * 9113 §3.4), within `timeoutMs`. Then `serve` gets the socket with those bytes put back. Anything
 * else is closed at once: a client that is not HTTP/2 (HTTP/1.1, TLS to a cleartext port) without an
 * answer, as §3.4 allows, and a first frame that is not SETTINGS with GOAWAY PROTOCOL_ERROR. node:http2
 * would check this too, but answers it INTERNAL_ERROR, and holds a silent connection forever.
 */
export function checkPreface(socket: Socket, timeoutMs: number, serve: (socket: Socket) => void): void {
  let head: Buffer | null = null;
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const onData = (chunk: Buffer): void => {
    head = head === null ? chunk : Buffer.concat([head, chunk]);
    const n = Math.min(head.length, MAGIC.length);
    if (head.compare(MAGIC, 0, n, 0, n) !== 0) return finish(head, 'close');
    if (head.length < PREFACE_HEAD) return;
    const settings = head[MAGIC.length + 3] === FRAME_SETTINGS && (head[MAGIC.length + 4]! & FLAG_ACK) === 0;
    finish(head, settings && head.readUInt32BE(MAGIC.length + 5) === 0 ? 'serve' : 'refuse');
  };
  const finish = (bytes: Buffer, verdict: 'serve' | 'close' | 'refuse'): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.pause();
    if (verdict === 'serve') {
      socket.unshift(bytes);
      serve(socket);
    } else if (verdict === 'refuse') socket.end(PREFACE_REFUSED);
    else socket.destroy();
  };
  socket.on('data', onData);
}

/** nghttp2's library errors as the GOAWAY codes RFC 9113 gives them (nghttp2's own mapping, and its flood errors). */
const GOAWAY_CODES: Record<number, number> = {
  [-505]: constants.NGHTTP2_PROTOCOL_ERROR, // NGHTTP2_ERR_PROTO
  [-531]: constants.NGHTTP2_PROTOCOL_ERROR, // NGHTTP2_ERR_HTTP_HEADER
  [-532]: constants.NGHTTP2_PROTOCOL_ERROR, // NGHTTP2_ERR_HTTP_MESSAGING
  [-536]: constants.NGHTTP2_PROTOCOL_ERROR, // NGHTTP2_ERR_SETTINGS_EXPECTED
  [-903]: constants.NGHTTP2_PROTOCOL_ERROR, // NGHTTP2_ERR_BAD_CLIENT_MAGIC
  [-510]: constants.NGHTTP2_STREAM_CLOSED, // NGHTTP2_ERR_STREAM_CLOSED
  [-522]: constants.NGHTTP2_FRAME_SIZE_ERROR, // NGHTTP2_ERR_FRAME_SIZE_ERROR
  [-523]: constants.NGHTTP2_COMPRESSION_ERROR, // NGHTTP2_ERR_HEADER_COMP
  [-524]: constants.NGHTTP2_FLOW_CONTROL_ERROR, // NGHTTP2_ERR_FLOW_CONTROL
  [-527]: constants.NGHTTP2_ENHANCE_YOUR_CALM, // NGHTTP2_ERR_TOO_MANY_INFLIGHT_SETTINGS
  [-537]: constants.NGHTTP2_ENHANCE_YOUR_CALM, // NGHTTP2_ERR_TOO_MANY_SETTINGS
  [-904]: constants.NGHTTP2_ENHANCE_YOUR_CALM, // NGHTTP2_ERR_FLOODED
  [-905]: constants.NGHTTP2_ENHANCE_YOUR_CALM, // NGHTTP2_ERR_TOO_MANY_CONTINUATIONS
};

/** The GOAWAY code for the error a session is destroyed with; undefined leaves node:http2's. */
function goAwayCode(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, errno } = error as { code?: unknown; errno?: unknown };
  if (code === 'ERR_HTTP2_TOO_MANY_INVALID_FRAMES') return constants.NGHTTP2_ENHANCE_YOUR_CALM;
  return typeof errno === 'number' ? GOAWAY_CODES[errno] : undefined;
}

/**
 * node:http2 destroys a session that broke the protocol with `destroy(new NghttpError(...))`, whose
 * GOAWAY says INTERNAL_ERROR and pre-empts the one nghttp2 queued with the RFC's code (node issue
 * 55888's neighbour; Bun fixed the same in its port). Installed on each session, this passes the
 * RFC's code along.
 */
function destroyWithRfcCode(this: ServerHttp2Session, error?: Error, code?: number): void {
  const destroy = (Object.getPrototypeOf(this) as ServerHttp2Session).destroy;
  destroy.call(this, error, code ?? goAwayCode(error));
}

/** Streams the server may reset for the client's faults per window before the connection is closed (MadeYouReset). */
const FAULT_RESETS = 100;
const FAULT_WINDOW_MS = 10_000;

/** Per-connection limits of the gRPC port, from the `grpc` config section. */
export interface ConnectionLimits {
  /** Bytes of unfinished request messages, summed over the connection's calls. */
  readonly maxBufferedBytes: number;
  /** With no call open for this long, the connection is closed with GOAWAY NO_ERROR. */
  readonly idleTimeoutMs: number;
  /** A connection silent this long gets a PING; unanswered for as long again, it is closed. */
  readonly keepaliveMs: number;
}

const PROBE = Buffer.from('infergat');

/** One client connection's state beyond node:http2's: the bytes its calls buffer, its open streams, its idle timer. */
export class Connection {
  /** Bytes of unfinished request messages held for this connection's calls. */
  buffered = 0;
  #streams = 0;
  #idleSince = performance.now();
  #timer: NodeJS.Timeout;
  #faults = 0;
  #faultsSince = 0;
  #probing = false;

  constructor(
    readonly session: ServerHttp2Session,
    /** The connection's socket (TLS's, when TLS is on): session.socket is a proxy that cannot close it. */
    readonly socket: Socket,
    readonly limits: ConnectionLimits,
  ) {
    session.destroy = destroyWithRfcCode;
    // One timer a connection, re-armed rarely: a call opening or closing only touches a counter.
    this.#timer = setTimeout(() => this.#checkIdle(), limits.idleTimeoutMs);
    this.#timer.unref();
    session.once('close', () => clearTimeout(this.#timer));
    session.setTimeout(limits.keepaliveMs, () => this.#probe());
  }

  /** A stream opened. */
  opened(): void {
    this.#streams++;
  }

  /** A stream closed; one the server reset for a protocol fault counts against the connection. */
  closed(stream: ServerHttp2Stream): void {
    if (--this.#streams === 0) this.#idleSince = performance.now();
    const code = stream.rstCode;
    if (code !== undefined && code !== constants.NGHTTP2_NO_ERROR && code !== constants.NGHTTP2_CANCEL) this.#fault();
  }

  /** Counts a stream reset because of the client (nghttp2 1.61 counts only the resets a client sends). */
  #fault(): void {
    const now = performance.now();
    if (now - this.#faultsSince > FAULT_WINDOW_MS) {
      this.#faults = 0;
      this.#faultsSince = now;
    }
    if (++this.#faults > FAULT_RESETS && !this.session.destroyed)
      this.session.destroy(
        new Error(`over ${FAULT_RESETS} streams reset for faults in ${FAULT_WINDOW_MS} ms`),
        constants.NGHTTP2_ENHANCE_YOUR_CALM,
      );
  }

  /**
   * After a protocol error nghttp2 sends GOAWAY and stops reading, but node:http2 keeps the socket
   * and the session (it would not even see the client close): a silent connection is asked for a
   * PING's answer, which a stopped session never sends and a dead peer never gives; then it is closed.
   */
  #probe(): void {
    const session = this.session;
    if (this.#probing || session.destroyed) return;
    this.#probing = true;
    // Closed without a GOAWAY of ours: a NO_ERROR one would stand in for the error code nghttp2 already sent.
    // The verdict waits for the next check phase: after an event loop blocked past the deadline, timers
    // run before the poll phase reads the socket, so an answer already received would not have been seen.
    const deadline = setTimeout(
      () =>
        setImmediate(() => {
          if (this.#probing) this.socket.destroy();
        }),
      this.limits.keepaliveMs,
    );
    deadline.unref();
    const sent = session.ping(PROBE, () => {
      clearTimeout(deadline);
      this.#probing = false;
      if (!session.destroyed) session.setTimeout(this.limits.keepaliveMs);
    });
    if (!sent) this.socket.destroy();
  }

  #checkIdle(): void {
    if (this.session.closed || this.session.destroyed) return;
    const idle = this.#streams === 0 ? performance.now() - this.#idleSince : 0;
    if (idle >= this.limits.idleTimeoutMs) {
      this.session.close(); // GOAWAY NO_ERROR; no streams, so the socket closes with it
      return;
    }
    this.#timer = setTimeout(() => this.#checkIdle(), this.limits.idleTimeoutMs - idle);
    this.#timer.unref();
  }
}
