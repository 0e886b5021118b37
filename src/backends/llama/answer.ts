/**
 * A llama generation as the typed events of a text answer, and the context sequence it holds
 * until the answer is over, whether it is read to the end, abandoned, or never read at all.
 */
import { ClientGoneError } from '../../core/call.js';
import type { TextEvent, Timings } from '../../core/text.js';
import type { Generation } from './generation.js';
import { finishEvent } from './tool-answer.js';

/**
 * The events of one generation: its text as it becomes final (nothing before the first token,
 * so a client's time to first byte is its time to first token), then `finish` and `usage`. The
 * sequence is released as soon as the generation is over, before those last two are read. `trim`
 * holds back trailing whitespace and drops it at the end.
 */
export async function* answer(
  generation: Generation,
  promptTokens: number,
  trim: boolean,
  release: () => void,
  finished: () => Timings,
  clientStops: readonly string[],
): AsyncGenerator<TextEvent> {
  let tail = '';
  for await (const piece of generation.pieces()) {
    let text = piece.text;
    if (trim) {
      const all = tail + text;
      text = all.trimEnd();
      tail = all.slice(text.length);
    }
    if (text !== '' || piece.logprobs !== null) yield { type: 'text', text, logprobs: piece.logprobs };
  }
  const reason = generation.finishReason;
  const t = finished();
  release();
  if (reason === null) throw new ClientGoneError();
  // A client's stop text says which ended it (Anthropic's `stop_sequence`); the template's own do not.
  const stop = generation.stoppedBy;
  yield finishEvent(reason, stop !== null && clientStops.includes(stop) ? stop : null);
  yield { type: 'usage', promptTokens, completionTokens: generation.completionTokens, timings: t };
}

/**
 * The events of an answer that holds a context sequence, which is released exactly once: when
 * the events end, fail or are abandoned, or when the client leaves before anything read them. A
 * generator that never started runs no `finally`, so the release cannot live in the generator alone.
 */
export class HeldEvents implements AsyncIterable<TextEvent> {
  readonly #events: AsyncGenerator<TextEvent>;
  readonly #release: () => void;
  #read = false;
  #released = false;

  constructor(events: (release: () => void) => AsyncGenerator<TextEvent>, release: () => void) {
    this.#release = release;
    this.#events = events(() => this.#releaseOnce());
  }

  /** The client left: an answer nobody reads yet will not be read, so its sequence is free now. */
  abandon(): void {
    if (!this.#read) this.#releaseOnce();
  }

  [Symbol.asyncIterator](): AsyncIterator<TextEvent> {
    const events = this.#events;
    return {
      next: async () => {
        if (!this.#read) {
          if (this.#released) throw new ClientGoneError();
          this.#read = true;
        }
        try {
          const result = await events.next();
          if (result.done === true) this.#releaseOnce();
          return result;
        } catch (err) {
          this.#releaseOnce();
          throw err;
        }
      },
      return: async () => {
        try {
          return await events.return(undefined);
        } finally {
          this.#releaseOnce();
        }
      },
    };
  }

  #releaseOnce(): void {
    if (this.#released) return;
    this.#released = true;
    this.#release();
  }
}
