/**
 * The HTTP transport: one Fastify instance with the OpenAI API under /v1, the Open Inference
 * Protocol under /v2, and process health under /health. Routes decode, call the gateway, encode.
 */
import { randomUUID } from 'node:crypto';
import Fastify from 'fastify';
import sjson from 'secure-json-parse';
import { ApiError } from '../../core/errors.js';
import { routeNotFound, sendOpenAIError, toApiError } from './errors.js';
import { kserveRoutes } from './kserve/routes.js';
import { openaiRoutes } from './openai/routes.js';
const REQUEST_ID = /^[\w.:-]{1,128}$/;
/** JSON.parse that rejects prototype poisoning and keeps the parser's message ("Unexpected token } at position 9"). */
function parseJson(_req, body, done) {
    if (body.length === 0)
        return done(new ApiError('invalid_json', 'the body is empty; send a JSON object'));
    try {
        done(null, sjson.parse(body, null, { protoAction: 'error', constructorAction: 'ignore' }));
    }
    catch (err) {
        done(new ApiError('invalid_json', `the body is not valid JSON: ${err.message}`));
    }
}
export function createHttpServer({ config, log, gateway, version }) {
    const app = Fastify({
        // No Fastify logger: its per-request child loggers and timers cost about a third of the throughput
        // of a small request (measured with wrk on loopback). Unexpected errors go to `log`, with the request id.
        logger: false,
        bodyLimit: config.server.body_limit_bytes,
        keepAliveTimeout: config.server.keep_alive_timeout_ms,
        return503OnClosing: true,
        requestIdHeader: false,
        genReqId: (req) => {
            const given = req.headers['x-request-id'];
            return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
        },
        // Bodies are checked as sent: no type coercion, no silent removal of fields.
        // `verbose` keeps each failing schema on the error, so messages can quote its description.
        ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false, verbose: true } },
    });
    // Every POST body is JSON, whatever its content-type says (curl -d sends form encoding).
    app.removeAllContentTypeParsers();
    // The exact type first: Fastify finds it by string equality, before trying the catch-all.
    app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJson);
    app.addContentTypeParser('*', { parseAs: 'string' }, parseJson);
    app.register(openaiRoutes(gateway, log), { prefix: '/v1' });
    app.register(kserveRoutes(gateway, log, version), { prefix: '/v2' });
    app.get('/health/live', async () => ({ status: 'live' }));
    app.get('/health/ready', async (_request, reply) => {
        const models = {};
        for (const m of gateway.registry.models)
            models[m.name] = m.ready();
        const ready = gateway.registry.ready();
        return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'loading', models });
    });
    app.setErrorHandler((error, request, reply) => sendOpenAIError(toApiError(error, request, log), request, reply));
    app.setNotFoundHandler((request, reply) => sendOpenAIError(routeNotFound(request), request, reply));
    return app;
}
//# sourceMappingURL=server.js.map