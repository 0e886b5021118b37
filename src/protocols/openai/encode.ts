/**
 * Typed text events encoded as the OpenAI API answers: the whole answer (`chat.completion`,
 * `text_completion`), or the stream of chunks exactly as OpenAI sends them (the role, content and
 * tool-call deltas, a chunk with `finish_reason`, then, if the client asked, one with `usage` and
 * no choices). Errors the events throw propagate to the caller, which answers them in its own way.
 */
import { ClientGoneError } from '../../core/call.js';
import {
  gatherToolCall,
  type FinishReason,
  type GatheredCall,
  type TextEvent,
  type TextRequest,
  type TextStream,
  type Timings,
  type TokenLogprob,
} from '../../core/text.js';
import { randomCallId } from '../../core/tools.js';

/** OpenAI's `usage` object, in tokens. */
export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

/** One token of chat logprobs, with its UTF-8 bytes. */
export interface ChatTokenLogprob {
  readonly token: string;
  readonly logprob: number;
  readonly bytes: readonly number[];
}

/** Chat logprobs: each token with its likeliest alternatives. */
export interface ChatLogprobs {
  readonly content: ReadonlyArray<ChatTokenLogprob & { readonly top_logprobs: readonly ChatTokenLogprob[] }>;
  readonly refusal: null;
}

/** Legacy completions' logprobs: parallel lists, `text_offset` the character offset of each token in the text. */
export interface CompletionLogprobs {
  readonly tokens: readonly string[];
  readonly token_logprobs: readonly number[];
  readonly top_logprobs: ReadonlyArray<Readonly<Record<string, number>>>;
  readonly text_offset: readonly number[];
}

/** One function call of a whole chat answer. */
export interface ToolCall {
  readonly id: string;
  readonly type: 'function';
  readonly function: { readonly name: string; readonly arguments: string };
}

/** A piece of one function call in a chat chunk: `id`, `type` and `name` on the call's first piece only. */
export interface ToolCallDelta {
  readonly index: number;
  readonly id?: string;
  readonly type?: 'function';
  readonly function: { readonly name?: string; readonly arguments: string };
}

/** The fields every answer and chunk starts with. */
interface Head {
  readonly id: string;
  readonly object: 'chat.completion' | 'chat.completion.chunk' | 'text_completion';
  readonly created: number;
  readonly model: string;
}

/** A whole chat answer (`chat.completion`); `timings` (llama.cpp's) only when the backend measured them. */
export interface ChatCompletion extends Head {
  readonly choices: ReadonlyArray<{
    readonly index: number;
    readonly message: {
      readonly role: 'assistant';
      /** null when the answer is only tool calls. */
      readonly content: string | null;
      readonly refusal: null;
      readonly tool_calls?: readonly ToolCall[];
    };
    readonly logprobs: ChatLogprobs | null;
    readonly finish_reason: FinishReason;
  }>;
  readonly usage?: Usage;
  readonly timings?: Timings;
}

/** A whole legacy completion (`text_completion`). */
export interface TextCompletion extends Head {
  readonly choices: ReadonlyArray<{
    readonly index: number;
    readonly text: string;
    readonly logprobs: CompletionLogprobs | null;
    readonly finish_reason: FinishReason;
  }>;
  readonly usage?: Usage;
  readonly timings?: Timings;
}

/** One chunk of a streamed chat answer (`chat.completion.chunk`); the usage chunk has no choices. */
export interface ChatCompletionChunk extends Head {
  readonly choices: ReadonlyArray<{
    readonly index: number;
    readonly delta: { readonly role?: 'assistant'; readonly content?: string; readonly tool_calls?: readonly ToolCallDelta[] };
    readonly logprobs: ChatLogprobs | null;
    readonly finish_reason: FinishReason | null;
  }>;
  readonly usage?: Usage;
  readonly timings?: Timings;
}

/** One chunk of a streamed legacy completion (`text_completion`); the usage chunk has no choices. */
export interface TextCompletionChunk extends Head {
  readonly choices: ReadonlyArray<{
    readonly index: number;
    readonly text: string;
    readonly logprobs: CompletionLogprobs | null;
    readonly finish_reason: FinishReason | null;
  }>;
  readonly usage?: Usage;
  readonly timings?: Timings;
}

