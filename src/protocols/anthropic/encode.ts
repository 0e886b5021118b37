/**
 * Typed text events encoded as the Anthropic Messages API answers: the whole `message`, or the
 * stream of events exactly as Anthropic sends them (`message_start`, `ping`, one
 * `content_block_start` / `content_block_delta`s / `content_block_stop` per block, `message_delta`
 * with the stop reason and usage, `message_stop`), and each as Server-Sent Events text. Errors the
 * events throw propagate to the caller, which answers them in its own way.
 */
import { ClientGoneError } from '../../core/call.js';
import { fastError, type ApiError } from '../../core/errors.js';
import {
  gatherToolCall,
  type FinishReason,
  type GatheredCall,
  type TextEvent,
  type TextRequest,
  type TextStream,
} from '../../core/text.js';
import { namedEvent } from '../../core/sse.js';
import { randomCallId } from '../../core/tools.js';
import { anthropicErrorBody } from './errors.js';

/** Why the model stopped, in Anthropic's words. */
export type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'refusal';

/** A block of text. */
export interface TextBlock {
  readonly type: 'text';
  readonly text: string;
}

/** A call of one of the request's tools, its input the parsed JSON arguments. */
export interface ToolUseBlock {
  readonly type: 'tool_use';
  readonly id: string;
  readonly name: string;
  readonly input: unknown;
}

/** One block of an answer's content. */
export type ContentBlock = TextBlock | ToolUseBlock;

/**
 * Anthropic's `usage`, in tokens. The cache counts are always 0 here (no prompt caching), but
 * present: the SDKs' types declare them `number | null`, not optional.
 */
export interface Usage {
  readonly input_tokens: number;
  readonly output_tokens: number;
  readonly cache_creation_input_tokens: number;
  readonly cache_read_input_tokens: number;
}

/** A whole answer (`type: "message"`); `model` is the name the client sent. */
export interface Message {
  readonly id: string;
  readonly type: 'message';
  readonly role: 'assistant';
  readonly model: string;
  readonly content: readonly ContentBlock[];
  /** null only in `message_start`, before the model stopped. */
  readonly stop_reason: StopReason | null;
  readonly stop_sequence: string | null;
  readonly usage: Usage;
}

/** One event of a streamed answer; its `type` is also the SSE event's name. */
export type StreamEvent =
  | { readonly type: 'message_start'; readonly message: Message }
  | { readonly type: 'ping' }
  | { readonly type: 'content_block_start'; readonly index: number; readonly content_block: ContentBlock }
  | {
      readonly type: 'content_block_delta';
      readonly index: number;
      readonly delta:
        { readonly type: 'text_delta'; readonly text: string } | { readonly type: 'input_json_delta'; readonly partial_json: string };
    }
  | { readonly type: 'content_block_stop'; readonly index: number }
  | {
      readonly type: 'message_delta';
      readonly delta: { readonly stop_reason: StopReason; readonly stop_sequence: string | null };
      readonly usage: Usage;
    }
  | { readonly type: 'message_stop' };

/** An answer's id as a message id: `msg_` and the backend's id without its own prefix (`chatcmpl-`); an Anthropic id as it is. */
export function messageId(id: string): string {
  return id.startsWith('msg_') ? id : `msg_${id.slice(id.indexOf('-') + 1)}`;
}

/** The stop reason of a finish: a call made under `stop` is a tool use still (some upstreams say `stop` after calls). */
export function stopReason(reason: FinishReason, stopSequence: string | undefined, called: boolean): StopReason {
  switch (reason) {
    case 'length':
      return 'max_tokens';
    case 'tool_calls':
      return 'tool_use';
    case 'content_filter':
      return 'refusal';
    case 'stop':
      return stopSequence !== undefined ? 'stop_sequence' : called ? 'tool_use' : 'end_turn';
  }
}

/**
 * The whole answer: every event gathered into one `message`, its text block first (if any text),
 * then a tool_use block per call in index order. An answer whose events end without a `finish` was
 * cut short (a backend ends quietly when its client left): that throws ClientGoneError rather than
 * answer half a text as if it were whole.
 */
export function wholeMessage(answer: TextStream, request: TextRequest): Message | Promise<Message> {
  const events = answer.events;
  if (!Array.isArray(events)) return gathered(answer, events as AsyncIterable<TextEvent>, request);
  // An answer complete when it came (a mock's, the degraded one) is encoded at once, without a promise.
  const whole = new Gathered();
  for (const event of events as readonly TextEvent[]) whole.add(event);
  return whole.message(answer, request);
}

async function gathered(answer: TextStream, events: AsyncIterable<TextEvent>, request: TextRequest): Promise<Message> {
  const whole = new Gathered();
  for await (const event of events) whole.add(event);
  return whole.message(answer, request);
}

/** The events of a whole answer, gathered as they come. */
class Gathered {
  text = '';
  // By index; a Map, since an index is the backend's to choose and need not be dense.
  readonly calls = new Map<number, GatheredCall>();
  finish: Extract<TextEvent, { type: 'finish' }> | null = null;
  usage: Usage = NO_USAGE;

