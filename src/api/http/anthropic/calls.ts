/** The Anthropic model calls: Messages and count_tokens (served by model-calls.ts). */
import type { Logger } from 'pino';
import type { ChatRequest } from '../../../core/text.js';
import type { RequestContext } from '../../../pipeline/context.js';
import type { Gateway } from '../../../pipeline/gateway.js';
import { toApiError } from '../errors.js';
import { servedHeaders, serveText, type HttpResult, type ModelCall } from '../model-calls.js';
import { CountTokensRequest, MessagesRequest } from '../../../protocols/anthropic/schemas.js';
import { countTokensRequest, messagesRequest } from '../../../protocols/anthropic/request.js';
import { messageEvents, sseError, sseEvent, wholeMessage, type StreamEvent } from '../../../protocols/anthropic/encode.js';

const JSON_TYPE = 'application/json';

/** The Anthropic model-call routes, by path; streamed answers are Anthropic's named Server-Sent Events. */
export function anthropicCalls(gateway: Gateway, log: Logger) {
  /** Serves a parsed request: an Anthropic upstream's bytes as they came, else the events encoded whole or as a stream. */
  async function messages(req: ChatRequest, ctx: RequestContext): Promise<HttpResult> {
    return serveText(
      await gateway.generate(req, ctx),
      'anthropic',
      req.stream,
      (answer) => wholeMessage(answer, req),
      (answer) => sse(messageEvents(answer, req), ctx, log),
    );
  }

  const create: ModelCall<MessagesRequest> = {
    schema: MessagesRequest,
    protocol: 'anthropic',
    handle: (body, ctx) => messages(messagesRequest(body), ctx),
  };

  const countTokens: ModelCall<CountTokensRequest> = {
    schema: CountTokensRequest,
    protocol: 'anthropic',
    handle: async (body, ctx) => {
      const { version, tokens, rateLimit } = await gateway.countTokens(countTokensRequest(body), ctx);
      const headers = servedHeaders({ version, result: null, fallbackFrom: null, rateLimit }, JSON_TYPE);
      return { status: 200, headers, body: JSON.stringify({ input_tokens: tokens }) };
    },
  };

  return {
    '/v1/messages': create,
    '/v1/messages/count_tokens': countTokens,
  } as const;
}

/** Encodes events as Server-Sent Events; a failure after the first byte becomes an `error` event, and the stream ends. */
async function* sse(events: AsyncIterable<StreamEvent>, ctx: RequestContext, log: Logger): AsyncGenerator<string> {
  try {
    for await (const event of events) yield sseEvent(event);
  } catch (error) {
    yield sseError(toApiError(error, ctx, log));
  }
}
