/**
 * The body a chat request is sent to an Anthropic Messages API upstream as. A client that spoke
 * the Anthropic API is sent on as it came (so fields infergate does not model still reach the
 * upstream), with the upstream's model name. Any other (OpenAI chat, Responses, gRPC) is written
 * out from the typed request: system messages become `system`, tool calls `tool_use` blocks, tool
 * results `tool_result` blocks; what the Messages API cannot do is refused with a 400 naming the
 * field in OpenAI's spelling, rather than silently dropped.
 */
import { fastError } from '../../core/errors.js';
import type { ChatMessage, ChatRequest, ContentPart, Sampling, ToolChoice } from '../../core/text.js';

/** A content block of a Messages API message, as this module writes them. */
type Block =
  | { readonly type: 'text'; readonly text: string }
  | { readonly type: 'tool_use'; readonly id: string; readonly name: string; readonly input: object }
  | { readonly type: 'tool_result'; readonly tool_use_id: string; readonly content?: string | ReadonlyArray<TextBlock> };

type TextBlock = { readonly type: 'text'; readonly text: string };

/** One message of a Messages API body. */
interface Message {
  readonly role: 'user' | 'assistant';
  readonly content: string | readonly Block[];
}

/**
 * The Messages API body for `request` under the upstream's `model` name; `maxTokens` is sent
 * when the request sets none (the API requires it). Throws invalid_request naming the field for
 * what the Messages API cannot do.
 */
export function messagesBody(request: ChatRequest, model: string, maxTokens: number): Record<string, unknown> {
  const anthropic = request.anthropic;
  if (anthropic !== null) return { ...anthropic, model };
  const body: Record<string, unknown> = { model };
  const { system, messages } = conversation(request.messages);
  body.max_tokens = request.sampling.maxTokens ?? maxTokens;
  if (system !== null) body.system = system;
  body.messages = messages;
  if (request.stream) body.stream = true;
  sampling(request.sampling, body);
  if (request.tools.length > 0) {
    body.tools = request.tools.map((t) => ({
      name: t.name,
      ...(t.description === null ? {} : { description: t.description }),
      input_schema: t.parameters ?? { type: 'object', properties: {} },
    }));
    body.tool_choice = toolChoice(request.toolChoice, request.parallelToolCalls);
  }
  return body;
}

/** What the count_tokens endpoint takes of a Messages body: the prompt's parts, nothing about sampling. */
const COUNTED = ['model', 'messages', 'system', 'tools', 'tool_choice', 'thinking'] as const;

/** The body of `POST /v1/messages/count_tokens` for `request`: the prompt as {@link messagesBody} writes it, without sampling or streaming. */
export function countTokensBody(request: ChatRequest, model: string): Record<string, unknown> {
  // max_tokens is not counted; 1 stands in for the default the full body would need.
  const full = messagesBody(request, model, 1);
  const body: Record<string, unknown> = {};
  for (const key of COUNTED) if (full[key] !== undefined) body[key] = full[key];
  return body;
}

/**
 * The sampling fields the Messages API has (`max_tokens` aside), written where they differ from
 * its defaults; a field it has not, set to anything but OpenAI's default, is a 400.
 */
function sampling(s: Sampling, body: Record<string, unknown>): void {
  if (s.temperature > 1) {
    throw fastError('invalid_request', `\`temperature\` must be <= 1 for an Anthropic model, got ${s.temperature}`, 'temperature');
  }
  if (s.temperature !== 1) body.temperature = s.temperature;
  if (s.topP !== 1) body.top_p = s.topP;
  if (s.topK !== 0) body.top_k = s.topK;
  if (s.stop.length > 0) body.stop_sequences = s.stop;
  if (s.responseFormat.type !== 'text') {
    throw fastError(
      'invalid_request',
      `\`response_format\` ${s.responseFormat.type} is not supported by an Anthropic model (the Messages API has no JSON mode); use a forced tool call`,
      'response_format',
    );
  }
  if (s.logprobs !== null) refuse('logprobs', 'log probabilities');
  if (s.n !== 1) refuse('n', 'more than one choice');
  if (s.seed !== null) refuse('seed', 'seeded sampling');
  if (s.minP !== 0) refuse('min_p', '`min_p` sampling');
  if (s.presencePenalty !== 0) refuse('presence_penalty', 'a presence penalty');
  if (s.frequencyPenalty !== 0) refuse('frequency_penalty', 'a frequency penalty');
  for (const _ in s.logitBias) refuse('logit_bias', 'logit biases');
}

