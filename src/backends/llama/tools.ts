/**
 * Function calling on llama models, through the model's own chat template: the conversation's
 * calls and results become node-llama-cpp chat history (which the template renders as that model
 * was trained to read them), the tools its available functions, and the template's call syntax
 * (how a call starts, what separates the name from the arguments) is what a forced call is made
 * of. node-llama-cpp reads that syntax from the GGUF's Jinja template (JinjaTemplateChatWrapper),
 * or knows it for the model families it has wrappers for.
 */
import type { ChatHistoryItem, ChatModelFunctionCall, ChatModelFunctions, ChatWrapper, LlamaModel, Token } from 'node-llama-cpp';
import { fastError } from '../../core/errors.js';
import type { ChatMessage, ContentPart, FunctionTool } from '../../core/text.js';
import type { NodeLlamaCpp } from './runtime.js';

/** The arguments schema of a function without one: an object with any properties. */
const NO_PARAMETERS = Object.freeze({ type: 'object', properties: {} });

/** The tools as node-llama-cpp's available functions, documented with their parameters in the prompt. */
export function availableFunctions(tools: readonly FunctionTool[]): ChatModelFunctions {
  // Own properties whatever the names (a function may be called `__proto__`).
  return Object.fromEntries(
    tools.map((t) => [t.name, { ...(t.description === null ? {} : { description: t.description }), params: parametersOf(t) }]),
  ) as ChatModelFunctions;
}

/** A function's arguments schema: its own, or an object with any properties. */
export function parametersOf(tool: FunctionTool): object {
  return tool.parameters ?? NO_PARAMETERS;
}

/**
 * The chat as node-llama-cpp history, ending with the model's turn to answer: an assistant's calls
 * carry their results (the `tool` messages that answer them, by call id), as the template renders
 * them; a conversation that ends with results continues that assistant turn. Throws
 * invalid_request naming the message for a role llama cannot take, a result that answers no call,
 * or a call left without a result.
 */
export function chatHistory(messages: readonly ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = [];
  // The calls of the last assistant message that made some, by id, waiting for their results.
  let open: Map<string, { call: ChatModelFunctionCall; at: string }> | null = null;
  const closeOpen = (): void => {
    for (const { call, at } of open?.values() ?? []) {
      if (call.result === undefined) {
        throw fastError('invalid_request', `\`${at}\` has no tool message with its result after it`, at);
      }
    }
    open = null;
  };
  messages.forEach((m, i) => {
    if (m.role === 'tool') {
      const waiting = open?.get(m.toolCallId ?? '');
      if (waiting === undefined) {
        throw fastError(
          'invalid_request',
          `\`messages[${i}]\` answers the call "${m.toolCallId ?? ''}", which no earlier assistant message made`,
          `messages[${i}].tool_call_id`,
        );
      }
      (waiting.call as { result: unknown }).result = messageText(m.content, i);
      return;
    }
    closeOpen();
    const text = messageText(m.content, i);
    switch (m.role) {
      case 'system':
      case 'developer':
        history.push({ type: 'system', text });
        return;
      case 'user':
        history.push({ type: 'user', text });
        return;
      case 'assistant': {
        const calls = m.toolCalls ?? [];
        const response: Array<string | ChatModelFunctionCall> = text === '' && calls.length > 0 ? [] : [text];
        if (calls.length > 0) {
          open = new Map();
          calls.forEach((c, j) => {
            const call: ChatModelFunctionCall = { type: 'functionCall', name: c.name, params: JSON.parse(c.arguments), result: undefined };
            response.push(call);
            (open as Map<string, { call: ChatModelFunctionCall; at: string }>).set(c.id, { call, at: `messages[${i}].tool_calls[${j}]` });
          });
        }
        history.push({ type: 'model', response });
        return;
      }
      default:
        throw fastError('invalid_request', `messages with role "${m.role}" are not supported by llama models`, `messages[${i}].role`);
    }
  });
  closeOpen();
  const last = history[history.length - 1];
  // After results the model goes on with the turn that made the calls; else it starts its own.
  const continues = last?.type === 'model' && last.response.some((r) => typeof r !== 'string');
  if (!continues) history.push({ type: 'model', response: [] });
  return history;
}

/** The text of a message: a string, or its text parts joined; other parts are refused by name. */
export function messageText(content: ChatMessage['content'], i: number): string {
  if (content === null) return '';
  if (typeof content === 'string') return content;
  return content
    .map((part: ContentPart, j) => {
      if (part.type !== 'text' || typeof part.text !== 'string') {
        throw fastError(
          'invalid_request',
          `content parts of type "${part.type}" are not supported by llama models`,
          `messages[${i}].content[${j}].type`,
        );
      }
      return part.text;
    })
    .join('');
}

/**
 * How the model's template writes a call: `prefix`, the function's name, `paramsPrefix`, the
 * arguments as JSON, then a suffix (which a forced call never needs: the arguments' grammar ends it).
 */
