/**
 * The semantic checks of a text request's sampling fields, in one place for every transport (the
 * OpenAI HTTP endpoints and gRPC Generate): each field's type and range, the rules between fields,
 * and OpenAI's defaults filled in. What only a model can check (token ids in its vocabulary,
 * options it cannot honour) stays with the backend. Imports only core.
 */
import { fastError } from './errors.js';
import type { ResponseFormat, Sampling } from './text.js';

/**
 * The sampling fields of a request under OpenAI's names, as the client sent them: any value (a
 * transport's schema may have checked some already; this checks them all). null counts as not given.
 */
export interface SamplingInput {
  readonly max_tokens?: unknown;
  /** Chat only: wins over `max_tokens`. */
  readonly max_completion_tokens?: unknown;
  readonly temperature?: unknown;
  readonly top_p?: unknown;
  readonly top_k?: unknown;
  readonly min_p?: unknown;
  readonly seed?: unknown;
  readonly presence_penalty?: unknown;
  readonly frequency_penalty?: unknown;
  readonly logit_bias?: unknown;
  readonly stop?: unknown;
  /** Chat: true or false; completions: how many alternatives per token (0 to 5). */
  readonly logprobs?: unknown;
  /** Chat only, with `logprobs: true`. */
  readonly top_logprobs?: unknown;
  readonly response_format?: unknown;
  readonly n?: unknown;
  /** Completions only. */
  readonly best_of?: unknown;
  /** Completions only. */
  readonly echo?: unknown;
  /** Completions only. */
  readonly suffix?: unknown;
}

/**
 * The sampling of a chat or completion request, checked and with OpenAI's defaults filled in;
 * throws invalid_request naming the field (`param`) for a value of the wrong type or out of range.
 */
export function validSampling(kind: 'chat' | 'completion', input: SamplingInput): Sampling {
  const chat = kind === 'chat';
  const maxTokens = atLeast(input, 'max_tokens', 1);
  const maxCompletionTokens = chat ? atLeast(input, 'max_completion_tokens', 1) : undefined;
  return {
    // OpenAI's newer name wins where both are given.
    maxTokens: maxCompletionTokens ?? maxTokens ?? null,
    temperature: range(input, 'temperature', 0, 2) ?? 1,
    topP: range(input, 'top_p', 0, 1) ?? 1,
    topK: atLeast(input, 'top_k', 0) ?? 0,
    minP: range(input, 'min_p', 0, 1) ?? 0,
    seed: integer(input, 'seed'),
    presencePenalty: range(input, 'presence_penalty', -2, 2) ?? 0,
    frequencyPenalty: range(input, 'frequency_penalty', -2, 2) ?? 0,
    logitBias: logitBias(input.logit_bias),
    stop: stops(input.stop),
    logprobs: chat ? chatLogprobs(input) : (range(input, 'logprobs', 0, 5, true) ?? null),
    responseFormat: responseFormat(input.response_format),
    n: range(input, 'n', 1, 128, true) ?? 1,
    // Chat has no such fields: they keep their defaults there, whatever a body carries.
    bestOf: chat ? 1 : (atLeast(input, 'best_of', 1) ?? 1),
    echo: chat ? false : (flag(input, 'echo') ?? false),
    suffix: chat ? null : text(input, 'suffix'),
  };
}

type Key = keyof SamplingInput;

// The defaults most requests take, shared (they are read-only) rather than made anew per request.
const NO_STOPS: readonly string[] = Object.freeze([]);
const NO_BIAS: Readonly<Record<string, number>> = Object.freeze({});
const TEXT: ResponseFormat = Object.freeze({ type: 'text' });

/** A value as a message quotes it: JSON, cut short (a client's value may be any size). */
function shown(v: unknown): string {
  const s = typeof v === 'bigint' ? String(v) : (JSON.stringify(v) ?? String(v));
  return s.length > 80 ? `${s.slice(0, 80)}...` : s;
}

function given(input: SamplingInput, key: Key): unknown {
  const v = input[key];
  return v === null ? undefined : v;
}

/** A number (an integer if asked) in [min, max]; undefined when not given. NaN and infinities are out of every range. */
function range(input: SamplingInput, key: Key, min: number, max: number, integer = false): number | undefined {
  const v = given(input, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    throw fastError(
      'invalid_request',
      `\`${key}\` must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${shown(v)}`,
      key,
    );
  }
  return v;
}

