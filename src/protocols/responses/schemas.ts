/**
 * The body of POST /v1/responses, compiled once at route registration. It checks the shape the
 * gateway relies on (types and ranges of the top-level fields) and lets every other field through;
 * the items, tools and formats are request.ts's to read, with errors naming their paths.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

/** `t` or null, its description naming what is accepted (validation errors quote it). */
const Nullable = <T extends TSchema>(t: T, description: string) => Type.Union([t, Type.Null()], { description });

/** The body of POST /v1/responses. */
export const ResponsesRequest = Type.Object({
  model: Type.String({ minLength: 1 }),
  input: Type.Optional(
    Type.Union([Type.String(), Type.Array(Type.Object({}), { maxItems: 10_000 })], { description: 'a string or an array of input items' }),
  ),
  instructions: Type.Optional(Nullable(Type.String(), 'a string or null')),
  max_output_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 1 }), 'an integer >= 1 or null')),
  temperature: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 2 }), 'a number in [0, 2] or null')),
  top_p: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 1 }), 'a number in [0, 1] or null')),
  tools: Type.Optional(Nullable(Type.Array(Type.Object({})), 'an array of tools or null')),
  tool_choice: Type.Optional(
    Nullable(Type.Union([Type.String(), Type.Object({})]), '"none", "auto", "required", {"type": "function", "name": ...} or null'),
  ),
  parallel_tool_calls: Type.Optional(Nullable(Type.Boolean(), 'true, false or null')),
  text: Type.Optional(Nullable(Type.Object({}), 'an object such as {"format": {"type": "text"}}, or null')),
  store: Type.Optional(Nullable(Type.Boolean(), 'true, false or null')),
  stream: Type.Optional(Nullable(Type.Boolean(), 'true, false or null')),
  previous_response_id: Type.Optional(Nullable(Type.String({ minLength: 1 }), 'the id of a stored response, or null')),
  metadata: Type.Optional(
    Nullable(
      Type.Record(Type.String({ maxLength: 64 }), Type.String({ maxLength: 512 }), { maxProperties: 16 }),
      'up to 16 string keys (64 characters at most) with string values (512 characters at most), or null',
    ),
  ),
  user: Type.Optional(Nullable(Type.String(), 'a string or null')),
});

/** A body that passed ResponsesRequest. */
export type ResponsesRequest = Static<typeof ResponsesRequest>;
