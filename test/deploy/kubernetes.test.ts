/**
 * The Kubernetes manifests (deploy/kubernetes) as kustomize renders them: overlays/single,
 * overlays/fleet, and the fleet with components/queue-autoscaling. Every object matches the
 * Kubernetes (and Prometheus Operator) schema with no unknown field; the Deployment, its
 * ConfigMap's config.yaml, the Dockerfile, the Services, the ServiceMonitor, the autoscaler and the
 * disruption budget agree with each other; and the ConfigMap's config, run on the real server,
 * answers every probe path and exports every metric the prometheus-adapter rule queries.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, PersistentVolumeClaim, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { get, ROOT, startServer, writeImageConfig, type RunningServer } from '../helpers/server.js';
import { ADMIN, ADMIN_KEY, cli } from '../helpers/tenancy.js';

const K8S = join(ROOT, 'deploy/kubernetes');

/** The kustomize at hand: `kubectl kustomize` or the standalone `kustomize build`; null when neither is installed. */
function findKustomize(): string[] | null {
  if (spawnSync('kubectl', ['version', '--client']).status === 0) return ['kubectl', 'kustomize'];
  if (spawnSync('kustomize', ['version']).status === 0) return ['kustomize', 'build'];
  return null;
}
const KUSTOMIZE = findKustomize();

/** A rendered object; its spec's shape is what the assertions read. */
interface K8sObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly labels?: Record<string, string> };
  readonly [field: string]: any;
}

/** How each rendered kind is validated: its kubernetes-models class, keyed by apiVersion/kind. */
type ModelClass = { new (data: any): { validate(): void }; readonly prototype: { validate(): void } };
const SCHEMAS: Record<string, ModelClass> = {
  'v1/ConfigMap': ConfigMap,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
};

/**
 * The fields of `obj` the schema does not know. kubernetes-models' `validate()` checks types,
 * enums and required fields but, as the OpenAPI schemas it is generated from say nothing of
 * additional properties, accepts any unknown one (a misspelt `readOnlyRootFS` passes). Its
 * validator reads every property the schema names (and every key of a map), so a field it never
 * reads is one the schema does not have.
 */
function unknownFields(Model: ModelClass, obj: K8sObject): string[] {
  const read = new WeakMap<object, Set<string>>();
  const proxies = new WeakMap<object, object>();
  const track = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    let proxy = proxies.get(value);
    if (proxy === undefined) {
      const seen = new Set<string>();
      read.set(value, seen);
      proxy = new Proxy(value, {
        get(target, key, receiver) {
          if (typeof key === 'string') seen.add(key);
          return track(Reflect.get(target, key, receiver));
        },
      });
      proxies.set(value, proxy);
    }
    return proxy;
  };
  Model.prototype.validate.call(track(obj));
  const unknown: string[] = [];
  const walk = (value: unknown, path: string): void => {
    if (value === null || typeof value !== 'object') return;
    if (Array.isArray(value)) return value.forEach((item, i) => walk(item, `${path}[${i}]`));
    for (const [key, child] of Object.entries(value)) {
      if (read.get(value)?.has(key)) walk(child, `${path}.${key}`);
      else unknown.push(`${path}.${key}`);
    }
  };
  walk(obj, '');
  return unknown;
}

/** Validates one object against its kind's schema; an unknown kind, a schema error or an unknown field fails, naming the object. */
function assertSchema(obj: K8sObject): void {
  const key = `${obj.apiVersion}/${obj.kind}`;
  const what = `${key} "${obj.metadata?.name}"`;
  const Model = SCHEMAS[key];
  assert.ok(Model !== undefined, `${what}: no schema for the kind ${key}; add its kubernetes-models class to SCHEMAS`);
  try {
    new Model(obj).validate();
  } catch (err) {
    assert.fail(`${what} does not match the Kubernetes schema: ${(err as Error).message}`);
  }
  assert.deepEqual(unknownFields(Model, obj), [], `${what} has fields its schema does not know (misspelt or misplaced)`);
}

/** Renders a kustomization folder to its objects. */
function render(dir: string, ...flags: string[]): K8sObject[] {
  const [command, ...args] = KUSTOMIZE as string[];
  const run = spawnSync(command as string, [...args, ...flags, dir], { encoding: 'utf8' });
  assert.equal(run.status, 0, `${[command, ...args, ...flags, dir].join(' ')} failed:\n${run.stderr}`);
  return parseAllDocuments(run.stdout).map((doc) => doc.toJS() as K8sObject);
}

