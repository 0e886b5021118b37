/**
 * A Responses API body (already checked against its schema) parsed into what the gateway serves:
 * its input items in one typed form, its sampling checked and defaulted (core/sampling.ts, under
 * chat's field names), its function tools, and the fields the answer echoes. Turning items into
 * a core ChatRequest is `chatRequest`, once the caller has the stored conversation a
 * `previous_response_id` continues and the items an `item_reference` names: those need the
 * database, so they are not this module's.
 */
import { fastError } from '../../core/errors.js';
import { validSampling } from '../../core/sampling.js';
import { isObject } from '../../core/json.js';
import { FUNCTION_NAME, checkedArguments, checkedFunction, checkedToolChoice, openaiToolChoice } from '../../core/tools.js';
import type { ChatMessage, ChatRequest, ContentPart, FunctionTool, Sampling, ToolCall, ToolChoice } from '../../core/text.js';
import type { ResponsesRequest } from './schemas.js';

/** Who wrote a message item. */
export type MessageRole = 'user' | 'system' | 'developer' | 'assistant';

/** A text part of a message item: `input_text` from the client, `output_text` from a model. */
export interface TextPart {
  readonly type: 'input_text' | 'output_text';
  readonly text: string;
}

/** A message of the conversation; `Id` is null while the client gave none (request.ts) and a string once stored. */
export interface MessageItem<Id = string> {
  readonly type: 'message';
  readonly id: Id;
  readonly role: MessageRole;
  readonly content: readonly TextPart[];
}

/** A call the model made: `call_id` is what its output answers; `arguments` JSON text. */
export interface FunctionCallItem<Id = string> {
  readonly type: 'function_call';
  readonly id: Id;
  readonly call_id: string;
  readonly name: string;
  readonly arguments: string;
}

/** The client's result of a call, as text. */
export interface FunctionCallOutputItem<Id = string> {
  readonly type: 'function_call_output';
  readonly id: Id;
  readonly call_id: string;
  readonly output: string;
}

/** An item of a conversation, with its id: what is stored, listed and continued from. */
export type Item = MessageItem | FunctionCallItem | FunctionCallOutputItem;

/** An earlier item named by its id (`{type: 'item_reference', id}`), which the caller looks up. */
export interface ItemReference {
  readonly type: 'item_reference';
  readonly id: string;
}

/** An item as the client sent it: ids absent where it gave none, references not yet looked up. */
export type InputItem =
  MessageItem<string | null> | FunctionCallItem<string | null> | FunctionCallOutputItem<string | null> | ItemReference;

/** A function tool as the Responses API writes it (flat, unlike chat's `{type, function: {...}}`). */
export interface ResponsesFunctionTool {
  readonly type: 'function';
  readonly name: string;
  readonly description: string | null;
  readonly parameters: object | null;
  readonly strict: boolean;
}

/** `tool_choice` as the Responses API writes it. */
export type ResponsesToolChoice = 'none' | 'auto' | 'required' | { readonly type: 'function'; readonly name: string };

/** `text.format` as the Responses API writes it. */
export type TextFormat =
  | { readonly type: 'text' }
  | { readonly type: 'json_object' }
  | {
      readonly type: 'json_schema';
      readonly name: string;
      readonly schema: object;
      readonly strict: boolean;
      readonly description?: string;
    };

/** The request's fields a Response object carries back, as OpenAI's does (the SDKs read them). */
export interface Echo {
  readonly instructions: string | null;
  readonly max_output_tokens: number | null;
  readonly temperature: number;
  readonly top_p: number;
  readonly tools: readonly ResponsesFunctionTool[];
  readonly tool_choice: ResponsesToolChoice;
  readonly parallel_tool_calls: boolean;
  readonly text: { readonly format: TextFormat };
  readonly metadata: Readonly<Record<string, string>>;
  readonly previous_response_id: string | null;
  readonly store: boolean;
  readonly user: string | null;
}

/** A Responses request, parsed: everything but the lookups `chatRequest`'s caller makes. */
export interface ResponsesCall {
  readonly model: string;
  readonly stream: boolean;
  /** Whether the response is stored (the body's `store`, else the configured default). */
  readonly store: boolean;
  readonly instructions: string | null;
  /** The input items in order; a string input is one user message. */
  readonly input: readonly InputItem[];
  readonly previousResponseId: string | null;
  readonly sampling: Sampling;
  readonly tools: readonly FunctionTool[];
  readonly toolChoice: ToolChoice;
  readonly parallelToolCalls: boolean;
  readonly echo: Echo;
}

