/** The options of `kind: openai` backends: the upstream (or its replicas), balancing, health, time-outs and connections. */
import { Type, type Static } from '@sinclair/typebox';

const strict = { additionalProperties: false } as const;

/** `kind: openai`: an upstream OpenAI-compatible server, or replicas of one; its plug-in requires exactly one of `base_url` and `endpoints`. */
export const OpenAIBackendSchema = Type.Object(
  {
    kind: Type.Literal('openai'),
    base_url: Type.Optional(
      Type.String({
        pattern: '^https?://',
        description:
          'The upstream OpenAI-compatible API root, up to and including /v1. Example: http://127.0.0.1:8000/v1. Or give `endpoints`.',
      }),
    ),
    endpoints: Type.Optional(
      Type.Array(
        Type.Object(
          {
            base_url: Type.String({ pattern: '^https?://', description: "One replica's API root. Example: http://10.0.0.6:8000/v1" }),
            weight: Type.Integer({ minimum: 1, default: 1, description: 'Share of calls with `balance: weighted`.' }),
          },
          strict,
        ),
        { minItems: 1, description: 'Several replicas of the same model, instead of `base_url`.' },
      ),
    ),
    balance: Type.Union([Type.Literal('least-outstanding'), Type.Literal('round-robin'), Type.Literal('weighted')], {
      default: 'least-outstanding',
      description: 'How calls are spread over `endpoints`.',
    }),
    passive_health: Type.Object(
      {
        consecutive_failures: Type.Integer({
          minimum: 0,
          default: 3,
          description: 'Failures in a row (unreachable or 5xx) that eject an endpoint; 0: never.',
        }),
        ejection_ms: Type.Integer({ minimum: 1, default: 10_000, description: 'How long an ejected endpoint gets no calls.' }),
      },
      { ...strict, default: {} },
    ),
    health_check: Type.Object(
      {
        interval_ms: Type.Integer({ minimum: 0, default: 0, description: 'Active checks of each endpoint (GET `path`); 0: none.' }),
        path: Type.String({ default: '/models', description: "Checked below each endpoint's base URL; any 2xx passes." }),
        timeout_ms: Type.Integer({ minimum: 1, default: 2_000 }),
      },
      { ...strict, default: {} },
    ),
    api_key: Type.Optional(Type.String({ description: 'Sent as `Authorization: Bearer`. Use ${ENV_VAR} to keep it out of the file.' })),
    model: Type.Optional(Type.String({ minLength: 1, description: 'The model name the upstream knows; default: the model name here.' })),
    timeout_ms: Type.Integer({
      minimum: 1,
      default: 600_000,
      description: 'Longest wait for the upstream response headers (time to first byte), and between two body chunks, in ms.',
    }),
    connect_timeout_ms: Type.Integer({
      minimum: 1,
      default: 10_000,
      description: 'Longest wait for a TCP (and TLS) connection upstream, in ms.',
    }),
    connections: Type.Integer({ minimum: 1, default: 256, description: 'Keep-alive connections per worker to this upstream.' }),
    headers: Type.Record(Type.String(), Type.String(), { default: {}, description: 'Extra headers sent upstream.' }),
  },
  strict,
);

/** A `kind: openai` backend, defaults filled. */
export type OpenAIBackendConfig = Static<typeof OpenAIBackendSchema>;
