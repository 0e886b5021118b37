/**
 * Slow and greedy clients on the HTTP port, through raw sockets: a body dribbled too slowly and headers
 * never finished are cut at server.request_timeout_ms and server.headers_timeout_ms, and no more than
 * server.max_connections connections are held open at once.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';

const HEADERS_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 3000;
const MAX_CONNECTIONS = 3;
/** Node looks for expired requests once a second (the server's connectionsCheckingInterval), plus scheduling slack. */
const LATE_MS = 1000 + 1000;
/** Longer than a request may take to arrive, past Node's next check: the answer must still come. */
const SLOW_MODEL_MS = REQUEST_TIMEOUT_MS + 1500;

/** What one raw connection received, and when it closed (ms after `opened`). */
interface Conversation {
  readonly socket: Socket;
  readonly opened: number;
  received(): string;
  /** Resolves with the ms from opening to close; rejects after `within` ms if the server keeps it open. */
  closed(within: number): Promise<number>;
}

async function open(url: string): Promise<Conversation> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  socket.setEncoding('utf8');
  let data = '';
  let opened = 0;
  socket.on('data', (d: string) => (data += d));
  socket.on('error', () => {}); // a reset is one way of being cut; `close` follows it
  const done = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - opened)));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  opened = performance.now();
  return {
    socket,
    opened,
    received: () => data,
    closed: (within) =>
      new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`still open after ${within} ms; received ${JSON.stringify(data)}`)), within);
        void done.then((ms) => {
          clearTimeout(timer);
          resolve(ms);
        });
      }),
  };
}