const ROLES: readonly MessageRole[] = ['user', 'system', 'developer', 'assistant'];

/**
 * The parsed request of a body that passed the ResponsesRequest schema; `storeByDefault` is what a
 * body without `store` gets. Throws invalid_request naming the field in the Responses API's spelling.
 */
export function responsesCall(body: ResponsesRequest, storeByDefault: boolean): ResponsesCall {
  const raw: Readonly<Record<string, unknown>> = body;
  refuseUnsupported(raw);
  if (body.input === undefined) throw fastError('invalid_request', '`input` is required', 'input');
  const input = typeof body.input === 'string' ? [userText(body.input)] : body.input.map((item, i) => inputItem(item, `input[${i}]`));
  const wireTools = (body.tools ?? []).map((tool, i) => functionTool(tool, `tools[${i}]`));
  const tools: readonly FunctionTool[] = wireTools.map(({ type: _function, ...tool }) => tool);
  const choice = body.tool_choice === undefined || body.tool_choice === null ? null : toolChoice(body.tool_choice);
  const toolChoiceOf = checkedToolChoice(tools, choice, 'tool_choice');
  const format = textFormat(body.text);
  const sampling = validSampling('chat', {
    max_tokens: body.max_output_tokens,
    temperature: body.temperature,
    top_p: body.top_p,
    response_format: responseFormat(format),
  });
  const store = body.store ?? storeByDefault;
  const parallel = body.parallel_tool_calls !== false;
  return {
    model: body.model,
    stream: body.stream === true,
    store,
    instructions: body.instructions ?? null,
    input,
    previousResponseId: body.previous_response_id ?? null,
    sampling,
    tools,
    toolChoice: toolChoiceOf,
    parallelToolCalls: parallel,
    echo: {
      instructions: body.instructions ?? null,
      max_output_tokens: body.max_output_tokens ?? null,
      temperature: sampling.temperature,
      top_p: sampling.topP,
      tools: wireTools,
      // OpenAI echoes `auto` when the client left the choice out, tools or none.
      tool_choice: choice === null ? 'auto' : wireToolChoice(toolChoiceOf),
      parallel_tool_calls: parallel,
      text: { format },
      metadata: body.metadata ?? {},
      previous_response_id: body.previous_response_id ?? null,
      store,
      user: body.user ?? null,
    },
  };
}

/**
 * The core chat request of `call`: its instructions as a leading system message, then `items`
 * (the stored conversation a `previous_response_id` continues, then the call's own input, each
 * reference replaced by the item it names) as chat messages. Usage is always reported: every
 * Response carries it.
 */
export function chatRequest(call: ResponsesCall, items: readonly Item[]): ChatRequest {
  const messages = conversation(items);
  if (call.instructions !== null) messages.unshift({ role: 'system', content: call.instructions });
  if (messages.length === 0) throw fastError('invalid_request', '`input` must have at least one item', 'input');
  return {
    kind: 'chat',
    model: call.model,
    stream: call.stream,
    sampling: call.sampling,
    includeUsage: true,
    reportUsage: true,
    tools: call.tools,
    toolChoice: call.toolChoice,
    parallelToolCalls: call.parallelToolCalls,
    // A remote backend is sent chat completions written from this request (most servers have no Responses API).
    openai: null,
    anthropic: null,
    messages,
  };
}

/**
 * Items as chat messages: a message item as a message, a function call as a call of the assistant
 * message before it (or of a new one), a call's output as a `tool` message.
 */
export function conversation(items: readonly Item[]): ChatMessage[] {
  const messages: ChatMessage[] = [];
  for (const item of items) {
    switch (item.type) {
      case 'message':
        messages.push({ role: item.role, content: messageContent(item.content) });
        break;
      case 'function_call': {
        const call: ToolCall = { id: item.call_id, name: item.name, arguments: item.arguments };
        const last = messages[messages.length - 1];
        if (last !== undefined && last.role === 'assistant' && last.toolCallId === undefined) {
          messages[messages.length - 1] = { ...last, toolCalls: [...(last.toolCalls ?? []), call] };
        } else messages.push({ role: 'assistant', content: null, toolCalls: [call] });
        break;
      }
      case 'function_call_output':
        messages.push({ role: 'tool', content: item.output, toolCallId: item.call_id });
        break;
    }
  }
  return messages;
}

