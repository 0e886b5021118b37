/**
 * OpenAI chat and completion bodies (already checked against their schemas) parsed into the core's
 * typed requests, once, on the transport: sampling checked and defaulted, tools parsed, messages
 * in core form. The body itself travels along as `openai`, so an upstream that speaks the OpenAI
 * API still gets every field infergate does not model.
 */
import { fastError } from '../../core/errors.js';
import { validSampling } from '../../core/sampling.js';
import { isObject } from '../../core/json.js';
import { checkedArguments, checkedFunction, checkedToolChoice, NO_TOOL_CHOICE, NO_TOOLS, openaiToolChoice } from '../../core/tools.js';
import type {
  ChatMessage,
  ChatRequest as CoreChatRequest,
  CompletionRequest as CoreCompletionRequest,
  ContentPart,
  FunctionTool,
  Role,
  ToolCall,
  ToolChoice,
} from '../../core/text.js';
import type { ChatRequest, CompletionRequest } from './schemas.js';

/** The core chat request of a body that passed the ChatRequest schema; throws invalid_request naming the field. */
export function chatRequest(body: ChatRequest): CoreChatRequest {
  const stream = body.stream === true;
  // The stream encoder writes one choice (index 0); several would interleave under their own indexes.
  if (stream && body.n !== undefined && body.n !== null && body.n !== 1)
    throw fastError('invalid_request', '`n` must be 1 when streaming', 'n');
  const raw: Readonly<Record<string, unknown>> = body;
  const tools = withLegacy(
    listOf(raw.tools, 'tools', 'function tools', functionTool),
    listOf(raw.functions, 'functions', 'function definitions', functionDefinition),
  );
  const parallel = raw.parallel_tool_calls;
  if (parallel !== undefined && parallel !== null && typeof parallel !== 'boolean') {
    throw fastError('invalid_request', '`parallel_tool_calls` must be true or false', 'parallel_tool_calls');
  }
  return {
    kind: 'chat',
    model: body.model,
    stream,
    sampling: validSampling('chat', raw),
    includeUsage: body.stream_options?.include_usage === true,
    reportUsage: false,
    tools,
    toolChoice:
      raw.tool_choice !== undefined && raw.tool_choice !== null
        ? checkedToolChoice(tools, toolChoice(raw.tool_choice, 'tool_choice'), 'tool_choice')
        : checkedToolChoice(tools, raw.function_call === undefined ? null : functionCall(raw.function_call), 'function_call'),
    parallelToolCalls: parallel !== false,
    openai: raw,
    anthropic: null,
    messages: messages(body.messages),
  };
}

/** The core completion request of a body that passed the CompletionRequest schema; throws invalid_request naming the field. */
export function completionRequest(body: CompletionRequest): CoreCompletionRequest {
  const raw: Readonly<Record<string, unknown>> = body;
  return {
    kind: 'completion',
    model: body.model,
    stream: body.stream === true,
    sampling: validSampling('completion', raw),
    includeUsage: body.stream_options?.include_usage === true,
    reportUsage: false,
    tools: NO_TOOLS,
    toolChoice: NO_TOOL_CHOICE,
    parallelToolCalls: true,
    openai: raw,
    anthropic: null,
    prompt: body.prompt,
  };
}

/**
 * The body's messages as core messages: the body's own objects when each has its content and
 * no tool fields (most chats), else copies with the calls and call ids in core form.
 */
function messages(list: ChatRequest['messages']): readonly ChatMessage[] {
  let whole = true;
  for (let i = 0; i < list.length; i++) {
    const m = list[i] as ChatRequest['messages'][number] & { readonly tool_calls?: unknown; readonly tool_call_id?: unknown };
    const content = m.content;
    if (content === undefined || m.tool_calls !== undefined || m.tool_call_id !== undefined || m.role === 'tool') whole = false;
    if (Array.isArray(content)) content.forEach((part, j) => textPart(part, `messages[${i}].content[${j}]`));
  }
  // The schema allowed only the six roles, and content a string, parts or null.
  return whole ? (list as readonly ChatMessage[]) : list.map(message);
}

