/**
 * Anthropic Messages bodies (already checked against their schemas) parsed into the core's chat
 * request, once, on the transport: the system prompt as a leading system message, content blocks
 * as core messages (a tool_use block as an assistant's call, each tool_result block as a `tool`
 * message), tools and tool_choice in core form, sampling checked and defaulted. The body itself
 * travels along as `anthropic`, so an upstream that speaks the Messages API gets every field.
 */
import { fastError } from '../../core/errors.js';
import { validSampling } from '../../core/sampling.js';
import { isObject } from '../../core/json.js';
import { checkedFunction, checkedToolChoice, NO_TOOL_CHOICE, NO_TOOLS } from '../../core/tools.js';
import type { ChatMessage, ChatRequest, ContentPart, FunctionTool, Sampling, ToolCall, ToolChoice } from '../../core/text.js';
import type { CountTokensRequest, MessagesRequest } from './schemas.js';

/** The core chat request of a body that passed MessagesRequest; throws invalid_request naming the field. */
export function messagesRequest(body: MessagesRequest): ChatRequest {
  // Anthropic's sampling fields have OpenAI's names (stop sequences aside), so the one check applies.
  const sampling = validSampling('chat', {
    max_tokens: body.max_tokens,
    temperature: body.temperature,
    top_p: body.top_p,
    top_k: body.top_k,
  });
  const stops = stopSequences(body.stop_sequences);
  return chat(body, stops === null ? sampling : { ...sampling, stop: stops }, body.stream === true);
}

/** The core chat request whose prompt a count_tokens body describes (sampling left at its defaults: nothing is generated). */
export function countTokensRequest(body: CountTokensRequest): ChatRequest {
  return chat(body, COUNT_SAMPLING, false);
}

const COUNT_SAMPLING: Sampling = Object.freeze(validSampling('chat', {}));

function chat(body: CountTokensRequest, sampling: Sampling, stream: boolean): ChatRequest {
  refuseThinking(body.thinking);
  const tools = toolsOf(body.tools);
  const choice = body.tool_choice as Readonly<Record<string, unknown>> | undefined;
  return {
    kind: 'chat',
    model: body.model,
    stream,
    sampling,
    // Anthropic's streams always end with the usage (message_delta).
    includeUsage: true,
    reportUsage: false,
    tools,
    toolChoice: toolChoiceOf(tools, choice),
    parallelToolCalls: parallelAllowed(choice),
    openai: null,
    anthropic: body,
    messages: messagesOf(body.system, body.messages),
  };
}

/** `thinking` other than `{"type": "disabled"}`: no backend here returns thinking blocks, so it is refused rather than ignored. */
function refuseThinking(thinking: CountTokensRequest['thinking']): void {
  if (thinking === undefined || thinking.type === 'disabled') return;
  throw fastError(
    'invalid_request',
    '`thinking` is not supported: no model served here returns thinking blocks; leave it out or send {"type": "disabled"}',
    'thinking',
  );
}

/** `stop_sequences` checked (none empty: an empty one would end every answer before its first token); null when none. */
function stopSequences(list: readonly string[] | undefined): readonly string[] | null {
  if (list === undefined || list.length === 0) return null;
  list.forEach((s, i) => {
    if (s.length === 0) throw fastError('invalid_request', '`stop_sequences` must not contain empty strings', `stop_sequences[${i}]`);
  });
  return list;
}

type Messages = CountTokensRequest['messages'];
type Block = Readonly<Record<string, unknown>> & { readonly type: string };

/**
 * The system prompt and the messages as core messages: the body's own objects when every content
 * is a string (most chats: the shape is the core's already), else each message's blocks mapped.
 */
function messagesOf(system: CountTokensRequest['system'], list: Messages): readonly ChatMessage[] {
  const simple = list.every((m) => typeof m.content === 'string');
  const core: readonly ChatMessage[] = simple ? (list as readonly ChatMessage[]) : list.flatMap(blockMessages);
  if (system === undefined) return core;
  const content = typeof system === 'string' ? system : textContent(system.map((b) => b.text));
  return [{ role: 'system', content }, ...core];
}

/** One message's blocks as core messages: its tool results first, each a `tool` message, then its text and calls. */
function blockMessages(m: Messages[number], i: number): ChatMessage[] {
  if (typeof m.content === 'string') return [{ role: m.role, content: m.content }];
  const out: ChatMessage[] = [];
  const texts: string[] = [];
  const calls: ToolCall[] = [];
  (m.content as readonly Block[]).forEach((block, j) => {
    const at = `messages[${i}].content[${j}]`;
    switch (block.type) {
      case 'text':
        texts.push(text(block, at));
        break;
      case 'tool_use':
        if (m.role !== 'assistant')
          throw fastError('invalid_request', `\`${at}\`: tool_use blocks belong in assistant messages`, `${at}.type`);
        calls.push(toolUse(block, at));
        break;
      case 'tool_result':
        if (m.role !== 'user') throw fastError('invalid_request', `\`${at}\`: tool_result blocks belong in user messages`, `${at}.type`);
        out.push(toolResult(block, at));
        break;
      case 'thinking':
      case 'redacted_thinking':
        // An earlier turn's reasoning: Anthropic's API leaves it out of the model's context too.
        if (m.role !== 'assistant') throw unsupportedBlock(block.type, at);
        break;
      default:
        throw unsupportedBlock(block.type, at);
    }
  });
  if (m.role === 'assistant') {
    const content = texts.length === 0 ? (calls.length === 0 ? '' : null) : textContent(texts);
    out.push(calls.length === 0 ? { role: 'assistant', content } : { role: 'assistant', content, toolCalls: calls });
  } else if (texts.length > 0 || out.length === 0) {
    // A user message of only tool results is those results; any text it has follows them.
    out.push({ role: 'user', content: texts.length === 0 ? '' : textContent(texts) });
  }
  return out;
}

