/**
 * Request schemas of the Anthropic Messages endpoints, compiled once at route registration. They
 * check the shape the gateway relies on (types, ranges, the required fields) and let every other
 * field through untouched, as Anthropic's own API ignores nothing it knows but tolerates what a
 * newer SDK may add; the block-by-block checks and the mapping to the core are request.ts's.
 */
import { Type, type Static } from '@sinclair/typebox';

/** A content block: its type decides its other fields, which request.ts checks. */
const Block = Type.Object({ type: Type.String() });

/** One message of the conversation: Anthropic has only these two roles (the system prompt is a field of its own). */
const Message = Type.Object({
  role: Type.Union([Type.Literal('user'), Type.Literal('assistant')], { description: 'one of user, assistant' }),
  content: Type.Union([Type.String(), Type.Array(Block)], { description: 'a string or an array of content blocks' }),
});

/** The fields the Messages endpoint and count_tokens share: what the model reads. */
const Prompt = {
  model: Type.String({ minLength: 1 }),
  messages: Type.Array(Message, { minItems: 1 }),
  system: Type.Optional(
    Type.Union([Type.String(), Type.Array(Type.Object({ type: Type.Literal('text'), text: Type.String() }))], {
      description: 'a string or an array of text blocks',
    }),
  ),
  tools: Type.Optional(Type.Array(Type.Object({}))),
  tool_choice: Type.Optional(
    Type.Object({
      type: Type.Union([Type.Literal('auto'), Type.Literal('any'), Type.Literal('tool'), Type.Literal('none')], {
        description: 'one of auto, any, tool, none',
      }),
    }),
  ),
  thinking: Type.Optional(Type.Object({ type: Type.String() })),
};

/** The body of POST /v1/messages. */
export const MessagesRequest = Type.Object({
  ...Prompt,
  max_tokens: Type.Integer({ minimum: 1 }),
  stop_sequences: Type.Optional(Type.Array(Type.String())),
  temperature: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  top_p: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  top_k: Type.Optional(Type.Integer({ minimum: 0 })),
  metadata: Type.Optional(Type.Object({})),
  stream: Type.Optional(Type.Boolean()),
});
/** A Messages body that passed MessagesRequest. */
export type MessagesRequest = Static<typeof MessagesRequest>;

/** The body of POST /v1/messages/count_tokens: what would be sent to the model, without the sampling. */
export const CountTokensRequest = Type.Object(Prompt);
/** A count_tokens body that passed CountTokensRequest. */
export type CountTokensRequest = Static<typeof CountTokensRequest>;
