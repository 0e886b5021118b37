/**
 * A server that speaks the Anthropic Messages API (api.anthropic.com, or another infergate's
 * /v1/messages), over the same keep-alive pools, balancing, health checks and failure mapping as
 * the openai kind (../upstreams.ts). Chat requests go upstream as Messages bodies
 * (request-body.ts); answers come back as bytes, untouched, so an Anthropic client's stream passes
 * through chunk by chunk, and are decoded into typed events where anything else needs them (wire.ts).
 */
import { ApiError } from '../../core/errors.js';
import type { Cancellation, EmbedResult, Task } from '../../core/call.js';
import type { ChatRequest, RawText, TextRequest } from '../../core/text.js';
import { unsupported } from '../backend.js';
import type { BackendContext } from '../plugin.js';
import { RemoteTextBackend, headerValue, upstreamJson } from '../upstreams.js';
import type { AnthropicBackendConfig } from './config.js';
import { countTokensBody, messagesBody } from './request-body.js';
import { anthropicText } from './wire.js';

/** The only task: the Messages API has no legacy completions and no embeddings. */
const TASKS: ReadonlySet<Task> = new Set<Task>(['chat']);

/** A remote version on Anthropic Messages API servers: chat only, balanced over its endpoints, failures mapped as for every remote kind. */
export class AnthropicBackend extends RemoteTextBackend {
  readonly kind = 'anthropic';
  override readonly tasks = TASKS;
  readonly #modelName: string;
  readonly #maxTokens: number;

  /** The context's `modelName` is used upstream unless the config names another; its discovery, observer and logger serve the upstreams. */
  constructor(config: AnthropicBackendConfig, context: BackendContext) {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'anthropic-version': config.anthropic_version,
      ...config.headers,
    };
    if (config.api_key !== undefined && config.api_key !== '') headers['x-api-key'] = config.api_key;
    super(config, headers, context);
    this.#modelName = config.model ?? context.modelName;
    this.#maxTokens = config.max_tokens;
  }

  /** The upstream's answer as it sent it (bytes, untouched), with the decoder that reads it as typed events. */
  async generate(request: TextRequest, call: Cancellation): Promise<RawText> {
    if (request.kind !== 'chat') return unsupported(this.kind, request.kind);
    const body = messagesBody(request, this.#modelName, this.#maxTokens);
    const res = await this.upstreams.post('/v1/messages', body, call, request.stream);
    return anthropicText(headerValue(res.headers['content-type']) ?? 'application/json', res.body);
  }

  embed(): Promise<EmbedResult> {
    return unsupported(this.kind, 'embedding');
  }

  /**
   * The prompt's tokens, as the upstream's `POST /v1/messages/count_tokens` counts them. Not
   * counted toward passive ejection: a server without count_tokens still serves /v1/messages.
   */
  async countTokens(request: ChatRequest, call: Cancellation): Promise<number> {
    const body = countTokensBody(request, this.#modelName);
    const res = await this.upstreams.post('/v1/messages/count_tokens', body, call, false, { passiveHealth: false });
    const tokens = (upstreamJson(res, 'a count_tokens answer') as { input_tokens?: unknown } | null)?.input_tokens;
    if (typeof tokens !== 'number' || !Number.isInteger(tokens) || tokens < 0) {
      throw new ApiError('upstream_error', 'the upstream answered count_tokens without a number of `input_tokens`');
    }
    return tokens;
  }
}
