/**
 * The backend plug-ins: every kind in the list is complete and consistent (its schema, factory and
 * capabilities agree with the backends it makes), and a kind joins config validation by joining
 * the list, with its own defaults, file options and rules.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import { pino } from 'pino';
import type { Task } from '../../src/core/call.js';
import { NO_OBSERVER } from '../../src/core/observer.js';
import { BACKEND_PLUGINS, createBackend, pluginOf } from '../../src/backends/index.js';
import { MockBackend } from '../../src/backends/mock/mock-backend.js';
import { backendPlugin, type BackendPlugin } from '../../src/backends/plugin.js';
import { ConfigError, parseConfig, type LoadOptions } from '../../src/config/load.js';
import { BACKEND_SCHEMAS, BackendSchema, ConfigSchema, configSchemaWith, type Config } from '../../src/config/schema.js';
import { Governor } from '../../src/policies/governor.js';
import { RetryBudget } from '../../src/policies/retry-budget.js';
import { MODELS } from '../helpers/server.js';

const TASKS: readonly Task[] = ['tensor', 'embedding', 'chat', 'completion'];
const KINDS = BACKEND_PLUGINS.map((p) => p.kind);

/** A config of one model whose versions have these backends (YAML flow mappings), relative to the bundled models. */
function config(backends: readonly string[], options: LoadOptions = {}): Config {
  const versions = backends.map((b, i) => `{ version: '${i + 1}', backend: ${b} }`).join(', ');
  return parseConfig(`models: [{ name: m, versions: [${versions}] }]`, `${MODELS}/config.yaml`, options);
}

