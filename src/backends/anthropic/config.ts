/**
 * The options of `kind: anthropic` backends: a server that speaks the Anthropic Messages API
 * (api.anthropic.com, or another infergate's /v1/messages). Balancing, passive health, time-outs,
 * connections and extra headers mean what they mean for `kind: openai` and are its options.
 */
import { Type, type Static } from '@sinclair/typebox';
import { OpenAIBackendSchema } from '../openai/config.js';

const strict = { additionalProperties: false } as const;
const shared = OpenAIBackendSchema.properties;

/** Anthropic's API version header, as its SDKs send it. */
export const DEFAULT_ANTHROPIC_VERSION = '2023-06-01';

/** `kind: anthropic`: an upstream Anthropic Messages API, or replicas of one; its plug-in requires exactly one of `base_url` and `endpoints`. */
export const AnthropicBackendSchema = Type.Object(
  {
    kind: Type.Literal('anthropic'),
    base_url: Type.Optional(
      Type.String({
        pattern: '^https?://',
        description:
          "The upstream API root, without /v1 (as the Anthropic SDK's baseURL): calls go to its /v1/messages. Example: https://api.anthropic.com. Or give `endpoints`.",
      }),
    ),
    endpoints: Type.Optional(
      Type.Array(
        Type.Object(
          {
            base_url: Type.String({
              pattern: '^https?://',
              description: "One replica's API root, without /v1. Example: http://10.0.0.6:8080",
            }),
            weight: Type.Integer({ minimum: 1, default: 1, description: 'Share of calls with `balance: weighted`.' }),
          },
          strict,
        ),
        { minItems: 1, description: 'Several replicas of the same model, instead of `base_url`.' },
      ),
    ),
    balance: shared.balance,
    passive_health: shared.passive_health,
    health_check: Type.Object(
      {
        interval_ms: Type.Integer({ minimum: 0, default: 0, description: 'Active checks of each endpoint (GET `path`); 0: none.' }),
        path: Type.String({ default: '/v1/models', description: "Checked below each endpoint's base URL; any 2xx passes." }),
        timeout_ms: Type.Integer({ minimum: 1, default: 2_000 }),
      },
      { ...strict, default: {} },
    ),
    api_key: Type.Optional(Type.String({ description: 'Sent as `x-api-key`. Use ${ENV_VAR} to keep it out of the file.' })),
    anthropic_version: Type.String({
      minLength: 1,
      default: DEFAULT_ANTHROPIC_VERSION,
      description: 'Sent as `anthropic-version`.',
    }),
    model: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'The model name the upstream knows (claude-sonnet-4-5, say); default: the model name here.',
      }),
    ),
    max_tokens: Type.Integer({
      minimum: 1,
      default: 4096,
      description:
        "`max_tokens` sent when the request sets none (the Messages API requires one; OpenAI's and gRPC's requests may omit it).",
    }),
    timeout_ms: shared.timeout_ms,
    connect_timeout_ms: shared.connect_timeout_ms,
    connections: shared.connections,
    headers: shared.headers,
  },
  strict,
);

/** A `kind: anthropic` backend, defaults filled. */
export type AnthropicBackendConfig = Static<typeof AnthropicBackendSchema>;
