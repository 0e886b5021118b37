/**
 * A llama answer that may call a function, as a chain of generations on one context sequence.
 * `auto`: the model writes freely until it starts a call in its template's syntax (the call's
 * prefix is a hidden stop). Then, or at once when a call is required, the call is written under
 * grammars: the function's name (one of the tools, when there is a choice), then its arguments,
 * constrained by the function's JSON Schema, so a forced call always parses and validates. Each
 * generation after the first reuses what the sequence already evaluated (Generation's prefix
 * reuse), so a phase costs only its new tokens.
 */
import { randomBytes } from 'node:crypto';
import type { LlamaGrammar, Token } from 'node-llama-cpp';
import { ClientGoneError } from '../../core/call.js';
import type { FinishReason, TextEvent, Timings } from '../../core/text.js';
import type { Generation, GenerationTimings } from './generation.js';
import type { CallSyntax } from './tools.js';

/** Tokens a JSON grammar writes after the value (node-llama-cpp's four newlines), and a margin. */
const GRAMMAR_TAIL = 8;

/**
 * What one generation of the chain runs: its prompt, its budget, the texts that end it (its
 * grammar's own triggers are added), its grammar, and tokens that end it besides the template's.
 */
export type StartGeneration = (
  prompt: readonly Token[],
  maxTokens: number,
  stops: readonly string[],
  grammar: LlamaGrammar | null,
  stopTokens?: readonly Token[],
) => Generation;

/** A finish event, naming the client's stop text when one ended the answer (Anthropic's `stop_sequence`). */
export function finishEvent(reason: FinishReason, stopSequence: string | null): TextEvent {
  return stopSequence === null ? { type: 'finish', reason } : { type: 'finish', reason, stopSequence };
}

/** A call to make or allow, prepared before the sequence is taken (grammars compiled, schemas checked). */
export interface CallPlan {
  /** Whether the model may answer in text instead (`auto`); else a call is required. */
  readonly auto: boolean;
  /** The functions the call may name (one: it is named without a grammar). */
  readonly names: readonly string[];
  /** The grammar choosing among `names`; null with one name. */
  readonly nameGrammar: LlamaGrammar | null;
  /** A function's arguments grammar, its unbounded strings and arrays bounded to fit `budget` tokens. */
  readonly argumentsGrammar: (name: string, budget: number) => Promise<LlamaGrammar>;
  readonly syntax: CallSyntax;
  /** The template's stop texts, for the text phase. */
  readonly stops: readonly string[];
  /** The client's stop texts: they end the text phase (and a finish names the one that did), never a call's name or arguments. */
  readonly clientStops: readonly string[];
  /** The chat's prompt. */
  readonly prompt: readonly Token[];
  /** Completion tokens for all phases together. */
  readonly maxTokens: number;
  /** Tokens the context holds: a phase's prompt and budget together stay within it. */
  readonly contextSize: number;
}

/** The generations of one answer, read as one for timings and usage, and aborted together. */
export class GenerationChain {
  readonly #done: Generation[] = [];
  #current: Generation | null = null;
  #aborted = false;
  finishReason: FinishReason | null = null;

