/**
 * The live figures: GET /admin/ui/stream read with fetch and a stream reader (EventSource cannot
 * send the Authorization header), parsed by hand as server-sent events. One connection per tab,
 * opened at sign-in, keeps the last five minutes so a page opened later has its charts at once.
 */
import { adminHeaders, BASE, failureOf } from './api.js';

/** Seconds of history kept: five minutes of one-second samples. */
export const HISTORY = 300;

/** Splits a text stream into server-sent events: `{event, data}` for each block that has data. */
export class SseParser {
  #buffer = '';
  #event = '';
  #data = [];

  /** Feeds text; returns the events it completed. */
  push(text) {
    this.#buffer += text;
    const out = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.#buffer);
      if (match === null) break;
      // A lone \r at the end may be half of \r\n: wait for the next chunk.
      if (match[0] === '\r' && match.index === this.#buffer.length - 1) break;
      const line = this.#buffer.slice(0, match.index);
      this.#buffer = this.#buffer.slice(match.index + match[0].length);
      const event = this.#line(line);
      if (event !== null) out.push(event);
    }
    return out;
  }

  #line(line) {
    if (line === '') {
      const event = this.#data.length === 0 ? null : { event: this.#event || 'message', data: this.#data.join('\n') };
      this.#event = '';
      this.#data = [];
      return event;
    }
    if (line.startsWith(':')) return null; // a comment: `: ping`
    const colon = line.indexOf(':');
    const name = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'event') this.#event = value;
    else if (name === 'data') this.#data.push(value);
    return null;
  }
}

/** The stream's state and history, with listeners called on each sample and each change of state. */
export class Live {
  #listeners = new Set();
  #history = [];
  #state = 'connecting';
  #abort = null;
  #stopped = false;
  #onRefused;

  /** `onRefused(failure)`: the stream answered 401 or 403. */
  constructor(onRefused) {
    this.#onRefused = onRefused;
  }

  /** `connecting`, `live`, `reconnecting` or `stopped`. */
  get state() {
    return this.#state;
  }

  /** The samples, oldest first (at most HISTORY). */
  get history() {
    return this.#history;
  }

  get latest() {
    return this.#history.at(-1) ?? null;
  }

  /** `listener(sample | null)`: null when only the state changed. Returns the unsubscribe function. */
  subscribe(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start() {
    this.#stopped = false;
    void this.#run();
  }

  stop() {
    this.#stopped = true;
    this.#abort?.abort();
    this.#set('stopped');
  }

  #set(state) {
    if (this.#state === state) return;
    this.#state = state;
    for (const l of this.#listeners) l(null);
  }

  async #run() {
    let delay = 1000;
    while (!this.#stopped) {
      this.#abort = new AbortController();
      try {
        const res = await fetch(new URL('admin/ui/stream', BASE), {
          headers: { ...adminHeaders(), accept: 'text/event-stream' },
          signal: this.#abort.signal,
          cache: 'no-store',
        });
        if (res.status === 401 || res.status === 403) {
          this.#onRefused(failureOf(res.status, await res.json().catch(() => null)));
          return;
        }
        if (!res.ok || res.body === null) throw new Error(`stream answered ${res.status}`);
        this.#set('live');
        delay = 1000;
        await this.#read(res.body);
      } catch {
        if (this.#stopped) return;
      }
      if (this.#stopped) return;
      this.#set('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  }

  async #read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new SseParser();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const event of parser.push(value)) {
        if (event.event !== 'stats') continue;
        let sample;
        try {
          sample = JSON.parse(event.data);
        } catch {
          continue;
        }
        this.#history.push(sample);
        if (this.#history.length > HISTORY) this.#history.splice(0, this.#history.length - HISTORY);
        for (const l of this.#listeners) l(sample);
      }
    }
  }
}

/** `model@version` of a stream row. */
export function seriesKey(row) {
  return `${row.model}@${row.version}`;
}
