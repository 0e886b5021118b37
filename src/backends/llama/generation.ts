/**
 * One generation on one context sequence: evaluate the prompt, then sample token by token until
 * a stop sequence, an end-of-generation token, `max_tokens`, or the client leaving. Text comes
 * out in pieces as it becomes final: bytes of a character split across tokens are joined first,
 * and text that could be the start of a stop sequence is held back until it is known not to be.
 */
import type { LlamaContextSequence, LlamaModel, SequenceEvaluateOptions, Token } from 'node-llama-cpp';
import type { FinishReason, Timings, TokenLogprob } from '../../core/text.js';

/** Finds stop sequences in streamed text; what it returns is safe to send. */
export class StopMatcher {
  readonly #stops: readonly string[];
  #held = '';
  /** The stop sequence found, once one was. */
  matched: string | null = null;

  constructor(stops: readonly string[]) {
    this.#stops = stops;
  }

  /** Adds text; returns what can be sent now and whether a stop sequence was found (its text is dropped). */
  push(text: string): { emit: string; stopped: boolean } {
    const buffer = this.#held + text;
    if (this.#stops.length === 0) return { emit: buffer, stopped: false };
    let cut = -1;
    for (const stop of this.#stops) {
      const i = buffer.indexOf(stop);
      if (i !== -1 && (cut === -1 || i < cut)) {
        cut = i;
        this.matched = stop;
      }
    }
    if (cut !== -1) {
      this.#held = '';
      return { emit: buffer.slice(0, cut), stopped: true };
    }
    // Hold back the longest end of the buffer that begins some stop sequence.
    let hold = 0;
    for (const stop of this.#stops) {
      for (let k = Math.min(stop.length - 1, buffer.length); k > hold; k--) {
        if (buffer.endsWith(stop.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    this.#held = buffer.slice(buffer.length - hold);
    return { emit: buffer.slice(0, buffer.length - hold), stopped: false };
  }

  /** Text held back when generation ends for another reason. */
  flush(): string {
    const held = this.#held;
    this.#held = '';
    return held;
  }
}

/** Text that became final after one sampled token, with that token's log probabilities if asked. */
export interface Piece {
  readonly text: string;
  readonly logprobs: TokenLogprob | null;
}

/** Why a generation ended: a stop sequence or stop token (`stop`), or `max_tokens` reached (`length`). */
export type GenerationEnd = Extract<FinishReason, 'stop' | 'length'>;

/**
 * What a Generation runs. `stops` are strings that end it (cut from the text); `stopTokens` end it
 * when sampled (never emitted); `evaluate` goes to node-llama-cpp as is, plus the penalties if any.
 */
export interface GenerationOptions {
  readonly prompt: readonly Token[];
  readonly maxTokens: number;
  readonly stops: readonly string[];
  readonly stopTokens: ReadonlySet<Token>;
  /** null: no log probabilities; else how many alternatives per token. */
  readonly logprobs: number | null;
  /** Resolves once the evaluation just requested is under way; null: do not wait (see LlamaBackend.afterDispatch). */
  readonly afterDispatch: () => Promise<void> | null;
  /**
   * Runs an erase of the sequence's old context (see LlamaBackend.withContext); absent: runs it as
   * is. `paused` then says when the other generations may ask for their next token.
   */
  readonly withContext?: (erase: () => Promise<void>) => Promise<void>;
  /** Resolves when no erase waits for the context; null: none waits (see LlamaBackend.paused). */
  readonly paused?: () => Promise<void> | null;
  /** OpenAI's presence and frequency penalties over the tokens generated so far; null: none. */
  readonly penalties: { readonly presence: number; readonly frequency: number } | null;
  readonly evaluate: SequenceEvaluateOptions;
}

/** Per-request timings, in the spirit of llama.cpp server's `timings` object. */
export interface GenerationTimings {
  /** Prompt tokens evaluated (those not reused from the sequence's previous request). */
  readonly promptEvaluated: number;
  /** From the start of evaluation to the first sampled token. */
  readonly promptMs: number;
  /** From the first sampled token to the last. */
  readonly predictedMs: number;
}

/** Tokens before the ones being decoded, for detokenizers that need context (leading spaces). */
const DETOKENIZE_CONTEXT = 8;
/** A UTF-8 character has at most 4 bytes; after that many tokens a replacement character is real. */
const MAX_PENDING = 4;

/**
 * One generation on a sequence the caller holds (and releases after): iterate `pieces()` once, then
 * read `finishReason` (null: aborted), `completionTokens` and `timings`.
 */
export class Generation {
  readonly #sequence: LlamaContextSequence;
  readonly #model: LlamaModel;
  readonly #options: GenerationOptions;
  #aborted = false;
  finishReason: GenerationEnd | null = null;
  /** The stop sequence that ended it (one of `stops`); null when it ended otherwise. */
  stoppedBy: string | null = null;
  /** The stop token that ended it (one of `stopTokens`); null when it ended otherwise. */
  stoppedByToken: Token | null = null;
  completionTokens = 0;
  #started = 0;
  #firstToken = 0;
  #lastToken = 0;
  #promptEvaluated = 0;

  constructor(sequence: LlamaContextSequence, model: LlamaModel, options: GenerationOptions) {
    this.#sequence = sequence;
    this.#model = model;
    this.#options = options;
  }

  /** Stops after the token being evaluated now (the client left). */
  abort(): void {
    this.#aborted = true;
  }

  get timings(): GenerationTimings {
    const first = this.#firstToken === 0 ? this.#started : this.#firstToken;
    return {
      promptEvaluated: this.#promptEvaluated,
      promptMs: first - this.#started,
      predictedMs: Math.max(0, this.#lastToken - first),
    };
  }

  async *pieces(): AsyncGenerator<Piece> {
    const { prompt, maxTokens, stopTokens, logprobs } = this.#options;
    const model = this.#model;
    const matcher = new StopMatcher(this.#options.stops);
    this.#started = performance.now();
    // Aborted before it began (the client left during an earlier phase): nothing is evaluated.
    if (this.#aborted) return;
    const input = await this.#reusePrefix(prompt);
    this.#promptEvaluated = input.length;
    const generated: Token[] = [];
    let decoded = 0; // tokens of `generated` already turned into text
    const penalties = this.#options.penalties;
    const evaluate: SequenceEvaluateOptions =
      penalties === null
        ? this.#options.evaluate
        : {
            ...this.#options.evaluate,
            repeatPenalty: {
              punishTokens: () => generated,
              penalty: 1,
              presencePenalty: penalties.presence,
              frequencyPenalty: penalties.frequency,
            },
          };
    const tokens =
      logprobs === null
        ? this.#sequence.evaluate(input, evaluate)
        : this.#sequence.evaluateWithMetadata(input, { confidence: true, probabilities: true }, evaluate);
    const iterator = tokens[Symbol.asyncIterator]();
    type Step = Promise<Awaited<ReturnType<typeof iterator.next>>>;
    const ask = (): Step => iterator.next();
    let next: Step | null = ask();
    let stopToken = false;
    try {
      while (next !== null) {
        const result = await next;
        next = null;
        if (result.done === true) break;
        const out = result.value;
        const now = performance.now();
        if (this.#firstToken === 0) this.#firstToken = now;
        this.#lastToken = now;
        const token = typeof out === 'number' ? out : out.token;
        // Not emitted; what is still undecoded or held back before it is flushed below.
        if (stopTokens.has(token)) {
          stopToken = true;
          this.stoppedByToken = token;
          break;
        }
        this.completionTokens++;
        generated.push(token);
        const last = this.completionTokens >= maxTokens;
        // Ask for the next token at once: llama.cpp evaluates it while this one is detokenized and sent.
        // At most one token is evaluated in vain (after a stop sequence or a client leaving).
        if (!last && !this.#aborted) {
          // A new request waits to erase its sequence's old tail: ask once it has (LlamaBackend.withContext).
          const paused = this.#options.paused?.() ?? null;
          if (paused === null) {
            next = ask();
            const dispatched = this.#options.afterDispatch();
            if (dispatched !== null) await Promise.race([dispatched, next]);
          } else next = paused.then(ask);
        }
        let text = '';
        const pending = generated.length - decoded;
        const candidate = model.detokenize(
          generated.slice(decoded),
          false,
          generated.slice(Math.max(0, decoded - DETOKENIZE_CONTEXT), decoded),
        );
        if (!candidate.endsWith('\uFFFD') || pending >= MAX_PENDING || last) {
          text = candidate;
          decoded = generated.length;
        }
        const { emit, stopped } = matcher.push(text);
        const lp = typeof out === 'number' ? null : tokenLogprob(model, token, out.confidence, out.probabilities, logprobs ?? 0);
        if (stopped) {
          this.finishReason = 'stop';
          this.stoppedBy = matcher.matched;
          if (emit !== '' || lp !== null) yield { text: emit, logprobs: lp };
          return;
        }
        if (last) {
          this.finishReason = 'length';
          yield { text: emit + matcher.flush(), logprobs: lp };
          return;
        }
        if (emit !== '' || lp !== null) yield { text: emit, logprobs: lp };
        if (this.#aborted) return;
      }
    } finally {
      // Let an evaluation in flight finish before the sequence is handed on, then end the evaluation.
      if (next !== null) await next.catch(() => undefined);
      await iterator.return?.();
    }
    // A stop token was sampled, or the evaluation ended by itself (an end-of-generation token):
    // the text not sent yet is final now, in order (held back, then undecoded), stop sequences still cut.
    if (this.#aborted && !stopToken) return;
    this.finishReason = 'stop';
    const { emit, stopped } = matcher.push(decoded < generated.length ? model.detokenize(generated.slice(decoded), false) : '');
    this.stoppedBy = matcher.matched;
    const rest = stopped ? emit : emit + matcher.flush();
    if (rest !== '') yield { text: rest, logprobs: null };
  }

  /**
   * Keeps the part of the sequence's previous context that this prompt shares (a chat's system
   * prompt and earlier turns), so only the rest is evaluated; at least the last prompt token is
   * evaluated again, since sampling needs its logits.
   */
  async #reusePrefix(prompt: readonly Token[]): Promise<Token[]> {
    const sequence = this.#sequence;
    const { firstDifferentIndex } = sequence.compareContextTokens(prompt as Token[]);
    const keep = Math.min(firstDifferentIndex, prompt.length - 1);
    if (keep < sequence.nextTokenIndex) {
      const erase = (): Promise<void> => sequence.eraseContextTokenRanges([{ start: keep, end: sequence.nextTokenIndex }]);
      await (this.#options.withContext === undefined ? erase() : this.#options.withContext(erase));
    }
    return prompt.slice(keep);
  }
}

/** Timings from a generation's measurements and its time queued (ms), rounded to the microsecond; the rate leaves out the first token. */
export function timings(queuedMs: number, t: GenerationTimings, completionTokens: number): Timings {
  const round = (ms: number): number => Math.round(ms * 1000) / 1000;
  return {
    queued_ms: round(queuedMs),
    prompt_n: t.promptEvaluated,
    prompt_ms: round(t.promptMs),
    predicted_n: completionTokens,
    predicted_ms: round(t.predictedMs),
    // The first token's time is in prompt_ms, so the rate covers the tokens after it.
    predicted_per_second: completionTokens > 1 && t.predictedMs > 0 ? round(((completionTokens - 1) * 1000) / t.predictedMs) : 0,
  };
}

function tokenLogprob(
  model: LlamaModel,
  token: Token,
  confidence: number | undefined,
  probabilities: Map<Token, number> | undefined,
  top: number,
): TokenLogprob {
  const alternatives: Array<{ token: string; logprob: number }> = [];
  if (probabilities !== undefined) {
    for (const [t, p] of probabilities) {
      if (alternatives.length >= top) break;
      alternatives.push({ token: model.detokenize([t], true), logprob: Math.log(p) });
    }
  }
  return { token: model.detokenize([token], true), logprob: Math.log(confidence ?? 0), top: alternatives };
}