  /** Runs `generation` next; the one before it is over. */
  next(generation: Generation): Generation {
    if (this.#current !== null) this.#done.push(this.#current);
    this.#current = generation;
    if (this.#aborted) generation.abort();
    return generation;
  }

  /** Stops the generation running now and any after it (the client left). */
  abort(): void {
    this.#aborted = true;
    this.#current?.abort();
  }

  get completionTokens(): number {
    let n = this.#current?.completionTokens ?? 0;
    for (const g of this.#done) n += g.completionTokens;
    return n;
  }

  /** The first generation's prompt time; every later phase's time counts as generating. */
  get timings(): GenerationTimings {
    const all = this.#current === null ? this.#done : [...this.#done, this.#current];
    const first = all[0];
    if (first === undefined) return { promptEvaluated: 0, promptMs: 0, predictedMs: 0 };
    let predictedMs = first.timings.predictedMs;
    for (const g of all.slice(1)) predictedMs += g.timings.promptMs + g.timings.predictedMs;
    return { promptEvaluated: first.timings.promptEvaluated, promptMs: first.timings.promptMs, predictedMs };
  }
}

/**
 * The events of an answer that may call a function: text (auto only), then the call as
 * tool-call deltas (the first with its id and name, then argument fragments), then `finish`
 * (`tool_calls`; `length` if the budget ran out) and `usage`. Releases the sequence when the last
 * generation is over, as `answer` does.
 */
export async function* toolAnswer(
  plan: CallPlan,
  start: StartGeneration,
  chain: GenerationChain,
  release: () => void,
  finished: () => Timings,
): AsyncGenerator<TextEvent> {
  const end = (reason: FinishReason, stopSequence: string | null = null): TextEvent[] => {
    chain.finishReason = reason;
    const t = finished();
    release();
    return [
      finishEvent(reason, stopSequence),
      { type: 'usage', promptTokens: plan.prompt.length, completionTokens: chain.completionTokens, timings: t },
    ];
  };
  const budget = (prompt: readonly Token[]): number => Math.min(plan.maxTokens - chain.completionTokens, plan.contextSize - prompt.length);
  const cut = (): never => {
    finished();
    release();
    throw new ClientGoneError();
  };

  let prompt: readonly Token[] = plan.prompt;
  if (plan.auto) {
    const syntax = plan.syntax;
    const callToken = syntax.callToken;
    const stops = [...plan.clientStops, ...plan.stops, syntax.head];
    const text = chain.next(start(prompt, plan.maxTokens, stops, null, callToken === null ? [] : [callToken]));
    let written = '';
    for await (const piece of text.pieces()) {
      written += piece.text;
      if (piece.text !== '' || piece.logprobs !== null) yield { type: 'text', text: piece.text, logprobs: piece.logprobs };
    }
    if (text.finishReason === null) return cut();
    // The model started a call: its template's call text, or the special token that opens one.
    const calls = text.stoppedBy === syntax.head || (callToken !== null && text.stoppedByToken === callToken);
    if (!calls) {
      const stop = text.stoppedBy;
      // A client's stop text says which ended it; the template's own do not.
      return yield* end(text.finishReason, stop !== null && plan.clientStops.includes(stop) ? stop : null);
    }
    prompt = [...prompt, ...plan.syntax.text(written)];
  }
  prompt = [...prompt, ...plan.syntax.prefix];

  let name = plan.names[0] as string;
  if (plan.nameGrammar !== null) {
    const left = budget(prompt);
    if (left <= 0) return yield* end('length');
    const naming = chain.next(start(prompt, left, [], plan.nameGrammar));
    let written = '';
    for await (const piece of naming.pieces()) written += piece.text;
    if (naming.finishReason === null) return cut();
    if (naming.finishReason === 'length') return yield* end('length');
    name = written.trim();
  }
  prompt = [...prompt, ...plan.syntax.text(name), ...plan.syntax.paramsPrefix(name)];

  const left = budget(prompt);
  if (left <= 0) return yield* end('length');
  yield { type: 'tool_call', index: 0, id: `call_${randomBytes(12).toString('base64url')}`, name, arguments: '' };
  // The grammar ends the JSON with a few newlines (its stop trigger): room for them is kept.
  const grammar = await plan.argumentsGrammar(name, left - GRAMMAR_TAIL);
  const args = chain.next(start(prompt, left, [], grammar));
  // The grammar lets whitespace trail the JSON until its stop trigger: held back, and dropped at the end.
  let tail = '';
  for await (const piece of args.pieces()) {
    const all = tail + piece.text;
    const text = all.trimEnd();
    tail = all.slice(text.length);
    if (text !== '') yield { type: 'tool_call', index: 0, id: null, name: null, arguments: text };
  }
  if (args.finishReason === null) return cut();
  return yield* end(args.finishReason === 'length' ? 'length' : 'tool_calls');
}