/** Writes `text` one character every `everyMs` until the socket closes; returns the stopper. */
function dribble(socket: Socket, text: string, everyMs: number): () => void {
  let i = 0;
  const timer = setInterval(() => {
    if (socket.destroyed || i >= text.length) return clearInterval(timer);
    socket.write(text[i++] as string);
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
  return () => clearInterval(timer);
}

const CHAT = JSON.stringify({ model: 'fast', messages: [{ role: 'user', content: 'hi' }] });
const request = (host: string, body: string, keepAlive = true) =>
  `POST /v1/chat/completions HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
  `Connection: ${keepAlive ? 'keep-alive' : 'close'}\r\n\r\n${body}`;

/** Sends one whole request on an open connection and waits for the end of its (small, not chunked) answer. */
async function exchange(c: Conversation, host: string): Promise<string> {
  const before = c.received().length;
  c.socket.write(request(host, CHAT));
  for (let i = 0; i < 100; i++) {
    const answer = c.received().slice(before);
    const m = /\r\ncontent-length: (\d+)\r\n/i.exec(answer);
    const head = answer.indexOf('\r\n\r\n');
    if (m !== null && head !== -1 && answer.length - head - 4 >= Number(m[1])) return answer;
    await new Promise((r) => c.socket.once('data', r).once('close', r));
    if (c.socket.destroyed) break;
  }
  throw new Error(`no whole answer; received ${JSON.stringify(c.received().slice(before))}`);
}

describe('slow clients on the HTTP port', () => {
  let server: RunningServer;
  let host: string;

  before(async () => {
    const config = writeConfig(`
server:
  headers_timeout_ms: ${HEADERS_TIMEOUT_MS}
  request_timeout_ms: ${REQUEST_TIMEOUT_MS}
  max_connections: ${MAX_CONNECTIONS}
grpc: { enabled: false }
models:
  - { name: fast, versions: [{ version: '1', backend: { kind: mock, text: 'quick' } }] }
  - { name: slow, versions: [{ version: '1', backend: { kind: mock, text: 'slow', latency_ms: ${SLOW_MODEL_MS} } }] }
`);
    server = await startServer({ config });
    host = new URL(server.url).host;
  });
  after(async () => {
    assert.equal(await server?.stop(), 0);
  });

  it('answers 408 and closes the connection when a body is dribbled slower than request_timeout_ms', async () => {
    const c = await open(server.url);
    const body = CHAT.padEnd(2000, ' ');
    const head = request(host, body).slice(0, -body.length);
    c.socket.write(head);
    dribble(c.socket, body, 100); // 20 s for the whole body
    const ms = await c.closed(REQUEST_TIMEOUT_MS + LATE_MS + 1000);
    assert.ok(ms >= REQUEST_TIMEOUT_MS - 100, `cut after ${ms} ms, before request_timeout_ms`);
    assert.ok(ms <= REQUEST_TIMEOUT_MS + LATE_MS, `cut after ${ms} ms`);
    assert.match(c.received(), /^HTTP\/1\.1 408 /);
    assert.match(c.received(), /"code":"request_timeout"/);
  });

  it('answers 408 and closes a connection whose headers never finish within headers_timeout_ms', async () => {
    const c = await open(server.url);
    c.socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: ${host}\r\n`);
    dribble(c.socket, 'x-slow: ' + 'a'.repeat(200), 100);
    const ms = await c.closed(HEADERS_TIMEOUT_MS + LATE_MS + 1000);
    assert.ok(ms >= HEADERS_TIMEOUT_MS - 100, `cut after ${ms} ms, before headers_timeout_ms`);
    // Cut by the headers' limit, not the whole request's.
    assert.ok(ms <= HEADERS_TIMEOUT_MS + LATE_MS && ms < REQUEST_TIMEOUT_MS, `cut after ${ms} ms`);
    assert.match(c.received(), /^HTTP\/1\.1 408 /);
    assert.match(c.received(), /"code":"request_timeout"/);
  });

  it('answers headers over 16 KiB with 431 headers_too_large in the OpenAI error shape', async () => {
    const c = await open(server.url);
    c.socket.write(`GET /v1/models HTTP/1.1\r\nHost: ${host}\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`);
    await c.closed(5000);
    assert.match(c.received(), /^HTTP\/1\.1 431 /);
    assert.match(c.received(), /"code":"headers_too_large"/);
  });

  it('closes connection max_connections + 1 at once while max_connections are open, and takes one again after one closes', async () => {
    const held: Conversation[] = [];
    try {
      // Each held connection has had an answer: the server has it, not just the kernel's queue.
      for (let i = 0; i < MAX_CONNECTIONS; i++) {
        const c = await open(server.url);
        held.push(c);
        assert.match(await exchange(c, host), /^HTTP\/1\.1 200 /);
      }
      const extra = await open(server.url);
      extra.socket.write(request(host, CHAT));
      await extra.closed(2000);
      assert.equal(extra.received(), '', 'the connection past the limit got an answer');
      // The held ones still work.
      assert.match(await exchange(held[0] as Conversation, host), /^HTTP\/1\.1 200 /);

      held.pop()?.socket.destroy();
      // The server learns of the close asynchronously: a fresh connection is served within a bounded number of tries.
      let served = false;
      for (let i = 0; i < 20 && !served; i++) {
        const c = await open(server.url);
        try {
          served = /^HTTP\/1\.1 200 /.test(await exchange(c, host).catch(() => ''));
        } finally {
          if (served) held.push(c);
          else c.socket.destroy();
        }
        if (!served) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(served, 'no connection was served after one of the held ones closed');
    } finally {
      for (const c of held) c.socket.destroy();
    }
  });

  it('still serves whole requests, including an answer that takes longer than request_timeout_ms', async () => {
    const fast = await post(`${server.url}/v1/chat/completions`, JSON.parse(CHAT));
    assert.equal(fast.status, 200);
    assert.equal(fast.body.choices[0].message.content, 'quick');
    // The limits bound how long a client takes to send, never how long a model takes to answer.
    const started = performance.now();
    const slow = await post(`${server.url}/v1/chat/completions`, { model: 'slow', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(slow.status, 200);
    assert.equal(slow.body.choices[0].message.content, 'slow');
    assert.ok(performance.now() - started >= SLOW_MODEL_MS - 50);
  });
});
