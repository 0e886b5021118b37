/**
 * Request schemas of the OpenAI endpoints, compiled once at route registration. They check what
 * the gateway relies on and let every other field through to the backend untouched.
 */
import { Type } from '@sinclair/typebox';
/** `t` or null; the description names the accepted values, for error messages. */
const Nullable = (t, description) => Type.Union([t, Type.Null()], { description: description ?? `${describe(t)} or null` });
function describe(t) {
    const s = t;
    const noun = s.type === 'integer'
        ? 'an integer'
        : s.type === 'number'
            ? 'a number'
            : s.type === 'boolean'
                ? 'true, false'
                : `a ${s.type ?? 'value'}`;
    if (s.minimum !== undefined && s.maximum !== undefined)
        return `${noun} in [${s.minimum}, ${s.maximum}]`;
    if (s.minimum !== undefined)
        return `${noun} >= ${s.minimum}`;
    return noun;
}
const StreamOptions = Type.Object({ include_usage: Type.Optional(Type.Boolean()) });
const Stop = Type.Optional(Nullable(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 4 })]), 'a string, an array of up to 4 strings, or null'));
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
export const ChatMessage = Type.Object({
    role: Type.Union(['system', 'developer', 'user', 'assistant', 'tool', 'function'].map((r) => Type.Literal(r)), { description: 'one of system, developer, user, assistant, tool, function' }),
    content: Type.Optional(Nullable(Type.Union([Type.String(), Type.Array(Type.Object({ type: Type.String() }))]), 'a string, an array of content parts, or null')),
});
export const ChatRequest = Type.Object({
    model: Type.String({ minLength: 1 }),
    messages: Type.Array(ChatMessage, { minItems: 1 }),
    max_completion_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
    ...Sampling,
});
export const CompletionRequest = Type.Object({
    model: Type.String({ minLength: 1 }),
    prompt: Type.Union([
        Type.String(),
        Type.Array(Type.String(), { minItems: 1 }),
        Type.Array(Type.Integer(), { minItems: 1 }),
        Type.Array(Type.Array(Type.Integer(), { minItems: 1 }), { minItems: 1 }),
    ], { description: 'a string, an array of strings, an array of token ids, or an array of such arrays' }),
    ...Sampling,
});
export const EmbeddingRequest = Type.Object({
    model: Type.String({ minLength: 1 }),
    input: Type.Union([Type.String(), Type.Array(Type.String(), { minItems: 1, maxItems: 2048 })], {
        description: 'a string or an array of 1 to 2048 strings',
    }),
    encoding_format: Type.Optional(Type.Union([Type.Literal('float'), Type.Literal('base64')], { description: '"float" or "base64"' })),
    dimensions: Type.Optional(Type.Integer({ minimum: 1 })),
    user: Type.Optional(Type.String()),
});
//# sourceMappingURL=schemas.js.map