/** The OpenAI usage object of these token counts. */
export function usage(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/**
 * The whole answer: every event gathered into one `chat.completion` or `text_completion`. `usage`
 * is there when the backend reported it (in-process backends always do). An answer whose events
 * end without a `finish` was cut short (a backend ends quietly when its client left): that throws
 * ClientGoneError rather than answer half a text as if it were whole.
 */
export function wholeAnswer(
  answer: TextStream,
  request: TextRequest,
): ChatCompletion | TextCompletion | Promise<ChatCompletion | TextCompletion> {
  const events = answer.events;
  if (!Array.isArray(events)) return gathered(answer, events as AsyncIterable<TextEvent>, request);
  // An answer complete when it came (a mock's, the degraded one) is encoded at once, without a promise.
  const whole = new Gathered();
  for (const event of events as readonly TextEvent[]) whole.add(event);
  return whole.answer(answer, request);
}

async function gathered(
  answer: TextStream,
  events: AsyncIterable<TextEvent>,
  request: TextRequest,
): Promise<ChatCompletion | TextCompletion> {
  const whole = new Gathered();
  for await (const event of events) whole.add(event);
  return whole.answer(answer, request);
}

/** The events of a whole answer, gathered as they come. */
class Gathered {
  text = '';
  readonly logprobs: TokenLogprob[] = [];
  // By index; a Map, since an index is the backend's to choose and need not be dense.
  readonly calls = new Map<number, GatheredCall>();
  finish: FinishReason | null = null;
  counted: Usage | null = null;
  timings: Timings | null = null;

  add(event: TextEvent): void {
    switch (event.type) {
      case 'text':
        this.text += event.text;
        if (event.logprobs !== null) this.logprobs.push(event.logprobs);
        break;
      case 'tool_call':
        gatherToolCall(this.calls, event);
        break;
      case 'finish':
        this.finish = event.reason;
        break;
      case 'usage':
        this.counted = usage(event.promptTokens, event.completionTokens);
        this.timings = event.timings;
        break;
    }
  }

  answer(answer: TextStream, request: TextRequest): ChatCompletion | TextCompletion {
    const { text, logprobs, calls, finish, counted, timings } = this;
    const chat = request.kind === 'chat';
    if (finish === null) throw new ClientGoneError();
    const asked = request.sampling.logprobs !== null || logprobs.length > 0;
    if (!chat) {
      const choice = { index: 0, text, logprobs: asked ? completionLogprobs(logprobs, 0) : null, finish_reason: finish };
      return withUsage<TextCompletion>(
        { id: answer.id, object: 'text_completion', created: answer.created, model: request.model, choices: [choice] },
        counted,
        timings,
      );
    }
    const message: ChatCompletion['choices'][number]['message'] =
      calls.size === 0
        ? { role: 'assistant', content: text, refusal: null }
        : { role: 'assistant', content: text === '' ? null : text, refusal: null, tool_calls: toolCallsOf(calls) };
    const choice = { index: 0, message, logprobs: asked ? chatLogprobs(logprobs) : null, finish_reason: finish };
    return withUsage<ChatCompletion>(
      { id: answer.id, object: 'chat.completion', created: answer.created, model: request.model, choices: [choice] },
      counted,
      timings,
    );
  }
}

/** `answer` with its usage and timings, each when known (set in place: the answer is new). */
function withUsage<A extends ChatCompletion | TextCompletion>(answer: A, counted: Usage | null, timings: Timings | null): A {
  const open = answer as { usage?: Usage; timings?: Timings };
  if (counted !== null) open.usage = counted;
  if (timings !== null) open.timings = timings;
  return answer;
}

/** The gathered tool calls, by index. */
function toolCallsOf(
  calls: ReadonlyMap<number, { readonly id: string | null; readonly name: string; readonly arguments: string }>,
): ToolCall[] {
  return [...calls.entries()]
    .sort(([a], [b]) => a - b)
    .map(([, c]) => ({ id: c.id ?? randomCallId('call'), type: 'function', function: { name: c.name, arguments: c.arguments } }));
}

/**
 * The chunks of a streamed answer, one per event as it comes. Chat sends the role first, with the
 * first delta rather than before it (as vLLM does), so a client's time to first byte is its time to
 * first token. The usage chunk comes only if the client asked (`stream_options.include_usage`).
 */
export function streamChunks(answer: TextStream, request: TextRequest): AsyncGenerator<ChatCompletionChunk | TextCompletionChunk> {
  // The generator itself, not one delegating to it: each layer of async generator costs ticks per chunk.
  return request.kind === 'chat' ? chatChunks(answer, request) : completionChunks(answer, request);
}

async function* chatChunks(answer: TextStream, request: TextRequest): AsyncGenerator<ChatCompletionChunk> {
  const head = { id: answer.id, object: 'chat.completion.chunk', created: answer.created, model: request.model } as const;
  const chunk = (delta: ChatCompletionChunk['choices'][number]['delta'], logprobs: ChatLogprobs | null = null): ChatCompletionChunk => ({
    ...head,
    choices: [{ index: 0, delta, logprobs, finish_reason: null }],
  });
  const role = (): ChatCompletionChunk => chunk({ role: 'assistant', content: '' });
  let first = true;
  for await (const event of answer.events) {
    switch (event.type) {
      case 'text':
        if (event.text === '' && event.logprobs === null) break; // nothing to say
        if (first) yield role();
        first = false;
        yield chunk({ content: event.text }, event.logprobs === null ? null : chatLogprobs([event.logprobs]));
        break;
      case 'tool_call':
        if (first) yield role();
        first = false;
        yield chunk({ tool_calls: [toolCallDelta(event.index, event.id, event.name, event.arguments)] });
        break;
      case 'finish':
        if (first) yield role();
        first = false;
        yield { ...head, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: event.reason }] };
        break;
      case 'usage':
        if (request.includeUsage) yield { ...head, choices: [], ...usageFields(event.promptTokens, event.completionTokens, event.timings) };
        break;
    }
  }
}

