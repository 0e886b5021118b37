/**
 * Validation of the OpenAI sampling fields for in-process generation: the transport's schema has
 * checked the common fields' types; this adds what only a local model can check (token ids in its
 * vocabulary, options it cannot honour) and fills in OpenAI's defaults, once per request.
 */
import { fastError } from '../../core/errors.js';
import type { TextRequest } from '../../core/call.js';

/** What the client asked the model to return besides text. */
export type ResponseFormat =
  { readonly type: 'text' } | { readonly type: 'json_object' } | { readonly type: 'json_schema'; readonly schema: object };

/** How one in-process request samples, with OpenAI's defaults filled in (top-k and min-p 0: off). */
export interface SamplingParams {
  /** Completion tokens at most; null: up to the end of the context. */
  readonly maxTokens: number | null;
  readonly temperature: number;
  readonly topP: number;
  readonly topK: number;
  readonly minP: number;
  readonly seed: number | undefined;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  /** Token id -> value added to its logit, -100 to 100 (OpenAI's `logit_bias`). */
  readonly logitBias: ReadonlyArray<readonly [number, number]>;
  /** Texts that end generation; the text is not returned. */
  readonly stop: readonly string[];
  /** null: no log probabilities; else how many alternatives per token (0 to 20). */
  readonly logprobs: number | null;
  readonly responseFormat: ResponseFormat;
  readonly includeUsage: boolean;
}

type Body = Readonly<Record<string, unknown>>;

const num = (body: Body, key: string): number | undefined => {
  const v = body[key];
  return typeof v === 'number' ? v : undefined;
};

function range(body: Body, key: string, min: number, max: number, integer = false): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || (integer && !Number.isInteger(v)) || v < min || v > max) {
    throw fastError(
      'invalid_request',
      `\`${key}\` must be ${integer ? 'an integer' : 'a number'} in [${min}, ${max}], got ${JSON.stringify(v)}`,
      key,
    );
  }
  return v;
}

/** Rejects a field a local model cannot honour, naming it, instead of silently ignoring it. */
function refuse(body: Body, key: string, allowed: (v: unknown) => boolean, why: string): void {
  const v = body[key];
  if (v !== undefined && v !== null && !allowed(v)) throw fastError('invalid_request', `\`${key}\` ${why}`, key);
}

/**
 * The sampling options of an OpenAI chat or completion body for a model with `vocabSize` tokens;
 * throws invalid_request, naming the field, for a value out of range or an option it cannot honour.
 */
export function samplingParams(request: TextRequest, vocabSize: number): SamplingParams {
  const body = request.body;
  const chat = request.kind === 'chat';
  refuse(body, 'n', (v) => v === 1, 'must be 1 for llama models (one choice per request)');
  refuse(body, 'best_of', (v) => v === 1, 'must be 1 for llama models');
  refuse(body, 'echo', (v) => v === false, 'is not supported by llama models');
  refuse(body, 'suffix', () => false, 'is not supported by llama models');
  refuse(body, 'tools', (v) => Array.isArray(v) && v.length === 0, 'are not supported by llama models yet');
  refuse(body, 'functions', (v) => Array.isArray(v) && v.length === 0, 'are not supported by llama models yet');

  const maxTokens = chat ? (num(body, 'max_completion_tokens') ?? num(body, 'max_tokens')) : num(body, 'max_tokens');
  const stop = body.stop;
  const stops = typeof stop === 'string' ? [stop] : Array.isArray(stop) ? (stop as string[]) : [];
  stops.forEach((s, i) => {
    if (s.length === 0)
      throw fastError('invalid_request', '`stop` sequences must not be empty', Array.isArray(stop) ? `stop[${i}]` : 'stop');
  });

  let logprobs: number | null = null;
  if (chat) {
    const top = range(body, 'top_logprobs', 0, 20, true);
    if (body.logprobs === true) logprobs = top ?? 0;
    else if (body.logprobs !== undefined && body.logprobs !== null && body.logprobs !== false) {
      throw fastError('invalid_request', '`logprobs` must be true or false', 'logprobs');
    } else if (top !== undefined) throw fastError('invalid_request', '`top_logprobs` requires `logprobs: true`', 'top_logprobs');
  } else {
    const n = range(body, 'logprobs', 0, 5, true);
    if (n !== undefined) logprobs = n;
  }

  return {
    maxTokens: maxTokens ?? null,
    temperature: num(body, 'temperature') ?? 1,
    topP: num(body, 'top_p') ?? 1,
    topK: range(body, 'top_k', 0, vocabSize, true) ?? 0,
    minP: range(body, 'min_p', 0, 1) ?? 0,
    seed: num(body, 'seed'),
    presencePenalty: range(body, 'presence_penalty', -2, 2) ?? 0,
    frequencyPenalty: range(body, 'frequency_penalty', -2, 2) ?? 0,
    logitBias: logitBias(body.logit_bias, vocabSize),
    stop: stops,
    logprobs,
    responseFormat: responseFormat(body.response_format),
    includeUsage: (body.stream_options as { include_usage?: unknown } | null | undefined)?.include_usage === true,
  };
}

function logitBias(value: unknown, vocabSize: number): Array<[number, number]> {
  if (value === undefined || value === null) return [];
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw fastError('invalid_request', '`logit_bias` must be an object mapping token ids to numbers in [-100, 100]', 'logit_bias');
  }
  return Object.entries(value as Record<string, unknown>).map(([key, bias]) => {
    const token = Number(key);
    if (!/^\d+$/.test(key) || token >= vocabSize) {
      throw fastError(
        'invalid_request',
        `\`logit_bias\` keys must be token ids in [0, ${vocabSize - 1}], got "${key.slice(0, 20)}"`,
        `logit_bias.${key.slice(0, 20)}`,
      );
    }
    if (typeof bias !== 'number' || bias < -100 || bias > 100) {
      throw fastError(
        'invalid_request',
        `\`logit_bias.${key}\` must be a number in [-100, 100], got ${JSON.stringify(bias)}`,
        `logit_bias.${key}`,
      );
    }
    return [token, bias];
  });
}

function responseFormat(value: unknown): ResponseFormat {
  if (value === undefined || value === null) return { type: 'text' };
  const format = value as { type?: unknown; json_schema?: { schema?: unknown } };
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