/**
 * `items` with an id on each that has none, from `newId` (`msg`, `fc` or `fco` its prefix);
 * references stay as they are, for the caller to look up.
 */
export function withIds(items: readonly InputItem[], newId: (prefix: string) => string): Array<Item | ItemReference> {
  return items.map((item): Item | ItemReference => {
    if (item.type === 'item_reference' || item.id !== null) return item as Item | ItemReference;
    const prefix = item.type === 'message' ? 'msg' : item.type === 'function_call' ? 'fc' : 'fco';
    return { ...item, id: newId(prefix) };
  });
}

/** One text part as a string; several as chat's text parts, so nothing is joined that the client kept apart. */
function messageContent(parts: readonly TextPart[]): string | readonly ContentPart[] {
  if (parts.length === 1) return (parts[0] as TextPart).text;
  return parts.map((p) => ({ type: 'text', text: p.text }));
}

/** Fields of OpenAI's that infergate cannot honour and that would change the answer if ignored. */
function refuseUnsupported(raw: Readonly<Record<string, unknown>>): void {
  if (raw.background === true) {
    throw fastError('invalid_request', '`background` responses are not supported; leave it out or set it to false', 'background');
  }
  for (const field of ['conversation', 'prompt'] as const) {
    if (raw[field] !== undefined && raw[field] !== null) {
      throw fastError(
        'invalid_request',
        `\`${field}\` is not supported; send the conversation as \`input\` or use \`previous_response_id\``,
        field,
      );
    }
  }
}

function userText(text: string): MessageItem<null> {
  return { type: 'message', id: null, role: 'user', content: [{ type: 'input_text', text }] };
}

/** One item of `input` at `path`: a message (with or without `type`), a function call, its output, or a reference. */
function inputItem(value: unknown, path: string): InputItem {
  const item = value as Readonly<Record<string, unknown>>;
  const type = item.type;
  if (type === undefined || type === 'message') return messageItem(item, path);
  if (type === 'function_call') {
    return {
      type,
      id: optionalId(item.id, path),
      call_id: nonEmpty(item.call_id, `${path}.call_id`),
      name: nonEmpty(item.name, `${path}.name`),
      arguments: checkedArguments(string(item.arguments, `${path}.arguments`, 'the arguments as JSON text'), `${path}.arguments`),
    };
  }
  if (type === 'function_call_output') {
    return {
      type,
      id: optionalId(item.id, path),
      call_id: nonEmpty(item.call_id, `${path}.call_id`),
      output: callOutput(item.output, path),
    };
  }
  if (type === 'item_reference') return { type, id: nonEmpty(item.id, `${path}.id`) };
  throw fastError(
    'invalid_request',
    `\`${path}.type\` must be one of message, function_call, function_call_output, item_reference; got ${shown(type)}`,
    `${path}.type`,
  );
}

function messageItem(item: Readonly<Record<string, unknown>>, path: string): MessageItem<string | null> {
  const role = item.role;
  if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) {
    throw fastError('invalid_request', `\`${path}.role\` must be one of ${ROLES.join(', ')}; got ${shown(role)}`, `${path}.role`);
  }
  const content = item.content;
  const parts: readonly TextPart[] =
    typeof content === 'string'
      ? [{ type: role === 'assistant' ? 'output_text' : 'input_text', text: content }]
      : Array.isArray(content)
        ? content.map((part: unknown, j) => textPart(part, `${path}.content[${j}]`))
        : badContent(path);
  return { type: 'message', id: optionalId(item.id, path), role: role as MessageRole, content: parts };
}

function badContent(path: string): never {
  throw fastError('invalid_request', `\`${path}.content\` must be a string or an array of text parts`, `${path}.content`);
}

/** `{type: input_text | output_text, text}`; images, files and audio have no backend to take them yet. */
function textPart(part: unknown, path: string): TextPart {
  const p = isObject(part) ? part : {};
  if (p.type !== 'input_text' && p.type !== 'output_text') {
    throw fastError(
      'invalid_request',
      `\`${path}.type\` must be input_text or output_text (only text is supported); got ${shown(p.type)}`,
      `${path}.type`,
    );
  }
  return { type: p.type, text: string(p.text, `${path}.text`, 'a string') };
}