async function* completionChunks(answer: TextStream, request: TextRequest): AsyncGenerator<TextCompletionChunk> {
  const head = { id: answer.id, object: 'text_completion', created: answer.created, model: request.model } as const;
  // Where the next text starts in the whole completion, for `text_offset`.
  let offset = 0;
  for await (const event of answer.events) {
    switch (event.type) {
      case 'text': {
        if (event.text === '' && event.logprobs === null) break;
        const logprobs = event.logprobs === null ? null : completionLogprobs([event.logprobs], offset);
        offset += event.text.length;
        yield { ...head, choices: [{ index: 0, text: event.text, logprobs, finish_reason: null }] };
        break;
      }
      case 'tool_call':
        break; // legacy completions have no tools
      case 'finish':
        yield { ...head, choices: [{ index: 0, text: '', logprobs: null, finish_reason: event.reason }] };
        break;
      case 'usage':
        if (request.includeUsage) yield { ...head, choices: [], ...usageFields(event.promptTokens, event.completionTokens, event.timings) };
        break;
    }
  }
}

function usageFields(promptTokens: number, completionTokens: number, timings: Timings | null): { usage: Usage; timings?: Timings } {
  const counted = usage(promptTokens, completionTokens);
  return timings === null ? { usage: counted } : { usage: counted, timings };
}

function toolCallDelta(index: number, id: string | null, name: string | null, args: string): ToolCallDelta {
  const fn = name === null ? { arguments: args } : { name, arguments: args };
  return id === null ? { index, function: fn } : { index, id, type: 'function', function: fn };
}

function chatEntry(token: string, logprob: number): ChatTokenLogprob {
  return { token, logprob, bytes: [...Buffer.from(token, 'utf8')] };
}

/** `{content: [{token, logprob, bytes, top_logprobs}], refusal: null}`. */
function chatLogprobs(items: readonly TokenLogprob[]): ChatLogprobs {
  return {
    content: items.map((t) => ({ ...chatEntry(t.token, t.logprob), top_logprobs: t.top.map((a) => chatEntry(a.token, a.logprob)) })),
    refusal: null,
  };
}

/** `{tokens, token_logprobs, top_logprobs, text_offset}`, the first token at character `offset`. */
function completionLogprobs(items: readonly TokenLogprob[], offset: number): CompletionLogprobs {
  const textOffset: number[] = [];
  let at = offset;
  for (const t of items) {
    textOffset.push(at);
    at += t.token.length;
  }
  return {
    tokens: items.map((t) => t.token),
    token_logprobs: items.map((t) => t.logprob),
    top_logprobs: items.map((t) => Object.fromEntries(t.top.map((a) => [a.token, a.logprob]))),
    text_offset: textOffset,
  };
}
