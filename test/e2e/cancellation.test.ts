/**
 * Calls the client abandons, through the real server: a whole answer it stops waiting for, a
 * stream it cuts mid-way, a gRPC chat and a unary gRPC call it cancels. Each comes to one code,
 * 499 `client_closed_request` (gRPC CANCELLED), in the metrics, the access log, the usage ledger
 * and the trace alike; a gRPC deadline that passes is a time-out (504 `upstream_timeout`,
 * DEADLINE_EXCEEDED), not a cancel.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import SQLite from 'better-sqlite3';
import { credentials, Metadata, status, type Client } from '@grpc/grpc-js';
import { startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { parseMetrics } from '../helpers/prometheus.js';
import { grpcServices } from '../helpers/grpc.js';
import { ADMIN, ADMIN_KEY, tenantWithKey } from '../helpers/tenancy.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { SPAN_KIND, startReceiver, traceOf, type Received } from '../helpers/otlp.js';

const { Generate } = grpcServices({ defaults: true });

type Stream = NodeJS.ReadableStream & { cancel(): void };
type Unary = (request: object, metadata: Metadata, callback: (err: Error | null) => void) => { cancel(): void };

const hi = [{ role: 'user', content: 'hi' }];
const randomHex = (bytes: number): string =>
  Buffer.from(Array.from({ length: bytes }, () => Math.floor(Math.random() * 256))).toString('hex');

/** Polls `check` every 50 ms until it returns true; fails after 10 s, saying what it waited for. */
async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await sleep(50);
  }
  assert.fail(`waited 10 s for ${what}`);
}

