/**
 * Streams from an upstream whose Server-Sent Events end lines with CRLF, CR or LF (all valid SSE,
 * CRLF the default of common Python servers), with comments, `id:` fields and multi-line `data:`:
 * each event reaches the client as soon as it is complete, the usage chunk only if asked for, and
 * the usage ledger and token limits see the exact tokens, over HTTP and gRPC Chat.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentials, Metadata } from '@grpc/grpc-js';
import { createParser } from 'eventsource-parser';
import { get, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';
import { grpcServices } from '../helpers/grpc.js';
import { ADMIN_KEY, tenantWithKey } from '../helpers/tenancy.js';

type LineEnd = '\r\n' | '\r' | '\n';

/** The usage the upstream reports: not the number of chunks, so a count of chunks cannot pass for it. */
const USAGE = { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 };
/** How long the upstream waits for the client to have its first event before it sends the rest anyway. */
const GATE_MS = 5000;

interface SseUpstream {
  readonly url: string;
  /** Line end of the next streams. */
  lineEnd: LineEnd;
  /** When set, the stream waits after its first event until this resolves (or GATE_MS pass). */
  gate: Promise<void> | null;
  /** Whether the last stream found its gate opened, rather than timed out. */
  gateOpened: boolean | null;
  readonly received: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** A loopback OpenAI-compatible server that streams one chat answer, event by event, with the line ends asked. */
async function startSseUpstream(): Promise<SseUpstream> {
  const state = { lineEnd: '\r\n' as LineEnd, gate: null as Promise<void> | null, gateOpened: null as boolean | null };
  const received: Array<Record<string, unknown>> = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (raw += d));
    req.on('end', () => {
      const body = JSON.parse(raw) as Record<string, unknown>;
      received.push(body);
      const eol = state.lineEnd;
      const chunk = (delta: object, finish: string | null = null) =>
        JSON.stringify({
          id: 'up-1',
          object: 'chat.completion.chunk',
          created: 1,
          model: body.model,
          choices: [{ index: 0, delta, finish_reason: finish }],
        });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`: the upstream is warm${eol}id: 1${eol}data: ${chunk({ role: 'assistant', content: 'Hello' })}${eol}${eol}`);
      const gate = state.gate;
      const rest = (): void => {
        // One JSON value over two data lines (cut after its first member): the parser joins them with a line feed.
        const json = chunk({ content: ' world' });
        const cut = json.indexOf(',') + 1;
        res.write(`event: message${eol}data: ${json.slice(0, cut)}${eol}data: ${json.slice(cut)}${eol}${eol}`);
        res.write(`data: ${chunk({}, 'stop')}${eol}${eol}`);
        const usage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
        if (usage) {
          res.write(
            `data: ${JSON.stringify({ id: 'up-1', object: 'chat.completion.chunk', created: 1, model: body.model, choices: [], usage: USAGE })}${eol}${eol}`,
          );
        }
        res.end(`data: [DONE]${eol}${eol}`);
      };
      if (gate === null) return rest();
      let timer: NodeJS.Timeout | undefined;
      void Promise.race([
        gate.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), GATE_MS))),
      ]).then((opened) => {
        clearTimeout(timer);
        state.gateOpened = opened;
        rest();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/v1`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}

/** The data of every event in an SSE text, parsed by the spec. */
function eventData(text: string): string[] {
  const out: string[] = [];
  const parser = createParser({ onEvent: (e) => void out.push(e.data) });
  parser.feed(text);
  return out;
}

/** The content deltas of the chunks among `data`. */
function content(data: string[]): string {
  return data
    .filter((d) => d !== '[DONE]')
    .map((d) => (JSON.parse(d) as { choices: Array<{ delta?: { content?: string } }> }).choices[0]?.delta?.content ?? '')
    .join('');
}

describe('streams from an upstream with CRLF, CR or LF line ends', () => {
  let server: RunningServer;
  let upstream: SseUpstream;

  before(async () => {
    upstream = await startSseUpstream();
    const config = writeConfig(`
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
usage: { flush_interval_ms: 50 }
models:
  - name: remote
    versions: [{ version: '1', backend: { kind: openai, base_url: '${upstream.url}' } }]
`);
    server = await startServer({ config });
  });
  after(async () => {
    await server?.stop();
    await upstream?.close();
  });

  /** The tenant's usage totals once the ledger shows `requests` calls (bounded wait). */
  async function usageOf(key: string, requests: number): Promise<{ prompt_tokens: number; completion_tokens: number }> {
    for (let i = 0; ; i++) {
      const row = (await get(`${server.url}/v1/usage`, { authorization: `Bearer ${key}` })).body.data[0];
      if ((row !== undefined && row.requests >= requests) || i >= 40) return row;
      await sleep(50);
    }
  }

  for (const [name, lineEnd] of [
    ['CRLF', '\r\n'],
    ['CR', '\r'],
    ['LF', '\n'],
  ] as const) {
    it(`${name}: passes each event on as soon as it is complete, drops the usage chunk not asked for, and meters the exact tokens`, async () => {
      const tenant = await tenantWithKey(server.url, {
        id: `sse-${name.toLowerCase()}`,
        models: ['remote'],
        limits: { tokens_per_minute: 10 },
      });
      const headers = { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json' };
      upstream.lineEnd = lineEnd;
      let open!: () => void;
      upstream.gate = new Promise<void>((resolve) => (open = resolve));
      upstream.gateOpened = null;
      try {
        const res = await fetch(`${server.url}/v1/chat/completions`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ model: 'remote', messages: [{ role: 'user', content: 'hi' }], stream: true }),
          signal: AbortSignal.timeout(10_000),
        });
        assert.equal(res.status, 200);
        const reader = (res.body as ReadableStream<Uint8Array>).getReader();
        const decoder = new TextDecoder();
        let text = '';
        // The first event arrives while the upstream still waits for this client to have it.
        while (!text.includes('Hello')) {
          const { value, done } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
        }
        open();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
        }
        assert.equal(upstream.gateOpened, true, 'the first event reached the client before the upstream sent the rest');
        assert.equal(
          (upstream.received.at(-1)?.stream_options as { include_usage?: boolean }).include_usage,
          true,
          'usage was asked upstream',
        );
        const data = eventData(text);
        assert.equal(data.at(-1), '[DONE]');
        assert.ok(!data.some((d) => d.includes('"usage"')), `no usage chunk unless asked: ${JSON.stringify(text)}`);
        assert.equal(content(data), 'Hello world', 'multi-line data kept whole');
      } finally {
        upstream.gate = null;
      }
      const usage = await usageOf(tenant.key, 1);
      assert.equal(usage.prompt_tokens, USAGE.prompt_tokens);
      assert.equal(usage.completion_tokens, USAGE.completion_tokens, 'the upstream usage was read and ledgered');
      // 12 tokens were spent against 10 a minute: the next call is refused.
      const next = await post(
        `${server.url}/v1/chat/completions`,
        { model: 'remote', messages: [{ role: 'user', content: 'hi' }] },
        headers,
      );
      assert.equal(next.status, 429);
      assert.equal(next.body.error.code, 'rate_limited');
    });
  }

  it('passes the usage chunk to a client that asked for it, CRLF-ended events untouched', async () => {
    const tenant = await tenantWithKey(server.url, { id: 'sse-asked', models: ['remote'] });
    upstream.lineEnd = '\r\n';
    const res = await fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'remote',
        messages: [{ role: 'user', content: 'hi' }],
        stream: true,
        stream_options: { include_usage: true },
      }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    assert.ok(text.includes('\r\n\r\n') && !/[^\r]\n/.test(text), 'the bytes came through as the upstream sent them');
    const usage = eventData(text).find((d) => d.includes('"usage"'));
    assert.deepEqual((JSON.parse(usage ?? '{}') as { usage?: object }).usage, USAGE);
  });

  it('streams gRPC Chat from a CRLF upstream, text and usage', async () => {
    const tenant = await tenantWithKey(server.url, { id: 'sse-grpc', models: ['remote'] });
    upstream.lineEnd = '\r\n';
    const { Generate } = grpcServices({ enums: String, defaults: true, oneofs: true });
    const client = new Generate(server.grpc as string, credentials.createInsecure());
    try {
      const metadata = new Metadata();
      metadata.set('authorization', `Bearer ${tenant.key}`);
      const stream = (client as unknown as { Chat: (r: object, m: Metadata, o: object) => AsyncIterable<any> }).Chat(
        { model: 'remote', messages: [{ role: 'user', content: 'hi' }] },
        metadata,
        { deadline: Date.now() + 10_000 },
      );
      const chunks: any[] = [];
      for await (const chunk of stream) chunks.push(chunk);
      assert.equal(chunks.map((c) => c.delta).join(''), 'Hello world');
      assert.equal(chunks.at(-1).finish_reason, 'stop');
      assert.equal(Number(chunks.at(-1).usage.completion_tokens), USAGE.completion_tokens);
    } finally {
      client.close();
    }
  });
});
