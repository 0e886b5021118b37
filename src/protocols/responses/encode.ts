/**
 * Typed text events encoded as the Responses API answers: the Response object (`object:
 * "response"`, its `output` items, `usage`, and the request's fields echoed), and, streamed, the
 * event sequence OpenAI sends (`response.created` ... `response.completed`, each with its
 * `sequence_number`), as Server-Sent Events named by their type. One builder serves both: it
 * gathers the events into output items and, when streaming, writes the events that say so.
 */
import { ClientGoneError } from '../../core/call.js';
import { namedEvent } from '../../core/sse.js';
import type { FinishReason, TextEvent } from '../../core/text.js';
import type { Echo, FunctionCallItem, Item, MessageItem } from './request.js';

/** Where a Response stands: `incomplete` when it stopped at `max_output_tokens` (or a content filter). */
export type ResponseStatus = 'in_progress' | 'completed' | 'incomplete' | 'failed';

/** The status of one output item. */
export type ItemStatus = 'in_progress' | 'completed' | 'incomplete';

/** A text part of an output message. */
export interface OutputText {
  readonly type: 'output_text';
  readonly text: string;
  readonly annotations: readonly never[];
  readonly logprobs: readonly never[];
}

/** An output message. */
export interface OutputMessage {
  readonly type: 'message';
  readonly id: string;
  readonly status: ItemStatus;
  readonly role: 'assistant';
  readonly content: readonly OutputText[];
}

/** An output function call: `call_id` is what the client's `function_call_output` answers. */
export interface OutputFunctionCall {
  readonly type: 'function_call';
  readonly id: string;
  readonly call_id: string;
  readonly name: string;
  readonly arguments: string;
  readonly status: ItemStatus;
}

/** One item of a Response's `output`. */
export type OutputItem = OutputMessage | OutputFunctionCall;

/** A Response's `usage`, in tokens. */
export interface ResponseUsage {
  readonly input_tokens: number;
  readonly input_tokens_details: { readonly cached_tokens: number };
  readonly output_tokens: number;
  readonly output_tokens_details: { readonly reasoning_tokens: number };
  readonly total_tokens: number;
}

/** Why a Response failed: the catalogue code and its message. */
export interface ResponseError {
  readonly code: string;
  readonly message: string;
}

/** The Response object, as POST /v1/responses answers and GET /v1/responses/{id} returns it. */
export interface ResponseObject extends Echo {
  readonly id: string;
  readonly object: 'response';
  /** Unix seconds. */
  readonly created_at: number;
  readonly status: ResponseStatus;
  readonly completed_at: number | null;
  readonly error: ResponseError | null;
  readonly incomplete_details: { readonly reason: 'max_output_tokens' | 'content_filter' } | null;
  readonly model: string;
  readonly output: readonly OutputItem[];
  /** Every output text joined: the SDKs' convenience. */
  readonly output_text: string;
  readonly usage: ResponseUsage | null;
  readonly truncation: 'disabled';
}

/** The head of a Response: what is known before the model answers. */
export interface ResponseHead {
  readonly id: string;
  readonly createdAt: number;
  readonly model: string;
  readonly echo: Echo;
}

/** One event of a streamed Response, as OpenAI sends it: its fields, and its place in the stream (0, 1, ...). */
export type ResponseStreamEvent = EventBody & { readonly sequence_number: number };

/** The fields of each kind of stream event but its sequence number. */
type EventBody =
  | {
      readonly type: 'response.created' | 'response.in_progress' | 'response.completed' | 'response.incomplete' | 'response.failed';
      readonly response: ResponseObject;
    }
  | { readonly type: 'response.output_item.added' | 'response.output_item.done'; readonly output_index: number; readonly item: OutputItem }
  | {
      readonly type: 'response.content_part.added' | 'response.content_part.done';
      readonly item_id: string;
      readonly output_index: number;
      readonly content_index: number;
      readonly part: OutputText;
    }
  | {
      readonly type: 'response.output_text.delta';
      readonly item_id: string;
      readonly output_index: number;
      readonly content_index: number;
      readonly delta: string;
      readonly logprobs: readonly never[];
    }
  | {
      readonly type: 'response.output_text.done';
      readonly item_id: string;
      readonly output_index: number;
      readonly content_index: number;
      readonly text: string;
      readonly logprobs: readonly never[];
    }
  | {
      readonly type: 'response.function_call_arguments.delta';
      readonly item_id: string;
      readonly output_index: number;
      readonly delta: string;
    }
  | {
      readonly type: 'response.function_call_arguments.done';
      readonly item_id: string;
      readonly output_index: number;
      readonly name: string;
      readonly arguments: string;
    };

/** An event as Server-Sent Events: named by its type, as OpenAI sends them (there is no `[DONE]`). */
export function sseEvent(event: ResponseStreamEvent): string {
  return namedEvent(event.type, JSON.stringify(event));
}

