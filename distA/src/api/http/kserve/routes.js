/**
 * The Open Inference Protocol (KServe v2) over HTTP, as Triton and KServe serve it:
 * server and model health, metadata, and infer with JSON tensors.
 */
import { Type } from '@sinclair/typebox';
import { DATATYPES, toJsonValues } from '../../../core/tensor.js';
import { httpContext } from '../context.js';
import { routeNotFound, sendKServeError, servedBy, toApiError } from '../errors.js';
import { decodeTensor } from './decode.js';
const Parameters = Type.Record(Type.String(), Type.Unknown());
const InferRequestBody = Type.Object({
    id: Type.Optional(Type.String()),
    parameters: Type.Optional(Parameters),
    inputs: Type.Array(Type.Object({
        name: Type.String({ minLength: 1 }),
        shape: Type.Array(Type.Integer({ minimum: 0 })),
        datatype: Type.Union(Object.keys(DATATYPES).map((d) => Type.Literal(d)), { description: `one of ${Object.keys(DATATYPES).join(', ')}` }),
        parameters: Type.Optional(Parameters),
        data: Type.Array(Type.Unknown()),
    }), { minItems: 1 }),
    outputs: Type.Optional(Type.Array(Type.Object({ name: Type.String({ minLength: 1 }), parameters: Type.Optional(Parameters) }))),
});
export function kserveRoutes(gateway, log, serverVersion) {
    return async function kserve(app) {
        app.setErrorHandler((error, request, reply) => sendKServeError(toApiError(error, request, log), request, reply));
        app.setNotFoundHandler((request, reply) => sendKServeError(routeNotFound(request), request, reply));
        app.get('', async () => ({ name: 'infergate', version: serverVersion, extensions: [] }));
        app.get('/health/live', async () => ({ live: true }));
        app.get('/health/ready', async (_req, reply) => {
            const ready = gateway.registry.ready();
            return reply.code(ready ? 200 : 503).send({ ready });
        });
        for (const base of ['/models/:name', '/models/:name/versions/:version']) {
            app.get(base, async (request) => metadata(gateway, request.params));
            app.get(`${base}/ready`, async (request, reply) => {
                const { model, version } = gateway.resolve(request.params.name, request.params.version);
                const ready = request.params.version === undefined ? model.ready() : version.backend.health().ready;
                return reply.code(ready ? 200 : 503).send({ name: model.name, ready });
            });
            app.post(`${base}/infer`, { schema: { body: InferRequestBody } }, infer);
        }
        async function infer(request, reply) {
            const body = request.body;
            const inputs = body.inputs.map((t, i) => decodeTensor({ ...t, datatype: t.datatype }, `inputs[${i}]`));
            const outputs = body.outputs === undefined ? null : body.outputs.map((o) => o.name);
            const ctx = httpContext(request, reply, request.params.version);
            const { version, result } = await gateway.infer(request.params.name, { inputs, outputs }, ctx);
            servedBy(request, reply, version.version).type('application/json');
            const response = {
                model_name: version.model.name,
                model_version: version.version,
                ...(body.id === undefined ? {} : { id: body.id }),
                outputs: result.outputs.map((t) => ({
                    name: t.name,
                    datatype: t.datatype,
                    shape: t.shape,
                    data: toJsonValues(t.datatype, t.data),
                })),
            };
            return JSON.stringify(response);
        }
    };
}
function metadata(gateway, params) {
    const { model, version } = gateway.resolve(params.name, params.version);
    const signature = gateway.signature(version);
    return {
        name: model.name,
        versions: [...model.versions.keys()],
        platform: platformOf(version),
        inputs: signature.inputs,
        outputs: signature.outputs,
    };
}
function platformOf(version) {
    return version.backend.kind === 'onnx' ? 'onnxruntime_onnx' : version.backend.kind;
}
//# sourceMappingURL=routes.js.map