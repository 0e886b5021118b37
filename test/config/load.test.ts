/** Config loading: defaults, environment substitution, every problem with its path and line, and a frozen result. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { renderJsonSchema } from '../../src/config/write-schema.js';
import { MODELS, ROOT } from '../helpers/server.js';

const mlp = `${MODELS}/tiny-mlp/1/model.onnx`;

function problems(yaml: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(yaml, 'test.yaml', { env });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`);
  }
  assert.fail('expected the config to be rejected');
}

describe('config loading', () => {
  it('fills every default', () => {
    const config = parseConfig(`models: [{ name: m, versions: [{ version: '1', backend: { kind: onnx, path: ${mlp} } }] }]`, 'x.yaml');
    assert.deepEqual(config.server, {
      host: '127.0.0.1',
      port: 8080,
      workers: 1,
      accept_policy: 'direct',
      cpu_affinity: 'auto',
      body_limit_bytes: 4 * 1024 * 1024,
      max_json_depth: 64,
      max_connections: 10_000,
      headers_timeout_ms: 10_000,
      request_timeout_ms: 30_000,
      log_level: 'info',
      access_log: false,
      keep_alive_timeout_ms: 72_000,
      watch_config: false,
      shutdown_grace_ms: 0,
      shutdown_timeout_ms: 30_000,
      retry_budget: { ratio: 0.2, min_per_second: 10 },
    });
    assert.deepEqual(config.auth, {
      mode: 'none',
      trusted_header: { tenant_header: 'x-tenant-id', key_header: 'x-key-id', trusted_peers: [] },
      admin_key: '',
      allow_none_on_public_host: false,
      refresh_interval_ms: 5000,
    });
    assert.deepEqual(config.storage, { database_url: '', pool_size: 4 });
    assert.deepEqual(config.state, { redis_url: '', key_prefix: 'infergate:', change_ack_timeout_ms: 2000 });
    assert.deepEqual(config.usage, { enabled: true, flush_interval_ms: 1000 });
    assert.deepEqual(config.metrics, { enabled: true, tenant_label: true });
    assert.deepEqual(config.tracing, { enabled: true, sample_ratio: 1 });
    assert.deepEqual(config.grpc, {
      enabled: true,
      port: 8081,
      max_concurrent_streams: 100,
      idle_timeout_ms: 300_000,
      handshake_timeout_ms: 10_000,
      keepalive_ms: 30_000,
    });
    const version = config.models[0]?.versions[0];
    assert.equal(version?.weight, 0);
    assert.deepEqual(version?.policies, {
      timeout_ms: 600_000,
      max_timeout_ms: 600_000,
      retry: { base_delay_ms: 100, max_delay_ms: 5_000, on_sent: false },
      breaker: { failure_rate: 0, window_ms: 10_000, minimum_calls: 20, half_open_after_ms: 10_000 },
      admission: { max_concurrent: 0, queue_size: 64, sla_ms: { high: 100, normal: 1_000, low: 5_000 } },
    });
    assert.deepEqual(config.models[0]?.fallbacks, []);
    assert.deepEqual(version?.backend, {
      kind: 'onnx',
      path: mlp,
      task: 'tensor',
      threads: 1,
      batching: { enabled: true, max_batch_size: 64, max_queue_delay_ms: 1 },
      tokenizer: { kind: 'hashed-words', vocab_size: 4096, max_tokens: 512 },
      cache_dir: 'data/model-cache',
    });
    assert.deepEqual(config.models[0]?.aliases, []);
  });

  it('fills the llama defaults, resolves its GGUF path, and names a missing file', () => {
    const config = parseConfig(
      `models: [{ name: c, versions: [{ version: '1', backend: { kind: llama, path: tiny-chat/1/model.gguf } }] }]`,
      `${MODELS}/config.yaml`,
    );
    assert.deepEqual(config.models[0]?.versions[0]?.backend, {
      kind: 'llama',
      path: `${MODELS}/tiny-chat/1/model.gguf`,
      sequences: 4,
      queue_size: 64,
      threads: 'auto',
      gpu: 'auto',
      gpu_layers: 'auto',
      flash_attention: 'auto',
      chat_template: 'auto',
      cache_dir: 'data/model-cache',
    });
    assert.deepEqual(
      problems(`models: [{ name: c, versions: [{ version: '1', backend: { kind: llama, path: /no/such.gguf, gpu: rocm } }] }]`),
      ['1:98 models[0].versions[0].backend.gpu: must be one of auto, cuda, vulkan, metal, false, got "rocm"'],
    );
    assert.deepEqual(problems(`models: [{ name: c, versions: [{ version: '1', backend: { kind: llama, path: /no/such.gguf } }] }]`), [
      '1:78 models[0].versions[0].backend.path: no such file: /no/such.gguf',
    ]);
  });

  it('resolves model paths relative to the config file', () => {
    const config = parseConfig(
      `models: [{ name: m, versions: [{ version: '1', backend: { kind: onnx, path: tiny-mlp/1/model.onnx } }] }]`,
      `${MODELS}/config.yaml`,
    );
    assert.equal((config.models[0]?.versions[0]?.backend as { path: string }).path, mlp);
  });

  it('substitutes ${VAR} and ${VAR:-default} in values, converting types to the schema', () => {
    const config = parseConfig(
      `server: { port: '\${P}', host: '\${H:-0.0.0.0}' }
models: [{ name: m, versions: [{ version: '1', backend: { kind: openai, base_url: 'http://x/v1', api_key: 'Bearer-\${KEY}' } }] }]`,
      'x.yaml',
      { env: { P: '9000', KEY: 's3cret' } },
    );
    assert.equal(config.server.port, 9000);
    assert.equal(config.server.host, '0.0.0.0');
    assert.equal((config.models[0]?.versions[0]?.backend as { api_key: string }).api_key, 'Bearer-s3cret');
  });

  it('names a missing environment variable where it is used', () => {
    assert.deepEqual(problems(`server:\n  host: \${NOPE}\n`), [
      '2:9 server.host: environment variable NOPE is not set (write ${NOPE:-default} for a default)',
    ]);
  });

  it('reports every problem at once, with path, line and column', () => {
    const found = problems(`server:
  port: -1
  wokers: 2
models:
  - name: 'bad name!'
    versions:
      - version: '1'
        backend: { kind: onnx }
      - version: '2'
        backend: { kind: tensorflow }
`);
    assert.deepEqual(found, [
      '2:9 server.port: must be >= 0, got -1',
      '3:11 server.wokers: unknown option (check the spelling; see config/infergate.schema.json)',
      '5:11 models[0].name: must match the pattern ^[A-Za-z0-9][A-Za-z0-9._:/@-]*$, got "bad name!"',
      '8:18 models[0].versions[0].backend.path: required',
      '10:26 models[0].versions[1].backend.kind: must be one of onnx, llama, openai, anthropic, mock, got "tensorflow"',
    ]);
  });

  it('words each kind of schema problem by its kind: bounds, lengths, item counts, choices, unknown and missing fields', () => {
    assert.deepEqual(
      problems(`server: { port: 70000, max_json_depth: 0, log_level: loud, nope: 1, tls: { cert: '', key: k } }
models: [{ name: m, versions: [] }]
`),
      [
        '1:17 server.port: must be <= 65535, got 70000',
        '1:40 server.max_json_depth: must be >= 1, got 0',
        '1:54 server.log_level: must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
        '1:66 server.nope: unknown option (check the spelling; see config/infergate.schema.json)',
        '1:82 server.tls.cert: must be at least 1 character, got ""',
        '2:31 models[0].versions: must have at least 1 item, got []',
      ],
    );
  });

  it('checks rules that span fields', () => {
    const found = problems(`models:
  - name: a
    aliases: [b]
    default_version: '3'
    versions:
      - { version: '1', backend: { kind: mock } }
      - { version: '1', backend: { kind: onnx, path: /no/such/model.onnx } }
  - name: b
    versions:
      - { version: '1', backend: { kind: mock } }
`);
    assert.deepEqual(found, [
      '4:22 models[0].default_version: "3" is not one of the versions (1)',
      '7:20 models[0].versions[1].version: duplicate version "1"',
      '7:54 models[0].versions[1].backend.path: no such file: /no/such/model.onnx',
      '8:11 models[1].name: "b" is already used by models[0]',
    ]);
  });

  it('refuses a headers time-out longer than the whole request time-out', () => {
    assert.deepEqual(problems('server: { headers_timeout_ms: 20000, request_timeout_ms: 15000 }\nmodels: []\n'), [
      '1:31 server.headers_timeout_ms: must be <= server.request_timeout_ms (15000), got 20000',
    ]);
  });

  it('reports a YAML syntax error with its line', () => {
    const [first] = problems('server:\n  port: [1,\n');
    assert.match(first as string, /^3:1 : YAML syntax/);
  });

  it('returns a frozen config', () => {
    const config = parseConfig(`models: [{ name: m, versions: [{ version: '1', backend: { kind: mock } }] }]`, 'x.yaml');
    assert.ok(Object.isFrozen(config.server));
    assert.throws(() => {
      (config.server as { port: number }).port = 1;
    }, TypeError);
  });

  it('publishes the current JSON Schema (run npm run schema after changing the schema)', () => {
    assert.equal(readFileSync(`${ROOT}/config/infergate.schema.json`, 'utf8'), renderJsonSchema());
  });
});
