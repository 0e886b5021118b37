/** The Open Inference Protocol (KServe v2) over HTTP against the real server and real ONNX models. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { get, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';

const row = (seed: number): number[] => Array.from({ length: 32 }, (_, i) => Math.sin(seed * 31 + i));
const mlpBody = (data: number[][]) => ({ inputs: [{ name: 'input', shape: [data.length, 32], datatype: 'FP32', data }] });

describe('KServe v2 HTTP', () => {
  let server: RunningServer;

  before(async () => {
    const config = writeConfig(`
models:
  - name: tiny-mlp
    aliases: [mlp]
    default_version: '1'
    versions:
      - { version: '1', weight: 90, backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx } }
      - { version: '2', weight: 10, backend: { kind: onnx, path: \${MODELS}/tiny-mlp/2/model.onnx } }
  - name: tiny-types
    versions:
      - { version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-types/1/model.onnx } }
  - name: chat-only
    versions:
      - { version: '1', backend: { kind: mock } }
`);
    server = await startServer({ config });
  });
  after(() => server?.stop());

  it('reports server metadata, liveness and readiness', async () => {
    const meta = await get(`${server.url}/v2`);
    assert.equal(meta.status, 200);
    assert.equal(meta.body.name, 'infergate');
    assert.match(meta.body.version, /^\d+\.\d+\.\d+/);
    assert.deepEqual((await get(`${server.url}/v2/health/live`)).body, { live: true });
    assert.deepEqual((await get(`${server.url}/v2/health/ready`)).body, { ready: true });
    assert.equal((await get(`${server.url}/v2/models/tiny-mlp/ready`)).status, 200);
    assert.equal((await get(`${server.url}/v2/models/tiny-mlp/versions/2/ready`)).status, 200);
  });

  it('describes a model: versions, inputs and outputs with datatypes and shapes', async () => {
    const res = await get(`${server.url}/v2/models/tiny-mlp`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      name: 'tiny-mlp',
      versions: ['1', '2'],
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 32] }],
      outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 8] }],
    });
    const byAlias = await get(`${server.url}/v2/models/mlp/versions/2`);
    assert.equal(byAlias.body.name, 'tiny-mlp');
  });

  it('infers a batch and says which version served it', async () => {
    const res = await post(`${server.url}/v2/models/tiny-mlp/versions/1/infer`, { id: 'req-1', ...mlpBody([row(1), row(2)]) });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-model-version'), '1');
    assert.equal(res.body.model_name, 'tiny-mlp');
    assert.equal(res.body.model_version, '1');
    assert.equal(res.body.id, 'req-1');
    const [out] = res.body.outputs;
    assert.equal(out.name, 'output');
    assert.equal(out.datatype, 'FP32');
    assert.deepEqual(out.shape, [2, 8]);
    assert.equal(out.data.length, 16);
    // Softmax rows sum to one.
    for (const r of [0, 1]) {
      const sum = out.data.slice(r * 8, r * 8 + 8).reduce((a: number, b: number) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-5, `row ${r} sums to ${sum}`);
    }
  });

  it('accepts nested data the same as flat data', async () => {
    const nested = await post(`${server.url}/v2/models/tiny-mlp/versions/1/infer`, mlpBody([row(3)]));
    const flat = await post(`${server.url}/v2/models/tiny-mlp/versions/1/infer`, {
      inputs: [{ name: 'input', shape: [1, 32], datatype: 'FP32', data: row(3) }],
    });
    assert.deepEqual(nested.body.outputs, flat.body.outputs);
  });

  it('gives the two versions different answers, and pins by header too', async () => {
    const v1 = await post(`${server.url}/v2/models/tiny-mlp/infer`, mlpBody([row(4)]), { 'x-model-version': '1' });
    const v2 = await post(`${server.url}/v2/models/tiny-mlp/infer`, mlpBody([row(4)]), { 'x-model-version': '2' });
    assert.equal(v1.body.model_version, '1');
    assert.equal(v2.body.model_version, '2');
    assert.notDeepEqual(v1.body.outputs[0].data, v2.body.outputs[0].data);
  });

  it('splits unpinned traffic by weight (90/10)', async () => {
    const counts: Record<string, number> = { '1': 0, '2': 0 };
    const n = 400;
    for (let i = 0; i < n; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, () => post(`${server.url}/v2/models/tiny-mlp/infer`, mlpBody([row(5)]))));
      for (const r of batch) counts[r.body.model_version as string]!++;
    }
    // Binomial(400, 0.1): mean 40, sd 6; these bounds fail by chance about once in a million runs.
    assert.ok((counts['2'] as number) >= 12 && (counts['2'] as number) <= 75, `version 2 served ${counts['2']} of ${n}`);
    assert.equal((counts['1'] as number) + (counts['2'] as number), n);
  });

  it('round-trips FP16, INT32, INT64, BOOL and BYTES', async () => {
    const res = await post(`${server.url}/v2/models/tiny-types/infer`, {
      inputs: [
        { name: 'half', shape: [2, 4], datatype: 'FP16', data: [1, 2.5, -3, 0.5, 100, 0, 1024, -0.25] },
        { name: 'int', shape: [2, 4], datatype: 'INT32', data: [1, 2, 3, 4, -5, 6, 2147483646, 0] },
        { name: 'long', shape: [2, 4], datatype: 'INT64', data: [1, -2, 3, 9007199254740991, 5, 6, 7, 8] },
        { name: 'flag', shape: [2, 4], datatype: 'BOOL', data: [true, false, true, false, false, false, true, true] },
        { name: 'text', shape: [2, 1], datatype: 'BYTES', data: ['héllo', 'wörld ✓'] },
      ],
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const out = Object.fromEntries(res.body.outputs.map((o: { name: string }) => [o.name, o]));
    assert.deepEqual(out.half_x2.data, [2, 5, -6, 1, 200, 0, 2048, -0.5]);
    assert.equal(out.half_x2.datatype, 'FP16');
    assert.deepEqual(out.int_plus1.data, [2, 3, 4, 5, -4, 7, 2147483647, 1]);
    assert.deepEqual(out.long_echo.data, [1, -2, 3, 9007199254740991, 5, 6, 7, 8]);
    assert.deepEqual(out.flag_not.data, [false, true, false, true, true, true, false, false]);
    assert.deepEqual(out.text_echo.data, ['héllo', 'wörld ✓']);
    assert.deepEqual(out.text_echo.shape, [2, 1]);
  });

  it('returns only the outputs asked for', async () => {
    const res = await post(`${server.url}/v2/models/tiny-types/infer`, {
      inputs: [
        { name: 'half', shape: [1, 4], datatype: 'FP16', data: [1, 1, 1, 1] },
        { name: 'int', shape: [1, 4], datatype: 'INT32', data: [1, 1, 1, 1] },
        { name: 'long', shape: [1, 4], datatype: 'INT64', data: [1, 1, 1, 1] },
        { name: 'flag', shape: [1, 4], datatype: 'BOOL', data: [true, true, true, true] },
        { name: 'text', shape: [1, 1], datatype: 'BYTES', data: ['x'] },
      ],
      outputs: [{ name: 'int_plus1' }],
    });
    assert.deepEqual(
      res.body.outputs.map((o: { name: string }) => o.name),
      ['int_plus1'],
    );
  });

  for (const [name, body, pattern, param] of [
    [
      'a wrong datatype',
      { inputs: [{ name: 'input', shape: [1, 32], datatype: 'INT32', data: row(1).map(Math.round) }] },
      /must have datatype FP32, got INT32/,
      null,
    ],
    [
      'a wrong shape',
      { inputs: [{ name: 'input', shape: [1, 31], datatype: 'FP32', data: row(1).slice(1) }] },
      /must have shape \[-1, 32\], got \[1, 31\]/,
      null,
    ],
    [
      'data that does not fill the shape',
      { inputs: [{ name: 'input', shape: [2, 32], datatype: 'FP32', data: row(1) }] },
      /has 32 elements but shape \[2, 32\] needs 64/,
      null,
    ],
    [
      'a string where a number belongs',
      { inputs: [{ name: 'input', shape: [1, 32], datatype: 'FP32', data: ['x', ...row(1).slice(1)] }] },
      /inputs\[0\]\.data\[0\] must be a number for datatype FP32, got "x"/,
      null,
    ],
    [
      'an unknown input',
      { inputs: [...mlpBody([row(1)]).inputs, { name: 'extra', shape: [1], datatype: 'FP32', data: [1] }] },
      /unknown input "extra"/,
      null,
    ],
    ['a missing input', { inputs: [{ name: 'other', shape: [1], datatype: 'FP32', data: [1] }] }, /missing input "input"/, null],
    [
      'an unknown datatype',
      { inputs: [{ name: 'input', shape: [1], datatype: 'FP33', data: [1] }] },
      /`inputs\[0\]\.datatype` must be one of BOOL/,
      null,
    ],
    ['an unknown output', { ...mlpBody([row(1)]), outputs: [{ name: 'nope' }] }, /unknown output "nope"; the model has output/, null],
    ['no inputs', { inputs: [] }, /`inputs` must NOT have fewer than 1 items/, null],
    [
      'data nested deeper than the shape',
      `{"inputs":[{"name":"input","shape":[1,32],"datatype":"FP32","data":${'['.repeat(40)}${']'.repeat(40)}}]}`,
      /inputs\[0\]\.data is nested deeper than its shape's 2 dimensions/,
      null,
    ],
    [
      'data nested deeper than server.max_json_depth (a stack-exhaustion attempt)',
      `{"inputs":[{"name":"input","shape":[1,32],"datatype":"FP32","data":${'['.repeat(100_000)}${']'.repeat(100_000)}}]}`,
      /the JSON body nests deeper than 64 levels \(server\.max_json_depth\)/,
      null,
    ],
  ] as const) {
    it(`answers 400 in KServe's error shape for ${name}`, async () => {
      const res = await post(`${server.url}/v2/models/tiny-mlp/versions/1/infer`, body);
      assert.equal(res.status, 400, JSON.stringify(res.body));
      assert.equal(typeof res.body.error, 'string');
      assert.match(res.body.error, pattern);
      void param;
    });
  }

  it('answers 404 for an unknown model or version, and 400 for a model without tensors', async () => {
    const model = await post(`${server.url}/v2/models/nope/infer`, mlpBody([row(1)]));
    assert.equal(model.status, 404);
    assert.match(model.body.error, /model "nope" does not exist/);
    const version = await post(`${server.url}/v2/models/tiny-mlp/versions/9/infer`, mlpBody([row(1)]));
    assert.equal(version.status, 404);
    assert.equal(version.body.code, 'version_not_found');
    const header = await post(`${server.url}/v2/models/tiny-mlp/infer`, mlpBody([row(1)]), { 'x-model-version': '9' });
    assert.equal(header.status, 404);
    const meta = await get(`${server.url}/v2/models/tiny-mlp/versions/9`);
    assert.equal(meta.status, 404);
    const chat = await get(`${server.url}/v2/models/chat-only`);
    assert.equal(chat.status, 400);
    assert.match(chat.body.error, /not a tensor model/);
  });

  it('answers a deeply nested body with 400 on the OpenAI API too, not a stack overflow', async () => {
    const res = await post(`${server.url}/v1/chat/completions`, `[${'['.repeat(300_000)}${']'.repeat(300_000)}]`);
    assert.equal(res.status, 400);
    assert.match(res.body.error.message, /the JSON body nests deeper than 64 levels \(server\.max_json_depth\)/);
  });

  it('survives a malformed escape in the model name', async () => {
    const res = await post(`${server.url}/v2/models/%E0%A4%A/infer`, mlpBody([row(1)]));
    assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}`);
    assert.equal((await get(`${server.url}/v2/health/live`)).status, 200);
  });

  it('answers 404 in KServe shape for an unknown path', async () => {
    const res = await get(`${server.url}/v2/nothing/here`);
    assert.equal(res.status, 404);
    assert.equal(typeof res.body.error, 'string');
  });
});
