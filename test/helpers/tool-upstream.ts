/**
 * A real OpenAI-compatible chat server on loopback that calls tools, standing in for vLLM with a
 * tool-calling model: a request with `tools` whose last message is not a tool result is answered
 * with a call of the first tool (arguments `{"city":"Oslo"}`), whole or streamed in two argument
 * pieces; any other request with the text `done: <the last message's content>`. It records what it received.
 */
import { createServer, type Server } from 'node:http';

/** The tool-calling server: its /v1 URL, the chat bodies it received, and how to stop it. */
export interface ToolUpstream {
  readonly url: string;
  readonly received: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** The arguments every call carries, as JSON text. */
export const CALL_ARGUMENTS = '{"city":"Oslo"}';

/** Starts the server on a free port. */
export async function startToolUpstream(): Promise<ToolUpstream> {
  const received: Array<Record<string, unknown>> = [];
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (raw += d));
    req.on('end', () => {
      const body = JSON.parse(raw || '{}') as Record<string, unknown>;
      received.push(body);
      const messages = (body.messages ?? []) as Array<{ role: string; content: unknown }>;
      const last = messages[messages.length - 1];
      const tools = (body.tools ?? []) as Array<{ function: { name: string } }>;
      const name = last?.role === 'tool' ? null : (tools[0]?.function.name ?? null);
      const usage = { prompt_tokens: messages.length, completion_tokens: 2, total_tokens: messages.length + 2 };
      const head = { id: 'up-tools', created: 1, model: String(body.model) };
      if (body.stream !== true) {
        const message =
          name === null
            ? { role: 'assistant', content: `done: ${String(last?.content)}` }
            : {
                role: 'assistant',
                content: null,
                tool_calls: [{ id: 'call_up1', type: 'function', function: { name, arguments: CALL_ARGUMENTS } }],
              };
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            ...head,
            object: 'chat.completion',
            choices: [{ index: 0, message, finish_reason: name === null ? 'stop' : 'tool_calls' }],
            usage,
          }),
        );
        return;
      }
      const chunk = (delta: object, finish: string | null): string =>
        `data: ${JSON.stringify({ ...head, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
      const deltas =
        name === null
          ? [chunk({ role: 'assistant', content: `done: ${String(last?.content)}` }, null)]
          : [
              chunk(
                {
                  role: 'assistant',
                  tool_calls: [{ index: 0, id: 'call_up1', type: 'function', function: { name, arguments: '{"city":' } }],
                },
                null,
              ),
              chunk({ tool_calls: [{ index: 0, function: { arguments: '"Oslo"}' } }] }, null),
            ];
      const usageChunk = `data: ${JSON.stringify({ ...head, object: 'chat.completion.chunk', choices: [], usage })}\n\n`;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`${deltas.join('')}${chunk({}, name === null ? 'stop' : 'tool_calls')}${usageChunk}data: [DONE]\n\n`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