/** The fleet with the queue-autoscaling component, through a kustomization in a temporary folder (kustomize wants relative paths). */
function renderFleetWithComponent(): K8sObject[] {
  const dir = mkdtempSync(join(tmpdir(), 'infergate-kustomize-'));
  const rel = (path: string) => relative(dir, join(K8S, path)).split('\\').join('/');
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n' +
      `resources:\n  - ${rel('overlays/fleet')}\ncomponents:\n  - ${rel('components/queue-autoscaling')}\n`,
  );
  return render(dir, '--load-restrictor=LoadRestrictionsNone');
}

/** The Dockerfile's exposed ports and the runtime user's uid and gid (its last USER line). */
function dockerfile(): { expose: number[]; uid: number; gid: number | null } {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const expose = [...text.matchAll(/^EXPOSE\s+(.+)$/gm)].flatMap((m) =>
    (m[1] as string)
      .trim()
      .split(/\s+/)
      .map((p) => parseInt(p, 10)),
  );
  const user = [...text.matchAll(/^USER\s+(\d+)(?::(\d+))?\s*$/gm)].at(-1);
  assert.ok(user !== undefined, 'the Dockerfile sets USER to a numeric uid');
  return { expose, uid: Number(user[1]), gid: user[2] === undefined ? null : Number(user[2]) };
}

/** The prometheus-adapter rule of the queue-autoscaling component. */
const ADAPTER_RULE = (
  parse(readFileSync(join(K8S, 'components/queue-autoscaling/prometheus-adapter-rules.yaml'), 'utf8')) as {
    rules: { custom: Array<{ seriesQuery: string; metricsQuery: string; name: { matches: string; as: string } }> };
  }
).rules.custom[0]!;

/** Environment references in config text: `${VAR}` and `${VAR:-default}`, as the config loader reads them. */
const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Every `${VAR}` reference in a config's string values (never its keys or comments, as the loader reads them). */
function envRefs(node: unknown): RegExpMatchArray[] {
  if (typeof node === 'string') return [...node.matchAll(ENV_REF)];
  if (node !== null && typeof node === 'object') return Object.values(node).flatMap(envRefs);
  return [];
}

