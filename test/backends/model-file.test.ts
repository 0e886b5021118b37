/**
 * Model files by path or URL, with checksums: real files, and real downloads from a loopback HTTP
 * server serving the bundled models (redirects, error statuses, the cache, shared downloads).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cacheFileName, displayUrl, hashFile, resolveModelFile } from '../../src/backends/model-file.js';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { startFileServer, type FileServer } from '../helpers/file-server.js';
import { MODELS } from '../helpers/server.js';

const MLP = join(MODELS, 'tiny-mlp/1/model.onnx');
const MLP_BYTES = readFileSync(MLP);
const MLP_SHA = createHash('sha256').update(MLP_BYTES).digest('hex');
const WRONG_SHA = 'f'.repeat(64);

const tempDir = (): string => mkdtempSync(join(tmpdir(), 'infergate-model-cache-'));

describe('model files', () => {
  let store: FileServer;
  before(async () => {
    store = await startFileServer(MODELS);
  });
  after(() => store?.close());

  describe('a local path', () => {
    it('is loaded as it is, unhashed, without sha256', async () => {
      assert.equal(await resolveModelFile({ path: MLP, cacheDir: tempDir() }), MLP);
    });

    it('is loaded when its sha256 matches', async () => {
      assert.equal(await hashFile(MLP), MLP_SHA);
      assert.equal(await resolveModelFile({ path: MLP, sha256: MLP_SHA, cacheDir: tempDir() }), MLP);
    });

    it('fails with both hashes when its sha256 does not match', async () => {
      await assert.rejects(resolveModelFile({ path: MLP, sha256: WRONG_SHA, cacheDir: tempDir() }), {
        message: `sha256 mismatch for ${MLP}: expected ${WRONG_SHA}, got ${MLP_SHA}`,
      });
    });
  });

  describe('a URL', () => {
    it('is downloaded into the cache, verified, under a name from the URL', async () => {
      const cacheDir = tempDir();
      const url = `${store.url}/tiny-mlp/1/model.onnx`;
      const file = await resolveModelFile({ path: url, sha256: MLP_SHA, cacheDir });
      assert.equal(file, join(cacheDir, cacheFileName(url)));
      assert.match(cacheFileName(url), /^[0-9a-f]{32}-model\.onnx$/);
      assert.ok(readFileSync(file).equals(MLP_BYTES));
      assert.deepEqual(readdirSync(cacheDir), [cacheFileName(url)], 'no temporary file is left behind');
    });

    it('is taken from the cache when it is there, without a request', async () => {
      const cacheDir = tempDir();
      const url = `${store.url}/tiny-mlp/1/model.onnx?cached`;
      const seen = (): number => store.requests.filter((r) => r === '/tiny-mlp/1/model.onnx?cached').length;
      const before = seen();
      const first = await resolveModelFile({ path: url, sha256: MLP_SHA, cacheDir });
      assert.equal(await resolveModelFile({ path: url, sha256: MLP_SHA, cacheDir }), first);
      assert.equal(await resolveModelFile({ path: url, cacheDir }), first, 'without sha256 the cached copy is used as it is');
      assert.equal(seen() - before, 1);
    });

    it('is downloaded again when the cached copy does not match sha256', async () => {
      const cacheDir = tempDir();
      const url = `${store.url}/tiny-mlp/1/model.onnx?stale`;
      writeFileSync(join(cacheDir, cacheFileName(url)), 'old weights');
      const file = await resolveModelFile({ path: url, sha256: MLP_SHA, cacheDir });
      assert.ok(readFileSync(file).equals(MLP_BYTES));
    });

    it('fails with both hashes, and keeps nothing, when the download does not match sha256', async () => {
      const cacheDir = tempDir();
      const url = `${store.url}/tiny-mlp/1/model.onnx`;
      await assert.rejects(resolveModelFile({ path: url, sha256: WRONG_SHA, cacheDir }), {
        message: `sha256 mismatch for ${url}: expected ${WRONG_SHA}, got ${MLP_SHA}`,
      });
      assert.deepEqual(readdirSync(cacheDir), []);
    });

    it('shares one download among concurrent loads of the same URL', async () => {
      const cacheDir = tempDir();
      const path = '/tiny-embed/1/model.onnx';
      const before = store.requests.length;
      const files = await Promise.all([1, 2, 3].map(() => resolveModelFile({ path: `${store.url}${path}`, cacheDir })));
      assert.equal(new Set(files).size, 1);
      assert.deepEqual(store.requests.slice(before), [path]);
    });

    it('downloads from a server that closes the connection after the body, under backpressure', async () => {
      // The HTTP/1.0 way (python -m http.server): undici 7 crashed the process here (nodejs/undici#5360).
      const cacheDir = tempDir();
      const sha = createHash('sha256')
        .update(readFileSync(join(MODELS, 'tiny-chat/1/model.gguf')))
        .digest('hex');
      for (let i = 0; i < 5; i++) {
        const file = await resolveModelFile({ path: `${store.url}/close/tiny-chat/1/model.gguf?${i}`, sha256: sha, cacheDir });
        assert.equal(await hashFile(file), sha);
      }
    });

    it('follows redirects, a few', async () => {
      const cacheDir = tempDir();
      const file = await resolveModelFile({ path: `${store.url}/redirect/3/tiny-mlp/1/model.onnx`, sha256: MLP_SHA, cacheDir });
      assert.ok(readFileSync(file).equals(MLP_BYTES));
      await assert.rejects(resolveModelFile({ path: `${store.url}/redirect/9/tiny-mlp/1/model.onnx`, cacheDir }), (err: Error) => {
        assert.match(err.message, new RegExp(`^download of ${store.url}/redirect/9/tiny-mlp/1/model\\.onnx failed: .*redirect`, 'i'));
        return true;
      });
    });

    it('fails naming the URL and the status when the server does not answer 2xx', async () => {
      const cacheDir = tempDir();
      await assert.rejects(resolveModelFile({ path: `${store.url}/nope/model.onnx`, cacheDir }), {
        message: `download of ${store.url}/nope/model.onnx failed: the server answered HTTP 404`,
      });
      await assert.rejects(resolveModelFile({ path: `${store.url}/status/503/model.onnx`, cacheDir }), {
        message: `download of ${store.url}/status/503/model.onnx failed: the server answered HTTP 503`,
      });
      assert.deepEqual(readdirSync(cacheDir), []);
    });

    it('fails, and keeps nothing, when the server closes before the whole file', async () => {
      const cacheDir = tempDir();
      await assert.rejects(resolveModelFile({ path: `${store.url}/truncated/model.onnx`, cacheDir }), (err: Error) => {
        assert.match(err.message, new RegExp(`^download of ${store.url}/truncated/model\\.onnx failed`));
        return true;
      });
      assert.deepEqual(readdirSync(cacheDir), []);
    });

    it('fails naming the URL when nothing listens there', async () => {
      const closed = await startFileServer(MODELS);
      await closed.close();
      await assert.rejects(resolveModelFile({ path: `${closed.url}/tiny-mlp/1/model.onnx`, cacheDir: tempDir() }), (err: Error) => {
        assert.match(err.message, new RegExp(`^download of ${closed.url}/tiny-mlp/1/model\\.onnx failed: .*ECONNREFUSED`));
        return true;
      });
    });

    it('keeps credentials and query strings (pre-signed URLs) out of messages', async () => {
      assert.equal(
        displayUrl('https://user:secret@store.example.com/m/model.onnx?X-Amz-Signature=abc'),
        'https://store.example.com/m/model.onnx?…',
      );
      const url = `${store.url}/tiny-mlp/1/model.onnx?X-Amz-Signature=abc`;
      await assert.rejects(resolveModelFile({ path: url, sha256: WRONG_SHA, cacheDir: tempDir() }), (err: Error) => {
        assert.doesNotMatch(err.message, /abc/);
        assert.match(err.message, /^sha256 mismatch for http:\/\/127\.0\.0\.1:\d+\/tiny-mlp\/1\/model\.onnx\?…: /);
        return true;
      });
    });

    it('logs the download with its size when given a logger', async () => {
      const lines: Array<{ msg: string; bytes: unknown }> = [];
      const log = { info: (obj: { bytes?: unknown }, msg: string) => lines.push({ msg, bytes: obj.bytes }) };
      await resolveModelFile({ path: `${store.url}/tiny-mlp/1/model.onnx`, cacheDir: tempDir(), log: log as never });
      assert.deepEqual(lines, [
        { msg: 'downloading model file', bytes: MLP_BYTES.length },
        { msg: 'downloaded model file', bytes: MLP_BYTES.length },
      ]);
    });
  });

  describe('in the config', () => {
    const parse = (backend: string) =>
      parseConfig(`models: [{ name: m, versions: [{ version: '1', backend: ${backend} }] }]`, join(MODELS, 'config.yaml')).models[0]
        ?.versions[0]?.backend as unknown as Record<string, unknown>;

    it('keeps a URL path as it is (not resolved against the config file, not checked on disk) and defaults cache_dir', () => {
      for (const kind of ['onnx', 'llama']) {
        const backend = parse(`{ kind: ${kind}, path: 'https://store.example.com/m/model', sha256: '${MLP_SHA}' }`);
        assert.equal(backend.path, 'https://store.example.com/m/model');
        assert.equal(backend.sha256, MLP_SHA);
        assert.equal(backend.cache_dir, 'data/model-cache');
      }
      assert.equal(parse('{ kind: onnx, path: tiny-mlp/1/model.onnx }').path, MLP, 'a file path is still resolved');
    });

    it('rejects a URL path that does not parse, with its path', () => {
      assert.throws(
        () => parse(`{ kind: onnx, path: 'http://' }`),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.deepEqual(
            err.problems.map((p) => `${p.path}: ${p.message}`),
            ['models[0].versions[0].backend.path: not a valid URL: http://'],
          );
          return true;
        },
      );
    });

    it('rejects a sha256 that is not 64 lowercase hex digits, with its path', () => {
      for (const kind of ['onnx', 'llama']) {
        assert.throws(
          () => parse(`{ kind: ${kind}, path: 'https://store.example.com/m/model', sha256: '${MLP_SHA.toUpperCase()}' }`),
          (err: unknown) => {
            assert.ok(err instanceof ConfigError);
            assert.deepEqual(
              err.problems.map((p) => `${p.path}: ${p.message}`),
              [`models[0].versions[0].backend.sha256: must match the pattern ^[0-9a-f]{64}$, got "${MLP_SHA.toUpperCase()}"`],
            );
            return true;
          },
        );
      }
    });
  });
});
