/**
 * `infergate instances|models|weight|rollout|register` as users run them, against a real server
 * alone (its fleet store in memory, one worker): what the commands change is what that one process
 * serves and lists.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, freePort, startServer, writeConfig, type RunningServer } from './helpers/server.js';
import { ADMIN_KEY } from './helpers/tenancy.js';

const mock = 'backend: { kind: mock, latency_ms: 0 }';
const CONFIG = `
auth: { mode: keys, admin_key: '${ADMIN_KEY}' }
models:
  - name: m
    versions:
      - { version: '1', weight: 1, ${mock} }
      - { version: '2', weight: 0, ${mock} }
  - name: r
    versions:
      - { version: '1', weight: 1, ${mock} }
      - { version: '2', weight: 0, ${mock} }
`;

/** Every plan field, each as a flag. */
// prettier-ignore
const PLAN_FLAGS = [
  '--steps', '1,5,25',
  '--step-seconds', '600',
  '--min-calls', '100',
  '--interval-seconds', '1',
  '--max-error-rate', '0.01',
  '--max-p99-ratio', '1.5',
  '--max-ttft-p99-ratio', '1.5',
];

/** Output of a child process so far, and a wait for a line that matches. */
function watch(child: ChildProcess): { text: () => string; until: (re: RegExp, ms?: number) => Promise<void> } {
  let text = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (text += d));
  return {
    text: () => text,
    async until(re, ms = 10_000) {
      for (const deadline = Date.now() + ms; !re.test(text); await sleep(50)) {
        if (Date.now() > deadline) throw new Error(`no ${re} in:\n${text}`);
      }
    },
  };
}

const exited = (child: ChildProcess): Promise<number | null> =>
  child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once('exit', (code) => resolve(code)));

