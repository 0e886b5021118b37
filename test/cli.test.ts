/** The `infergate` command as users run it. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { BIN, freePort, get, startServer, writeConfig } from './helpers/server.js';

const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

describe('infergate CLI', () => {
  it('prints help and version', () => {
    const help = run(['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /infergate serve \[--config FILE\] \[--host H\] \[--port N\]/);
    assert.match(help.stdout, /config validate FILE/);
    assert.match(run(['--version']).stdout, /^\d+\.\d+\.\d+\n$/);
  });

  it('refuses to serve without authentication on a non-loopback host unless the config says so', () => {
    const config = writeConfig('models: []\n');
    const refused = run(['serve', '--config', config, '--host', '0.0.0.0', '--port', '0']);
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /auth\.mode: refusing to serve without authentication on 0\.0\.0\.0/);
    const keysWithoutAdmin = run(['config', 'validate', writeConfig('auth: { mode: keys }\nmodels: []\n')]);
    assert.equal(keysWithoutAdmin.status, 1);
    assert.match(keysWithoutAdmin.stdout + keysWithoutAdmin.stderr, /auth\.admin_key: `keys` mode needs an admin key/);
  });

  it('lists the tenant commands in its help and explains an unreachable server', () => {
    assert.match(run(['--help']).stdout, /infergate keys rotate KEY_ID/);
    const down = run(['tenants', 'list', '--url', 'http://127.0.0.1:9']);
    assert.equal(down.status, 2);
    assert.match(down.stderr, /cannot reach http:\/\/127\.0\.0\.1:9/);
  });

  it('exits 2 with a message on an unknown command or flag', () => {
    const cmd = run(['frobnicate']);
    assert.equal(cmd.status, 2);
    assert.match(cmd.stderr, /unknown command "frobnicate"/);
    const flag = run(['serve', '--nope']);
    assert.equal(flag.status, 2);
    assert.match(flag.stderr, /Unknown option '--nope'/);
  });

  it('validates a good config and lists every problem of a bad one with its line', () => {
    const good = run(['config', 'validate', 'config/default.yaml']);
    assert.equal(good.status, 0, good.stderr);
    assert.match(good.stdout, /OK \(4 models, 5 versions\)/);
    const bad = writeConfig(`server:
  port: 99999
  listen: 8080
models:
  - name: a
    versions:
      - version: '1'
        weight: -1
        backend: { kind: onnx, path: /nowhere/model.onnx }
`);
    const res = run(['config', 'validate', bad]);
    assert.equal(res.status, 1);
    assert.match(res.stderr, /config\.yaml:2:9 server\.port: must be <= 65535, got 99999/);
    assert.match(res.stderr, /config\.yaml:3:11 server\.listen: option removed: use server\.host and server\.port/);
    assert.match(res.stderr, /config\.yaml:8:17 models\[0\]\.versions\[0\]\.weight: must be >= 0, got -1/);
    assert.match(res.stderr, /3 problem\(s\)/);
  });

  it('refuses to serve a bad config, printing the problems', () => {
    const bad = writeConfig('models: [{ name: a }]\n');
    const res = run(['serve', '--config', bad, '--port', '0']);
    assert.equal(res.status, 2);
    assert.match(res.stderr, /models\[0\]\.versions: required/);
  });

  it('refuses a port that is not a port number with one line naming the setting, not a stack trace', () => {
    const config = writeConfig('grpc: { port: 0 }\nmodels: []\n');
    const cases: Array<[string[], NodeJS.ProcessEnv, RegExp]> = [
      [[], { PORT: 'abc' }, /^infergate: PORT must be a port number in \[0, 65535\], got "abc"\n$/],
      [[], { PORT: '8080x' }, /^infergate: PORT must be a port number in \[0, 65535\], got "8080x"\n$/],
      [[], { PORT: '70000' }, /^infergate: PORT must be a port number in \[0, 65535\], got "70000"\n$/],
      [['--port', 'abc'], {}, /^infergate: --port must be a non-negative integer, got "abc"\n$/],
      [['--port', '70000'], {}, /^infergate: --port must be a port number in \[0, 65535\], got 70000\n$/],
      [['--grpc-port', 'x'], {}, /^infergate: --grpc-port must be a non-negative integer, got "x"\n$/],
      [['--grpc-port', '65536'], {}, /^infergate: --grpc-port must be a port number in \[0, 65535\], got 65536\n$/],
    ];
    for (const [args, env, message] of cases) {
      const res = run(['serve', '--config', config, ...args], env);
      assert.equal(res.status, 2, `${args.join(' ')} ${JSON.stringify(env)}: ${res.stderr}`);
      assert.match(res.stderr, message);
    }
  });

  it('takes the config from INFERGATE_CONFIG and the port from PORT, and exits 0 on SIGTERM', async () => {
    const config = writeConfig(`grpc: { port: 0 }\nmodels: [{ name: from-env, versions: [{ version: '1', backend: { kind: mock } }] }]\n`);
    const port = await freePort();
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [BIN, 'serve', '--workers', '1'], {
      env: { ...process.env, INFERGATE_CONFIG: config, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let models = null;
      for (let i = 0; i < 100 && models === null; i++) {
        models = await get(`http://127.0.0.1:${port}/v1/models`).catch(() => null);
        if (models === null) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(models?.body.data[0].id, 'from-env');
    } finally {
      child.kill('SIGTERM');
    }
    const code = await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(code, 0);
  });

  it('serves with several worker processes sharing one port', async () => {
    const config = writeConfig(`models: [{ name: m, versions: [{ version: '1', backend: { kind: mock } }] }]\n`);
    const server = await startServer({ config, args: ['--workers', '2'] });
    try {
      assert.match(server.output(), /"workers":2/);
      const answers = await Promise.all(Array.from({ length: 20 }, () => get(`${server.url}/v1/models`)));
      assert.ok(answers.every((a) => a.status === 200));
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
});