/** Several texts as text parts (each backend joins them its own way), one as itself. */
function textContent(texts: readonly string[]): string | readonly ContentPart[] {
  return texts.length === 1 ? (texts[0] as string) : texts.map((t) => ({ type: 'text', text: t }));
}

/** The 400 for a block no backend here takes, named by its path. */
function unsupportedBlock(type: string, at: string) {
  const why =
    type === 'image' || type === 'document'
      ? `${type} blocks are not supported: no backend here takes images or documents`
      : `blocks of type "${type.slice(0, 40)}" are not supported; use text, tool_use and tool_result`;
  return fastError('invalid_request', `\`${at}.type\`: ${why}`, `${at}.type`);
}

function text(block: Block, at: string): string {
  if (typeof block.text !== 'string') throw fastError('invalid_request', `\`${at}.text\` must be a string`, `${at}.text`);
  return block.text;
}

/** An assistant's earlier call: `{id, name, input}`, the input an object, kept as JSON text. */
function toolUse(block: Block, at: string): ToolCall {
  if (typeof block.id !== 'string' || block.id === '') throw fastError('invalid_request', `\`${at}.id\` must be a string`, `${at}.id`);
  if (typeof block.name !== 'string' || block.name === '') {
    throw fastError('invalid_request', `\`${at}.name\` must be a string`, `${at}.name`);
  }
  if (!isObject(block.input)) throw fastError('invalid_request', `\`${at}.input\` must be an object`, `${at}.input`);
  return { id: block.id, name: block.name, arguments: JSON.stringify(block.input) };
}

/** A call's result as a `tool` message: its text (a string or text blocks), marked when the call failed. */
function toolResult(block: Block, at: string): ChatMessage {
  const id = block.tool_use_id;
  if (typeof id !== 'string' || id === '') {
    throw fastError('invalid_request', `\`${at}.tool_use_id\` must be the id of the tool_use this answers`, `${at}.tool_use_id`);
  }
  const failed = block.is_error;
  if (failed !== undefined && typeof failed !== 'boolean') {
    throw fastError('invalid_request', `\`${at}.is_error\` must be true or false`, `${at}.is_error`);
  }
  const result = resultText(block.content, `${at}.content`);
  return { role: 'tool', toolCallId: id, content: failed === true ? `Error: ${result}` : result };
}

function resultText(content: unknown, at: string): string {
  if (content === undefined) return '';
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw fastError('invalid_request', `\`${at}\` must be a string or an array of text blocks`, at);
  return content
    .map((part: unknown, k) => {
      const path = `${at}[${k}]`;
      if (!isObject(part) || typeof part.type !== 'string') throw fastError('invalid_request', `\`${path}\` must be a content block`, path);
      if (part.type !== 'text') throw unsupportedBlock(part.type, path);
      return text(part as Block, path);
    })
    .join('\n');
}

function toolsOf(list: CountTokensRequest['tools']): readonly FunctionTool[] {
  if (list === undefined || list.length === 0) return NO_TOOLS;
  return list.map((t, i) => tool(t as Readonly<Record<string, unknown>>, `tools[${i}]`));
}

/** One client tool: `{name, description, input_schema, strict}`; Anthropic's server tools (web search, bash, ...) are not served here. */
function tool(t: Readonly<Record<string, unknown>>, at: string): FunctionTool {
  const { type, name, description, input_schema: schema, strict } = t;
  if (type !== undefined && type !== null && type !== 'custom') {
    throw fastError(
      'invalid_request',
      `\`${at}.type\`: tools of type "${String(type).slice(0, 40)}" are not supported; only client tools with an input_schema`,
      `${at}.type`,
    );
  }
  // The schema is Anthropic's own field, required and of type object: checked here, not as `parameters`.
  const checked = checkedFunction({ name, description, parameters: null, strict }, at);
  if (!isObject(schema) || (schema.type !== undefined && schema.type !== 'object')) {
    throw fastError('invalid_request', `\`${at}.input_schema\` must be a JSON Schema of type "object"`, `${at}.input_schema`);
  }
  return { ...checked, parameters: schema, strict: checked.strict === true };
}

/** `tool_choice` in core terms: `auto`, `any` (a call is required), `tool` (that one), `none`. */
function toolChoiceOf(tools: readonly FunctionTool[], choice: Readonly<Record<string, unknown>> | undefined): ToolChoice {
  if (choice === undefined) return checkedToolChoice(tools, null, 'tool_choice');
  switch (choice.type) {
    case 'any':
      return checkedToolChoice(tools, { type: 'required' }, 'tool_choice');
    case 'tool': {
      const name = choice.name;
      if (typeof name !== 'string' || name === '') {
        throw fastError('invalid_request', '`tool_choice.name` must name the tool to use', 'tool_choice.name');
      }
      return checkedToolChoice(tools, { type: 'function', name }, 'tool_choice.name');
    }
    default:
      // auto or none (the schema allowed only these four); with no tools there is nothing to choose.
      if (tools.length === 0) return NO_TOOL_CHOICE;
      return choice.type === 'none' ? NO_TOOL_CHOICE : checkedToolChoice(tools, null, 'tool_choice');
  }
}

function parallelAllowed(choice: Readonly<Record<string, unknown>> | undefined): boolean {
  const off = choice?.disable_parallel_tool_use;
  if (off !== undefined && typeof off !== 'boolean') {
    throw fastError(
      'invalid_request',
      '`tool_choice.disable_parallel_tool_use` must be true or false',
      'tool_choice.disable_parallel_tool_use',
    );
  }
  return off !== true;
}