/** The problems of a rejected one-version config, as `path: message`. */
function problems(backend: string, options: LoadOptions = {}): string[] {
  try {
    config([backend], options);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.path}: ${p.message}`);
  }
  assert.fail('expected the config to be rejected');
}

describe('backend plug-ins', () => {
  it('gives every kind once, with a schema of its own kind, a factory, tasks and a KServe platform', () => {
    assert.equal(new Set(KINDS).size, KINDS.length);
    for (const plugin of BACKEND_PLUGINS as readonly BackendPlugin[]) {
      const properties = plugin.schema.properties as Record<string, { const?: unknown; type?: unknown }>;
      assert.equal(properties.kind?.const, plugin.kind, `${plugin.kind}: its schema's kind`);
      assert.equal(typeof plugin.create, 'function', `${plugin.kind}: a factory`);
      assert.ok(plugin.capabilities.tasks.size > 0, `${plugin.kind}: serves some task`);
      for (const task of plugin.capabilities.tasks) assert.ok(TASKS.includes(task), `${plugin.kind}: ${task} is a task`);
      assert.equal(typeof plugin.capabilities.remote, 'boolean');
      // KServe clients know ONNX Runtime by this name; the other kinds report their own.
      assert.equal(plugin.capabilities.kservePlatform, plugin.kind === 'onnx' ? 'onnxruntime_onnx' : plugin.kind);
      for (const option of plugin.files) assert.equal(properties[option]?.type, 'string', `${plugin.kind}: file option ${option}`);
      assert.equal(pluginOf(plugin.kind), plugin);
    }
    assert.equal(pluginOf('tensorflow'), undefined);
  });

  it('is what config validation and the JSON Schema list, in its order', () => {
    assert.deepEqual(Object.keys(BACKEND_SCHEMAS), KINDS);
    assert.deepEqual(
      (BackendSchema.anyOf as ReadonlyArray<{ properties: { kind: { const: string } } }>).map((s) => s.properties.kind.const),
      KINDS,
    );
    assert.deepEqual(problems('{ kind: tensorflow }'), [
      `models[0].versions[0].backend.kind: must be one of ${KINDS.join(', ')}, got "tensorflow"`,
    ]);
    assert.equal(JSON.stringify(configSchemaWith(BACKEND_PLUGINS)), JSON.stringify(ConfigSchema));
  });

  it("makes, by each kind's factory, backends of that kind that serve exactly the tasks it declares between them", () => {
    const versions = config([
      '{ kind: onnx, path: tiny-mlp/1/model.onnx }',
      '{ kind: onnx, path: tiny-embed/1/model.onnx, task: embedding }',
      '{ kind: llama, path: tiny-chat/1/model.gguf }',
      "{ kind: openai, base_url: 'http://127.0.0.1:1/v1' }",
      "{ kind: anthropic, base_url: 'http://127.0.0.1:1' }",
      '{ kind: mock }',
      '{ kind: mock, tensor: { inputs: [{ name: i, datatype: FP32, shape: [-1] }], outputs: [{ name: o, datatype: FP32, shape: [-1] }] } }',
    ]).models[0]?.versions;
    const served = new Map<string, Set<Task>>();
    for (const version of versions ?? []) {
      const backend = createBackend(version.backend, { modelName: 'm' });
      assert.equal(backend.kind, version.backend.kind);
      const tasks = served.get(backend.kind) ?? new Set<Task>();
      for (const task of backend.tasks) tasks.add(task);
      served.set(backend.kind, tasks);
    }
    assert.deepEqual([...served.keys()], KINDS, 'every kind was made');
    for (const plugin of BACKEND_PLUGINS) assert.deepEqual(served.get(plugin.kind), plugin.capabilities.tasks, plugin.kind);
  });

  it('gives remote kinds retries and a breaker by default, and in-process kinds neither', () => {
    const policies = config(['{ kind: mock }']).models[0]?.versions[0]?.policies;
    assert.ok(policies !== undefined);
    const log = pino({ level: 'silent' });
    for (const plugin of BACKEND_PLUGINS) {
      const governor = Governor.create(policies, plugin.kind, new RetryBudget(0.2, 10), log, `m@${plugin.kind}`, NO_OBSERVER);
      assert.equal(governor !== null, plugin.capabilities.remote, plugin.kind);
      assert.equal(governor?.status()?.state ?? null, plugin.capabilities.remote ? 'closed' : null);
    }
    assert.deepEqual(
      BACKEND_PLUGINS.filter((p) => p.capabilities.remote).map((p) => p.kind),
      ['openai', 'anthropic'],
    );
  });

  describe('a kind added to the list', () => {
    const EchoSchema = Type.Object(
      {
        kind: Type.Literal('echo'),
        prompt_file: Type.String({ minLength: 1 }),
        repeat: Type.Integer({ minimum: 1, default: 2 }),
        separator: Type.Optional(Type.String()),
      },
      { additionalProperties: false },
    );
    const echo = backendPlugin({
      kind: 'echo',
      schema: EchoSchema,
      capabilities: { tasks: new Set(['chat', 'completion']), remote: false, kservePlatform: 'echo', provider: null },
      files: ['prompt_file'],
      check: (c) => (c.separator !== undefined && c.repeat === 1 ? [{ path: ['separator'], message: 'needs `repeat` > 1' }] : []),
      create: (c) => new MockBackend({ kind: 'mock', latency_ms: 0, text: 'echo'.repeat(c.repeat), embedding_dim: 4, stream_chunks: 1 }),
    });
    const plugins: LoadOptions = { plugins: [...BACKEND_PLUGINS, echo] };

    it('is rejected while it is not in the list', () => {
      assert.deepEqual(problems('{ kind: echo, prompt_file: x }'), [
        `models[0].versions[0].backend.kind: must be one of ${KINDS.join(', ')}, got "echo"`,
      ]);
    });

    it('is accepted once it is, with its defaults filled and its file options made absolute', () => {
      const backend = config(['{ kind: echo, prompt_file: tiny-mlp/1/model.onnx }', '{ kind: mock }'], plugins).models[0]?.versions[0]
        ?.backend;
      assert.deepEqual(backend, { kind: 'echo', prompt_file: `${MODELS}/tiny-mlp/1/model.onnx`, repeat: 2 });
    });

    it('is checked by its schema, its files and its own rules, in the words of every kind', () => {
      assert.deepEqual(problems('{ kind: echo, prompt_file: x, repeat: 0, nope: 1 }', plugins), [
        'models[0].versions[0].backend.repeat: must be >= 1, got 0',
        'models[0].versions[0].backend.nope: unknown option (check the spelling; see config/infergate.schema.json)',
      ]);
      assert.deepEqual(problems('{ kind: echo }', plugins), ['models[0].versions[0].backend.prompt_file: required']);
      assert.deepEqual(problems('{ kind: echo, prompt_file: /no/such.txt }', plugins), [
        'models[0].versions[0].backend.prompt_file: no such file: /no/such.txt',
      ]);
      assert.deepEqual(problems('{ kind: echo, prompt_file: tiny-mlp/1/model.onnx, repeat: 1, separator: "," }', plugins), [
        'models[0].versions[0].backend.separator: needs `repeat` > 1',
      ]);
      assert.deepEqual(problems('{ kind: tensorflow }', plugins), [
        `models[0].versions[0].backend.kind: must be one of ${[...KINDS, 'echo'].join(', ')}, got "tensorflow"`,
      ]);
    });

    it('leaves the built-in kinds as they were', () => {
      assert.deepEqual(problems("{ kind: openai, base_url: 'http://x/v1', endpoints: [{ base_url: 'http://y/v1' }] }", plugins), [
        'models[0].versions[0].backend: an openai backend needs exactly one of `base_url`, `endpoints` and `discovery`',
      ]);
      assert.deepEqual(
        config(['{ kind: mock }'], plugins).models[0]?.versions[0]?.backend,
        config(['{ kind: mock }']).models[0]?.versions[0]?.backend,
      );
    });
  });
});
