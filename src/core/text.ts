/**
 * Text generation in the core's own types: a validated request (what every transport parses its
 * wire input into, once, with defaults filled in), and the typed events a text backend answers
 * with. Transports encode the events in their own format (OpenAI chunks, gRPC ChatChunks);
 * metering, the ledger, metrics and traces read them directly. Imports nothing of the project.
 */
import type { Readable } from 'node:stream';
import type { ApiError } from './errors.js';

/** Who wrote a chat message. */
export type Role = (typeof ROLES)[number];

/** Every role a chat message may have, in the order error messages list them. */
export const ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'function'] as const;

/** One part of a message's content: text parts carry `text`; other types (images, audio) are the backend's to accept or refuse. */
export interface ContentPart {
  readonly type: string;
  readonly text?: string;
}

/** A function call an assistant made earlier in a conversation. */
export interface ToolCall {
  /** The id its result refers to (`tool_call_id`, Anthropic's `tool_use_id`). */
  readonly id: string;
  readonly name: string;
  /** The arguments as JSON text (OpenAI's `function.arguments`); valid JSON, checked by the transport. */
  readonly arguments: string;
}

/** One message of a chat. */
export interface ChatMessage {
  readonly role: Role;
  /** Text, content parts, or null (none). */
  readonly content: string | readonly ContentPart[] | null;
  /** An assistant message's function calls; absent or empty: none. */
  readonly toolCalls?: readonly ToolCall[];
  /** A `tool` message: the id of the call it answers. */
  readonly toolCallId?: string;
}

/** Whether the model may, must, or must not call a function, or which one it must call. */
export type ToolChoice =
  | { readonly type: 'auto' }
  | { readonly type: 'none' }
  | { readonly type: 'required' }
  | { readonly type: 'function'; readonly name: string };

/** A completion's prompt: text, texts, token ids, or arrays of token ids. */
export type Prompt = string | readonly string[] | readonly number[] | ReadonlyArray<readonly number[]>;

/** What the client asked the model to return besides text. */
export type ResponseFormat =
  { readonly type: 'text' } | { readonly type: 'json_object' } | { readonly type: 'json_schema'; readonly schema: object };

/** A function the model may call (OpenAI's `tools[].function`). */
export interface FunctionTool {
  readonly name: string;
  readonly description: string | null;
  /** JSON Schema of the arguments; null: none given. */
  readonly parameters: object | null;
  readonly strict: boolean;
}

/** How a text request samples, OpenAI's defaults filled in; each field checked for type and range by the transport. */
export interface Sampling {
  /** Completion tokens at most; null: up to the end of the context. */
  readonly maxTokens: number | null;
  /** In [0, 2]; 1 by default. */
  readonly temperature: number;
  /** In [0, 1]; 1 by default. */
  readonly topP: number;
  /** 0: off. A local model checks it against its vocabulary. */
  readonly topK: number;
  /** In [0, 1]; 0: off. */
  readonly minP: number;
  /** null: unseeded. */
  readonly seed: number | null;
  /** In [-2, 2]. */
  readonly presencePenalty: number;
  /** In [-2, 2]. */
  readonly frequencyPenalty: number;
  /** Token id (as text, as OpenAI's JSON has it) -> value in [-100, 100] added to its logit; a local model checks the ids. */
  readonly logitBias: Readonly<Record<string, number>>;
  /** Texts that end generation (none empty); the text is not returned. */
  readonly stop: readonly string[];
  /** null: no log probabilities; else how many alternatives per token (chat: 0 to 20; completions: 0 to 5). */
  readonly logprobs: number | null;
  readonly responseFormat: ResponseFormat;
  /** Choices to generate (1 unless asked). */
  readonly n: number;
  /** Completions only: candidates to sample per choice (1 unless asked). */
  readonly bestOf: number;
  /** Completions only: whether the prompt is echoed before the answer. */
  readonly echo: boolean;
  /** Completions only: text after the completion; null: none. */
  readonly suffix: string | null;
}

/** The fields of both kinds of text request. */
interface TextRequestBase {
  /** The model name the client sent (a name or alias); answers carry it back. */
  readonly model: string;
  /** Whether the client reads the answer as it is generated; otherwise the transport gathers the events into one answer. */
  readonly stream: boolean;
  readonly sampling: Sampling;
  /** Whether the client asked for usage in a stream (OpenAI's `stream_options.include_usage`); whole answers always carry it. */
  readonly includeUsage: boolean;
  /**
   * Whether the answer must end with a `usage` event even if the client did not ask (the call is
   * metered, or the transport always reports it): a remote backend asks its upstream for it.
   * In-process backends always end with one.
   */
  readonly reportUsage: boolean;
  /** Functions the model may call; empty: none. */
  readonly tools: readonly FunctionTool[];
  /** `none` when there are no tools; a named function is one of `tools` (the transport checks). */
  readonly toolChoice: ToolChoice;
  /** Whether the model may make several calls in one answer (OpenAI's default: true). */
  readonly parallelToolCalls: boolean;
  /**
   * The client's request exactly as it came, when it spoke the OpenAI API: an upstream that speaks
   * it too is sent this (with its own model name), so fields infergate does not model still reach it.
   */
  readonly openai: Readonly<Record<string, unknown>> | null;
  /** The same for a client that spoke the Anthropic Messages API: an upstream that speaks it is sent this. */
  readonly anthropic: Readonly<Record<string, unknown>> | null;
}

