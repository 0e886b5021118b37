/**
 * OpenAI chat and completion bodies (already checked against their schemas) parsed into the core's
 * typed requests, once, on the transport: sampling checked and defaulted, tools parsed, messages
 * in core form. The body itself travels along as `openai`, so an upstream that speaks the OpenAI
 * API still gets every field infergate does not model.
 */
import { fastError } from '../../core/errors.js';
import { validSampling } from '../../core/sampling.js';
import type {
  ChatMessage,
  ChatRequest as CoreChatRequest,
  CompletionRequest as CoreCompletionRequest,
  ContentPart,
  FunctionTool,
  Role,
} from '../../core/text.js';
import type { ChatRequest, CompletionRequest } from './schemas.js';

/** The core chat request of a body that passed the ChatRequest schema; throws invalid_request naming the field. */
export function chatRequest(body: ChatRequest): CoreChatRequest {
  const stream = body.stream === true;
  // The stream encoder writes one choice (index 0); several would interleave under their own indexes.
  if (stream && body.n !== undefined && body.n !== null && body.n !== 1)
    throw fastError('invalid_request', '`n` must be 1 when streaming', 'n');
  const raw: Readonly<Record<string, unknown>> = body;
  return {
    kind: 'chat',
    model: body.model,
    stream,
    sampling: validSampling('chat', raw),
    includeUsage: body.stream_options?.include_usage === true,
    reportUsage: false,
    tools: withLegacy(
      listOf(raw.tools, 'tools', 'function tools', functionTool),
      listOf(raw.functions, 'functions', 'function definitions', functionDefinition),
    ),
    openai: raw,
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
    tools: [],
    openai: raw,
    prompt: body.prompt,
  };
}

/** No tools: shared, read-only. */
const NO_TOOLS: readonly FunctionTool[] = Object.freeze([]);

/** The body's messages as core messages: the body's own objects when each has its content (most do), else copies. */
function messages(list: ChatRequest['messages']): readonly ChatMessage[] {
  let whole = true;
  for (let i = 0; i < list.length; i++) {
    const content = (list[i] as ChatRequest['messages'][number]).content;
    if (content === undefined) whole = false;
    else if (Array.isArray(content)) content.forEach((part, j) => textPart(part, `messages[${i}].content[${j}]`));
  }
  // The schema allowed only the six roles, and content a string, parts or null.
  return whole ? (list as readonly ChatMessage[]) : list.map(message);
}

function message(m: ChatRequest['messages'][number]): ChatMessage {
  const content = m.content ?? null;
  return { role: m.role as Role, content: content as string | readonly ContentPart[] | null };
}

/** A text part carries its text as a string (other part types are the backend's to accept or refuse). */
function textPart(part: { readonly type: string; readonly text?: unknown }, path: string): void {
  if (part.type === 'text' && typeof part.text !== 'string') {
    throw fastError('invalid_request', `\`${path}.text\` must be a string`, `${path}.text`);
  }
}

/** OpenAI's function names: letters, digits, `_` and `-`, at most 64. */
const FUNCTION_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

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

/** One function's definition (name, description, JSON Schema parameters, strict) at `at`. */
function functionDefinition(fn: unknown, at: string): FunctionTool {
  if (!isObject(fn)) throw fastError('invalid_request', `\`${at}\` must be an object`, at);
  const { name, description, parameters, strict } = fn;
  if (typeof name !== 'string' || !FUNCTION_NAME.test(name)) {
    throw fastError('invalid_request', `\`${at}.name\` must be 1 to 64 letters, digits, _ or -`, `${at}.name`);
  }
  if (description !== undefined && description !== null && typeof description !== 'string') {
    throw fastError('invalid_request', `\`${at}.description\` must be a string`, `${at}.description`);
  }
  if (parameters !== undefined && parameters !== null && !isObject(parameters)) {
    throw fastError('invalid_request', `\`${at}.parameters\` must be a JSON Schema object`, `${at}.parameters`);
  }
  if (strict !== undefined && strict !== null && typeof strict !== 'boolean') {
    throw fastError('invalid_request', `\`${at}.strict\` must be true or false`, `${at}.strict`);
  }
  return { name, description: description ?? null, parameters: parameters ?? null, strict: strict === true };
}

function isObject(v: unknown): v is Readonly<Record<string, unknown>> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
