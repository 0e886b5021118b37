/** KServe v2 `POST /v2/models/{name}[/versions/{v}]/infer` (registered by routes.ts, served by model-calls.ts). */
import { Type, type Static } from '@sinclair/typebox';
import type { Gateway } from '../../../pipeline/gateway.js';
import { DATATYPES, toJsonValues, type DataType } from '../../../core/tensor.js';
import { servedHeaders, type ModelCall } from '../model-calls.js';
import { decodeTensor } from './decode.js';

const Parameters = Type.Record(Type.String(), Type.Unknown());

/** The schema of an infer request's JSON body; `parameters` (request, input or output) are accepted but not used. */
export const InferRequestBody = Type.Object({
  id: Type.Optional(Type.String()),
  parameters: Type.Optional(Parameters),
  inputs: Type.Array(
    Type.Object({
      name: Type.String({ minLength: 1 }),
      shape: Type.Array(Type.Integer({ minimum: 0 })),
      datatype: Type.Union(
        Object.keys(DATATYPES).map((d) => Type.Literal(d)),
        { description: `one of ${Object.keys(DATATYPES).join(', ')}` },
      ),
      parameters: Type.Optional(Parameters),
      data: Type.Array(Type.Unknown()),
    }),
    { minItems: 1 },
  ),
  outputs: Type.Optional(Type.Array(Type.Object({ name: Type.String({ minLength: 1 }), parameters: Type.Optional(Parameters) }))),
});
/** An infer request body that passed the schema. */
export type InferRequestBody = Static<typeof InferRequestBody>;

/**
 * The infer call: decodes the inputs (400 on data that does not fit shape and datatype), runs the
 * model through the gateway, and answers its outputs as JSON (only those named in `outputs`, when given).
 */
export function kserveInfer(gateway: Gateway): ModelCall<InferRequestBody> {
  return {
    schema: InferRequestBody,
    protocol: 'kserve',
    handle: async (body, ctx, params) => {
      const inputs = body.inputs.map((t, i) => decodeTensor({ ...t, datatype: t.datatype as DataType }, `inputs[${i}]`));
      const outputs = body.outputs === undefined ? null : body.outputs.map((o) => o.name);
      const served = await gateway.infer(params.model as string, { inputs, outputs }, ctx);
      const { version, result } = served;
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
      return {
        status: 200,
        headers: servedHeaders(served, 'application/json'),
        body: JSON.stringify(response),
      };
    },
  };
}
