/** The OpenAI model calls: chat completions, completions and embeddings (served by model-calls.ts). */
import type { Logger } from 'pino';
import type { TextRequest } from '../../../core/text.js';
import type { RequestContext } from '../../../pipeline/context.js';
import type { Gateway } from '../../../pipeline/gateway.js';
import { toApiError } from '../errors.js';
import { openaiErrorBody } from '../../../protocols/openai/errors.js';
import { servedHeaders, serveText, type HttpResult, type ModelCall } from '../model-calls.js';
import { ChatRequest, CompletionRequest, EmbeddingRequest } from '../../../protocols/openai/schemas.js';
import { chatRequest, completionRequest } from '../../../protocols/openai/request.js';
import { streamChunks, wholeAnswer } from '../../../protocols/openai/encode.js';

const JSON_TYPE = 'application/json';

/** The OpenAI model-call routes, by path; streamed answers are sent as Server-Sent Events ending in `[DONE]`. */
export function openaiCalls(gateway: Gateway, log: Logger) {
  /** Serves a parsed text request: an upstream's bytes as they came, else the events encoded whole or as a stream. */
  async function text(req: TextRequest, ctx: RequestContext): Promise<HttpResult> {
    return serveText(
      await gateway.generate(req, ctx),
      'openai',
      req.stream,
      (answer) => wholeAnswer(answer, req),
      (answer) => sse(streamChunks(answer, req), ctx, log),
    );
  }

  const chat: ModelCall<ChatRequest> = {
    schema: ChatRequest,
    protocol: 'openai',
    handle: (body, ctx) => text(chatRequest(body), ctx),
  };

  const completion: ModelCall<CompletionRequest> = {
    schema: CompletionRequest,
    protocol: 'openai',
    handle: (body, ctx) => text(completionRequest(body), ctx),
  };

  const embeddings: ModelCall<EmbeddingRequest> = {
    schema: EmbeddingRequest,
    protocol: 'openai',
    handle: async (body, ctx) => {
      const input = typeof body.input === 'string' ? [body.input] : body.input;
      const served = await gateway.embed(body.model, { input, dimensions: body.dimensions ?? null }, ctx);
      const result = served.result;
      const base64 = body.encoding_format === 'base64';
      const data = result.vectors.map((v, index) => ({
        object: 'embedding',
        index,
        embedding: base64 ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v),
      }));
      const usage = { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens };
      return {
        status: 200,
        headers: servedHeaders(served, JSON_TYPE),
        body: JSON.stringify({ object: 'list', data, model: body.model, usage }),
      };
    },
  };

  return {
    '/v1/chat/completions': chat,
    '/v1/completions': completion,
    '/v1/embeddings': embeddings,
  } as const;
}

/** Encodes chunks as Server-Sent Events; a failure after the first byte becomes an error event, then the stream ends. */
async function* sse(events: AsyncIterable<object>, ctx: RequestContext, log: Logger): AsyncGenerator<string> {
  try {
    for await (const event of events) yield `data: ${JSON.stringify(event)}\n\n`;
  } catch (error) {
    const e = toApiError(error, ctx, log);
    yield `data: ${openaiErrorBody(e)}\n\n`;
  }
  yield 'data: [DONE]\n\n';
}
