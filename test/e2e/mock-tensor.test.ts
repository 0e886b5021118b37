/** The mock backend's `tensor` signature over the real KServe v2 HTTP interface: metadata, zero answers, 400s, and config checks. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { get, post, startServer, writeConfig, type RunningServer } from '../helpers/server.js';

const body = (rows: number, width = 32) => ({
  id: 'r1',
  inputs: [{ name: 'input', shape: [rows, width], datatype: 'FP32', data: Array.from({ length: rows * width }, (_, i) => i / 10) }],
});

describe('mock tensor model over KServe v2 HTTP', () => {
  let server: RunningServer;

  before(async () => {
    const config = writeConfig(`
models:
  - name: tiny-mlp
    versions:
      - version: '1'
        backend:
          kind: mock
          tensor:
            inputs: [{ name: input, datatype: FP32, shape: [-1, 32] }]
            outputs: [{ name: output, datatype: FP32, shape: [-1, 8] }, { name: label, datatype: BYTES, shape: [-1, 1] }, { name: bias, datatype: INT64, shape: [3] }]
  - name: chat-only
    versions:
      - { version: '1', backend: { kind: mock } }
`);
    server = await startServer({ config });
  });
  after(() => server?.stop());

  it('describes its inputs and outputs as the config gives them, platform mock', async () => {
    const res = await get(`${server.url}/v2/models/tiny-mlp`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {
      name: 'tiny-mlp',
      versions: ['1'],
      platform: 'mock',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 32] }],
      outputs: [
        { name: 'output', datatype: 'FP32', shape: [-1, 8] },
        { name: 'label', datatype: 'BYTES', shape: [-1, 1] },
        { name: 'bias', datatype: 'INT64', shape: [3] },
      ],
    });
    assert.equal((await get(`${server.url}/v2/models/tiny-mlp/ready`)).status, 200);
  });

  it('answers zeros of the outputs’ shapes, -1 being the batch, and only the outputs asked for', async () => {
    const res = await post(`${server.url}/v2/models/tiny-mlp/infer`, body(3));
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.model_name, 'tiny-mlp');
    assert.equal(res.body.model_version, '1');
    assert.equal(res.body.id, 'r1');
    assert.deepEqual(res.body.outputs, [
      { name: 'output', datatype: 'FP32', shape: [3, 8], data: new Array(24).fill(0) },
      { name: 'label', datatype: 'BYTES', shape: [3, 1], data: ['', '', ''] },
      { name: 'bias', datatype: 'INT64', shape: [3], data: [0, 0, 0] },
    ]);
    const some = await post(`${server.url}/v2/models/tiny-mlp/infer`, { ...body(1), outputs: [{ name: 'bias' }, { name: 'output' }] });
    assert.equal(some.status, 200);
    assert.deepEqual(
      some.body.outputs.map((o: { name: string; shape: number[] }) => [o.name, o.shape]),
      [
        ['bias', [3]],
        ['output', [1, 8]],
      ],
    );
  });

  it('gives 400 for inputs that do not fit its signature, as any tensor model', async () => {
    const shape = await post(`${server.url}/v2/models/tiny-mlp/infer`, body(2, 31));
    assert.equal(shape.status, 400);
    assert.match(shape.body.error, /input "input" must have shape \[-1, 32\], got \[2, 31\]/);
    const name = await post(`${server.url}/v2/models/tiny-mlp/infer`, {
      inputs: [{ name: 'x', shape: [1, 32], datatype: 'FP32', data: new Array(32).fill(0) }],
    });
    assert.equal(name.status, 400);
    const type = await post(`${server.url}/v2/models/tiny-mlp/infer`, {
      inputs: [{ name: 'input', shape: [1, 32], datatype: 'INT32', data: new Array(32).fill(0) }],
    });
    assert.equal(type.status, 400);
    assert.match(type.body.error, /must have datatype FP32, got INT32/);
    const data = await post(`${server.url}/v2/models/tiny-mlp/infer`, {
      inputs: [{ name: 'input', shape: [2, 32], datatype: 'FP32', data: [1, 2, 3] }],
    });
    assert.equal(data.status, 400);
    const output = await post(`${server.url}/v2/models/tiny-mlp/infer`, { ...body(1), outputs: [{ name: 'nope' }] });
    assert.equal(output.status, 400);
    assert.match(output.body.error, /unknown output "nope"/);
  });

  it('still serves chat, and a mock without `tensor` is still no tensor model', async () => {
    const chat = await post(`${server.url}/v1/chat/completions`, { model: 'tiny-mlp', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(chat.status, 200);
    const meta = await get(`${server.url}/v2/models/chat-only`);
    assert.equal(meta.status, 400);
    assert.match(meta.body.error, /not a tensor model/);
    const infer = await post(`${server.url}/v2/models/chat-only/infer`, body(1));
    assert.equal(infer.status, 400);
  });
});

describe('mock tensor config', () => {
  const problems = (tensor: string): string[] => {
    try {
      parseConfig(`models: [{ name: m, versions: [{ version: '1', backend: { kind: mock, tensor: ${tensor} } }] }]`, 'x.yaml');
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.problems.map((p) => `${p.path}: ${p.message}`);
    }
    assert.fail('expected the config to be rejected');
  };

  it('rejects an unknown datatype, an empty list, a repeated name and an output -1 after the first dimension', () => {
    assert.match(
      problems('{ inputs: [{ name: a, datatype: FP33, shape: [1] }], outputs: [{ name: b, datatype: FP32, shape: [1] }] }').join('\n'),
      /models\[0\]\.versions\[0\]\.backend\.tensor\.inputs\[0\]\.datatype/,
    );
    assert.match(problems('{ inputs: [], outputs: [{ name: b, datatype: FP32, shape: [1] }] }').join('\n'), /tensor\.inputs/);
    assert.deepEqual(
      problems(
        '{ inputs: [{ name: a, datatype: FP32, shape: [-1] }, { name: a, datatype: FP32, shape: [1] }], outputs: [{ name: b, datatype: FP32, shape: [2, -1] }] }',
      ),
      [
        'models[0].versions[0].backend.tensor.inputs[1].name: "a" appears twice',
        'models[0].versions[0].backend.tensor.outputs[0].shape: only the first dimension of an output may be -1 (the batch size)',
      ],
    );
  });
});