describe('infergate fleet commands', () => {
  let server: RunningServer;
  const children: ChildProcess[] = [];
  const env = (): NodeJS.ProcessEnv => ({ ...process.env, INFERGATE_URL: server.url, INFERGATE_ADMIN_KEY: ADMIN_KEY });
  const run = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: env() });
  const json = (...args: string[]): any => {
    const res = run(...args, '--json');
    assert.equal(res.status, 0, res.stderr);
    return JSON.parse(res.stdout);
  };
  const sidecar = (...args: string[]): ChildProcess => {
    const child = spawn(process.execPath, [BIN, 'register', '--gateway', server.url, ...args], {
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    return child;
  };
  const version = (name: string, v: string): any =>
    json('models')
      .data.find((m: any) => m.name === name)
      .versions.find((x: any) => x.version === v);

  before(async () => {
    server = await startServer({ config: writeConfig(CONFIG), env: { ETCD_URL: '' } });
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await server.stop();
  });

  it('lists the fleet commands in its help', () => {
    const help = run('--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /infergate weight MODEL VERSION --clear/);
    assert.match(help.stdout, /infergate rollout pause\|resume\|abort\|promote MODEL ID/);
    assert.match(help.stdout, /infergate register --url URL --model NAME\[@VERSION\]/);
  });

  it('lists the server itself in instances, with its models and lease age', () => {
    const body = json('instances');
    assert.equal(body.store, 'memory');
    const self = body.data.find((i: any) => i.id === body.self);
    assert.equal(self.kind, 'infergate');
    assert.equal(self.url, server.url);
    const table = run('instances');
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /^id\s+kind\s+url\s+labels\s+workers\s+models\s+in_flight\s+lease_age$/m);
    const row = new RegExp(`^${body.self}\\s+infergate\\s+${server.url}\\s+-\\s+1\\s+m@1,2 r@1,2\\s+0\\s+\\d+\\.\\ds$`, 'm');
    assert.match(table.stdout, row);
  });

  it('sets a weight override that models shows with its source, and clears it back to the config', () => {
    const set = run('weight', 'm', '2', '3', '--by', 'alice');
    assert.equal(set.status, 0, set.stderr);
    assert.equal(set.stdout, 'm@2: weight 3 (override by alice)\n');
    const v2 = version('m', '2');
    assert.equal(v2.weight, 3);
    assert.equal(v2.config_weight, 0);
    assert.equal(v2.weight_source.from, 'override');
    assert.equal(v2.weight_source.by, 'alice');
    const table = run('models').stdout;
    assert.match(table, /^model\s+version\s+weight\s+source\s+ready\s+rollout$/m);
    assert.match(table, /^m\s+2\s+3\s+override by alice at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+1\/1 replicas\s+-$/m);
    assert.match(table, /^m\s+1\s+1\s+config\s+1\/1 replicas\s+-$/m);

    const clear = run('weight', 'm', '2', '--clear');
    assert.equal(clear.status, 0, clear.stderr);
    assert.equal(clear.stdout, 'm@2: weight 0 (config)\n');
    assert.deepEqual(version('m', '2').weight_source, { from: 'config' });
    assert.equal(version('m', '2').weight, 0);
  });

  it("exits 1 with the server's message for an unknown model or version", () => {
    const model = run('weight', 'nope', '2', '3');
    assert.equal(model.status, 1);
    assert.match(model.stderr, /^infergate: 404 model "nope" does not exist\n$/);
    const v = run('weight', 'm', '9', '--clear');
    assert.equal(v.status, 1);
    assert.match(v.stderr, /^infergate: 404 .*"9"/);
    const status = run('rollout', 'status', 'nope');
    assert.equal(status.status, 1);
    assert.match(status.stderr, /model "nope" does not exist/);
  });

  it('exits 2 with a usage message for a bad weight or a missing argument, sending nothing', () => {
    const bad = run('weight', 'm', '2', 'lots');
    assert.equal(bad.status, 2);
    assert.equal(bad.stderr, 'infergate: the weight N must be a non-negative number, got "lots"\n');
    for (const args of [
      ['weight', 'm', '2'],
      ['weight', 'm', '2', '3', '--clear'],
      ['rollout', 'start', 'm'],
      ['rollout', 'frobnicate', 'm', 'x'],
    ]) {
      const res = run(...args);
      assert.equal(res.status, 2, args.join(' '));
      assert.match(res.stderr, /^infergate: usage: infergate (weight|rollout)/);
    }
    assert.equal(run('rollout', 'start', 'r', '2', '--steps', '1,five').status, 2);
    assert.equal(run('register', '--url', 'http://127.0.0.1:9/').status, 2);
    assert.equal(run('register', '--url', 'http://127.0.0.1:9/', '--model', 'x', '--ttl', '0').status, 2);
    assert.equal(run('register', '--url', 'http://127.0.0.1:9/', '--model', 'x', '--label', 'nolabel').status, 2);
    assert.equal(version('m', '2').weight_source.from, 'config');
  });

  it('needs the admin key, and explains a server it cannot reach', () => {
    const keyless = spawnSync(process.execPath, [BIN, 'models', '--url', server.url], {
      encoding: 'utf8',
      env: { ...process.env, INFERGATE_ADMIN_KEY: '' },
    });
    assert.equal(keyless.status, 1);
    assert.match(keyless.stderr, /^infergate: 401 /);
    const down = run('instances', '--url', 'http://127.0.0.1:9');
    assert.equal(down.status, 2);
    assert.match(down.stderr, /cannot reach http:\/\/127\.0\.0\.1:9/);
  });

  it('registers an external server once, listed by instances until its lease ends', () => {
    const res = run('register', '--once', '--gateway', server.url, '--url', 'http://127.0.0.1:9/', '--model', 'ext@1', '--ttl', '5');
    assert.equal(res.status, 0, res.stderr);
    assert.equal(res.stdout, 'registered 127.0.0.1:9: http://127.0.0.1:9/ (ext@1), for 5s\n');
    const listed = json('instances').data.find((i: any) => i.id === '127.0.0.1:9');
    assert.equal(listed.kind, 'external');
    assert.deepEqual(
      listed.models.map((m: any) => `${m.name}@${m.version}`),
      ['ext@1'],
    );
    assert.equal(listed.lease_ms, 5000);
    assert.match(run('instances').stdout, /^127\.0\.0\.1:9\s+external\s+http:\/\/127\.0\.0\.1:9\/\s+-\s+-\s+ext@1\s+-\s+\d+\.\ds$/m);
    assert.deepEqual(
      version('m', '1').replicas.map((r: any) => r.instance),
      [json('instances').self],
    );
  });

  it('keeps a server registered past its TTL while it runs, then deregisters on SIGTERM and exits 0', async () => {
    const child = sidecar(
      '--url',
      'http://127.0.0.1:7/',
      '--model',
      'ext-loop@2',
      '--model',
      'other',
      '--id',
      'ext-loop',
      '--ttl',
      '3',
      '--label',
      'zone=z1',
      '--label',
      'pool=gpu',
    );
    const out = watch(child);
    await out.until(/^registered ext-loop: http:\/\/127\.0\.0\.1:7\/ \(ext-loop@2, other@1\), renewing every 1\.0s \(ttl 3s\)$/m);
    await sleep(3500); // past the TTL: only renewals keep it
    const listed = json('instances').data.find((i: any) => i.id === 'ext-loop');
    assert.ok(listed, `ext-loop is gone:\n${out.text()}`);
    assert.ok(listed.lease_age_ms < 3000, `lease ${listed.lease_age_ms} ms old`);
    assert.match(
      run('instances').stdout,
      /^ext-loop\s+external\s+http:\/\/127\.0\.0\.1:7\/\s+pool=gpu,zone=z1\s+-\s+ext-loop@2 other@1\s/m,
    );
    child.kill('SIGTERM');
    assert.equal(await exited(child), 0);
    assert.match(out.text(), /^deregistered ext-loop$/m);
    assert.equal(out.text().match(/^registered/gm)?.length, 1, 'one line when registered, not one per renewal');
    assert.equal(
      json('instances').data.find((i: any) => i.id === 'ext-loop'),
      undefined,
    );
  });

  it('keeps retrying while the gateway is down, a line per failure, and exits 0 on SIGINT', async () => {
    const port = await freePort();
    const child = sidecar('--gateway', `http://127.0.0.1:${port}`, '--url', 'http://127.0.0.1:7/', '--model', 'x', '--ttl', '3');
    const out = watch(child);
    await out.until(/(cannot reach http:\/\/127\.0\.0\.1:\d+: .*; retrying in 1\.0s\n[^]*){2}/);
    assert.equal(child.exitCode, null);
    child.kill('SIGINT');
    assert.equal(await exited(child), 0);
    assert.match(out.text(), /never registered: nothing to remove/);
  });

  it('survives a failed renewal: retries until the gateway answers again', async () => {
    const other = await startServer({ config: writeConfig(CONFIG), env: { ETCD_URL: '' } });
    const child = spawn(
      process.execPath,
      [BIN, 'register', '--gateway', other.url, '--url', 'http://127.0.0.1:7/', '--model', 'x', '--ttl', '3'],
      {
        env: env(),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.push(child);
    const out = watch(child);
    try {
      await out.until(/^registered 127\.0\.0\.1:7/m);
    } finally {
      await other.stop();
    }
    await out.until(/infergate: register: cannot reach .*; retrying in 1\.0s/);
    await sleep(1200);
    assert.equal(child.exitCode, null, out.text());
    child.kill('SIGTERM');
    assert.equal(await exited(child), 0);
    assert.match(out.text(), /leaves when its lease ends/);
  });

  it('starts, pauses, resumes and aborts a rollout, each change shown by rollout status and models', () => {
    const start = run('rollout', 'start', 'r', '2', ...PLAN_FLAGS, '--by', 'ci');
    assert.equal(start.status, 0, start.stderr);
    const id = /rollout (r-[0-9a-f]+) running, step 1 of 3 \(1% of unpinned traffic\), started by ci/.exec(start.stdout)?.[1];
    assert.ok(id, start.stdout);
    const status = () => json('rollout', 'status', 'r');
    assert.equal(status().state, 'running');
    assert.deepEqual(status().plan.steps, [1, 5, 25]);
    assert.match(
      run('models').stdout,
      new RegExp(`^r\\s+2\\s+1\\s+override by rollout ${id} at \\S+\\s+1/1 replicas\\s+${id} running step 1 \\(1%\\)$`, 'm'),
    );
    assert.match(run('models').stdout, /^r\s+1\s+99\s+override by rollout .*\s+-$/m);

    const again = run('rollout', 'start', 'r', '2', ...PLAN_FLAGS);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already has rollout/);

    assert.equal(run('rollout', 'pause', 'r', id).status, 0);
    assert.equal(status().state, 'paused');
    assert.match(run('rollout', 'status', 'r').stdout, new RegExp(`^r@2: rollout ${id} paused, step 1 of 3 .*\\n  reason: pause by `));
    const twice = run('rollout', 'pause', 'r', id);
    assert.equal(twice.status, 1);
    assert.match(twice.stderr, /^infergate: 400 rollout r-\w+ is paused: it cannot pause/);

    assert.equal(run('rollout', 'resume', 'r', id, '--by', 'bob').status, 0);
    assert.equal(status().state, 'running');
    assert.equal(status().reason, 'resume by bob');

    const abort = run('rollout', 'abort', 'r', id);
    assert.equal(abort.status, 0, abort.stderr);
    assert.match(abort.stdout, /aborted, step 1 of 3 \(0% of unpinned traffic\)/);
    assert.equal(status().state, 'aborted');
    assert.equal(version('r', '2').weight, 0);

    const unknown = run('rollout', 'promote', 'r', 'r-nope');
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /^infergate: 404 model "r" has no rollout "r-nope"/);
    assert.equal(run('rollout', 'status', 'm').stdout, 'm: no rollout\n');
  });

  it('starts a rollout with only a version, the plan defaults filled in by the server', () => {
    const res = run('rollout', 'start', 'm', '2');
    assert.equal(res.status, 0, res.stderr);
    const started = json('rollout', 'status', 'm');
    assert.deepEqual(started.plan.steps, [1, 5, 25, 50, 100]);
    assert.equal(started.plan.gates.max_error_rate, 0.01);
    assert.equal(run('rollout', 'abort', 'm', started.id).status, 0);
  });
});
