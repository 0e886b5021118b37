/**
 * The compose setup (deploy/compose), read as compose reads it (the YAML anchor, `${VAR}`
 * interpolation): two infergate replicas built from the repository's Dockerfile and running the
 * image's config, on the postgres and redis services, behind nginx, scraped by Prometheus and shown
 * by Grafana. Each cross-reference is checked against the file it names: ports and drain time
 * against the image's config (which `infergate config validate` accepts and the real server serves,
 * health check path included), database and Redis URLs against their services, nginx's upstreams
 * and Prometheus's targets against the replicas, and every host path against the checkout.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { get, ROOT, startServer, writeImageConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN_KEY, cli } from '../helpers/tenancy.js';

const COMPOSE = join(ROOT, 'deploy/compose');
const IMAGE_CONFIG = join(ROOT, 'deploy/image/config.yaml');
/** Where the Dockerfile puts deploy/image/config.yaml, and the INFERGATE_CONFIG it sets. */
const CONFIG_IN_IMAGE = '/etc/infergate/config.yaml';

/** Compose's interpolation: `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`. */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (match, braced: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
      if (match === '$$') return '$';
      const name = (braced ?? bare) as string;
      const value = env[name];
      const missing = value === undefined || (op?.startsWith(':') === true && value === '');
      if (!missing) return value;
      if (op?.endsWith('-')) return arg as string;
      if (op?.endsWith('?')) throw new Error(`${name}: ${arg}`);
      return '';
    },
  );
}

/** Interpolates every string value of a parsed compose file (compose never interpolates keys). */
function interpolateAll(node: unknown, env: Record<string, string>): any {
  if (typeof node === 'string') return interpolate(node, env);
  if (Array.isArray(node)) return node.map((item) => interpolateAll(item, env));
  if (node !== null && typeof node === 'object') {
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateAll(v, env)]));
  }
  return node;
}

/** compose.yaml as compose sees it with INFERGATE_ADMIN_KEY (and nothing else) in the environment. */
function loadCompose(env: Record<string, string> = { INFERGATE_ADMIN_KEY: ADMIN_KEY }): any {
  return interpolateAll(parse(readFileSync(join(COMPOSE, 'compose.yaml'), 'utf8'), { merge: true }), env);
}

