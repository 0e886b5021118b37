/**
 * Any OpenAI-compatible server (vLLM, TGI, llama.cpp server, Ollama, OpenAI itself) over a
 * keep-alive undici pool. Bodies go upstream with `model` rewritten (request-body.ts); answers come
 * back as bytes, untouched, so a stream passes through chunk by chunk with the socket's own
 * backpressure, and are decoded into typed events only where something needs them (wire.ts).
 */
import type { OpenAIBackendConfig } from './config.js';
import { ApiError } from '../../core/errors.js';
import type { Cancellation, EmbedRequest, EmbedResult } from '../../core/call.js';
import type { RawText, TextRequest } from '../../core/text.js';
import { upstreamBody } from './request-body.js';
import type { BackendContext } from '../plugin.js';
import { RemoteTextBackend, headerValue, upstreamJson } from '../upstreams.js';
import { openaiText } from './wire.js';

/**
 * A remote version on OpenAI-compatible servers: `load` opens a pool per endpoint and starts active
 * health checks; calls are balanced over the endpoints and upstream failures become ApiErrors.
 */
export class OpenAIBackend extends RemoteTextBackend {
  readonly kind = 'openai';
  readonly #modelName: string;

  /** The context's `modelName` is used upstream unless the config names another; its discovery, observer and logger serve the upstreams. */
  constructor(config: OpenAIBackendConfig, context: BackendContext) {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...config.headers };
    if (config.api_key !== undefined && config.api_key !== '') headers.authorization = `Bearer ${config.api_key}`;
    super(config, headers, context);
    this.#modelName = config.model ?? context.modelName;
  }

  /** The upstream's answer as it sent it (bytes, untouched), with the decoder that reads it as typed events. */
  async generate(request: TextRequest, call: Cancellation): Promise<RawText> {
    const path = request.kind === 'chat' ? '/chat/completions' : '/completions';
    const res = await this.upstreams.post(path, upstreamBody(request, this.#modelName), call, request.stream);
    return openaiText(request.kind, headerValue(res.headers['content-type']) ?? 'application/json', res.body);
  }

  async embed(request: EmbedRequest, call: Cancellation): Promise<EmbedResult> {
    const res = await this.upstreams.post(
      '/embeddings',
      {
        model: this.#modelName,
        input: request.input,
        encoding_format: 'float',
        ...(request.dimensions === null ? {} : { dimensions: request.dimensions }),
      },
      call,
      false,
    );
    const body = upstreamJson(res, 'an embeddings response') as { data?: unknown; usage?: { prompt_tokens?: unknown } } | null;
    const n = request.input.length;
    const vectors = new Array<Float32Array>(n);
    if (Array.isArray(body?.data) && body.data.length === n) {
      for (const item of body.data as Array<{ index?: unknown; embedding?: unknown }>) {
        const index = item?.index;
        if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= n || !Array.isArray(item.embedding)) break;
        vectors[index] = Float32Array.from(item.embedding as number[]);
      }
    }
    for (let i = 0; i < n; i++) {
      if (vectors[i] === undefined) throw new ApiError('upstream_error', 'the upstream returned an embeddings response of the wrong shape');
    }
    const tokens = body?.usage?.prompt_tokens;
    return { vectors, promptTokens: typeof tokens === 'number' ? tokens : 0 };
  }
}
