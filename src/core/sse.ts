/**
 * Server-Sent Events read from a stream, arriving in pieces of any size. One parser for every
 * reader: eventsource-parser's, which follows the WHATWG spec (CR, LF and CRLF line ends,
 * multi-line `data:`, comments, `event:` and `id:` fields, a leading BOM). {@link SseRelay} adds
 * the raw text of the events a piece completed, for a proxy that passes bytes through as they came.
 */
import { createParser, type EventSourceMessage, type EventSourceParser } from 'eventsource-parser';

/** One event as the parsers give it: its `data`, and its `event` and `id` where the stream set them. */
export type { EventSourceMessage as SseEvent } from 'eventsource-parser';

const LF = 10;
const CR = 13;

/** Parses pieces of an event stream into whole events. */
export class SseParser {
  readonly #parser: EventSourceParser;
  // One array, refilled by each push: no allocation per piece.
  readonly #events: EventSourceMessage[] = [];
  #afterCr = false;

  constructor() {
    const events = this.#events;
    this.#parser = createParser({ onEvent: (event) => void events.push(event) });
  }

  /**
   * The events `piece` completes, in order (events without `data` are not events, by the spec).
   * The array is reused: read it before the next push.
   */
  push(piece: string): readonly EventSourceMessage[] {
    this.#events.length = 0;
    let text = piece;
    // A CR at the end of a piece ends its line at once, as the spec reads and browsers do, rather
    // than when the next piece shows whether an LF follows (eventsource-parser waits, which would
    // hold a CR-only stream's every event until the next one came); that LF is then dropped.
    if (this.#afterCr && text.charCodeAt(0) === LF) text = text.slice(1);
    this.#afterCr = text.charCodeAt(text.length - 1) === CR;
    if (this.#afterCr) text += '\n';
    if (text !== '') this.#parser.feed(text);
    return this.#events;
  }
}

/**
 * A parser that also keeps the raw text: after each {@link push}, {@link text} is what came in
 * (held-over text included) up to the end of the last event the piece completed, untouched, and
 * the rest is held until its event is complete. The events `push` returns are exactly those in
 * `text`, so a proxy can forward `text` as it is, or rewrite it from the events.
 */
export class SseRelay {
  readonly #parser = new SseParser();
  #held = '';
  #text = '';

  /** The events `piece` completes; {@link text} then holds their raw text. */
  push(piece: string): readonly EventSourceMessage[] {
    const events = this.#parser.push(piece);
    const held = this.#held;
    const all = held === '' ? piece : held + piece;
    const end = lastEventEnd(all);
    if (end === all.length) {
      this.#text = all;
      this.#held = '';
    } else if (end === -1) {
      this.#text = '';
      this.#held = all;
    } else {
      this.#text = all.slice(0, end);
      this.#held = all.slice(end);
    }
    return events;
  }

  /** The raw text of the events the last push completed; '' if it completed none. */
  get text(): string {
    return this.#text;
  }

  /** What came after the last whole event: an event cut short, or ''. */
  get rest(): string {
    return this.#held;
  }
}

/**
 * Where the last event in `text` ends: just after the last empty line, which is a line end right
 * after another (CRLF, LF or CR each end a line; a CR at the very end too, as {@link SseParser}
 * reads it); -1 if there is none. An LF at the very start belongs to a CR already passed on.
 */
function lastEventEnd(text: string): number {
  for (let end = text.length; end >= 2; end--) {
    const last = text.charCodeAt(end - 1);
    let start: number;
    if (last === LF) start = text.charCodeAt(end - 2) === CR ? end - 2 : end - 1;
    else if (last === CR && text.charCodeAt(end) !== LF) start = end - 1;
    else continue;
    if (start === 0) continue;
    const before = text.charCodeAt(start - 1);
    if (before === LF || before === CR) return end;
  }
  return -1;
}

/** An event written back as text, LF-ended: its `id`, `event` and each line of its `data`. */
export function formatEvent(event: EventSourceMessage): string {
  let out = '';
  if (event.id !== undefined) out += `id: ${event.id}\n`;
  if (event.event !== undefined) out += `event: ${event.event}\n`;
  const data = event.data;
  out += data.includes('\n') ? `data: ${data.replaceAll('\n', '\ndata: ')}\n\n` : `data: ${data}\n\n`;
  return out;
}

/**
 * A named event as Server-Sent Events text: `event: <type>`, then `json` as its one `data` line.
 * `json` is JSON text as JSON.stringify writes it, which has no line breaks, so one line holds it.
 * Anthropic's and the Responses API's streams name every event this way.
 */
export function namedEvent(type: string, json: string): string {
  return `event: ${type}\ndata: ${json}\n\n`;
}
