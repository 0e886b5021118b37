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
import { TextBackend, unsupported, type BackendHealth, type Occupancy } from '../backend.js';
import type { EndpointStatus } from '../openai/endpoints.js';
import { Upstreams, headerValue } from '../upstreams.js';
import type { AnthropicBackendConfig } from './config.js';
import { countTokensBody, messagesBody } from './request-body.js';
import { anthropicText } from './wire.js';

/** The only task: the Messages API has no legacy completions and no embeddings. */
const TASKS: ReadonlySet<Task> = new Set<Task>(['chat']);

/** A remote version on Anthropic Messages API servers: chat only, balanced over its endpoints, failures mapped as for every remote kind. */
export class AnthropicBackend extends TextBackend {
  readonly kind = 'anthropic';
  override readonly tasks = TASKS;
  readonly #modelName: string;
  readonly #maxTokens: number;
  readonly #upstreams: Upstreams;

  /** `modelName` is used upstream unless the config names another. */
  constructor(config: AnthropicBackendConfig, modelName: string) {
    super();
    this.#modelName = config.model ?? modelName;
    this.#maxTokens = config.max_tokens;
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'anthropic-version': config.anthropic_version,
      ...config.headers,
    };
    if (config.api_key !== undefined && config.api_key !== '') headers['x-api-key'] = config.api_key;
    this.#upstreams = new Upstreams(config, headers);
  }

  async load(): Promise<void> {
    this.#upstreams.open();
  }

  async unload(): Promise<void> {
    await this.#upstreams.close();
  }

  health(): BackendHealth {
    return { ready: this.#upstreams.isOpen, error: null };
  }

  /** Where calls go: each endpoint's URL, calls in flight, and whether it is ejected. */
  endpointStatus(): EndpointStatus[] {
    return this.#upstreams.status();
  }

  /** Upstream calls in flight (over every endpoint); what waits is the upstream's to say. */
  occupancy(): Occupancy | null {
    return this.#upstreams.occupancy();
  }

  /** The upstream's answer as it sent it (bytes, untouched), with the decoder that reads it as typed events. */
  async generate(request: TextRequest, call: Cancellation): Promise<RawText> {
    if (request.kind !== 'chat') return unsupported(this.kind, request.kind);
    const body = messagesBody(request, this.#modelName, this.#maxTokens);
    const res = await this.#upstreams.post('/v1/messages', body, call, request.stream);
    return anthropicText(headerValue(res.headers['content-type']) ?? 'application/json', res.body);
  }

  embed(): Promise<EmbedResult> {
    return unsupported(this.kind, 'embedding');
  }

  /** The prompt's tokens, as the upstream's `POST /v1/messages/count_tokens` counts them. */
  async countTokens(request: ChatRequest, call: Cancellation): Promise<number> {
    const res = await this.#upstreams.post('/v1/messages/count_tokens', countTokensBody(request, this.#modelName), call, false);
    let tokens: unknown;
    try {
      tokens = (JSON.parse((res.body as Buffer).toString('utf8')) as { input_tokens?: unknown } | null)?.input_tokens;
    } catch {
      // Unreadable: the upstream's fault, below.
    }
    if (typeof tokens !== 'number' || !Number.isInteger(tokens) || tokens < 0) {
      throw new ApiError('upstream_error', 'the upstream answered count_tokens without a number of `input_tokens`');
    }
    return tokens;
  }
}