describe('calls the client abandons', () => {
  let server: RunningServer;
  let upstream: Upstream;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let generate: Client;
  let key: string;
  const ledger = join(mkdtempSync(join(tmpdir(), 'infergate-cancel-')), 'usage.db');
  /** Request id → the trace id it was sent with (each call is sampled through its traceparent). */
  const traces = new Map<string, string>();

  const scrape = async (): Promise<Map<string, number>> =>
    parseMetrics(await (await fetch(`${server.url}/metrics`, { headers: ADMIN })).text());
  /** The counter and histogram series of one model's calls with this status and code. */
  const outcome = async (model: string, version: string, s: string, code: string): Promise<{ calls?: number; timed?: number }> => {
    const m = await scrape();
    const labels = `model="${model}",version="${version}",tenant="acme",status="${s}",code="${code}"`;
    return { calls: m.get(`infergate_requests_total{${labels}}`), timed: m.get(`infergate_request_duration_seconds_count{${labels}}`) };
  };
  const headers = (id: string): Record<string, string> => {
    const traceId = randomHex(16);
    traces.set(id, traceId);
    return { authorization: `Bearer ${key}`, 'x-request-id': id, traceparent: `00-${traceId}-${randomHex(8)}-01` };
  };
  const metadata = (id: string): Metadata => {
    const m = new Metadata();
    for (const [k, v] of Object.entries(headers(id))) m.set(k, v);
    return m;
  };

  before(async () => {
    upstream = await startUpstream();
    receiver = await startReceiver();
    const config = writeConfig(`
server: { access_log: true }
usage: { flush_interval_ms: 50 }
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
models:
  - name: slow
    versions:
      - version: '1'
        backend: { kind: mock, latency_ms: 30000 }
        policies: { admission: { max_concurrent: 4 } }
  - name: remote
    versions: [{ version: r, backend: { kind: openai, base_url: '${upstream.url}' } }]
`);
    server = await startServer({
      config,
      env: { DATABASE_URL: `sqlite:${ledger}`, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' },
    });
    key = (await tenantWithKey(server.url, { id: 'acme', models: ['*'] })).key;
    generate = new Generate(server.grpc as string, credentials.createInsecure());
  });

  after(async () => {
    generate?.close();
    await server?.stop();
    await upstream?.close();
    receiver?.server.close();
  });

  it('counts a whole answer the client stopped waiting for as 499 client_closed_request', async () => {
    const abandon = new AbortController();
    const pending = fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: headers('gone-whole'),
      body: JSON.stringify({ model: 'slow', messages: hi }),
      signal: abandon.signal,
    }).catch((err: Error) => err);
    // The call holds its admission slot while the model works on it: then the client leaves.
    await until(
      'the call to reach the model',
      async () => (await scrape()).get('infergate_admission_active_calls{model="slow",version="1"}') === 1,
    );
    abandon.abort();
    assert.equal(((await pending) as Error).name, 'AbortError');
    await until('the call to be recorded', async () => (await outcome('slow', '1', '499', 'client_closed_request')).calls === 1);
    assert.equal((await outcome('slow', '1', '499', 'client_closed_request')).timed, 1);
    assert.equal((await outcome('slow', '1', '400', 'invalid_request')).calls, undefined);
  });

  it('counts a stream the client cut mid-way as 499 client_closed_request, not 200', async () => {
    upstream.streamChunks = 50;
    upstream.streamDelayMs = 50;
    const aborted = upstream.abortedStreams;
    try {
      const res = await fetch(`${server.url}/v1/chat/completions`, {
        method: 'POST',
        headers: headers('gone-stream'),
        body: JSON.stringify({ model: 'remote', messages: hi, stream: true }),
      });
      assert.equal(res.status, 200);
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      assert.match(new TextDecoder().decode((await reader.read()).value), /tok0/);
      await reader.cancel();
      await until('the upstream stream to be cut', () => upstream.abortedStreams === aborted + 1);
      await until('the stream to be recorded', async () => (await outcome('remote', 'r', '499', 'client_closed_request')).calls === 1);
      assert.equal((await outcome('remote', 'r', '200', '')).calls, undefined, 'a cut stream is not a success');
    } finally {
      upstream.streamChunks = 3;
      upstream.streamDelayMs = 0;
    }
  });

  it('counts a gRPC chat the client cancelled mid-stream as 499 client_closed_request (CANCELLED)', async () => {
    upstream.streamChunks = 50;
    upstream.streamDelayMs = 50;
    const aborted = upstream.abortedStreams;
    try {
      const stream = (generate as unknown as { Chat: (r: object, m: Metadata) => Stream }).Chat(
        { model: 'remote', messages: hi },
        metadata('gone-grpc-chat'),
      );
      await new Promise((resolve, reject) => {
        stream.once('data', resolve);
        stream.once('error', reject);
      });
      const ended = new Promise<{ code?: number }>((resolve) => stream.once('error', resolve));
      stream.cancel();
      assert.equal((await ended).code, status.CANCELLED);
      await until('the upstream stream to be cut', () => upstream.abortedStreams === aborted + 1);
      await until('the chat to be recorded', async () => (await outcome('remote', 'r', '499', 'client_closed_request')).calls === 2);
    } finally {
      upstream.streamChunks = 3;
      upstream.streamDelayMs = 0;
    }
  });

  it('counts a unary gRPC call the client cancelled as 499 client_closed_request', async () => {
    const cancelled = upstream.cancelled;
    upstream.faults.push({ delayMs: 30_000 });
    const received = upstream.received.length;
    let settled: (err: Error | null) => void = () => undefined;
    const done = new Promise<Error | null>((resolve) => (settled = resolve));
    const call = (generate as unknown as { Embed: Unary }).Embed.call(
      generate,
      { model: 'remote', input: ['a'] },
      metadata('gone-grpc-embed'),
      (err) => settled(err),
    );
    await until('the upstream to receive the call', () => upstream.received.length === received + 1);
    call.cancel();
    assert.equal(((await done) as { code?: number }).code, status.CANCELLED);
    await until('the upstream call to be cancelled', () => upstream.cancelled === cancelled + 1);
    await until('the call to be recorded', async () => (await outcome('remote', 'r', '499', 'client_closed_request')).calls === 3);
  });

  it('counts a gRPC chat whose deadline passed as a time-out, not a cancel', async () => {
    const err = await new Promise<{ code?: number }>((resolve) => {
      const stream = (generate as unknown as { Chat: (r: object, m: Metadata, o: object) => Stream }).Chat(
        { model: 'slow', messages: hi },
        metadata('late-grpc-chat'),
        { deadline: Date.now() + 300 },
      );
      stream.on('data', () => undefined);
      stream.once('error', resolve);
    });
    assert.equal(err.code, status.DEADLINE_EXCEEDED);
    await until('the call to be recorded', async () => (await outcome('slow', '1', '504', 'upstream_timeout')).calls === 1);
    assert.equal((await outcome('slow', '1', '499', 'client_closed_request')).calls, 1, 'only the abandoned HTTP call');
  });

  it('traces each as its metrics count it', async () => {
    const root = async (id: string): Promise<Received> => {
      const traceId = traces.get(id) as string;
      const spans = await traceOf(receiver.spans, (s) => s.traceId === traceId, 1);
      return spans.find((s) => s.kind === SPAN_KIND.SERVER) as Received;
    };
    for (const id of ['gone-whole', 'gone-stream']) {
      const span = await root(id);
      assert.equal(span.attributes['http.response.status_code'], 499, id);
      assert.equal(span.attributes['error.type'], 'client_closed_request', id);
      assert.notEqual(span.status, 2, `${id}: the client's leaving is no server error`);
    }
    for (const id of ['gone-grpc-chat', 'gone-grpc-embed']) {
      const span = await root(id);
      assert.equal(span.attributes['rpc.grpc.status_code'], status.CANCELLED, id);
      assert.equal(span.attributes['error.type'], 'client_closed_request', id);
    }
    const late = await root('late-grpc-chat');
    assert.equal(late.attributes['rpc.grpc.status_code'], status.DEADLINE_EXCEEDED);
    assert.equal(late.attributes['error.type'], 'upstream_timeout');
  });

  it('writes the same status and code to the access log and the usage ledger', async () => {
    assert.equal(await server.stop(), 0);
    const logged = new Map(
      server
        .output()
        .split('\n')
        .filter((l) => l.includes('"msg":"call"'))
        .map((l) => JSON.parse(l) as { req_id: string; status: number; code: string })
        .map((l) => [l.req_id, [l.status, l.code]]),
    );
    const db = new SQLite(ledger, { readonly: true });
    const rows = db.prepare('SELECT request_id, status FROM usage').all() as Array<{ request_id: string; status: number }>;
    db.close();
    const ledgered = new Map(rows.map((r) => [r.request_id, r.status]));
    for (const id of ['gone-whole', 'gone-stream', 'gone-grpc-chat', 'gone-grpc-embed']) {
      assert.deepEqual(logged.get(id), [499, 'client_closed_request'], `${id} in the access log`);
      assert.equal(ledgered.get(id), 499, `${id} in the ledger`);
    }
    assert.deepEqual(logged.get('late-grpc-chat'), [504, 'upstream_timeout']);
    assert.equal(ledgered.get('late-grpc-chat'), 504);
  });
});