function refuse(field: string, what: string): never {
  throw fastError('invalid_request', `\`${field}\` is not supported by an Anthropic model: the Messages API has no ${what}`, field);
}

/** The tool choice as Anthropic writes it; `disable_parallel_tool_use` where the client asked for one call at most. */
function toolChoice(choice: ToolChoice, parallel: boolean): object {
  const single = parallel ? {} : { disable_parallel_tool_use: true };
  switch (choice.type) {
    case 'auto':
      return { type: 'auto', ...single };
    case 'required':
      return { type: 'any', ...single };
    case 'function':
      return { type: 'tool', name: choice.name, ...single };
    default:
      return { type: 'none' };
  }
}

/**
 * The core messages as Anthropic's `system` and `messages`: system and developer messages (where
 * ever they are) join `system` in order; each run of tool results becomes one user message of
 * `tool_result` blocks, as the Messages API wants them right after the calls they answer.
 */
function conversation(list: readonly ChatMessage[]): { system: string | TextBlock[] | null; messages: Message[] } {
  const system: TextBlock[] = [];
  const messages: Message[] = [];
  let results: Block[] | null = null;
  for (let i = 0; i < list.length; i++) {
    const m = list[i] as ChatMessage;
    if (m.role === 'tool') {
      if (results === null) messages.push({ role: 'user', content: (results = []) });
      results.push(toolResult(m, i));
      continue;
    }
    results = null;
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(...textBlocks(m.content, i));
        break;
      case 'user':
        messages.push({ role: 'user', content: typeof m.content === 'string' ? m.content : textBlocks(m.content, i) });
        break;
      case 'assistant':
        messages.push({ role: 'assistant', content: assistantContent(m, i) });
        break;
      default:
        throw fastError(
          'invalid_request',
          `\`messages[${i}].role\` "${m.role}" is not supported by an Anthropic model; send function results as \`tool\` messages`,
          `messages[${i}].role`,
        );
    }
  }
  const only = system.length === 1 ? system[0] : undefined;
  return { system: system.length === 0 ? null : only !== undefined ? only.text : system, messages };
}

/** An assistant message's text, then its calls as `tool_use` blocks; plain text stays a string. */
function assistantContent(m: ChatMessage, i: number): string | Block[] {
  const calls = m.toolCalls ?? [];
  if (calls.length === 0) return typeof m.content === 'string' ? m.content : textBlocks(m.content, i);
  // An empty text block is refused by the Messages API: a call without words has only its tool_use blocks.
  const blocks: Block[] = textBlocks(m.content, i).filter((b) => b.text !== '');
  calls.forEach((call, j) => {
    const path = `messages[${i}].tool_calls[${j}].function.arguments`;
    // The transport checked that the arguments are JSON; the Messages API takes only an object.
    const input: unknown = JSON.parse(call.arguments);
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      throw fastError('invalid_request', `\`${path}\` must be a JSON object for an Anthropic model`, path);
    }
    blocks.push({ type: 'tool_use', id: call.id, name: call.name, input });
  });
  return blocks;
}

/** A `tool` message as the `tool_result` block for the call it answers. */
function toolResult(m: ChatMessage, i: number): Block {
  const id = m.toolCallId;
  if (id === undefined || id === '') {
    const path = `messages[${i}].tool_call_id`;
    throw fastError('invalid_request', `\`${path}\` must be the id of the call this answers`, path);
  }
  const content = m.content;
  if (content === null) return { type: 'tool_result', tool_use_id: id };
  return { type: 'tool_result', tool_use_id: id, content: typeof content === 'string' ? content : textBlocks(content, i) };
}

/** Content as text blocks; a part that is not text is refused, naming it. */
function textBlocks(content: string | readonly ContentPart[] | null, i: number): TextBlock[] {
  if (content === null) return [];
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  return content.map((part, j) => {
    if (part.type !== 'text' || typeof part.text !== 'string') {
      const path = `messages[${i}].content[${j}].type`;
      throw fastError(
        'invalid_request',
        `\`${path}\` "${part.type}" is not supported by an anthropic backend: it sends text parts only`,
        path,
      );
    }
    return { type: 'text', text: part.text };
  });
}
