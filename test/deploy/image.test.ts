/**
 * The container image, run for real with podman: `deploy/image/build.sh` (which `.ci/run` calls)
 * builds it from the repository's Dockerfile and INFERGATE_IMAGE names it. Started with no
 * arguments but the ports, it serves the bundled models without authentication (and says so) on
 * every interface, with a read-only root file system as Kubernetes runs it; the OpenAI, KServe v2
 * and gRPC APIs answer; the server runs as a non-root user; SIGTERM drains and exits 0; one
 * environment variable and the admin key turn keys mode on. The image holds no build tools, npm
 * cache or other platforms' binaries, and carries its labels, ports, volumes and health check.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { credentials, type Client } from '@grpc/grpc-js';
import { parse } from 'yaml';
import { grpcServices } from '../helpers/grpc.js';
import { freePort, get, post, ROOT } from '../helpers/server.js';

const IMAGE = process.env.INFERGATE_IMAGE ?? '';
const hasPodman = spawnSync('podman', ['--version']).status === 0;
const skip =
  IMAGE === ''
    ? 'INFERGATE_IMAGE is not set: build the image with deploy/image/build.sh (.ci/run does) and export INFERGATE_IMAGE'
    : !hasPodman
      ? 'podman is not installed'
      : false;

// As deploy/image/build.sh runs podman here: runc with cgroupfs, host networking, explicit limits.
const PODMAN = ['--runtime', '/usr/sbin/runc', '--cgroup-manager=cgroupfs'];
const RUN = ['--network=host', '--ulimit', 'nofile=10000:10000', '--ulimit', 'nproc=4096:4096'];
const exec = promisify(execFile);
const imageConfig = parse(readFileSync(join(ROOT, 'deploy/image/config.yaml'), 'utf8')) as {
  server: { shutdown_timeout_ms: number; shutdown_grace_ms?: number };
};

async function podman(...args: string[]): Promise<string> {
  const { stdout } = await exec('podman', [...PODMAN, ...args], { maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

interface Container {
  readonly name: string;
  readonly url: string;
  readonly grpc: string;
  logs(): Promise<string>;
}

const started: string[] = [];

/** Starts the image with `env` (and the two ports) and resolves once /health/ready says ready. */
async function start(env: Record<string, string>, extra: string[] = []): Promise<Container> {
  // Host networking: the container binds these on the host.
  const [http, grpc] = [await freePort(), await freePort()];
  const name = `infergate-test-${process.pid}-${started.length}`;
  const vars = Object.entries({ PORT: String(http), INFERGATE_GRPC_PORT: String(grpc), ...env }).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
  await podman('run', '-d', '--name', name, ...RUN, ...extra, ...vars, IMAGE);
  started.push(name);
  const container = {
    name,
    url: `http://127.0.0.1:${http}`,
    grpc: `127.0.0.1:${grpc}`,
    logs: async () => {
      const { stdout, stderr } = await exec('podman', [...PODMAN, 'logs', name]);
      return stdout + stderr;
    },
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    const state = (await podman('inspect', '--format', '{{.State.Status}}', name)).trim();
    if (state !== 'running') assert.fail(`the container is ${state}:\n${await container.logs()}`);
    const ready = await fetch(`${container.url}/health/ready`).then(
      (r) => r.status === 200,
      () => false,
    );
    // Ready, and the start-up line is out (the primary prints it once every worker listens).
    if (ready && /listening on/.test(await container.logs())) return container;
    if (Date.now() > deadline) assert.fail(`not ready in 120 s:\n${await container.logs()}`);
    await sleep(250);
  }
}

/** Runs `script` in a throwaway container of the image, with a shell as its entry point. */
function inImage(script: string): Promise<string> {
  return podman('run', '--rm', ...RUN, '--entrypoint', '/bin/sh', IMAGE, '-c', script);
}

function unary(client: Client, method: string, request: object): Promise<any> {
  return new Promise((resolve, reject) =>
    (client as unknown as Record<string, (r: object, cb: (e: Error | null, res: unknown) => void) => void>)[method]!.call(
      client,
      request,
      (err: Error | null, res: unknown) => (err === null ? resolve(res) : reject(err)),
    ),
  );
}

