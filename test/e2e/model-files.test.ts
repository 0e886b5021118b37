/**
 * Model files by URL, with checksums, through the real server: versions whose `path` is a URL on a
 * loopback file server load from the download when their `sha256` matches, and are not ready
 * (/health/ready and their calls name both hashes) when it does not, as local files with a wrong
 * `sha256` are.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFileServer, type FileServer } from '../helpers/file-server.js';
import { get, MODELS, post, startServers, writeConfig, type RunningServer } from '../helpers/server.js';

const sha256Of = (file: string): string =>
  createHash('sha256')
    .update(readFileSync(join(MODELS, file)))
    .digest('hex');
const MLP_SHA = sha256Of('tiny-mlp/1/model.onnx');
const CHAT_SHA = sha256Of('tiny-chat/1/model.gguf');
const WRONG_SHA = '0'.repeat(64);
const BOTH_HASHES = new RegExp(`sha256 mismatch for .*: expected ${WRONG_SHA}, got ${MLP_SHA}`);
const tensor = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 32], data: Array.from({ length: 32 }, (_, i) => Math.sin(i)) }] };

describe('model files by URL with sha256', () => {
  let store: FileServer;
  let good: RunningServer;
  let bad: RunningServer;
  const goodCache = mkdtempSync(join(tmpdir(), 'infergate-model-cache-'));
  const badCache = mkdtempSync(join(tmpdir(), 'infergate-model-cache-'));

  before(async () => {
    store = await startFileServer(MODELS);
    [good, bad] = await startServers([
      {
        config: writeConfig(`
models:
  - name: tiny-mlp
    versions:
      - version: '1'
        backend: { kind: onnx, path: '${store.url}/tiny-mlp/1/model.onnx', sha256: '${MLP_SHA}', cache_dir: '${goodCache}' }
  - name: tiny-chat
    versions:
      - version: '1'
        backend: { kind: llama, path: '${store.url}/tiny-chat/1/model.gguf', sha256: '${CHAT_SHA}', cache_dir: '${goodCache}', threads: 1, sequences: 1 }
`),
      },
      {
        config: writeConfig(`
models:
  - name: tiny-mlp
    versions:
      - { version: '1', backend: { kind: onnx, path: '${store.url}/tiny-mlp/1/model.onnx', sha256: '${MLP_SHA}', cache_dir: '${badCache}' } }
      - { version: '2', weight: 0, backend: { kind: onnx, path: '${store.url}/tiny-mlp/1/model.onnx', sha256: '${WRONG_SHA}', cache_dir: '${badCache}' } }
  - name: local-mlp
    versions:
      - { version: '1', backend: { kind: onnx, path: \${MODELS}/tiny-mlp/1/model.onnx, sha256: '${WRONG_SHA}' } }
  - name: local-chat
    versions:
      - { version: '1', backend: { kind: llama, path: \${MODELS}/tiny-chat/1/model.gguf, sha256: '${WRONG_SHA}', threads: 1 } }
`),
      },
    ]);
  });

  after(async () => {
    await Promise.all([good?.stop(), bad?.stop()]);
    await store?.close();
  });

  it('loads versions from their downloads when the hashes match, and serves them', async () => {
    const ready = await get(`${good.url}/health/ready`);
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.deepEqual(ready.body.models, { 'tiny-mlp': true, 'tiny-chat': true });
    const infer = await post(`${good.url}/v2/models/tiny-mlp/infer`, tensor);
    assert.equal(infer.status, 200, JSON.stringify(infer.body));
    assert.deepEqual(infer.body.outputs[0].shape, [1, 8]);
    const chat = await post(`${good.url}/v1/chat/completions`, {
      model: 'tiny-chat',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 2,
    });
    assert.equal(chat.status, 200, JSON.stringify(chat.body));
    assert.equal(readdirSync(goodCache).length, 2, 'both files are in the cache, nothing else');
  });

  it('makes /health/ready 503 naming both hashes when a download or a local file does not match', async () => {
    const ready = await get(`${bad.url}/health/ready`);
    assert.equal(ready.status, 503);
    assert.equal(ready.body.status, 'failed');
    // A model is ready when every version is; its version 1 still serves (the last test).
    assert.deepEqual(ready.body.models, { 'tiny-mlp': false, 'local-mlp': false, 'local-chat': false });
    const reasons = Object.fromEntries(
      ready.body.versions.map((v: { model: string; version: string; reason: string }) => [`${v.model}@${v.version}`, v.reason]),
    );
    assert.deepEqual(Object.keys(reasons), ['tiny-mlp@2', 'local-mlp@1', 'local-chat@1']);
    assert.equal(reasons['tiny-mlp@2'], `sha256 mismatch for ${store.url}/tiny-mlp/1/model.onnx: expected ${WRONG_SHA}, got ${MLP_SHA}`);
    assert.equal(
      reasons['local-mlp@1'],
      `sha256 mismatch for ${join(MODELS, 'tiny-mlp/1/model.onnx')}: expected ${WRONG_SHA}, got ${MLP_SHA}`,
    );
    assert.equal(
      reasons['local-chat@1'],
      `sha256 mismatch for ${join(MODELS, 'tiny-chat/1/model.gguf')}: expected ${WRONG_SHA}, got ${CHAT_SHA}`,
    );
    assert.equal(readdirSync(badCache).length, 1, 'the download that did not match is not kept');
  });

  it('answers calls to a version whose file did not match 503 model_not_ready, and serves the one that did', async () => {
    const pinned = await post(`${bad.url}/v2/models/tiny-mlp/versions/2/infer`, tensor);
    assert.equal(pinned.status, 503);
    assert.equal(pinned.body.code, 'model_not_ready');
    assert.match(pinned.body.error, BOTH_HASHES);
    const local = await post(`${bad.url}/v2/models/local-mlp/infer`, tensor);
    assert.equal(local.status, 503);
    assert.equal(local.body.code, 'model_not_ready');
    assert.match(local.body.error, BOTH_HASHES);
    const chat = await post(`${bad.url}/v1/chat/completions`, { model: 'local-chat', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(chat.status, 503);
    assert.equal(chat.body.error.code, 'model_not_ready');
    assert.match(chat.body.error.message, new RegExp(`expected ${WRONG_SHA}, got ${CHAT_SHA}`));
    assert.equal((await post(`${bad.url}/v2/models/tiny-mlp/versions/1/infer`, tensor)).status, 200);
    assert.doesNotMatch(bad.output(), /internal error/);
  });
});