/** An integer >= min; undefined when not given. */
function atLeast(input: SamplingInput, key: Key, min: number): number | undefined {
  const v = given(input, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw fastError('invalid_request', `\`${key}\` must be an integer >= ${min}, got ${shown(v)}`, key);
  }
  return v;
}

function integer(input: SamplingInput, key: Key): number | null {
  const v = given(input, key);
  if (v === undefined) return null;
  if (typeof v !== 'number' || !Number.isInteger(v))
    throw fastError('invalid_request', `\`${key}\` must be an integer, got ${shown(v)}`, key);
  return v;
}

function flag(input: SamplingInput, key: Key): boolean | undefined {
  const v = given(input, key);
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw fastError('invalid_request', `\`${key}\` must be true or false, got ${shown(v)}`, key);
  return v;
}

function text(input: SamplingInput, key: Key): string | null {
  const v = given(input, key);
  if (v === undefined) return null;
  if (typeof v !== 'string') throw fastError('invalid_request', `\`${key}\` must be a string, got ${shown(v)}`, key);
  return v;
}

/** A string or up to 4 strings, none empty (an empty stop would end every answer before its first token). */
function stops(value: unknown): readonly string[] {
  if (value === undefined || value === null) return NO_STOPS;
  if (typeof value === 'string') {
    if (value.length === 0) throw fastError('invalid_request', '`stop` sequences must not be empty', 'stop');
    return [value];
  }
  if (!Array.isArray(value) || value.length > 4) {
    throw fastError('invalid_request', `\`stop\` must be a string, an array of up to 4 strings, or null, got ${shown(value)}`, 'stop');
  }
  value.forEach((s: unknown, i) => {
    if (typeof s !== 'string') throw fastError('invalid_request', `\`stop[${i}]\` must be a string, got ${shown(s)}`, `stop[${i}]`);
    if (s.length === 0) throw fastError('invalid_request', '`stop` sequences must not be empty', `stop[${i}]`);
  });
  return value as string[];
}

/** Chat's `logprobs: true` with `top_logprobs` alternatives (0 by default); null when off. */
function chatLogprobs(input: SamplingInput): number | null {
  const top = range(input, 'top_logprobs', 0, 20, true);
  const on = given(input, 'logprobs');
  if (on === true) return top ?? 0;
  if (on !== undefined && on !== false) throw fastError('invalid_request', '`logprobs` must be true or false', 'logprobs');
  if (top !== undefined) throw fastError('invalid_request', '`top_logprobs` requires `logprobs: true`', 'top_logprobs');
  return null;
}

/** Token id (a key, as OpenAI's JSON has it) -> bias; whether each id is in the vocabulary is the model's to check. */
function logitBias(value: unknown): Readonly<Record<string, number>> {
  if (value === undefined || value === null) return NO_BIAS;
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw fastError('invalid_request', '`logit_bias` must be an object mapping token ids to numbers in [-100, 100]', 'logit_bias');
  }
  for (const [key, bias] of Object.entries(value)) {
    if (typeof bias !== 'number' || !Number.isFinite(bias) || bias < -100 || bias > 100) {
      throw fastError('invalid_request', `\`logit_bias.${key}\` must be a number in [-100, 100], got ${shown(bias)}`, `logit_bias.${key}`);
    }
  }
  return value as Readonly<Record<string, number>>;
}

function responseFormat(value: unknown): ResponseFormat {
  if (value === undefined || value === null) return TEXT;
  const format = value as { type?: unknown; json_schema?: { schema?: unknown } | null };
  switch (format.type) {
    case 'text':
    case 'json_object':
      return { type: format.type };
    case 'json_schema': {
      const schema = format.json_schema?.schema;
      if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
        throw fastError(
          'invalid_request',
          '`response_format.json_schema.schema` must be a JSON Schema object',
          'response_format.json_schema.schema',
        );
      }
      return { type: 'json_schema', schema };
    }
    default:
      throw fastError('invalid_request', '`response_format.type` must be one of text, json_object, json_schema', 'response_format.type');
  }
}