/** A service's `environment`, written as a map or as a list of `NAME=value`. */
function environment(service: any): Record<string, string> {
  const env = service.environment ?? {};
  if (!Array.isArray(env)) return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v ?? '')]));
  return Object.fromEntries(env.map((line: string) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
}

/** Compose's durations (`40s`, `1m30s`, `500ms`) in seconds. */
function seconds(duration: string): number {
  const units: Record<string, number> = { h: 3600, m: 60, s: 1, ms: 0.001, us: 0.000001 };
  const parts = [...duration.matchAll(/(\d+(?:\.\d+)?)(ms|us|h|m|s)/g)];
  assert.equal(parts.map((p) => p[0]).join(''), duration, `"${duration}" is a compose duration`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * (units[p[2] as string] as number), 0);
}

/** A published port, `HOST:CONTAINER` (optionally `IP:HOST:CONTAINER` and `/proto`), as numbers. */
function published(port: string | number): { host: number; container: number } {
  const parts = String(port)
    .replace(/\/\w+$/, '')
    .split(':');
  return { host: Number(parts.at(-2) ?? parts.at(-1)), container: Number(parts.at(-1)) };
}

/** A service's mounts as source and target; a source with a path is a host path, else a named volume. */
function mounts(service: any): Array<{ source: string; target: string; bind: boolean }> {
  return (service.volumes ?? []).map((v: string | { type?: string; source: string; target: string }) => {
    if (typeof v !== 'string') return { source: v.source, target: v.target, bind: v.type === 'bind' };
    const [source, target] = v.split(':') as [string, string];
    return { source, target, bind: /^[./~]/.test(source) };
  });
}

/** One nginx directive: its name, arguments and, for a block, the directives inside. */
interface Directive {
  readonly name: string;
  readonly args: string[];
  readonly block: Directive[] | null;
}

/** Parses nginx.conf into its directives (comments dropped, quotes kept out of the words). */
function parseNginx(text: string): Directive[] {
  const tokens = [...text.matchAll(/#[^\n]*|'([^']*)'|"([^"]*)"|([{};])|([^\s{};'"#]+)/g)]
    .filter((m) => !m[0].startsWith('#'))
    .map((m) => m[1] ?? m[2] ?? m[3] ?? m[4] ?? '');
  let at = 0;
  const block = (): Directive[] => {
    const out: Directive[] = [];
    while (at < tokens.length && tokens[at] !== '}') {
      const words: string[] = [];
      while (at < tokens.length && tokens[at] !== ';' && tokens[at] !== '{') words.push(tokens[at++] as string);
      const [name = '', ...args] = words;
      if (tokens[at++] === '{') {
        out.push({ name, args, block: block() });
        at++; // the closing }
      } else out.push({ name, args, block: null });
    }
    return out;
  };
  return block();
}

const find = (directives: Directive[] | null, name: string): Directive[] => (directives ?? []).filter((d) => d.name === name);

describe('the compose setup (deploy/compose)', () => {
  const compose = loadCompose();
  const services: Record<string, any> = compose.services;
  const replicas = Object.keys(services).filter((name) => /^(localhost\/)?infergate:/.test(services[name].image ?? ''));
  const env = environment(services[replicas[0] as string] ?? {});
  const localConfig = () => writeImageConfig(readFileSync(IMAGE_CONFIG, 'utf8'));
  let config: Config;

  before(() => {
    const file = localConfig();
    config = parseConfig(readFileSync(file, 'utf8'), file, { env });
  });

  it('runs exactly two infergate replicas, built from the repository root and its Dockerfile, the same way', () => {
    assert.equal(replicas.length, 2, `two services run an infergate: image, found ${replicas.join(', ') || 'none'}`);
    for (const name of replicas) {
      const build = services[name].build;
      const context = resolve(COMPOSE, typeof build === 'string' ? build : build?.context);
      assert.equal(resolve(context), resolve(ROOT), `${name}: the build context is the repository root`);
      const dockerfile = typeof build === 'string' ? 'Dockerfile' : (build.dockerfile ?? 'Dockerfile');
      assert.ok(existsSync(join(context, dockerfile)), `${name}: ${dockerfile} exists in the build context`);
    }
    // The same service but for its host name, which is its name: what the fleet registry advertises.
    const [a, b] = replicas.map((name) => {
      const { hostname, ...rest } = services[name];
      assert.equal(hostname, name, `${name}: its host name is its service name`);
      return rest;
    });
    assert.deepEqual(b, a, 'both replicas are the same service');
  });

  it('has postgres, redis, an nginx lb, prometheus and grafana', () => {
    const images: Record<string, RegExp> = {
      postgres: /^(docker\.io\/)?(library\/)?postgres:/,
      redis: /^(docker\.io\/)?(library\/)?redis:/,
      lb: /^(docker\.io\/)?(library\/)?nginx:/,
      prometheus: /prometheus:/,
      grafana: /grafana:/,
    };
    for (const [name, image] of Object.entries(images)) {
      assert.ok(services[name] !== undefined, `the service ${name} exists`);
      assert.match(services[name].image, image, `${name}'s image`);
    }
  });

  it('refuses to start without INFERGATE_ADMIN_KEY', () => {
    assert.throws(() => loadCompose({}), /INFERGATE_ADMIN_KEY/);
  });

  it("runs the image's config, deploy/image/config.yaml, in keys mode", () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, new RegExp(`^COPY deploy/image/config\\.yaml ${CONFIG_IN_IMAGE}$`, 'm'), 'the Dockerfile copies the config');
    assert.match(
      dockerfile,
      new RegExp(`^ENV .*\\bINFERGATE_CONFIG=${CONFIG_IN_IMAGE}\\b`, 'm'),
      'the Dockerfile points INFERGATE_CONFIG at it',
    );
    for (const name of replicas) {
      const service = services[name];
      assert.equal(environment(service).INFERGATE_CONFIG, undefined, `${name} sets no INFERGATE_CONFIG of its own`);
      assert.ok(!JSON.stringify(service.command ?? []).includes('--config'), `${name} names no other --config`);
      for (const m of mounts(service)) assert.ok(!CONFIG_IN_IMAGE.startsWith(m.target), `${name} mounts nothing over ${CONFIG_IN_IMAGE}`);
    }
    assert.equal(config.auth.mode, 'keys', 'auth.mode with the compose environment');
  });

  it('passes `infergate config validate` with the compose environment', async () => {
    const check = await cli(['config', 'validate', localConfig()], env);
    assert.equal(check.code, 0, check.stdout + check.stderr);
  });

  it("exposes the config's HTTP and gRPC ports and health-checks server.port", () => {
    for (const name of replicas) {
      const service = services[name];
      assert.deepEqual(
        service.expose.map(Number).sort(),
        [config.server.port, config.grpc.port].sort(),
        `${name}: expose is server.port and grpc.port`,
      );
      const url = /https?:\/\/[^'"\s)]+/.exec(JSON.stringify(service.healthcheck?.test ?? []))?.[0];
      assert.ok(url !== undefined, `${name}: the health check fetches a URL`);
      assert.equal(Number(new URL(url).port), config.server.port, `${name}: the health check's port is server.port`);
    }
  });

  it('connects to the postgres service as its user, password and database, and to the redis service', () => {
    const postgres = environment(services.postgres);
    const database = new URL(env.DATABASE_URL ?? '');
    assert.match(database.protocol, /^postgres(ql)?:$/, 'DATABASE_URL is a PostgreSQL URL');
    assert.equal(database.hostname, 'postgres', "DATABASE_URL's host is the postgres service");
    assert.equal(database.port || '5432', '5432', "DATABASE_URL's port is PostgreSQL's");
    assert.equal(decodeURIComponent(database.username), postgres.POSTGRES_USER, 'its user is POSTGRES_USER');
    assert.equal(decodeURIComponent(database.password), postgres.POSTGRES_PASSWORD, 'its password is POSTGRES_PASSWORD');
    assert.equal(database.pathname.slice(1), postgres.POSTGRES_DB, 'its database is POSTGRES_DB');
    const redis = new URL(env.REDIS_URL ?? '');
    assert.equal(redis.protocol, 'redis:', 'REDIS_URL is a Redis URL');
    assert.equal(redis.hostname, 'redis', "REDIS_URL's host is the redis service");
    assert.equal(redis.port || '6379', '6379', "REDIS_URL's port is Redis's");
  });

  it('starts the replicas once postgres and redis are healthy, and health-checks every one of them', () => {
    for (const name of replicas) {
      assert.ok(services[name].healthcheck?.test, `${name} has a health check`);
      for (const dependency of ['postgres', 'redis']) {
        assert.equal(
          services[name].depends_on?.[dependency]?.condition,
          'service_healthy',
          `${name} waits for ${dependency} to be healthy`,
        );
        assert.ok(services[dependency].healthcheck?.test, `${dependency} has a health check`);
      }
    }
  });

  it('gives a stopping replica at least shutdown_grace_ms + shutdown_timeout_ms to drain', () => {
    const drain = (config.server.shutdown_grace_ms + config.server.shutdown_timeout_ms) / 1000;
    for (const name of replicas) {
      const period = seconds(services[name].stop_grace_period ?? '10s');
      assert.ok(period >= drain, `${name}: stop_grace_period ${period} s < the server's ${drain} s drain`);
    }
  });

  it('balances HTTP and gRPC (over HTTP/2) across the replicas at server.port and grpc.port in nginx, published on 8080 and 8081', () => {
    const http = find(parseNginx(readFileSync(join(COMPOSE, 'nginx.conf'), 'utf8')), 'http')[0];
    assert.ok(http !== undefined, 'nginx.conf has an http block');
    const upstream = (name: string) =>
      find(find(http.block, 'upstream').find((u) => u.args[0] === name)?.block ?? null, 'server').map((s) => s.args[0]);
    const listeners = find(http.block, 'server').map((server) => {
      const location = find(server.block, 'location').find((l) => l.args[0] === '/');
      const pass = find(location?.block ?? null, 'proxy_pass')[0] ?? find(location?.block ?? null, 'grpc_pass')[0];
      return { listen: find(server.block, 'listen')[0]?.args ?? [], pass: pass?.name, target: new URL(pass?.args[0] ?? 'x:').host };
    });
    const byPass = (pass: string) => {
      const found = listeners.filter((l) => l.pass === pass);
      assert.equal(found.length, 1, `one nginx server block uses ${pass}`);
      return found[0] as (typeof listeners)[number];
    };
    const [httpServer, grpcServer] = [byPass('proxy_pass'), byPass('grpc_pass')];
    assert.deepEqual(upstream(httpServer.target).sort(), replicas.map((r) => `${r}:${config.server.port}`).sort(), 'the HTTP upstream');
    assert.deepEqual(upstream(grpcServer.target).sort(), replicas.map((r) => `${r}:${config.grpc.port}`).sort(), 'the gRPC upstream');
    assert.ok(grpcServer.listen.includes('http2'), `the gRPC server block listens with http2: listen ${grpcServer.listen.join(' ')}`);
    const ports = (services.lb.ports ?? []).map(published);
    for (const [host, listen] of [
      [8080, httpServer.listen[0]],
      [8081, grpcServer.listen[0]],
    ] as const) {
      const port = ports.find((p: { host: number }) => p.host === host);
      assert.ok(port !== undefined, `the lb publishes ${host}`);
      assert.equal(String(port.container), listen, `the lb's ${host} is the nginx server block listening on ${listen}`);
    }
    const body = find(find(http.block, 'server')[0]?.block ?? null, 'client_max_body_size')[0]?.args[0] ?? '';
    const [, size = '', unit = ''] = /^(\d+)([kmg]?)$/i.exec(body) ?? [];
    const bytes = Number(size) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[unit.toLowerCase()] ?? NaN);
    assert.equal(bytes, config.server.body_limit_bytes, `client_max_body_size ${body} is server.body_limit_bytes`);
  });

  it('scrapes /metrics of every replica at server.port with the admin key, from a file the prometheus command writes', () => {
    const prometheus = parse(readFileSync(join(COMPOSE, 'prometheus.yml'), 'utf8'));
    const jobs = (prometheus.scrape_configs ?? []).filter((j: any) =>
      (j.static_configs ?? []).some((s: any) => s.targets.some((t: string) => replicas.some((r) => t.startsWith(`${r}:`)))),
    );
    assert.equal(jobs.length, 1, 'one scrape job targets the replicas');
    const job = jobs[0];
    const targets = job.static_configs.flatMap((s: { targets: string[] }) => s.targets).sort();
    assert.deepEqual(targets, replicas.map((r) => `${r}:${config.server.port}`).sort(), 'the targets are the replicas at server.port');
    assert.equal(job.metrics_path ?? '/metrics', '/metrics', 'metrics_path');
    const file = job.authorization?.credentials_file;
    assert.ok(typeof file === 'string', 'the job sends authorization credentials from a file');
    const service = services.prometheus;
    const script = [...[service.entrypoint ?? []].flat(), ...[service.command ?? []].flat()].join(' ');
    assert.match(
      script,
      new RegExp(`\\$\\{?INFERGATE_ADMIN_KEY\\}?"?\\s*>\\s*${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}(\\s|$)`),
      `the command writes ${file}`,
    );
    assert.equal(environment(service).INFERGATE_ADMIN_KEY, env.INFERGATE_ADMIN_KEY, "prometheus has the replicas' admin key");
    const targetsOf = mounts(service).map((m) => m.target);
    const configFile = /--config\.file=(\S+)/.exec(script)?.[1];
    assert.ok(configFile !== undefined && targetsOf.includes(configFile), `the --config.file ${configFile} is mounted`);
    for (const rules of prometheus.rule_files ?? []) assert.ok(targetsOf.includes(rules), `the rule file ${rules} is mounted`);
  });

  it('mounts only host paths that exist, and named volumes that are declared', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const m of mounts(service)) {
        if (m.bind) assert.ok(existsSync(resolve(COMPOSE, m.source)), `${name}: ${m.source} (relative to deploy/compose) exists`);
        else assert.ok(m.source in (compose.volumes ?? {}), `${name}: the volume ${m.source} is declared`);
      }
    }
  });

  it('points Grafana at the prometheus service on the port it publishes, with the dashboard where its provider looks', () => {
    const { datasources } = parse(readFileSync(join(COMPOSE, 'grafana/datasources.yaml'), 'utf8'));
    const url = new URL(datasources.find((d: { type: string }) => d.type === 'prometheus').url);
    assert.equal(url.hostname, 'prometheus', 'the datasource URL names the prometheus service');
    assert.equal(url.port, '9090', "the datasource URL's port is Prometheus's 9090");
    const ports = (services.prometheus.ports ?? []).map(published);
    assert.ok(
      ports.some((p: { container: number }) => p.container === 9090),
      'the prometheus service publishes 9090',
    );
    const { providers } = parse(readFileSync(join(COMPOSE, 'grafana/dashboards.yaml'), 'utf8'));
    const folder = providers[0].options.path as string;
    assert.ok(
      mounts(services.grafana).some((m) => m.target.startsWith(`${folder}/`) && m.target.endsWith('.json')),
      `a dashboard is mounted in ${folder}`,
    );
  });

  describe("the image's config on the real server, with the compose environment", () => {
    let server: RunningServer;

    before(async () => {
      // The helper's own SQLite file and in-memory limits stand in for the postgres and redis services.
      const { DATABASE_URL: _database, REDIS_URL: _redis, ...rest } = env;
      server = await startServer({ config: localConfig(), env: rest });
    });

    after(async () => {
      await server?.stop();
    });

    it("answers 200 on the replicas' health check path", async () => {
      for (const name of replicas) {
        const url = /https?:\/\/[^'"\s)]+/.exec(JSON.stringify(services[name].healthcheck.test))?.[0] as string;
        const res = await get(server.url + new URL(url).pathname);
        assert.equal(res.status, 200, `${name}: GET ${new URL(url).pathname}: ${JSON.stringify(res.body)}`);
      }
    });
  });
});