  add(event: TextEvent): void {
    switch (event.type) {
      case 'text':
        this.text += event.text;
        break;
      case 'tool_call':
        gatherToolCall(this.calls, event);
        break;
      case 'finish':
        this.finish = event;
        break;
      case 'usage':
        this.usage = usageOf(event);
        break;
    }
  }

  message(answer: TextStream, request: TextRequest): Message {
    const { text, calls, finish, usage } = this;
    if (finish === null) throw new ClientGoneError();
    const content: ContentBlock[] = text === '' ? [] : [{ type: 'text', text }];
    for (const [, call] of [...calls.entries()].sort(([a], [b]) => a - b)) {
      content.push({ type: 'tool_use', id: call.id ?? randomCallId('toolu'), name: call.name, input: input(call.arguments, call.name) });
    }
    return {
      id: messageId(answer.id),
      type: 'message',
      role: 'assistant',
      model: request.model,
      content,
      stop_reason: stopReason(finish.reason, finish.stopSequence, calls.size > 0),
      stop_sequence: finish.stopSequence ?? null,
      usage,
    };
  }
}

const NO_USAGE: Usage = Object.freeze({ input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });

function usageOf(event: Extract<TextEvent, { type: 'usage' }>): Usage {
  return {
    input_tokens: event.promptTokens,
    output_tokens: event.completionTokens,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
  };
}

/** A call's arguments as the object Anthropic's `input` is (none: `{}`); arguments that are not JSON are the model's failure, not the client's. */
function input(args: string, name: string): unknown {
  if (args.trim() === '') return {};
  try {
    return JSON.parse(args) as unknown;
  } catch {
    throw fastError('upstream_error', `the model called "${name}" with arguments that are not JSON`);
  }
}

/**
 * The events of a streamed answer, each as it comes. `message_start` (and a `ping`) go out with
 * the first event rather than before it, so a client's time to first byte is its time to first
 * token. Each text run and each call is a block, opened when its first delta comes and stopped
 * when the next block opens or the model finishes; `message_delta` carries the stop reason and
 * the usage. A stream cut before its finish ends without `message_delta` and `message_stop`, so
 * the client knows it is incomplete.
 */
export async function* messageEvents(answer: TextStream, request: TextRequest): AsyncGenerator<StreamEvent> {
  let started = false;
  // Blocks by index: the next one to open, the one open now (-1: none) and whether it is text, and each call's.
  let next = 0;
  let open = -1;
  let openText = false;
  const blocks = new Map<number, number>();
  let finish: Extract<TextEvent, { type: 'finish' }> | null = null;
  let usage = NO_USAGE;
  for await (const event of answer.events) {
    if (!started) {
      started = true;
      yield { type: 'message_start', message: startMessage(answer, request) };
      yield PING;
    }
    switch (event.type) {
      case 'text':
        if (event.text === '') break; // nothing to say
        if (!openText) {
          if (open !== -1) yield { type: 'content_block_stop', index: open };
          open = next++;
          openText = true;
          yield { type: 'content_block_start', index: open, content_block: { type: 'text', text: '' } };
        }
        yield { type: 'content_block_delta', index: open, delta: { type: 'text_delta', text: event.text } };
        break;
      case 'tool_call': {
        let block = blocks.get(event.index);
        if (block === undefined) {
          if (open !== -1) yield { type: 'content_block_stop', index: open };
          block = open = next++;
          openText = false;
          blocks.set(event.index, block);
          const start: ToolUseBlock = { type: 'tool_use', id: event.id ?? randomCallId('toolu'), name: event.name ?? '', input: {} };
          yield { type: 'content_block_start', index: block, content_block: start };
        }
        // A delta of a call whose block was already stopped (calls interleaved) still goes to its own block.
        if (event.arguments !== '')
          yield { type: 'content_block_delta', index: block, delta: { type: 'input_json_delta', partial_json: event.arguments } };
        break;
      }
      case 'finish':
        finish = event;
        if (open !== -1) yield { type: 'content_block_stop', index: open };
        open = -1;
        openText = false;
        break;
      case 'usage':
        usage = usageOf(event);
        break;
    }
  }
  if (finish === null) return;
  const delta = {
    stop_reason: stopReason(finish.reason, finish.stopSequence, blocks.size > 0),
    stop_sequence: finish.stopSequence ?? null,
  };
  yield { type: 'message_delta', delta, usage };
  yield MESSAGE_STOP;
}

const PING: StreamEvent = Object.freeze({ type: 'ping' });
const MESSAGE_STOP: StreamEvent = Object.freeze({ type: 'message_stop' });

/** The message as `message_start` has it: no content, no stop reason, no usage yet (it comes in `message_delta`). */
function startMessage(answer: TextStream, request: TextRequest): Message {
  return {
    id: messageId(answer.id),
    type: 'message',
    role: 'assistant',
    model: request.model,
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: NO_USAGE,
  };
}

/** One event as Server-Sent Events text: `event: <type>`, then its JSON as `data`. */
export function sseEvent(event: StreamEvent): string {
  return namedEvent(event.type, JSON.stringify(event));
}

/**
 * The `error` event that ends a stream which failed after its first byte, with Anthropic's error
 * body as its data: for our own streams and for an Anthropic upstream's cut short.
 */
export function sseError(error: ApiError): string {
  return namedEvent('error', anthropicErrorBody(error));
}
