/**
 * The body a text request is sent upstream as. A client that spoke the OpenAI API is sent on as it
 * came (so fields infergate does not model still reach the upstream), with the upstream's model
 * name; one that spoke another transport (gRPC) is written out from the typed request, naming
 * only what differs from OpenAI's defaults, as a client would.
 */
import { isObject } from '../../core/json.js';
import type { ChatMessage, ResponseFormat, TextRequest, ToolChoice } from '../../core/text.js';

/** The OpenAI JSON body for `request` under the upstream's `model` name; a metered stream asks for its usage. */
export function upstreamBody(request: TextRequest, model: string): Record<string, unknown> {
  const openai = request.openai;
  if (openai === null) return typedBody(request, model);
  const body: Record<string, unknown> = { ...openai, model };
  if (request.stream && request.reportUsage) {
    const options = openai.stream_options;
    const asked = isObject(options) ? options : null;
    // The usage chunk is how a metered stream learns its exact tokens; the metering drops it again
    // when the client did not ask for it.
    if (asked?.include_usage !== true) body.stream_options = { ...asked, include_usage: true };
  }
  return body;
}

/** The body of a request that came without one: what it asks, in OpenAI's fields. */
function typedBody(request: TextRequest, model: string): Record<string, unknown> {
  const body: Record<string, unknown> = { model };
  if (request.kind === 'chat') body.messages = request.messages.map(openaiMessage);
  else body.prompt = request.prompt;
  body.stream = request.stream;
  if (request.stream && (request.includeUsage || request.reportUsage)) body.stream_options = { include_usage: true };
  const s = request.sampling;
  if (s.maxTokens !== null) body.max_tokens = s.maxTokens;
  if (s.temperature !== 1) body.temperature = s.temperature;
  if (s.topP !== 1) body.top_p = s.topP;
  // Not OpenAI's own but understood by the servers that sample locally (vLLM, llama.cpp server,
  // SGLang); only sent when the client set them, so OpenAI itself never sees them unasked.
  if (s.topK !== 0) body.top_k = s.topK;
  if (s.minP !== 0) body.min_p = s.minP;
  if (s.seed !== null) body.seed = s.seed;
  if (s.presencePenalty !== 0) body.presence_penalty = s.presencePenalty;
  if (s.frequencyPenalty !== 0) body.frequency_penalty = s.frequencyPenalty;
  if (s.stop.length > 0) body.stop = s.stop;
  if (hasKeys(s.logitBias)) body.logit_bias = s.logitBias;
  if (s.n !== 1) body.n = s.n;
  if (s.responseFormat.type !== 'text') body.response_format = responseFormat(s.responseFormat);
  if (request.kind === 'chat') {
    if (s.logprobs !== null) {
      body.logprobs = true;
      if (s.logprobs > 0) body.top_logprobs = s.logprobs;
    }
  } else {
    if (s.logprobs !== null) body.logprobs = s.logprobs;
    if (s.bestOf !== 1) body.best_of = s.bestOf;
    if (s.echo) body.echo = true;
    if (s.suffix !== null) body.suffix = s.suffix;
  }
  if (request.tools.length > 0) {
    body.tools = request.tools.map((t) => ({
      type: 'function',
      function: {
        name: t.name,
        ...(t.description === null ? {} : { description: t.description }),
        ...(t.parameters === null ? {} : { parameters: t.parameters }),
        ...(t.strict ? { strict: true } : {}),
      },
    }));
    // `auto` is OpenAI's default with tools: named only when the request chose otherwise.
    if (request.toolChoice.type !== 'auto') body.tool_choice = openaiToolChoice(request.toolChoice);
    if (!request.parallelToolCalls) body.parallel_tool_calls = false;
  }
  return body;
}

/** A core message as OpenAI writes it: the calls of an assistant message, and the call id of a tool message. */
function openaiMessage(m: ChatMessage): object {
  if (m.toolCallId !== undefined) return { role: m.role, content: m.content ?? '', tool_call_id: m.toolCallId };
  if (m.toolCalls === undefined || m.toolCalls.length === 0)
    return m.content === null ? { role: m.role, content: null } : { role: m.role, content: m.content };
  return {
    role: m.role,
    content: m.content,
    tool_calls: m.toolCalls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
  };
}

function openaiToolChoice(choice: ToolChoice): string | object {
  return choice.type === 'function' ? { type: 'function', function: { name: choice.name } } : choice.type;
}

/** OpenAI's `response_format`; a JSON schema needs a name there, which the typed request does not carry. */
function responseFormat(format: ResponseFormat): object {
  return format.type === 'json_schema' ? { type: 'json_schema', json_schema: { name: 'response', schema: format.schema } } : format;
}

function hasKeys(record: Readonly<Record<string, number>>): boolean {
  for (const _ in record) return true;
  return false;
}
