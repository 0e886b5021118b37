/**
 * The OpenAI API: /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings.
 * Each route decodes (schema), calls the gateway, and encodes; nothing else.
 */
import { Readable } from 'node:stream';
import { fastError } from '../../../core/errors.js';
import { httpContext } from '../context.js';
import { OPENAI_ERROR_TYPES, routeNotFound, sendOpenAIError, servedBy, toApiError } from '../errors.js';
import { ChatRequest, CompletionRequest, EmbeddingRequest } from './schemas.js';
export function openaiRoutes(gateway, log) {
    return async function openai(app) {
        app.setErrorHandler((error, request, reply) => sendOpenAIError(toApiError(error, request, log), request, reply));
        app.setNotFoundHandler((request, reply) => sendOpenAIError(routeNotFound(request), request, reply));
        app.get('/models', async () => ({ object: 'list', data: gateway.registry.models.map(describeModel) }));
        // A wildcard, since model names may contain '/' (e.g. org/model).
        app.get('/models/*', async (request) => describeModel(gateway.registry.get(request.params['*'])));
        app.post('/chat/completions', { schema: { body: ChatRequest } }, (request, reply) => {
            const body = request.body;
            if (body.n !== undefined && body.n !== null && body.n !== 1 && body.stream === true) {
                throw fastError('invalid_request', '`n` must be 1 when streaming', 'n');
            }
            return text({ kind: 'chat', model: body.model, stream: body.stream === true, body }, request, reply);
        });
        app.post('/completions', { schema: { body: CompletionRequest } }, (request, reply) => {
            const body = request.body;
            return text({ kind: 'completion', model: body.model, stream: body.stream === true, body }, request, reply);
        });
        app.post('/embeddings', { schema: { body: EmbeddingRequest } }, async (request, reply) => {
            const body = request.body;
            const input = typeof body.input === 'string' ? [body.input] : body.input;
            const { version, result } = await gateway.embed(body.model, { input, dimensions: body.dimensions ?? null }, httpContext(request, reply));
            const base64 = body.encoding_format === 'base64';
            const data = result.vectors.map((v, index) => ({
                object: 'embedding',
                index,
                embedding: base64 ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') : Array.from(v),
            }));
            servedBy(request, reply, version.version);
            return { object: 'list', data, model: body.model, usage: { prompt_tokens: result.promptTokens, total_tokens: result.promptTokens } };
        });
        async function text(req, request, reply) {
            const served = await gateway.generate(req, httpContext(request, reply));
            return encodeText(served, request, reply, log);
        }
    };
}
function describeModel(model) {
    return { id: model.name, object: 'model', created: model.created, owned_by: model.ownedBy };
}
function encodeText({ version, result }, request, reply, log) {
    servedBy(request, reply, version.version);
    switch (result.type) {
        case 'json':
            return reply.type('application/json').send(JSON.stringify(result.body));
        case 'raw':
            return reply.type(result.contentType).send(result.body);
        case 'events':
            reply.type('text/event-stream').header('cache-control', 'no-cache').header('x-accel-buffering', 'no');
            return reply.send(Readable.from(sse(result.events, request, log)));
    }
}
/** Encodes chunks as Server-Sent Events; a failure after the first byte becomes an error event, then the stream ends. */
async function* sse(events, request, log) {
    try {
        for await (const event of events)
            yield `data: ${JSON.stringify(event)}\n\n`;
    }
    catch (error) {
        const e = toApiError(error, request, log);
        yield `data: ${JSON.stringify({ error: { message: e.message, type: OPENAI_ERROR_TYPES[e.code], param: e.param, code: e.code } })}\n\n`;
    }
    yield 'data: [DONE]\n\n';
}
//# sourceMappingURL=routes.js.map