const NONE: readonly never[] = Object.freeze([]);

/** An output item while it is built. */
type Building =
  | { kind: 'message'; readonly id: string; readonly index: number; text: string }
  | { kind: 'call'; readonly id: string; readonly index: number; readonly callId: string; name: string; arguments: string };

/**
 * Builds one Response from the typed events of its answer. Each method returns the stream events
 * it produced, numbered in order, when `streaming`; whole answers get none and read `response()`.
 * Item ids come from `newId` (`msg`, `fc` the prefix), so the caller decides their form.
 */
export class ResponseBuilder {
  readonly #head: ResponseHead;
  readonly #newId: (prefix: string) => string;
  readonly #streaming: boolean;
  // Closed items, as built: a late argument delta of a closed call still reaches its item.
  readonly #done: Array<{ readonly built: Building; readonly status: ItemStatus }> = [];
  // Backend call index -> the item it builds; calls are few, and an index need not be dense.
  readonly #calls = new Map<number, Building & { kind: 'call' }>();
  #open: Building | null = null;
  #sequence = 0;
  #finish: FinishReason | null = null;
  #usage: ResponseUsage | null = null;
  #status: ResponseStatus = 'in_progress';
  #error: ResponseError | null = null;
  #completedAt: number | null = null;

  constructor(head: ResponseHead, newId: (prefix: string) => string, streaming: boolean) {
    this.#head = head;
    this.#newId = newId;
    this.#streaming = streaming;
  }

