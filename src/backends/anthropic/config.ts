/**
 * The options of `kind: anthropic` backends: a server that speaks the Anthropic Messages API
 * (api.anthropic.com, or another infergate's /v1/messages). Balancing, passive health, time-outs,
 * connections and extra headers are the options every remote kind shares (../remote-config.ts).
 */
import { Type, type Static } from '@sinclair/typebox';
import {
  BalanceOption,
  ConnectTimeoutOption,
  ConnectionsOption,
  DiscoveryOption,
  HeadersOption,
  PassiveHealthOption,
  PoolsOption,
  TimeoutOption,
  endpointsOption,
  healthCheckOption,
} from '../remote-config.js';

const strict = { additionalProperties: false } as const;

/** Anthropic's API version header, as its SDKs send it. */
export const DEFAULT_ANTHROPIC_VERSION = '2023-06-01';

/** `kind: anthropic`: an upstream Anthropic Messages API, or replicas of one; its plug-in requires exactly one of `base_url`, `endpoints` and `discovery`. */
export const AnthropicBackendSchema = Type.Object(
  {
    kind: Type.Literal('anthropic'),
    base_url: Type.Optional(
      Type.String({
        pattern: '^https?://',
        description:
          "The upstream API root, without /v1 (as the Anthropic SDK's baseURL): calls go to its /v1/messages. Example: https://api.anthropic.com. Or give `endpoints` or `discovery`.",
      }),
    ),
    endpoints: Type.Optional(endpointsOption("One replica's API root, without /v1. Example: http://10.0.0.6:8080")),
    discovery: Type.Optional(DiscoveryOption),
    balance: BalanceOption,
    pools: Type.Optional(PoolsOption),
    passive_health: PassiveHealthOption,
    health_check: healthCheckOption('/v1/models'),
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
    timeout_ms: TimeoutOption,
    connect_timeout_ms: ConnectTimeoutOption,
    connections: ConnectionsOption,
    headers: HeadersOption,
  },
  strict,
);

/** A `kind: anthropic` backend, defaults filled. */
export type AnthropicBackendConfig = Static<typeof AnthropicBackendSchema>;