/** The variable a config value names, e.g. `INFERGATE_ADMIN_KEY` in `${INFERGATE_ADMIN_KEY}`. */
function envName(value: string): string {
  const m = /^\$\{([A-Za-z_][A-Za-z0-9_]*)/.exec(value);
  assert.ok(m !== null, `"${value}" is not a \${VAR} reference`);
  return m[1] as string;
}

/** What `${VAR}` the ConfigMap's config needs, as the pod provides them (the admin key a test value). */
function configEnv(): NodeJS.ProcessEnv {
  const data = mkdtempSync(join(tmpdir(), 'infergate-data-'));
  return { INFERGATE_ADMIN_KEY: ADMIN_KEY, INFERGATE_WORKERS: '1', DATABASE_URL: `sqlite:${join(data, 'infergate.db')}` };
}

const labelsMatch = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

/** One rendered variant and what its checks read, picked out once. */
class Rendered {
  readonly objects: K8sObject[];
  readonly deployment: K8sObject;
  readonly pod: any;
  readonly container: any;
  readonly configPath: string;
  readonly configMap: K8sObject;
  readonly configText: string;
  readonly rawConfig: any;
  readonly config: Config;

  constructor(objects: K8sObject[]) {
    this.objects = objects;
    this.deployment = this.one('Deployment');
    this.pod = this.deployment.spec.template.spec;
    assert.equal(this.pod.containers.length, 1, 'the pod has one container');
    this.container = this.pod.containers[0];
    const args: string[] = this.container.args ?? [];
    const at = args.indexOf('--config');
    assert.ok(at !== -1 && args[at + 1] !== undefined, `the container's args name --config FILE: ${JSON.stringify(args)}`);
    this.configPath = args[at + 1] as string;
    const mount = this.mountAt(posix.dirname(this.configPath));
    assert.ok(mount !== undefined, `a volume is mounted on ${posix.dirname(this.configPath)}, the folder of --config`);
    const volume = this.volume(mount.name);
    assert.ok(volume.configMap?.name, `the volume "${mount.name}" on ${mount.mountPath} is a ConfigMap`);
    this.configMap = this.named('ConfigMap', volume.configMap.name);
    const text = this.configMap.data?.[posix.basename(this.configPath)];
    assert.ok(typeof text === 'string', `the ConfigMap "${this.configMap.metadata.name}" has the key ${posix.basename(this.configPath)}`);
    this.configText = text;
    this.rawConfig = parse(text);
    const file = writeImageConfig(text);
    this.config = parseConfig(readFileSync(file, 'utf8'), file, { env: configEnv() });
  }

  all(kind: string): K8sObject[] {
    return this.objects.filter((o) => o.kind === kind);
  }

  one(kind: string): K8sObject {
    const found = this.all(kind);
    assert.equal(found.length, 1, `one ${kind} is rendered, found ${found.length}`);
    return found[0] as K8sObject;
  }

  named(kind: string, name: string): K8sObject {
    const found = this.all(kind).find((o) => o.metadata.name === name);
    assert.ok(
      found !== undefined,
      `the ${kind} "${name}" is rendered (${
        this.all(kind)
          .map((o) => o.metadata.name)
          .join(', ') || 'none'
      })`,
    );
    return found;
  }

  volume(name: string): any {
    const volume = (this.pod.volumes ?? []).find((v: { name: string }) => v.name === name);
    assert.ok(volume !== undefined, `the pod has the volume "${name}"`);
    return volume;
  }

  mountAt(path: string): { name: string; mountPath: string; readOnly?: boolean } | undefined {
    return (this.container.volumeMounts ?? []).find((m: { mountPath: string }) => m.mountPath === path);
  }

  env(name: string): any {
    return (this.container.env ?? []).find((e: { name: string }) => e.name === name);
  }

  get podLabels(): Record<string, string> {
    return this.deployment.spec.template.metadata.labels;
  }

  /** The container port a Service or probe names: by name (string) or by number. */
  containerPort(port: string | number): { name?: string; containerPort: number } | undefined {
    return this.container.ports.find((p: { name?: string; containerPort: number }) =>
      typeof port === 'string' ? p.name === port : p.containerPort === port,
    );
  }

  portNamed(name: string): number {
    const port = this.containerPort(name);
    assert.ok(port !== undefined, `the container has a port named ${name}`);
    return port.containerPort;
  }

  /** The Service whose port leads to the container port `name`. */
  serviceFor(name: string): K8sObject {
    const found = this.all('Service').filter((s) =>
      s.spec.ports.some((p: { targetPort: string | number }) => this.containerPort(p.targetPort)?.name === name),
    );
    assert.equal(found.length, 1, `one Service leads to the container port ${name}`);
    return found[0] as K8sObject;
  }
}

/** The checks every variant passes. */
function commonChecks(get: () => Rendered): void {
  it('renders only objects that match their Kubernetes schema, with no unknown field', () => {
    for (const obj of get().objects) assertSchema(obj);
  });

  it('probes /health/ready for readiness and /health/live for liveness and start-up, on named container ports', () => {
    const { container } = get();
    assert.equal(container.readinessProbe?.httpGet?.path, '/health/ready', 'readinessProbe.httpGet.path');
    assert.equal(container.livenessProbe?.httpGet?.path, '/health/live', 'livenessProbe.httpGet.path');
    assert.equal(container.startupProbe?.httpGet?.path, '/health/live', 'startupProbe.httpGet.path');
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      const port = container[probe].httpGet.port;
      assert.ok(get().containerPort(port) !== undefined, `${probe} port ${port} is one of the container's ports`);
    }
  });

  it("gives the container the config's HTTP and gRPC ports, the ones the Dockerfile exposes", () => {
    const r = get();
    assert.equal(r.portNamed('http'), r.config.server.port, 'containerPort http is server.port of the ConfigMap config');
    assert.equal(r.portNamed('grpc'), r.config.grpc.port, 'containerPort grpc is grpc.port of the ConfigMap config');
    assert.deepEqual(dockerfile().expose.sort(), [r.portNamed('http'), r.portNamed('grpc')].sort(), "the Dockerfile's EXPOSE");
  });

  it('mounts a ConfigMap config that `infergate config validate` accepts and that reloads on change', async () => {
    const r = get();
    const check = await cli(['config', 'validate', writeImageConfig(r.configText)], configEnv());
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.equal(r.config.server.watch_config, true, 'server.watch_config: the kubelet swaps the mounted file');
    assert.equal(r.mountAt(posix.dirname(r.configPath))?.readOnly, true, 'the config folder is mounted read-only');
  });

  it('waits long enough at termination for preStop, the grace period and the drain, and no longer than 15 s past them', () => {
    const r = get();
    const command: string[] = r.container.lifecycle?.preStop?.exec?.command ?? [];
    assert.ok(/(^|\/)sleep$/.test(command[0] ?? '') && command.length === 2, `preStop is \`sleep N\`: ${JSON.stringify(command)}`);
    const needed = Number(command[1]) + r.config.server.shutdown_grace_ms / 1000 + r.config.server.shutdown_timeout_ms / 1000;
    const period = r.pod.terminationGracePeriodSeconds;
    assert.ok(
      period >= needed,
      `terminationGracePeriodSeconds ${period} < preStop + shutdown_grace_ms + shutdown_timeout_ms = ${needed} s`,
    );
    assert.ok(period <= needed + 15, `terminationGracePeriodSeconds ${period} is more than 15 s past the ${needed} s it needs`);
  });

  it("runs as the image's non-root user with a read-only root, no privilege escalation and no capabilities", () => {
    const r = get();
    const { uid, gid } = dockerfile();
    assert.equal(r.pod.securityContext?.runAsNonRoot, true, 'pod securityContext.runAsNonRoot');
    assert.equal(r.pod.securityContext?.runAsUser, uid, "pod securityContext.runAsUser is the Dockerfile's USER");
    if (gid !== null) assert.equal(r.pod.securityContext?.runAsGroup, gid, "pod securityContext.runAsGroup is the Dockerfile's USER group");
    const security = r.container.securityContext ?? {};
    assert.equal(security.readOnlyRootFilesystem, true, 'container securityContext.readOnlyRootFilesystem');
    assert.equal(security.allowPrivilegeEscalation, false, 'container securityContext.allowPrivilegeEscalation');
    assert.ok(security.capabilities?.drop?.includes('ALL'), 'container securityContext.capabilities.drop has ALL');
  });

  it('mounts a writable volume wherever the server writes: the SQLite folder and /tmp', () => {
    const r = get();
    const url = r.rawConfig.storage?.database_url as string;
    const fallback = [...url.matchAll(ENV_REF)][0]?.[2] ?? url;
    assert.match(fallback, /^sqlite:\//, `storage.database_url falls back to a SQLite file: ${url}`);
    for (const path of [posix.dirname(fallback.slice('sqlite:'.length)), '/tmp']) {
      const mount = r.mountAt(path);
      assert.ok(mount !== undefined, `a volume is mounted on ${path} (the root file system is read-only)`);
      assert.notEqual(mount.readOnly, true, `${path} is mounted writable`);
      r.volume(mount.name);
    }
    for (const mount of r.container.volumeMounts) r.volume(mount.name);
  });

  it('sets every ${VAR} the config needs, the admin key and database URL from Secrets, and the ServiceMonitor reads the same key', () => {
    const r = get();
    const required = envRefs(r.rawConfig)
      .filter((m) => m[2] === undefined)
      .map((m) => m[1] as string);
    for (const name of required)
      assert.ok(r.env(name) !== undefined, `\${${name}} in config.yaml has no default, and the container sets it`);
    const names = (r.container.env ?? []).map((e: { name: string }) => e.name);
    assert.equal(new Set(names).size, names.length, `no variable is set twice: ${names.join(', ')}`);
    const adminKey = r.env(envName(r.rawConfig.auth.admin_key));
    const database = r.env(envName(r.rawConfig.storage.database_url));
    assert.ok(adminKey?.valueFrom?.secretKeyRef, `${adminKey?.name} (auth.admin_key) comes from a Secret`);
    assert.ok(database?.valueFrom?.secretKeyRef, `${database?.name} (storage.database_url) comes from a Secret`);
    const endpoint = r.one('ServiceMonitor').spec.endpoints[0];
    assert.equal(endpoint.authorization?.type ?? 'Bearer', 'Bearer', 'the ServiceMonitor sends a bearer token');
    const { name, key } = adminKey.valueFrom.secretKeyRef;
    assert.deepEqual(
      endpoint.authorization?.credentials,
      { name, key },
      "the ServiceMonitor's credentials are the admin key's Secret and key",
    );
  });

  it("selects the Deployment's pods and their named ports from the Services, gRPC with appProtocol grpc", () => {
    const r = get();
    assert.ok(labelsMatch(r.deployment.spec.selector.matchLabels, r.podLabels), "the Deployment's selector matches its pod labels");
    for (const service of r.all('Service')) {
      const what = `Service "${service.metadata.name}"`;
      assert.ok(
        labelsMatch(service.spec.selector, r.podLabels),
        `${what}: selector ${JSON.stringify(service.spec.selector)} matches the pods`,
      );
      for (const port of service.spec.ports)
        assert.ok(r.containerPort(port.targetPort) !== undefined, `${what}: targetPort ${port.targetPort} is a container port`);
    }
    const grpc = r
      .serviceFor('grpc')
      .spec.ports.find((p: { targetPort: string | number }) => r.containerPort(p.targetPort)?.name === 'grpc');
    assert.equal(grpc.appProtocol, 'grpc', 'the gRPC Service port has appProtocol grpc (L7 balancers then balance per call)');
  });

  it('scrapes /metrics on a named port of the HTTP Service, and only that Service, from the ServiceMonitor', () => {
    const r = get();
    const monitor = r.one('ServiceMonitor');
    const http = r.serviceFor('http');
    assert.ok(labelsMatch(monitor.spec.selector.matchLabels, http.metadata.labels), 'the ServiceMonitor selects the HTTP Service');
    const selected = r.all('Service').filter((s) => labelsMatch(monitor.spec.selector.matchLabels, s.metadata.labels));
    assert.deepEqual(
      selected.map((s) => s.metadata.name),
      [http.metadata.name],
      'the ServiceMonitor selects no other Service',
    );
    for (const endpoint of monitor.spec.endpoints) {
      const ports = http.spec.ports.map((p: { name: string }) => p.name);
      assert.ok(ports.includes(endpoint.port), `endpoint port ${endpoint.port} is a port of the HTTP Service (${ports.join(', ')})`);
      assert.equal(endpoint.path, '/metrics', 'endpoint path');
    }
  });

  it('runs the pods under a rendered ServiceAccount', () => {
    const r = get();
    r.named('ServiceAccount', r.pod.serviceAccountName);
  });
}

/** The autoscaler and disruption budget of the fleet: they name the Deployment and its pods. */
function fleetChecks(get: () => Rendered): void {
  it('leaves the replica count to the HorizontalPodAutoscaler, which scales the Deployment from 2 pods', () => {
    const r = get();
    assert.equal(r.deployment.spec.replicas, undefined, 'the Deployment has no spec.replicas (the HPA owns it)');
    const hpa = r.one('HorizontalPodAutoscaler');
    assert.deepEqual(
      hpa.spec.scaleTargetRef,
      { apiVersion: 'apps/v1', kind: 'Deployment', name: r.deployment.metadata.name },
      'scaleTargetRef names the Deployment',
    );
    assert.ok(hpa.spec.minReplicas >= 2, `minReplicas ${hpa.spec.minReplicas} >= 2`);
  });

  it('keeps a PodDisruptionBudget over the pods', () => {
    const r = get();
    assert.ok(labelsMatch(r.one('PodDisruptionBudget').spec.selector.matchLabels, r.podLabels), 'the PDB selector matches the pods');
  });

  it('requires DATABASE_URL and REDIS_URL from the Secret (a replica without them would keep its own state)', () => {
    const r = get();
    for (const name of ['DATABASE_URL', 'REDIS_URL']) {
      const ref = r.env(name)?.valueFrom?.secretKeyRef;
      assert.ok(ref !== undefined, `${name} comes from a secretKeyRef`);
      assert.notEqual(ref.optional, true, `${name}'s secretKeyRef is not optional`);
    }
  });
}

describe(
  'Kubernetes manifests (deploy/kubernetes)',
  { skip: KUSTOMIZE === null ? 'neither kubectl nor kustomize is on PATH' : false },
  () => {
    const renderers: Record<string, () => K8sObject[]> = {
      single: () => render(join(K8S, 'overlays/single')),
      fleet: () => render(join(K8S, 'overlays/fleet')),
      'fleet+queue': renderFleetWithComponent,
    };
    const rendered = new Map<string, Rendered>();
    /** A variant rendered once, when first asked for (a test run with a name pattern may skip the suite that would have). */
    const variant = (name: string): Rendered => {
      let r = rendered.get(name);
      if (r === undefined) rendered.set(name, (r = new Rendered((renderers[name] as () => K8sObject[])())));
      return r;
    };
    const suite = (name: string): (() => Rendered) => {
      before(() => variant(name));
      return () => variant(name);
    };

    describe('overlays/single', () => {
      const get = suite('single');
      commonChecks(get);

      it('runs one pod, replaced with Recreate, without autoscaler or disruption budget', () => {
        const r = get();
        assert.equal(r.deployment.spec.replicas, 1, 'spec.replicas');
        assert.equal(r.deployment.spec.strategy?.type, 'Recreate', 'strategy.type (the volume mounts on one node at a time)');
        assert.equal(r.deployment.spec.strategy?.rollingUpdate, undefined, 'no rollingUpdate with Recreate');
        assert.deepEqual(r.all('HorizontalPodAutoscaler'), [], 'no HorizontalPodAutoscaler');
        assert.deepEqual(r.all('PodDisruptionBudget'), [], 'no PodDisruptionBudget');
      });

      it('keeps the SQLite folder on a rendered PersistentVolumeClaim', () => {
        const r = get();
        const url = r.rawConfig.storage.database_url as string;
        const folder = posix.dirname(([...url.matchAll(ENV_REF)][0]?.[2] ?? url).slice('sqlite:'.length));
        const mount = r.mountAt(folder);
        assert.ok(mount !== undefined, `a volume is mounted on ${folder}`);
        const claim = r.volume(mount.name).persistentVolumeClaim?.claimName;
        assert.ok(claim, `the volume "${mount.name}" is a PersistentVolumeClaim`);
        r.named('PersistentVolumeClaim', claim);
      });
    });

    describe('overlays/fleet', () => {
      const get = suite('fleet');
      commonChecks(get);
      fleetChecks(get);
    });

    describe('overlays/fleet with components/queue-autoscaling', () => {
      const get = suite('fleet+queue');
      commonChecks(get);
      fleetChecks(get);

      it("adds a Pods metric named as the prometheus-adapter rule's name.as, keeping CPU", () => {
        const metrics = get().one('HorizontalPodAutoscaler').spec.metrics as Array<{ type: string; pods?: { metric: { name: string } } }>;
        assert.ok(
          metrics.some((m) => m.type === 'Resource'),
          'the CPU metric stays',
        );
        const pods = metrics.filter((m) => m.type === 'Pods').map((m) => m.pods?.metric.name);
        assert.deepEqual(pods, [ADAPTER_RULE.name.as], "the Pods metric is the adapter rule's name.as");
        const series = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(ADAPTER_RULE.seriesQuery)?.[1] ?? '';
        assert.match(series, new RegExp(ADAPTER_RULE.name.matches), "the rule's name.matches matches its seriesQuery's metric");
      });

      it('changes nothing but the HorizontalPodAutoscaler', () => {
        const others = (objects: K8sObject[]) => objects.filter((o) => o.kind !== 'HorizontalPodAutoscaler');
        const fleet = variant('fleet');
        assert.deepEqual(others(get().objects), others(fleet.objects));
      });
    });

    describe("the ConfigMap's config.yaml on the real server", () => {
      let server: RunningServer;
      let single: Rendered;

      before(async () => {
        single = variant('single');
        const { configText } = single;
        const { INFERGATE_ADMIN_KEY, INFERGATE_WORKERS } = configEnv();
        server = await startServer({ config: writeImageConfig(configText), env: { INFERGATE_ADMIN_KEY, INFERGATE_WORKERS } });
      });

      after(async () => {
        await server?.stop();
      });

      it('is the same in every overlay', () => {
        for (const name of Object.keys(renderers))
          assert.equal(variant(name).configText, single.configText, `${name}'s config.yaml is the single overlay's`);
      });

      it('answers 200 on every probe path of the Deployment', async () => {
        const { container } = single;
        const paths = new Set(['readinessProbe', 'livenessProbe', 'startupProbe'].map((p) => container[p].httpGet.path as string));
        for (const path of paths) {
          const res = await get(server.url + path);
          assert.equal(res.status, 200, `GET ${path}: ${JSON.stringify(res.body)}`);
        }
      });

      it('exports every metric the prometheus-adapter rule queries, on the admin key', async () => {
        const res = await fetch(`${server.url}/metrics`, { headers: ADMIN });
        assert.equal(res.status, 200);
        const text = await res.text();
        const names = new Set(
          [ADAPTER_RULE.seriesQuery, ADAPTER_RULE.metricsQuery].flatMap((q) => [...q.matchAll(/\binfergate_[a-z0-9_]+/g)].map((m) => m[0])),
        );
        assert.ok(names.size > 0, 'the rule queries infergate metrics');
        const lines = text.split('\n');
        for (const name of names)
          assert.ok(
            lines.some((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)),
            `/metrics has samples of ${name}, which the adapter rule queries`,
          );
      });
    });
  },
);