  /** `response.created` and `response.in_progress`: sent before the first token. */
  start(): ResponseStreamEvent[] {
    const out: ResponseStreamEvent[] = [];
    if (!this.#streaming) return out;
    const response = this.response();
    out.push(this.#event({ type: 'response.created', response }), this.#event({ type: 'response.in_progress', response }));
    return out;
  }

  /** Reads one event of the answer. */
  add(event: TextEvent): ResponseStreamEvent[] {
    const out: ResponseStreamEvent[] = [];
    switch (event.type) {
      case 'text':
        if (event.text !== '') this.#text(event.text, out);
        break;
      case 'tool_call':
        this.#call(event.index, event.id, event.name, event.arguments, out);
        break;
      case 'finish':
        this.#finish = event.reason;
        break;
      case 'usage':
        this.#usage = {
          input_tokens: event.promptTokens,
          input_tokens_details: { cached_tokens: 0 },
          output_tokens: event.completionTokens,
          output_tokens_details: { reasoning_tokens: 0 },
          total_tokens: event.promptTokens + event.completionTokens,
        };
        break;
    }
    return out;
  }

  /**
   * Closes the open items and the Response once the answer's events ended (`now` in Unix
   * seconds): `response.completed`, or `response.incomplete` when it stopped at the token limit.
   * Events that ended without a `finish` were cut short (the client left): that throws ClientGoneError.
   */
  end(now: number): ResponseStreamEvent[] {
    if (this.#finish === null) throw new ClientGoneError();
    const incomplete = this.#finish === 'length' || this.#finish === 'content_filter';
    const out: ResponseStreamEvent[] = [];
    // An answer with nothing in it is still one (empty) message, as OpenAI answers it.
    if (this.#open === null && this.#done.length === 0) this.#text('', out);
    this.#close(incomplete ? 'incomplete' : 'completed', out);
    this.#status = incomplete ? 'incomplete' : 'completed';
    this.#completedAt = incomplete ? null : now;
    if (this.#streaming) {
      out.push(this.#event({ type: incomplete ? 'response.incomplete' : 'response.completed', response: this.response() }));
    }
    return out;
  }

  /** `response.failed` for an answer that failed after the stream began; the Response keeps what it had. */
  fail(error: ResponseError): ResponseStreamEvent {
    const open = this.#open;
    // The open item ends where it was, with no `.done` events: the stream ends at this one.
    if (open !== null) this.#done.push({ built: open, status: 'incomplete' });
    this.#open = null;
    this.#status = 'failed';
    this.#error = error;
    return this.#event({ type: 'response.failed', response: this.response() });
  }

  /** The Response as it stands (whole once `end` returned). */
  response(): ResponseObject {
    const head = this.#head;
    const output = this.#output();
    let text = '';
    for (const item of output) if (item.type === 'message') for (const part of item.content) text += part.text;
    const reason = this.#finish === 'length' ? 'max_output_tokens' : this.#finish === 'content_filter' ? 'content_filter' : null;
    return {
      id: head.id,
      object: 'response',
      created_at: head.createdAt,
      status: this.#status,
      completed_at: this.#completedAt,
      error: this.#error,
      incomplete_details: this.#status === 'incomplete' && reason !== null ? { reason } : null,
      model: head.model,
      output,
      output_text: text,
      usage: this.#usage,
      truncation: 'disabled',
      ...head.echo,
    };
  }

  /** The output as conversation items (to store, and to continue from). */
  items(): Item[] {
    return this.#output().map((item): Item => {
      if (item.type === 'message') {
        const message: MessageItem = {
          type: 'message',
          id: item.id,
          role: 'assistant',
          content: item.content.map((p) => ({ type: 'output_text', text: p.text })),
        };
        return message;
      }
      const call: FunctionCallItem = {
        type: 'function_call',
        id: item.id,
        call_id: item.call_id,
        name: item.name,
        arguments: item.arguments,
      };
      return call;
    });
  }

  #event(body: EventBody): ResponseStreamEvent {
    return { ...body, sequence_number: this.#sequence++ };
  }

  #text(text: string, out: ResponseStreamEvent[]): void {
    let open = this.#open;
    if (open === null || open.kind !== 'message') {
      if (open !== null) this.#close('completed', out);
      open = this.#open = { kind: 'message', id: this.#newId('msg'), index: this.#done.length, text: '' };
      if (this.#streaming) {
        // Added with no parts yet: the part comes in its own event, next.
        const added: OutputMessage = { type: 'message', id: open.id, status: 'in_progress', role: 'assistant', content: [] };
        out.push(this.#event({ type: 'response.output_item.added', output_index: open.index, item: added }));
        out.push(
          this.#event({
            type: 'response.content_part.added',
            item_id: open.id,
            output_index: open.index,
            content_index: 0,
            part: outputText(''),
          }),
        );
      }
    }
    open.text += text;
    if (this.#streaming && text !== '') {
      out.push(
        this.#event({
          type: 'response.output_text.delta',
          item_id: open.id,
          output_index: open.index,
          content_index: 0,
          delta: text,
          logprobs: NONE,
        }),
      );
    }
  }

  #call(index: number, id: string | null, name: string | null, args: string, out: ResponseStreamEvent[]): void {
    let call = this.#calls.get(index);
    if (call === undefined || call !== this.#open) {
      if (call !== undefined) {
        // A delta of a call already closed: its arguments still belong to it (the stream has moved on).
        call.arguments += args;
        return;
      }
      if (this.#open !== null) this.#close('completed', out);
      call = {
        kind: 'call',
        id: this.#newId('fc'),
        index: this.#done.length,
        callId: id ?? this.#newId('call'),
        name: name ?? '',
        arguments: '',
      };
      this.#calls.set(index, call);
      this.#open = call;
      if (this.#streaming)
        out.push(this.#event({ type: 'response.output_item.added', output_index: call.index, item: functionCall(call, 'in_progress') }));
    } else if (name !== null) call.name += name;
    call.arguments += args;
    if (this.#streaming && args !== '') {
      out.push(this.#event({ type: 'response.function_call_arguments.delta', item_id: call.id, output_index: call.index, delta: args }));
    }
  }

  /** Closes the open item, if any, with `status`: its `.done` events, and it joins the output. */
  #close(status: ItemStatus, out: ResponseStreamEvent[]): void {
    const open = this.#open;
    if (open === null) return;
    this.#open = null;
    this.#done.push({ built: open, status });
    if (!this.#streaming) return;
    const item = open.kind === 'message' ? message(open, status) : functionCall(open, status);
    const at = { item_id: open.id, output_index: open.index } as const;
    if (open.kind === 'message') {
      out.push(this.#event({ type: 'response.output_text.done', ...at, content_index: 0, text: open.text, logprobs: NONE }));
      out.push(this.#event({ type: 'response.content_part.done', ...at, content_index: 0, part: outputText(open.text) }));
    } else {
      out.push(this.#event({ type: 'response.function_call_arguments.done', ...at, name: open.name, arguments: open.arguments }));
    }
    out.push(this.#event({ type: 'response.output_item.done', output_index: open.index, item }));
  }

  /** The items closed so far, then the open one (as in progress), in output order. */
  #output(): OutputItem[] {
    const items = this.#done.map(({ built, status }) => outputItem(built, status));
    if (this.#open !== null) items.push(outputItem(this.#open, 'in_progress'));
    return items;
  }
}

function outputItem(built: Building, status: ItemStatus): OutputItem {
  return built.kind === 'message' ? message(built, status) : functionCall(built, status);
}

function outputText(text: string): OutputText {
  return { type: 'output_text', text, annotations: NONE, logprobs: NONE };
}

function message(m: Building & { kind: 'message' }, status: ItemStatus): OutputMessage {
  return { type: 'message', id: m.id, status, role: 'assistant', content: [outputText(m.text)] };
}

function functionCall(c: Building & { kind: 'call' }, status: ItemStatus): OutputFunctionCall {
  return { type: 'function_call', id: c.id, call_id: c.callId, name: c.name, arguments: c.arguments, status };
}