/** A call's output: text, or text parts joined. */
function callOutput(value: unknown, path: string): string {
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) {
    throw fastError('invalid_request', `\`${path}.output\` must be a string or an array of input_text parts`, `${path}.output`);
  }
  return value
    .map((part: unknown, j) => {
      const p = isObject(part) ? part : {};
      if (p.type !== 'input_text') {
        throw fastError(
          'invalid_request',
          `\`${path}.output[${j}].type\` must be input_text; got ${shown(p.type)}`,
          `${path}.output[${j}].type`,
        );
      }
      return string(p.text, `${path}.output[${j}].text`, 'a string');
    })
    .join('');
}

/** One of `tools`: a function tool `{type: 'function', name, description, parameters, strict}`. */
function functionTool(value: unknown, path: string): ResponsesFunctionTool {
  const tool = value as Readonly<Record<string, unknown>>;
  if (tool.type !== 'function') {
    throw fastError(
      'invalid_request',
      `\`${path}.type\` must be "function" (only function tools are supported); got ${shown(tool.type)}`,
      `${path}.type`,
    );
  }
  const checked = checkedFunction(
    { name: tool.name, description: tool.description, parameters: tool.parameters, strict: tool.strict },
    path,
  );
  // OpenAI's function tools are strict unless the client says otherwise.
  return { type: 'function', ...checked, strict: checked.strict !== false };
}

/** `tool_choice`: "none", "auto", "required", or `{type: 'function', name}` (flat, unlike chat's). */
function toolChoice(value: unknown): ToolChoice {
  return openaiToolChoice(value, 'tool_choice', (choice) => choice.name, '{"type": "function", "name": ...}');
}

function wireToolChoice(choice: ToolChoice): ResponsesToolChoice {
  return choice.type === 'function' ? { type: 'function', name: choice.name } : choice.type;
}

const TEXT: TextFormat = Object.freeze({ type: 'text' });

/** `text.format`: text (the default), json_object, or json_schema with its `schema`. */
function textFormat(text: ResponsesRequest['text']): TextFormat {
  const format = (text as { readonly format?: unknown } | null | undefined)?.format;
  if (format === undefined || format === null) return TEXT;
  const f = isObject(format) ? format : {};
  if (f.type === 'text' || f.type === 'json_object') return { type: f.type };
  if (f.type !== 'json_schema') {
    throw fastError(
      'invalid_request',
      `\`text.format.type\` must be one of text, json_object, json_schema; got ${shown(f.type)}`,
      'text.format.type',
    );
  }
  if (!isObject(f.schema)) throw fastError('invalid_request', '`text.format.schema` must be a JSON Schema object', 'text.format.schema');
  if (f.name !== undefined && (typeof f.name !== 'string' || !FUNCTION_NAME.test(f.name))) {
    throw fastError('invalid_request', '`text.format.name` must be 1 to 64 letters, digits, _ or -', 'text.format.name');
  }
  if (f.strict !== undefined && f.strict !== null && typeof f.strict !== 'boolean') {
    throw fastError('invalid_request', '`text.format.strict` must be true or false', 'text.format.strict');
  }
  const base = {
    type: 'json_schema',
    name: (f.name as string | undefined) ?? 'response',
    schema: f.schema,
    strict: f.strict === true,
  } as const;
  return typeof f.description === 'string' ? { ...base, description: f.description } : base;
}

/** The format under chat's `response_format` name, as core/sampling.ts reads it. */
function responseFormat(format: TextFormat): object {
  return format.type === 'json_schema' ? { type: 'json_schema', json_schema: { name: format.name, schema: format.schema } } : format;
}

function optionalId(value: unknown, path: string): string | null {
  if (value === undefined || value === null) return null;
  return nonEmpty(value, `${path}.id`);
}

function nonEmpty(value: unknown, path: string): string {
  if (typeof value !== 'string' || value === '') throw fastError('invalid_request', `\`${path}\` must be a non-empty string`, path);
  return value;
}

function string(value: unknown, path: string, what: string): string {
  if (typeof value !== 'string') throw fastError('invalid_request', `\`${path}\` must be ${what}`, path);
  return value;
}

/** A client's value as a message quotes it: JSON, cut short. */
function shown(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