export class CallSyntax {
  /** The tokens that start a call. */
  readonly prefix: Token[];
  /**
   * How a call starts, as text to find in what the model writes: the prefix up to its first line
   * break (`<tool_call>` of `<tool_call>\n{"name": "`), so a model that spaces the rest its own way
   * is still caught; the prefix whole when it has none.
   */
  readonly head: string;
  /**
   * The special token the prefix starts with, if it does (Mistral's `[TOOL_CALLS]`, Llama 3.1's
   * `<|python_tag|>`): it may detokenize to no text at all, so it is caught as a token.
   */
  readonly callToken: Token | null;
  readonly #lib: NodeLlamaCpp;
  readonly #model: LlamaModel;
  readonly #paramsPrefix: ChatWrapper['settings']['functions']['call']['paramsPrefix'];

  constructor(lib: NodeLlamaCpp, wrapper: ChatWrapper, model: LlamaModel) {
    const call = wrapper.settings.functions.call;
    const prefix = lib.LlamaText(call.prefix);
    this.#lib = lib;
    this.#model = model;
    this.#paramsPrefix = call.paramsPrefix;
    this.prefix = prefix.tokenize(model.tokenizer);
    const text = prefix.toString();
    const lineBreak = text.indexOf('\n');
    this.head = lineBreak >= 3 ? text.slice(0, lineBreak) : text;
    const first = this.prefix[0];
    this.callToken = first !== undefined && model.isSpecialToken(first) ? first : null;
  }

  /** The tokens between a function's name and its arguments (the template may name the function in them). */
  paramsPrefix(name: string): Token[] {
    const text = this.#lib
      .LlamaText(this.#paramsPrefix)
      .mapValues((v) => (typeof v === 'string' ? v.replaceAll('{{functionName}}', name) : v));
    return text.tokenize(this.#model.tokenizer);
  }

  /** Text as the model writes it (plain text, no special tokens): a function's name, or what it wrote before a call. */
  text(text: string): Token[] {
    return this.#model.tokenize(text, false, 'trimLeadingSpace');
  }
}

/** A grammar for exactly one of the names (function names are letters, digits, `_` and `-`: nothing to escape). */
export function namesGrammar(names: readonly string[]): string {
  return `root ::= ${names.map((n) => `"${n}"`).join(' | ')}`;
}

/** Characters a property costs besides its value: its quoted name, the colon, a comma and spaces. */
const PROPERTY_OVERHEAD = 6;
/** The most items an array without its own bound gets. */
const MAX_DEFAULT_ITEMS = 16;

/**
 * `schema` with bounds on what it leaves unbounded (string lengths, array lengths), shared out
 * so that the whole call fits in `budget` characters (at least as many tokens: a token is at least
 * a character), so that a forced call on a model that never closes a string (a random-weight one)
 * still ends as valid JSON within `max_tokens`. Bounds the schema sets itself are kept.
 */
export function boundedSchema(schema: object, budget: number): object {
  const s = schema as Readonly<Record<string, unknown>>;
  if (s.enum !== undefined || s.const !== undefined) return schema;
  const room = Math.max(1, Math.floor(budget));
  for (const union of ['anyOf', 'oneOf'] as const) {
    const members = s[union];
    if (Array.isArray(members)) return { ...s, [union]: members.map((m: object) => boundedSchema(m, room)) };
  }
  // `["string", "null"]` (a nullable field) is bounded as what it is besides null.
  const type = Array.isArray(s.type) ? (['string', 'array', 'object'] as const).find((t) => (s.type as unknown[]).includes(t)) : s.type;
  switch (type) {
    case 'string': {
      if (s.maxLength !== undefined) return schema;
      const min = typeof s.minLength === 'number' ? s.minLength : 0;
      return { ...s, maxLength: Math.max(min, room - 2) };
    }
    case 'array': {
      const min = typeof s.minItems === 'number' ? s.minItems : 0;
      const items = typeof s.maxItems === 'number' ? s.maxItems : Math.max(min, Math.min(MAX_DEFAULT_ITEMS, Math.floor(room / 8)));
      const each = Math.floor((room - 2 - items) / Math.max(1, items));
      const bounded = { ...s, maxItems: items };
      return typeof s.items === 'object' && s.items !== null ? { ...bounded, items: boundedSchema(s.items, each) } : bounded;
    }
    case 'object': {
      const properties = s.properties;
      if (typeof properties !== 'object' || properties === null) return schema;
      const entries = Object.entries(properties as Record<string, object>);
      if (entries.length === 0) return schema;
      const overhead = 2 + entries.reduce((n, [name]) => n + name.length + PROPERTY_OVERHEAD, 0);
      const each = Math.floor((room - overhead) / entries.length);
      return { ...s, properties: Object.fromEntries(entries.map(([name, p]) => [name, boundedSchema(p, each)])) };
    }
    default:
      return schema;
  }
}