/** A chat request after validation. */
export interface ChatRequest extends TextRequestBase {
  readonly kind: 'chat';
  /** At least one. */
  readonly messages: readonly ChatMessage[];
}

/** A (legacy) completion request after validation. */
export interface CompletionRequest extends TextRequestBase {
  readonly kind: 'completion';
  readonly prompt: Prompt;
}

/** A chat or completion request: parsed and validated once by the transport; later stages never re-check it. */
export type TextRequest = ChatRequest | CompletionRequest;

/** Why a generation ended: a stop sequence or token (`stop`), `max_tokens` (`length`), or a tool call (`tool_calls`). */
export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter';

/** A sampled token's natural-log probability, and the likeliest tokens at its position (as many as asked). */
export interface TokenLogprob {
  readonly token: string;
  readonly logprob: number;
  readonly top: ReadonlyArray<{ readonly token: string; readonly logprob: number }>;
}

/** Timings of one generation after llama.cpp server's, in milliseconds. */
export interface Timings {
  readonly queued_ms: number;
  readonly prompt_n: number;
  readonly prompt_ms: number;
  readonly predicted_n: number;
  readonly predicted_ms: number;
  readonly predicted_per_second: number;
}

/**
 * One event of a text answer, in order: text (and tool-call) deltas, then one `finish`, then one
 * `usage`. A failure ends the stream by throwing (an ApiError, or ClientGoneError), which each
 * transport encodes in its own way.
 */
export type TextEvent =
  | { readonly type: 'text'; readonly text: string; readonly logprobs: TokenLogprob | null }
  | {
      readonly type: 'tool_call';
      /** Which call of the answer this delta belongs to (0, 1, ...). */
      readonly index: number;
      /** Set on a call's first delta only. */
      readonly id: string | null;
      /** Set on a call's first delta only. */
      readonly name: string | null;
      /** A fragment of the call's JSON arguments. */
      readonly arguments: string;
    }
  | {
      readonly type: 'finish';
      readonly reason: FinishReason;
      /** Which of the client's `stop` texts ended it, when one did and the backend knows (Anthropic's `stop_sequence`). */
      readonly stopSequence?: string;
    }
  | { readonly type: 'usage'; readonly promptTokens: number; readonly completionTokens: number; readonly timings: Timings | null };

/** One function call of an answer, as its deltas gathered so far. */
export interface GatheredCall {
  /** From the call's first delta; null until one carried it. */
  id: string | null;
  name: string;
  /** The JSON arguments, as far as they came. */
  arguments: string;
}

/** Adds a tool-call delta to the calls gathered so far, keyed by index (a backend's to choose: not always dense). */
export function gatherToolCall(calls: Map<number, GatheredCall>, event: Extract<TextEvent, { type: 'tool_call' }>): void {
  let call = calls.get(event.index);
  if (call === undefined) calls.set(event.index, (call = { id: null, name: '', arguments: '' }));
  call.id ??= event.id;
  if (event.name !== null) call.name += event.name;
  call.arguments += event.arguments;
}

/** A text answer as typed events. */
export interface TextStream {
  readonly type: 'events';
  /** The answer's id (`chatcmpl-...`, `cmpl-...`). */
  readonly id: string;
  /** Unix seconds. */
  readonly created: number;
  /** The events; an answer complete when it is returned (a mock's, the degraded one) may give them as an array, read without an await each. */
  readonly events: AsyncIterable<TextEvent> | readonly TextEvent[];
}

/**
 * An upstream's answer as the bytes it sent, for a client that speaks the upstream's protocol
 * when nothing needs the events (the pass-through path). What reads it in passing (metering) uses
 * `decode`; what needs events (another transport, a stream that must be cut) uses `events()`.
 */
export interface RawText {
  readonly type: 'raw';
  /** The wire protocol of `body`: a transport that speaks it may pass the bytes on; any other reads `events()`. */
  readonly protocol: 'openai' | 'anthropic';
  readonly contentType: string;
  /** Whether `body` is Server-Sent Events (else one JSON document). */
  readonly sse: boolean;
  readonly body: Buffer | Readable;
  /** The typed events of one wire event (an SSE event's data, or the whole JSON body); throws an ApiError for an error event. */
  decode(data: string): readonly TextEvent[];
  /** The Server-Sent Events text that ends a stream of this protocol with `error` (OpenAI: an error event, then `[DONE]`; Anthropic: an `error` event), for a stream cut while it flows. */
  encodeError(error: ApiError): string;
  /** The whole answer as typed events, reading (and owning) `body`; resolves once the answer's id is known (its first event). */
  events(): Promise<TextStream>;
}

/** A backend's answer to a text request. */
export type TextResponse = TextStream | RawText;

/** A text answer's events, decoding the bytes of a pass-through answer. */
export function textStream(response: TextResponse): Promise<TextStream> {
  return response.type === 'events' ? Promise.resolve(response) : response.events();
}
