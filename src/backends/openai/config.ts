/** The options of `kind: openai` backends: the upstream (or its replicas), balancing, health, time-outs and connections. */
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

/** `kind: openai`: an upstream OpenAI-compatible server, or replicas of one; its plug-in requires exactly one of `base_url`, `endpoints` and `discovery`. */
export const OpenAIBackendSchema = Type.Object(
  {
    kind: Type.Literal('openai'),
    base_url: Type.Optional(
      Type.String({
        pattern: '^https?://',
        description:
          'The upstream OpenAI-compatible API root, up to and including /v1. Example: http://127.0.0.1:8000/v1. Or give `endpoints` or `discovery`.',
      }),
    ),
    endpoints: Type.Optional(endpointsOption("One replica's API root. Example: http://10.0.0.6:8000/v1")),
    discovery: Type.Optional(DiscoveryOption),
    balance: BalanceOption,
    pools: Type.Optional(PoolsOption),
    passive_health: PassiveHealthOption,
    health_check: healthCheckOption('/models'),
    api_key: Type.Optional(Type.String({ description: 'Sent as `Authorization: Bearer`. Use ${ENV_VAR} to keep it out of the file.' })),
    model: Type.Optional(Type.String({ minLength: 1, description: 'The model name the upstream knows; default: the model name here.' })),
    timeout_ms: TimeoutOption,
    connect_timeout_ms: ConnectTimeoutOption,
    connections: ConnectionsOption,
    headers: HeadersOption,
  },
  strict,
);

/** A `kind: openai` backend, defaults filled. */
export type OpenAIBackendConfig = Static<typeof OpenAIBackendSchema>;