function message(m: ChatRequest['messages'][number], i: number): ChatMessage {
  const content = (m.content ?? null) as string | readonly ContentPart[] | null;
  const role = m.role as Role;
  const fields = m as { readonly tool_calls?: unknown; readonly tool_call_id?: unknown };
  if (role === 'tool') {
    const id = fields.tool_call_id;
    if (typeof id !== 'string' || id === '') {
      throw fastError(
        'invalid_request',
        `\`messages[${i}].tool_call_id\` must be the id of the call this answers`,
        `messages[${i}].tool_call_id`,
      );
    }
    return { role, content, toolCallId: id };
  }
  if (fields.tool_calls === undefined || fields.tool_calls === null) return { role, content };
  const path = `messages[${i}].tool_calls`;
  if (role !== 'assistant') throw fastError('invalid_request', `\`${path}\` is only allowed on assistant messages`, path);
  if (!Array.isArray(fields.tool_calls)) throw fastError('invalid_request', `\`${path}\` must be an array of tool calls`, path);
  return { role, content, toolCalls: fields.tool_calls.map((call: unknown, j) => historyCall(call, `${path}[${j}]`)) };
}

/** One call of an assistant message: `{id, type: 'function', function: {name, arguments}}`. */
function historyCall(call: unknown, path: string): ToolCall {
  if (!isObject(call)) throw fastError('invalid_request', `\`${path}\` must be an object`, path);
  if (typeof call.id !== 'string' || call.id === '') throw fastError('invalid_request', `\`${path}.id\` must be a string`, `${path}.id`);
  if (call.type !== undefined && call.type !== 'function') {
    throw fastError('invalid_request', `\`${path}.type\` must be "function"`, `${path}.type`);
  }
  const fn = call.function;
  if (!isObject(fn)) throw fastError('invalid_request', `\`${path}.function\` must be an object`, `${path}.function`);
  if (typeof fn.name !== 'string' || fn.name === '') {
    throw fastError('invalid_request', `\`${path}.function.name\` must be a string`, `${path}.function.name`);
  }
  if (typeof fn.arguments !== 'string') {
    throw fastError('invalid_request', `\`${path}.function.arguments\` must be a string of JSON`, `${path}.function.arguments`);
  }
  return { id: call.id, name: fn.name, arguments: checkedArguments(fn.arguments, `${path}.function.arguments`) };
}

/** `tool_choice`: "none", "auto", "required", or `{type: 'function', function: {name}}`. */
function toolChoice(value: unknown, path: string): ToolChoice {
  return openaiToolChoice(value, path, functionName, '{"type": "function", "function": {"name": ...}}');
}

/** Where chat completions name a chosen function: `function.name`. */
function functionName(choice: Readonly<Record<string, unknown>>): unknown {
  return isObject(choice.function) ? choice.function.name : undefined;
}

/** The deprecated `function_call`: "none", "auto", or `{name}`. */
function functionCall(value: unknown): ToolChoice {
  if (value === 'none' || value === 'auto') return { type: value };
  if (isObject(value) && typeof value.name === 'string') return { type: 'function', name: value.name };
  throw fastError('invalid_request', '`function_call` must be "none", "auto", or {"name": ...}', 'function_call');
}

/** A text part carries its text as a string (other part types are the backend's to accept or refuse). */
function textPart(part: { readonly type: string; readonly text?: unknown }, path: string): void {
  if (part.type === 'text' && typeof part.text !== 'string') {
    throw fastError('invalid_request', `\`${path}.text\` must be a string`, `${path}.text`);
  }
}

/** `tools`, then the deprecated `functions` (read as the function tools they stand for). */
function withLegacy(tools: readonly FunctionTool[], functions: readonly FunctionTool[]): readonly FunctionTool[] {
  return functions.length === 0 ? tools : [...tools, ...functions];
}

/** One of `tools`: `{type: 'function', function: {...}}`. */
function functionTool(tool: unknown, path: string): FunctionTool {
  if (!isObject(tool)) throw fastError('invalid_request', `\`${path}\` must be an object`, path);
  if (tool.type !== 'function') throw fastError('invalid_request', `\`${path}.type\` must be "function"`, `${path}.type`);
  return functionDefinition(tool.function, `${path}.function`);
}

/** The items of the array field `field` (absent or null: none), each read by `read` at its path. */
function listOf(value: unknown, field: string, noun: string, read: (item: unknown, path: string) => FunctionTool): readonly FunctionTool[] {
  if (value === undefined || value === null) return NO_TOOLS;
  if (!Array.isArray(value)) throw fastError('invalid_request', `\`${field}\` must be an array of ${noun}`, field);
  return value.map((item: unknown, i) => read(item, `${field}[${i}]`));
}

/** One function's definition (name, description, JSON Schema parameters, strict) at `at`; not strict unless it says so. */
function functionDefinition(fn: unknown, at: string): FunctionTool {
  if (!isObject(fn)) throw fastError('invalid_request', `\`${at}\` must be an object`, at);
  const checked = checkedFunction({ name: fn.name, description: fn.description, parameters: fn.parameters, strict: fn.strict }, at);
  return { ...checked, strict: checked.strict === true };
}