describe('the container image', { skip }, () => {
  after(async () => {
    for (const name of started) await podman('rm', '-f', '-v', name).catch(() => undefined);
  });

  describe('run with no arguments (a read-only root, as in Kubernetes)', () => {
    let c: Container;
    before(async () => {
      c = await start({}, ['--read-only']);
    });

    it('prints the start-up line, listening on every interface, and warns that nothing is authenticated', async () => {
      const logs = await c.logs();
      assert.match(logs, new RegExp(`infergate \\S+ listening on http://0\\.0\\.0\\.0:${new URL(c.url).port} \\(gRPC 0\\.0\\.0\\.0:`));
      assert.match(logs, /running WITHOUT authentication on a non-loopback address/);
      assert.match(logs, /"config":"\/etc\/infergate\/config.yaml"/);
    });

    it('serves the bundled models over the OpenAI API, KServe v2 and gRPC', async () => {
      const models = await get(`${c.url}/v1/models`);
      assert.equal(models.status, 200);
      const ids = (models.body.data as Array<{ id: string }>).map((m) => m.id);
      for (const id of ['tiny-mlp', 'tiny-embed', 'tiny-types', 'tiny-chat']) assert.ok(ids.includes(id), `${id} in ${ids.join(', ')}`);

      const chat = await post(`${c.url}/v1/chat/completions`, {
        model: 'tiny-chat',
        messages: [{ role: 'user', content: 'Hi' }],
        max_tokens: 8,
      });
      assert.equal(chat.status, 200, JSON.stringify(chat.body));
      assert.equal(chat.body.object, 'chat.completion');
      assert.ok(chat.body.usage.completion_tokens > 0);

      const data = Array.from({ length: 32 }, (_, i) => i);
      const infer = await post(`${c.url}/v2/models/tiny-mlp/versions/1/infer`, {
        inputs: [{ name: 'input', shape: [1, 32], datatype: 'FP32', data }],
      });
      assert.equal(infer.status, 200, JSON.stringify(infer.body));
      assert.equal(infer.body.model_name, 'tiny-mlp');
      assert.ok(infer.body.outputs[0].data.length > 0);

      const { Inference } = grpcServices();
      const client = new Inference(c.grpc, credentials.createInsecure());
      try {
        assert.deepEqual(await unary(client, 'ServerLive', {}), { live: true });
        assert.deepEqual(await unary(client, 'ServerReady', {}), { ready: true });
        assert.deepEqual(await unary(client, 'ModelReady', { name: 'tiny-chat' }), { ready: true });
      } finally {
        client.close();
      }
    });

    it('runs every process as the non-root user 10001', async () => {
      // Seen from the host: tini (the container's PID 1), the server's primary and its workers.
      const processes: Array<{ pid: string; uid: string; name: string }> = [];
      const visit = (pid: string): void => {
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        processes.push({ pid, uid: /^Uid:\s+(\d+)/m.exec(status)?.[1] ?? '?', name: /^Name:\s+(\S+)/m.exec(status)?.[1] ?? '?' });
        for (const task of readdirSync(`/proc/${pid}/task`))
          for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) visit(child);
      };
      visit((await podman('inspect', '--format', '{{.State.Pid}}', c.name)).trim());
      assert.equal(processes[0]?.name, 'tini');
      assert.ok(processes.filter((p) => p.name === 'node').length >= 2, JSON.stringify(processes));
      for (const p of processes) assert.equal(p.uid, '10001', JSON.stringify(p));
    });

    it("passes the image's health check", async () => {
      await podman('healthcheck', 'run', c.name);
    });

    it('on SIGTERM, finishes the call in flight and exits 0 well within the drain time', async () => {
      const streaming = fetch(`${c.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny-chat', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 48, stream: true }),
      }).then(async (r) => ({ status: r.status, text: await r.text() }));
      await sleep(50);
      const signalled = performance.now();
      await podman('kill', '--signal', 'TERM', c.name);
      const code = (await podman('wait', c.name)).trim();
      const seconds = (performance.now() - signalled) / 1000;
      assert.equal(code, '0', await c.logs());
      const limit = ((imageConfig.server.shutdown_grace_ms ?? 0) + imageConfig.server.shutdown_timeout_ms) / 1000;
      assert.ok(seconds < limit, `exited after ${seconds.toFixed(1)} s, past the ${limit} s drain`);
      const answer = await streaming;
      assert.equal(answer.status, 200);
      assert.match(answer.text, /data: \[DONE\]/);
      assert.match(await c.logs(), /shutting down/);
    });
  });

  it('turns keys mode on with INFERGATE_AUTH_MODE=keys and the admin key', async () => {
    const admin = { authorization: 'Bearer image-test-admin-key-0123456789' };
    const c = await start({ INFERGATE_AUTH_MODE: 'keys', INFERGATE_ADMIN_KEY: 'image-test-admin-key-0123456789' });
    assert.doesNotMatch(await c.logs(), /WITHOUT authentication/);
    const anonymous = await post(`${c.url}/v1/embeddings`, { model: 'tiny-embed', input: 'hi' });
    assert.equal(anonymous.status, 401);
    const tenant = await post(`${c.url}/admin/tenants`, { id: 'team', models: ['*'] }, admin);
    assert.equal(tenant.status, 201, JSON.stringify(tenant.body));
    const key = await post(`${c.url}/admin/tenants/team/keys`, { name: 'ci' }, admin);
    assert.equal(key.status, 201, JSON.stringify(key.body));
    const embedded = await post(
      `${c.url}/v1/embeddings`,
      { model: 'tiny-embed', input: 'hi' },
      { authorization: `Bearer ${key.body.key}` },
    );
    assert.equal(embedded.status, 200, JSON.stringify(embedded.body));
    // The key is in the SQLite file of the data volume, which the image's user can write.
    assert.match(await podman('exec', c.name, 'ls', '-l', '/var/lib/infergate'), /infergate\.db/);
  });

  it('holds only what runs: no build tools, npm or its cache, no other platforms or accelerators', async () => {
    const listing = await inImage(
      'for c in npm npx gcc g++ cc make python3 tsc; do command -v $c; done; ls -d /root/.npm /var/lib/infergate/.npm ~/.npm 2>/dev/null;' +
        'echo ---; ls /app/node_modules/@node-llama-cpp; echo ---; ls /app/node_modules/onnxruntime-node/bin/napi-v6; ls /app/node_modules/onnxruntime-node/bin/napi-v6/linux;' +
        'echo ---; ls /app/node_modules/typescript 2>/dev/null; find /app/node_modules \\( -iname "*cuda*" -o -iname "*vulkan*" \\) \\( -type d -o -size +64k \\) | head -5',
    );
    const [tools, llama, ort, rest] = listing.split('---\n');
    assert.equal(tools, '', `present: ${tools}`);
    assert.deepEqual(llama?.trim().split('\n'), ['linux-x64']);
    assert.deepEqual(ort?.trim().split('\n'), ['linux', 'x64']);
    assert.equal(rest, '', `present: ${rest}`);
    const size = Number((await podman('image', 'inspect', '--format', '{{.Size}}', IMAGE)).trim());
    assert.ok(size < 400e6, `the image is ${Math.round(size / 1e6)} MB`);
  });

  it('carries OCI labels, its ports, volumes, user, health check and tini as PID 1', async () => {
    const [image] = JSON.parse(await podman('image', 'inspect', IMAGE)) as Array<{ Config: Record<string, any> }>;
    const config = image!.Config;
    for (const label of ['title', 'description', 'version', 'revision', 'created', 'licenses', 'source'])
      assert.ok(config.Labels?.[`org.opencontainers.image.${label}`], `label org.opencontainers.image.${label}`);
    assert.deepEqual(Object.keys(config.ExposedPorts ?? {}).sort(), ['8080/tcp', '8081/tcp']);
    assert.deepEqual(Object.keys(config.Volumes ?? {}).sort(), ['/etc/infergate', '/var/lib/infergate']);
    assert.equal(config.User, '10001:10001');
    assert.deepEqual(config.Entrypoint?.slice(0, 2), ['/usr/bin/tini', '--']);
    const healthcheck = (await podman('image', 'inspect', '--format', '{{json .HealthCheck}}', IMAGE)).trim();
    assert.match(healthcheck, /\/health\/live/);
  });
});
