/**
 * The gRPC port's HTTP/2 as a client other than grpc-js sees it: node:http2 for requests that are
 * not gRPC, flow control with a tiny client window and a request larger than the server's window,
 * and raw sockets for protocol faults (each answered with GOAWAY and its error code), random frames
 * (fast-check), compression and metadata limits. After each fault the server keeps serving.
 */
import assert from 'node:assert/strict';
import { connect as http2Connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { connect as tcpConnect, type Socket } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import fc from 'fast-check';
import { post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { grpcServices } from '../helpers/grpc.js';

const { Inference } = grpcServices({ defaults: true });
const ModelInfer = Inference.service.ModelInfer!;
const INFER_PATH = '/inference.GRPCInferenceService/ModelInfer';

/** A gRPC message frame: uncompressed (or flagged compressed), 4-byte length, payload. */
function grpcFrame(payload: Buffer, compressed = false): Buffer {
  const frame = Buffer.alloc(5 + payload.length);
  frame[0] = compressed ? 1 : 0;
  frame.writeUInt32BE(payload.length, 1);
  payload.copy(frame, 5);
  return frame;
}

const rows = (n: number) => Float32Array.from({ length: n * 32 }, (_, i) => Math.sin(i));
const inferRequest = (n: number) =>
  ModelInfer.requestSerialize({
    model_name: 'tiny-mlp',
    inputs: [{ name: 'input', datatype: 'FP32', shape: [n, 32] }],
    raw_input_contents: [Buffer.from(rows(n).buffer)],
  });

interface Answer {
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: IncomingHttpHeaders;
}

/** One request over node:http2: the response headers, the body and the trailers. */
function request(session: ClientHttp2Session, headers: Record<string, string>, body: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers);
    const chunks: Buffer[] = [];
    let answer: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    req.on('response', (h) => (answer = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ headers: answer, body: Buffer.concat(chunks), trailers }));
    req.on('error', reject);
    if (body.length > 0) req.end(body);
    else req.end();
  });
}

const grpcHeaders = (path: string, extra: Record<string, string> = {}) => ({
  ':method': 'POST',
  ':path': path,
  'content-type': 'application/grpc',
  te: 'trailers',
  ...extra,
});

/** The gRPC status of an answer: from the trailers, or from the headers of a trailers-only answer. */
const grpcStatus = (a: Answer) => Number(a.trailers['grpc-status'] ?? a.headers['grpc-status']);

// ---- raw HTTP/2, for what well-behaved clients never send ----

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(stream, 5);
  return Buffer.concat([header, payload]);
}

interface RawFrame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

/**
 * Sends bytes on a fresh connection (after the preface and empty SETTINGS, unless `preface` says
 * otherwise); resolves with the frames the server sent until it closed or `waitMs` passed.
 */
function raw(
  address: string,
  bytes: Buffer,
  waitMs = 1500,
  preface = Buffer.concat([PREFACE, frame(4, 0, 0)]),
  then?: { afterMs: number; bytes: Buffer },
): Promise<{ frames: RawFrame[]; closed: boolean }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const socket: Socket = tcpConnect(port, host, () => {
      socket.write(Buffer.concat([preface, bytes]));
      if (then !== undefined) setTimeout(() => socket.writable && socket.write(then.bytes), then.afterMs);
    });
    let data = Buffer.alloc(0);
    let closed = false;
    socket.on('data', (d) => (data = Buffer.concat([data, d])));
    socket.on('error', () => {});
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      const frames: RawFrame[] = [];
      for (let at = 0; at + 9 <= data.length;) {
        const length = data.readUIntBE(at, 3);
        frames.push({
          type: data[at + 3]!,
          flags: data[at + 4]!,
          stream: data.readUInt32BE(at + 5),
          payload: data.subarray(at + 9, at + 9 + length),
        });
        at += 9 + length;
      }
      resolve({ frames, closed });
    };
    socket.on('close', () => {
      closed = true;
      finish();
    });
    const timer = setTimeout(finish, waitMs);
  });
}

/** The error code of the last GOAWAY among `frames` (the one a peer acts on, RFC 9113 §6.8); undefined when there is none. */
const goAwayCode = (frames: RawFrame[]) => frames.findLast((f) => f.type === 7)?.payload.readUInt32BE(4);
/** The error code of the RST_STREAM the server sent for `stream`; undefined when there is none. */
const resetCode = (frames: RawFrame[], stream: number) => frames.find((f) => f.type === 3 && f.stream === stream)?.payload.readUInt32BE(0);

