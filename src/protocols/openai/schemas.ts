/**
 * Request schemas of the OpenAI endpoints, compiled once at route registration. They check the
 * shape the gateway relies on and let every other field through untouched; the semantic checks and
 * defaults of a text request are request.ts's (with core/sampling.ts), after these.
 */
import { Type, type Static } from '@sinclair/typebox';
import { ROLES } from '../../core/text.js';

type Member = Parameters<typeof Type.Union>[0][number];

/** `t` or null; the description names the accepted values, for error messages. */
const Nullable = <T extends Member>(t: T, description?: string) =>
  Type.Union([t, Type.Null()], { description: description ?? `${describe(t)} or null` });

function describe(t: Member): string {
  const s = t as { type?: string; minimum?: number; maximum?: number };
  const noun =
    s.type === 'integer'
      ? 'an integer'
      : s.type === 'number'
        ? 'a number'
        : s.type === 'boolean'
          ? 'true, false'
          : `a ${s.type ?? 'value'}`;
  if (s.minimum !== undefined && s.maximum !== undefined) return `${noun} in [${s.minimum}, ${s.maximum}]`;
  if (s.minimum !== undefined) return `${noun} >= ${s.minimum}`;
  return noun;
}

const StreamOptions = Type.Object({ include_usage: Type.Optional(Type.Boolean()) });
const Stop = Type.Optional(
  Nullable(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 })]), 'a string, an array of up to 4 strings, or null'),
);
const Sampling = {
  stream: Type.Optional(Nullable(Type.Boolean())),
  stream_options: Type.Optional(Nullable(StreamOptions)),
  max_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
  temperature: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 2 }))),
  top_p: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 1 }))),
  n: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: 128 }))),
  stop: Stop,
  seed: Type.Optional(Nullable(Type.Integer())),
};

/** One message of a chat request: a known role; content a string, content parts, or null. */
export const ChatMessage = Type.Object({
  role: Type.Union(
    ROLES.map((r) => Type.Literal(r)),
    { description: `one of ${ROLES.join(', ')}` },
  ),
  content: Type.Optional(
    Nullable(Type.Union([Type.String(), Type.Array(Type.Object({ type: Type.String() }))]), 'a string, an array of content parts, or null'),
  ),
});

/** The body of POST /v1/chat/completions (also what a gRPC Chat request is checked as). */
export const ChatRequest = Type.Object({
  model: Type.String({ minLength: 1 }),
  messages: Type.Array(ChatMessage, { minItems: 1 }),
  max_completion_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
  ...Sampling,
});
/** A chat request body that passed ChatRequest. */
export type ChatRequest = Static<typeof ChatRequest>;

/** The body of POST /v1/completions: the prompt as text, texts, token ids, or arrays of token ids. */
export const CompletionRequest = Type.Object({
  model: Type.String({ minLength: 1 }),
  prompt: Type.Union(
    [
      Type.String(),
      Type.Array(Type.String(), { minItems: 1 }),
      Type.Array(Type.Integer(), { minItems: 1 }),
      Type.Array(Type.Array(Type.Integer(), { minItems: 1 }), { minItems: 1 }),
    ],
    { description: 'a string, an array of strings, an array of token ids, or an array of such arrays' },
  ),
  ...Sampling,
});
/** A completion request body that passed CompletionRequest. */
export type CompletionRequest = Static<typeof CompletionRequest>;

/** The body of POST /v1/embeddings: one text or up to 2048. */
export const EmbeddingRequest = Type.Object({
  model: Type.String({ minLength: 1 }),
  input: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1, maxItems: 2048 })], {
    description: 'a string or an array of 1 to 2048 strings',
  }),
  encoding_format: Type.Optional(Type.Union([Type.Literal('float'), Type.Literal('base64')], { description: '"float" or "base64"' })),
  dimensions: Type.Optional(Type.Integer({ minimum: 1 })),
  user: Type.Optional(Type.String()),
});
/** An embedding request body that passed EmbeddingRequest. */
export type EmbeddingRequest = Static<typeof EmbeddingRequest>;
