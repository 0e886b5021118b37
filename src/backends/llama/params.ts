/**
 * What only a local model checks in a text request: the transport has validated every sampling
 * field's type and range and filled in OpenAI's defaults (core/text.ts `Sampling`); this refuses
 * the options a llama model cannot honour and the token ids outside its vocabulary, and turns the
 * rest into what node-llama-cpp takes, once per request.
 */
import { fastError } from '../../core/errors.js';
import type { TextRequest } from '../../core/text.js';

/** How one llama request samples, in node-llama-cpp's terms (top-k and min-p 0: off). */
export interface SamplingParams {
  readonly temperature: number;
  readonly topP: number;
  readonly topK: number;
  readonly minP: number;
  /** undefined: unseeded (node-llama-cpp's own). */
  readonly seed: number | undefined;
  /** Token id -> value added to its logit, -100 to 100 (OpenAI's `logit_bias`). */
  readonly logitBias: ReadonlyArray<readonly [number, number]>;
  /** OpenAI's presence and frequency penalties; null: both 0 (none applied). */
  readonly penalties: { readonly presence: number; readonly frequency: number } | null;
}

/** Rejects an option a local model cannot honour, naming it, instead of silently ignoring it. */
function refuse(param: string, why: string): never {
  throw fastError('invalid_request', `\`${param}\` ${why}`, param);
}

/**
 * The sampling of `request` for a model with `vocabSize` tokens; throws invalid_request, naming
 * the field, for an option it cannot honour or a token id outside the vocabulary.
 */
export function samplingParams(request: TextRequest, vocabSize: number): SamplingParams {
  const s = request.sampling;
  if (s.n !== 1) refuse('n', 'must be 1 for llama models (one choice per request)');
  if (s.bestOf !== 1) refuse('best_of', 'must be 1 for llama models');
  if (s.echo) refuse('echo', 'is not supported by llama models');
  if (s.suffix !== null) refuse('suffix', 'is not supported by llama models');
  if (s.topK > vocabSize) {
    throw fastError('invalid_request', `\`top_k\` must be an integer in [0, ${vocabSize}], got ${s.topK}`, 'top_k');
  }
  return {
    temperature: s.temperature,
    topP: s.topP,
    topK: s.topK,
    minP: s.minP,
    seed: s.seed ?? undefined,
    logitBias: logitBias(s.logitBias, vocabSize),
    penalties: s.presencePenalty !== 0 || s.frequencyPenalty !== 0 ? { presence: s.presencePenalty, frequency: s.frequencyPenalty } : null,
  };
}

/** The biases as (token, value) pairs; 400 for a key that is not a token id of this vocabulary. */
function logitBias(bias: Readonly<Record<string, number>>, vocabSize: number): Array<[number, number]> {
  return Object.entries(bias).map(([key, value]) => {
    const token = Number(key);
    if (!/^\d+$/.test(key) || token >= vocabSize) {
      throw fastError(
        'invalid_request',
        `\`logit_bias\` keys must be token ids in [0, ${vocabSize - 1}], got "${key.slice(0, 20)}"`,
        `logit_bias.${key.slice(0, 20)}`,
      );
    }
    return [token, value];
  });
}