/** HPACK integer with an n-bit prefix (RFC 7541 §5.1). */
function hpackInt(value: number, bits: number): number[] {
  const max = (1 << bits) - 1;
  if (value < max) return [value];
  const out = [max];
  for (value -= max; value >= 128; value >>= 7) out.push((value & 127) | 128);
  out.push(value);
  return out;
}

/** A header block of literals without indexing, new names, no Huffman (RFC 7541 §6.2.2): what a test needs to send any field. */
function encodeLiterals(fields: Array<[string, string]>): Buffer {
  const out: number[] = [];
  for (const [name, value] of fields)
    out.push(0, ...hpackInt(name.length, 7), ...Buffer.from(name), ...hpackInt(value.length, 7), ...Buffer.from(value));
  return Buffer.from(out);
}

const headersFrame = (stream: number, fields: Array<[string, string]>, flags = 0x4) => frame(1, flags, stream, encodeLiterals(fields));
const grpcFields = (path = INFER_PATH): Array<[string, string]> => [
  [':method', 'POST'],
  [':scheme', 'http'],
  [':path', path],
  [':authority', 'localhost'],
  ['content-type', 'application/grpc'],
  ['te', 'trailers'],
];

describe('gRPC over HTTP/2', { timeout: 60_000 }, () => {
  let server: RunningServer;
  let session: ClientHttp2Session;

  before(async () => {
    const config = writeConfig(`
server: { body_limit_bytes: 16777216 }
# A connection nghttp2 stopped after a protocol error is found by an unanswered PING: soon, here.
grpc: { keepalive_ms: 300 }
models:
  - name: tiny-mlp
    versions: [{ version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx } }]
  - name: slow
    versions: [{ version: '1', backend: { kind: mock, latency_ms: 5000 } }]
`);
    server = await startServer({ config });
  });

  // A connection of its own per test: with grpc.keepalive_ms at 300, the server closes an idle one
  // whose PING goes unanswered while this process is busy (the large-request test blocks it for
  // longer), and a shared one then failed the next test with ERR_HTTP2_INVALID_SESSION.
  beforeEach(() => {
    session = http2Connect(`http://${server.grpc}`);
  });
  afterEach(() => session?.close());

  after(async () => {
    await server?.stop();
  });

  /** The server still answers a ModelInfer on a new connection. */
  async function stillServes(): Promise<void> {
    const fresh = http2Connect(`http://${server.grpc}`);
    try {
      const answer = await request(fresh, grpcHeaders(INFER_PATH), grpcFrame(inferRequest(1)));
      assert.equal(grpcStatus(answer), 0);
    } finally {
      fresh.close();
    }
  }

  it('answers requests that are not gRPC in HTTP terms, and unknown methods with UNIMPLEMENTED', async () => {
    const json = await request(session, { ':method': 'POST', ':path': INFER_PATH, 'content-type': 'application/json' }, Buffer.from('{}'));
    assert.equal(json.headers[':status'], 415);
    const get = await request(session, { ':method': 'GET', ':path': INFER_PATH, 'content-type': 'application/grpc' }, Buffer.alloc(0));
    assert.equal(get.headers[':status'], 405);
    const unknown = await request(session, grpcHeaders('/inference.GRPCInferenceService/Nope'), grpcFrame(Buffer.alloc(0)));
    assert.equal(unknown.headers[':status'], 200);
    assert.equal(grpcStatus(unknown), 12);
    assert.match(String(unknown.headers['grpc-message']), /Nope is not served here/);
  });

  it('honours a tiny client window, and takes a request larger than its own stream window, with the same results as HTTP', async () => {
    // 9,000 rows: a 1.15 MB request (over the 1 MiB stream window) and an answer the client takes 512 bytes at a time.
    const n = 9000;
    const tiny = http2Connect(`http://${server.grpc}`, { settings: { initialWindowSize: 512 } });
    try {
      const answer = await request(tiny, grpcHeaders(INFER_PATH), grpcFrame(inferRequest(n)));
      assert.equal(grpcStatus(answer), 0, String(answer.trailers['grpc-message']));
      const message = ModelInfer.responseDeserialize(answer.body.subarray(5));
      const bytes = message.raw_output_contents[0] as Buffer;
      assert.ok(bytes.length > 512 * 4, `an answer of ${bytes.length} bytes spans many windows`);
      const http = await post(`${server.url}/v2/models/tiny-mlp/infer`, {
        inputs: [{ name: 'input', datatype: 'FP32', shape: [n, 32], data: Array.from(rows(n)) }],
      });
      assert.equal(http.status, 200);
      const values = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      assert.deepEqual(Array.from(values), http.body.outputs[0].data);
    } finally {
      tiny.close();
    }
  });

  it('refuses compressed messages, malformed deadlines and oversized metadata with gRPC statuses', async () => {
    const gzip = await request(session, grpcHeaders(INFER_PATH, { 'grpc-encoding': 'gzip' }), grpcFrame(inferRequest(1), true));
    assert.equal(grpcStatus(gzip), 12);
    assert.match(String(gzip.headers['grpc-message']), /grpc-encoding "gzip" is not supported/);
    const flagged = await request(session, grpcHeaders(INFER_PATH), grpcFrame(inferRequest(1), true));
    assert.equal(grpcStatus(flagged), 13);
    const timeout = await request(session, grpcHeaders(INFER_PATH, { 'grpc-timeout': 'soon' }), grpcFrame(inferRequest(1)));
    assert.equal(grpcStatus(timeout), 3);
    const notProto = await request(session, grpcHeaders(INFER_PATH), grpcFrame(Buffer.from([0xff, 0xff, 0xff])));
    assert.equal(grpcStatus(notProto), 3);
    assert.match(String(notProto.headers['grpc-message']), /not a valid inference.GRPCInferenceService.ModelInfer request message/);
    const truncated = await request(session, grpcHeaders(INFER_PATH), grpcFrame(inferRequest(1)).subarray(0, 20));
    assert.equal(grpcStatus(truncated), 3);
    const big = http2Connect(`http://${server.grpc}`, { maxSendHeaderBlockLength: 1 << 20 });
    try {
      const metadata = await request(big, grpcHeaders(INFER_PATH, { 'x-pad': 'p'.repeat(80_000) }), grpcFrame(inferRequest(1)));
      assert.equal(grpcStatus(metadata), 8);
    } finally {
      big.close();
    }
    await stillServes();
  });

  it('ends a connection that breaks the protocol with GOAWAY and the error code RFC 9113 names, and keeps serving others', async () => {
    const ended = frame(0, 0x1, 1, grpcFrame(inferRequest(1)));
    const cases: Array<[string, Buffer, number]> = [
      ['HEADERS on an even stream (§5.1.1)', headersFrame(2, grpcFields()), constants.NGHTTP2_PROTOCOL_ERROR],
      ['a frame over 16 KiB (§4.2)', frame(0, 0, 1, Buffer.alloc(20_000)), constants.NGHTTP2_FRAME_SIZE_ERROR],
      ['an HPACK index beyond the tables (§4.3)', frame(1, 0x4, 1, Buffer.from([0xff, 0x40])), constants.NGHTTP2_COMPRESSION_ERROR],
      ['DATA on an idle stream (§5.1)', frame(0, 0, 7, Buffer.from('x')), constants.NGHTTP2_PROTOCOL_ERROR],
      ['a PING of 3 bytes (§6.7)', frame(6, 0, 0, Buffer.from('abc')), constants.NGHTTP2_FRAME_SIZE_ERROR],
      ['a connection WINDOW_UPDATE of 0 (§6.9)', frame(8, 0, 0, Buffer.alloc(4)), constants.NGHTTP2_PROTOCOL_ERROR],
      ['PUSH_PROMISE from a client (§8.4)', frame(5, 0x4, 1, Buffer.alloc(4)), constants.NGHTTP2_PROTOCOL_ERROR],
      [
        'an interrupted header block (§6.10)',
        Buffer.concat([headersFrame(1, grpcFields(), 0), frame(6, 0, 0, Buffer.alloc(8))]),
        constants.NGHTTP2_PROTOCOL_ERROR,
      ],
      [
        'DATA after the stream ended (§5.1)',
        Buffer.concat([headersFrame(1, grpcFields()), ended, frame(0, 0, 1, Buffer.from('x'))]),
        constants.NGHTTP2_STREAM_CLOSED,
      ],
      [
        'HEADERS again on a stream the client ended (§5.1)',
        Buffer.concat([headersFrame(1, grpcFields(), 0x5), headersFrame(1, grpcFields(), 0x5)]),
        constants.NGHTTP2_STREAM_CLOSED,
      ],
      [
        'a CONTINUATION flood',
        Buffer.concat([headersFrame(1, grpcFields(), 0), ...Array.from({ length: 100 }, () => frame(9, 0, 1))]),
        constants.NGHTTP2_ENHANCE_YOUR_CALM,
      ],
    ];
    for (const [what, bytes, code] of cases) {
      const { frames, closed } = await raw(server.grpc as string, bytes);
      assert.equal(goAwayCode(frames), code, what);
      assert.ok(closed, `${what}: the connection closes`);
    }
    // §3.4: the first frame after the magic must be SETTINGS.
    const noSettings = await raw(server.grpc as string, Buffer.alloc(0), 1500, Buffer.concat([PREFACE, frame(6, 0, 0, Buffer.alloc(8))]));
    assert.equal(goAwayCode(noSettings.frames), constants.NGHTTP2_PROTOCOL_ERROR, 'a first frame other than SETTINGS');
    assert.ok(noSettings.closed, 'a first frame other than SETTINGS: the connection closes');
    // An HTTP/1.1 client is turned away without an answer.
    const http1 = await new Promise<string>((resolve) => {
      const address = server.grpc as string;
      const socket = tcpConnect(Number(address.slice(address.lastIndexOf(':') + 1)), '127.0.0.1', () =>
        socket.write('POST / HTTP/1.1\r\nHost: x\r\n\r\n'),
      );
      let got = '';
      socket.on('data', (d) => (got += d.toString('latin1')));
      socket.on('close', () => resolve(got));
    });
    assert.doesNotMatch(http1, /HTTP\/1.1/);
    await stillServes();
  });

  it('resets a malformed request stream with PROTOCOL_ERROR (RFC 9113 §8.2, §8.3) and serves the next call on the connection', async () => {
    const fields = grpcFields();
    const cases: Array<[string, Array<[string, string]>]> = [
      ['an upper-case field name', [...fields, ['X-Tenant', 'a']]],
      ['a connection-specific field', [...fields, ['connection', 'keep-alive']]],
      ['te other than trailers', fields.map(([n, v]): [string, string] => (n === 'te' ? [n, 'gzip'] : [n, v]))],
      ['no :path', fields.filter(([n]) => n !== ':path')],
      ['a pseudo-header after a regular field', [['content-type', 'application/grpc'], ...fields.filter(([n]) => n !== 'content-type')]],
    ];
    for (const [what, bad] of cases) {
      const bytes = Buffer.concat([headersFrame(1, bad), headersFrame(3, fields), frame(0, 0x1, 3, grpcFrame(inferRequest(1)))]);
      const { frames } = await raw(server.grpc as string, bytes, 3000);
      assert.equal(resetCode(frames, 1), constants.NGHTTP2_PROTOCOL_ERROR, what);
      assert.ok(
        frames.some((f) => f.type === 1 && f.stream === 3),
        `${what}: the next call on the connection is answered`,
      );
      assert.ok(!frames.some((f) => f.type === 7 && f.payload.readUInt32BE(4) !== 0), `${what}: no connection error`);
    }
  });

  it('ignores HEADERS on a stream id at or below one already used, as nghttp2 does: no call, and the connection goes on', async () => {
    // RFC 9113 §5.1.1 asks for PROTOCOL_ERROR; nghttp2 cannot tell such a frame from a late trailer for a stream
    // it reset (it keeps no record of every closed stream), so it drops it, its header block decoded for HPACK.
    const call = (id: number) => Buffer.concat([headersFrame(id, grpcFields()), frame(0, 0x1, id, grpcFrame(inferRequest(1)))]);
    const lower = await raw(server.grpc as string, Buffer.concat([call(5), headersFrame(3, grpcFields(), 0x5), call(7)]), 1000);
    assert.ok(!lower.frames.some((f) => f.type === 1 && f.stream === 3), 'a lower stream id: no answer');
    assert.ok(
      lower.frames.some((f) => f.type === 1 && f.stream === 7),
      'a lower stream id: the next call is answered',
    );
    // Stream 1 answered and closed, then used again.
    const reused = await raw(server.grpc as string, call(1), 1000, undefined, { afterMs: 300, bytes: Buffer.concat([call(1), call(3)]) });
    assert.equal(
      reused.frames.filter((f) => f.type === 1 && f.stream === 1 && (f.flags & 0x1) === 0).length,
      1,
      'a closed stream id: one answer',
    );
    assert.ok(
      reused.frames.some((f) => f.type === 1 && f.stream === 3),
      'a closed stream id: the next call is answered',
    );
  });

  it('closes a connection whose client makes the server reset stream after stream (MadeYouReset), within a bounded time', async () => {
    // Each stream is opened, then sent a second header block without END_STREAM, which the server must reset with
    // PROTOCOL_ERROR: resets the server sends, which nghttp2's rapid-reset limit does not count.
    const streams = 600;
    const bytes = Buffer.concat(
      Array.from({ length: streams }, (_, k) => [
        headersFrame(2 * k + 1, grpcFields()),
        headersFrame(2 * k + 1, [['x-later', 'a']]),
      ]).flat(),
    );
    const started = Date.now();
    const { frames, closed } = await raw(server.grpc as string, bytes, 5000);
    assert.equal(goAwayCode(frames), constants.NGHTTP2_ENHANCE_YOUR_CALM);
    assert.ok(closed, 'the connection closes');
    assert.ok(Date.now() - started < 3000, `closed after ${Date.now() - started} ms`);
    const resets = frames.filter((f) => f.type === 3).length;
    assert.ok(resets <= 200, `${resets} streams reset before the connection closed`);
    // Rapid reset (CVE-2023-44487): the client resets; nghttp2's limit of a burst of 1,000 ends the connection.
    const rapid = await raw(
      server.grpc as string,
      Buffer.concat(
        Array.from({ length: 1100 }, (_, k) => [
          headersFrame(2 * k + 1, grpcFields()),
          frame(3, 0, 2 * k + 1, Buffer.from([0, 0, 0, 8])),
        ]).flat(),
      ),
    );
    // nghttp2 names no code for it in the RFC's list; it sends INTERNAL_ERROR.
    assert.equal(goAwayCode(rapid.frames), constants.NGHTTP2_INTERNAL_ERROR, 'rapid reset: GOAWAY');
    assert.ok(rapid.closed, 'rapid reset: the connection closes');
    await stillServes();
  });

  it('answers PING, acknowledges SETTINGS, and cancels a call the client resets', async () => {
    const ping = Buffer.from('12345678');
    const { frames } = await raw(server.grpc as string, frame(6, 0, 0, ping), 500);
    assert.ok(
      frames.some((f) => f.type === 4 && f.flags === 1),
      'SETTINGS acknowledged',
    );
    assert.ok(
      frames.some((f) => f.type === 6 && f.flags === 1 && f.payload.equals(ping)),
      'PING answered',
    );
    const slow = ModelInfer.requestSerialize({
      model_name: 'slow',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 1], contents: { fp32_contents: [1] } }],
    });
    const reset = await raw(
      server.grpc as string,
      Buffer.concat([headersFrame(1, grpcFields()), frame(0, 0x1, 1, grpcFrame(slow)), frame(3, 0, 1, Buffer.from([0, 0, 0, 8]))]),
      800,
    );
    assert.ok(!reset.frames.some((f) => f.type === 1 && f.stream === 1), 'a reset call gets no answer');
  });

  it('survives random frames after a valid preface (fast-check), and keeps serving', async () => {
    const anyFrame = fc
      .tuple(
        fc.integer({ min: 0, max: 10 }),
        fc.integer({ min: 0, max: 255 }),
        fc.constantFrom(0, 1, 2, 3, 5, 0x7fffffff),
        fc.uint8Array({ maxLength: 64 }),
      )
      .map(([type, flags, stream, payload]) => frame(type, flags, stream, Buffer.from(payload)));
    await fc.assert(
      fc.asyncProperty(fc.array(anyFrame, { minLength: 1, maxLength: 8 }), async (frames) => {
        await raw(server.grpc as string, Buffer.concat([headersFrame(1, grpcFields(), 0x4), ...frames]), 20);
      }),
      { numRuns: 200 },
    );
    await stillServes();
    assert.equal(server.process.exitCode, null, 'the process is up');
  });
});
