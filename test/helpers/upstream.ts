/**
 * A real OpenAI-compatible server on loopback, standing in for vLLM or OpenAI: answers chat,
 * completions and embeddings, streams chunk by chunk at a pace the test sets, records what it
 * received, and notices when a client goes away mid-stream.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer } from 'node:net';

export interface Received {
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: Record<string, unknown>;
}

/** A fault for one request, taken in order from `Upstream.faults`. */
export type Fault =
  | { readonly status: number; readonly retryAfter?: string }
  | { readonly reset: true }
  /** A 200 whose body is this text, whatever was asked (a broken upstream). */
  | { readonly garbage: string }
  | { readonly delayMs: number }
  | { readonly cutAfterChunks: number }
  | { readonly stallAfterChunks: number }
  /** A stream sends this many chunks, then an event whose data is not JSON, and ends. */
  | { readonly malformedAfterChunks: number };

export interface Upstream {
  readonly url: string;
  readonly received: Received[];
  /** Streams that ended because the client disconnected. */
  abortedStreams: number;
  /** Chunks a stream sends, and the delay between them in ms. */
  streamChunks: number;
  streamDelayMs: number;
  /** When set, every request answers this status and error body. */
  failWith: { status: number; message: string } | null;
  /** Faults for the next requests, one each, in order; then requests are served normally. */
  faults: Fault[];
  /** Requests cancelled by the client before the answer was complete. */
  cancelled: number;
  /** When > 0, a stream sends this many bytes of chunks as fast as the socket takes them (respecting drain). */
  firehoseBytes: number;
  /** Bytes of the firehose written so far. */
  firehoseSent: number;
  close(): Promise<void>;
}

export async function startUpstream(): Promise<Upstream> {
  const state: Omit<Upstream, 'url' | 'close'> = {
    received: [],
    abortedStreams: 0,
    streamChunks: 3,
    streamDelayMs: 0,
    failWith: null,
    faults: [],
    cancelled: 0,
    firehoseBytes: 0,
    firehoseSent: 0,
  };
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (raw += d));
    req.on('end', () => handle(req, res, JSON.parse(raw || '{}') as Record<string, unknown>));
  });
  function handle(req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>): void {
    state.received.push({ path: req.url ?? '', headers: req.headers, body });
    const fault = state.faults.shift();
    if (fault !== undefined && 'status' in fault) {
      res.writeHead(fault.status, {
        'content-type': 'application/json',
        ...(fault.retryAfter === undefined ? {} : { 'retry-after': fault.retryAfter }),
      });
      return void res.end(
        JSON.stringify({ error: { message: `injected ${fault.status}`, type: 'server_error', param: null, code: null } }),
      );
    }
    if (fault !== undefined && 'reset' in fault) return void req.socket.destroy();
    if (fault !== undefined && 'garbage' in fault) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(fault.garbage);
    }
    if (fault !== undefined && 'delayMs' in fault) {
      let done = false;
      res.on('close', () => done || state.cancelled++);
      setTimeout(() => {
        done = true;
        if (!res.destroyed) serve(req, res, body, 0);
      }, fault.delayMs);
      return;
    }
    serve(
      req,
      res,
      body,
      fault !== undefined && 'cutAfterChunks' in fault ? fault.cutAfterChunks : 0,
      fault !== undefined && 'stallAfterChunks' in fault ? fault.stallAfterChunks : 0,
      fault !== undefined && 'malformedAfterChunks' in fault ? fault.malformedAfterChunks : -1,
    );
  }
  function serve(
    req: IncomingMessage,
    res: ServerResponse,
    body: Record<string, unknown>,
    cutAfterChunks: number,
    stallAfterChunks = 0,
    malformedAfterChunks = -1,
  ): void {
    if (state.failWith !== null) {
      res.writeHead(state.failWith.status, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ error: { message: state.failWith.message, type: 'invalid_request_error', param: 'temperature', code: null } }),
      );
      return;
    }
    const model = String(body.model);
    if (req.url === '/v1/embeddings') {
      const input = Array.isArray(body.input) ? body.input : [body.input];
      const data = input.map((_, index) => ({ object: 'embedding', index, embedding: [index, 0.5, -0.5] }));
      return json(res, { object: 'list', data, model, usage: { prompt_tokens: 3, total_tokens: 3 } });
    }
    const chat = req.url === '/v1/chat/completions';
    if (body.stream !== true) {
      const choice = chat
        ? { index: 0, message: { role: 'assistant', content: 'upstream says hi' }, finish_reason: 'stop' }
        : { index: 0, text: 'upstream says hi', finish_reason: 'stop' };
      return json(res, {
        id: 'up-1',
        object: chat ? 'chat.completion' : 'text_completion',
        created: 1,
        model,
        choices: [choice],
        usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
      });
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (state.firehoseBytes > 0) return firehose(res);
    let i = 0;
    let finished = false;
    res.on('close', () => {
      if (!finished) state.abortedStreams++;
    });
    const tick = (): void => {
      if (res.destroyed) return;
      if (cutAfterChunks > 0 && i === cutAfterChunks) return void res.socket?.destroy();
      if (stallAfterChunks > 0 && i === stallAfterChunks) return; // silent, connection open
      if (i === malformedAfterChunks) {
        finished = true;
        return void res.end('data: {"choices": [{"delta": \n\n');
      }
      if (i < state.streamChunks) {
        const chunk = {
          id: 'up-s',
          object: 'chat.completion.chunk',
          created: 1,
          model,
          choices: [{ index: 0, delta: { content: `tok${i} ` }, finish_reason: null }],
        };
        res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        i++;
        setTimeout(tick, state.streamDelayMs);
        return;
      }
      finished = true;
      // With stream_options.include_usage, as OpenAI does: a last chunk with usage and no choices.
      const usage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage
        ? `data: ${JSON.stringify({ id: 'up-s', object: 'chat.completion.chunk', created: 1, model, choices: [], usage: { prompt_tokens: 2, completion_tokens: state.streamChunks, total_tokens: 2 + state.streamChunks } })}\n\n`
        : '';
      res.end(
        `data: ${JSON.stringify({ id: 'up-s', object: 'chat.completion.chunk', created: 1, model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n${usage}data: [DONE]\n\n`,
      );
    };
    tick();
  }
  function firehose(res: ServerResponse): void {
    const chunk = `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'x'.repeat(16 * 1024) } }] })}\n\n`;
    state.firehoseSent = 0;
    const pump = (): void => {
      while (state.firehoseSent < state.firehoseBytes && !res.destroyed) {
        state.firehoseSent += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', pump);
      }
      if (!res.destroyed) res.end('data: [DONE]\n\n');
    };
    res.on('close', () => state.abortedStreams++);
    pump();
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const upstream = Object.assign(state, {
    url: `http://127.0.0.1:${port}/v1`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  }) as Upstream;
  return upstream;
}

function json(res: ServerResponse, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** A loopback port with nothing listening: connections to it are refused. */
export async function closedPort(): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
