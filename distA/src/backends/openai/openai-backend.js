/**
 * Any OpenAI-compatible server (vLLM, TGI, llama.cpp server, Ollama, OpenAI itself) over a
 * keep-alive undici pool. Bodies go upstream with `model` rewritten; answers come back as bytes,
 * untouched, so a stream passes through chunk by chunk with the socket's own backpressure.
 */
import { Pool, errors as undiciErrors } from 'undici';
import { ApiError, fastError } from '../../core/errors.js';
import { TextBackend, } from '../backend.js';
import { upstreamCall } from './upstream-call.js';
export class OpenAIBackend extends TextBackend {
    kind = 'openai';
    #config;
    #modelName;
    #basePath;
    #headers;
    #pool = null;
    /** `modelName` is used upstream unless the config names another. */
    constructor(config, modelName) {
        super();
        this.#config = config;
        this.#modelName = config.model ?? modelName;
        const url = new URL(config.base_url);
        this.#basePath = url.pathname.replace(/\/+$/, '');
        this.#headers = { 'content-type': 'application/json', ...config.headers };
        if (config.api_key !== undefined && config.api_key !== '')
            this.#headers.authorization = `Bearer ${config.api_key}`;
    }
    async load() {
        const url = new URL(this.#config.base_url);
        this.#pool = new Pool(url.origin, {
            connections: this.#config.connections,
            headersTimeout: this.#config.timeout_ms,
            bodyTimeout: this.#config.timeout_ms,
            keepAliveTimeout: 30_000,
        });
    }
    async unload() {
        const pool = this.#pool;
        this.#pool = null;
        await pool?.close();
    }
    health() {
        return { ready: this.#pool !== null, error: null };
    }
    async generate(request, call) {
        const path = request.kind === 'chat' ? '/chat/completions' : '/completions';
        const res = await this.#post(path, { ...request.body, model: this.#modelName }, call, request.stream);
        return { type: 'raw', contentType: headerValue(res.headers['content-type']) ?? 'application/json', body: res.body };
    }
    async embed(request, call) {
        const res = await this.#post('/embeddings', {
            model: this.#modelName,
            input: request.input,
            encoding_format: 'float',
            ...(request.dimensions === null ? {} : { dimensions: request.dimensions }),
        }, call, false);
        const body = JSON.parse(res.body.toString('utf8'));
        if (!Array.isArray(body.data) || body.data.length !== request.input.length) {
            throw new ApiError('upstream_error', 'the upstream returned an embeddings response of the wrong shape');
        }
        const vectors = new Array(request.input.length);
        for (const item of body.data)
            vectors[item.index] = Float32Array.from(item.embedding);
        return { vectors, promptTokens: body.usage?.prompt_tokens ?? 0 };
    }
    /** POSTs JSON upstream; answers >= 400 become ApiErrors (client errors keep the upstream's message). */
    async #post(path, body, call, stream) {
        const pool = this.#pool;
        if (pool === null)
            throw fastError('model_not_ready', 'the upstream connection pool is closed');
        let res;
        try {
            res = await upstreamCall(pool, { method: 'POST', path: this.#basePath + path, headers: this.#headers, body: JSON.stringify(body) }, call, stream);
        }
        catch (err) {
            throw upstreamFailure(err);
        }
        if (res.status < 400)
            return res;
        throw upstreamStatus(res.status, res.body.toString('utf8'));
    }
}
function headerValue(value) {
    return Array.isArray(value) ? value[0] : value;
}
function upstreamFailure(err) {
    if (err instanceof undiciErrors.HeadersTimeoutError ||
        err instanceof undiciErrors.BodyTimeoutError ||
        err instanceof undiciErrors.ConnectTimeoutError) {
        return new ApiError('upstream_timeout', 'the upstream model server did not answer in time', null, { cause: err });
    }
    if (err instanceof undiciErrors.RequestAbortedError || err.message === 'the client went away') {
        return new ApiError('upstream_unavailable', 'the request was cancelled', null, { cause: err });
    }
    const code = err.code ?? err.message;
    return new ApiError('upstream_unavailable', `the upstream model server could not be reached (${code})`, null, { cause: err });
}
/** 4xx from the upstream are the client's mistake (bad parameter): keep its message. 5xx and auth failures are ours. */
function upstreamStatus(status, text) {
    let message = text.slice(0, 500);
    let param = null;
    try {
        const parsed = JSON.parse(text);
        const e = parsed.error;
        message = (typeof e === 'string' ? e : e?.message) ?? parsed.message ?? message;
        if (typeof e === 'object' && typeof e.param === 'string')
            param = e.param;
    }
    catch {
        // not JSON: keep the text
    }
    if (status === 400 || status === 404 || status === 422)
        return new ApiError('invalid_request', `upstream rejected the request: ${message}`, param);
    return new ApiError('upstream_error', `upstream answered ${status}: ${message}`);
}
//# sourceMappingURL=openai-backend.js.map