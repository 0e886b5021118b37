/**
 * Loads a config file: YAML, `${ENV_VAR}` substitution, schema defaults, validation with the
 * path and line of each problem, cross-field rules, then a deep freeze. Reload swaps the whole
 * object; nothing mutates it after start-up.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value';
import { LineCounter, parseDocument } from 'yaml';
import { pointerToPath } from '../core/errors.js';
import type { TSchema } from '@sinclair/typebox';
import { BACKEND_PLUGINS, type BackendPlugin } from '../backends/index.js';
import { isModelUrl } from '../backends/model-file.js';
import { ConfigSchema, REMOVED_OPTIONS, configSchemaWith, type Config } from './schema.js';
import { trustedHeaderProblems } from './trusted-header.js';
import { rolloutPlanProblems } from './rollout-plan.js';
import { ConfigError, type ConfigProblem } from './config-error.js';

// In their own module, which imports nothing: the cluster primary and config/tls.ts name them without loading the schema.
export { ConfigError, formatProblem, type ConfigProblem } from './config-error.js';

/** A loaded config plus where it came from. */
export interface LoadedConfig {
  readonly file: string;
  readonly config: Config;
}

/** How `${VAR}` references are resolved when a config is read. */
export interface LoadOptions {
  /** Environment for `${VAR}` substitution (default: process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /** The backend kinds a config may use (default: BACKEND_PLUGINS, every kind there is); a test of a new kind passes a longer list. */
  readonly plugins?: readonly BackendPlugin[];
}

/** What validation needs of a list of plug-ins: the whole schema, and each plug-in by kind in the list's order. */
interface Kinds {
  readonly schema: TSchema;
  readonly byKind: ReadonlyMap<string, BackendPlugin>;
}

const kindsCache = new WeakMap<readonly BackendPlugin[], Kinds>();

/** The schema and kinds of a plug-in list, built once per list. */
function kindsOf(plugins: readonly BackendPlugin[]): Kinds {
  let kinds = kindsCache.get(plugins);
  if (kinds === undefined) {
    const schema = plugins === BACKEND_PLUGINS ? ConfigSchema : configSchemaWith(plugins);
    kinds = { schema, byKind: new Map(plugins.map((p) => [p.kind, p])) };
    kindsCache.set(plugins, kinds);
  }
  return kinds;
}

/** Reads, validates and freezes a config file. Throws {@link ConfigError} listing every problem. */
export function loadConfig(file: string, options: LoadOptions = {}): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `cannot read the file: ${(err as Error).message}`, line: null, column: null }]);
  }
  return { file, config: parseConfig(text, file, options) };
}

/** Validates config text; `file` names it in messages and anchors relative model paths. */
export function parseConfig(text: string, file: string, options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const { schema, byKind } = kindsOf(options.plugins ?? BACKEND_PLUGINS);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const locate = (path: ReadonlyArray<string | number>): { line: number | null; column: number | null } => {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
      if (range) {
        const pos = lines.linePos(range[0]);
        return { line: pos.line, column: pos.col };
      }
    }
    return { line: null, column: null };
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      // The first syntax error explains the rest, which are usually its echoes.
      doc.errors.slice(0, 1).map((e) => {
        const pos = lines.linePos(e.pos[0]);
        return { path: '', message: `YAML syntax: ${e.message.split('\n')[0]}`, line: pos.line, column: pos.col };
      }),
    );
  }
  const problems: ConfigProblem[] = [];
  const problem = (segments: ReadonlyArray<string | number>, message: string): void => {
    problems.push({ path: segmentsToPath(segments), message, ...locate(segments) });
  };

  const raw: unknown = substituteEnv(doc.toJS() ?? {}, [], env, problem);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(file, [{ path: '', message: 'the document must be a mapping', line: 1, column: 1 }]);
  }
  for (const removed of REMOVED_OPTIONS) {
    const segments = removed.path.split('.');
    if (getIn(raw, segments) !== undefined) problem(segments, `option removed: ${removed.hint}`);
  }
  const value = Value.Default(schema, Value.Convert(schema, raw)) as Record<string, unknown>;
  checkBackends(value, byKind, problem);
  const removed = new Set(REMOVED_OPTIONS.map((r) => r.path));
  for (const error of Value.Errors(schema, value)) {
    const segments = pointerToSegments(error.path);
    if (isBackendPath(segments)) continue; // checked per kind above, with clearer messages than a union's
    if (removed.has(segments.join('.'))) continue; // reported above, with what replaced it
    problem(segments, describe(error));
  }
  if (problems.length === 0) {
    resolvePaths(value as Config, byKind, dirname(resolve(file)));
    crossFieldRules(value as Config, byKind, problem);
  }
  if (problems.length > 0)
    throw new ConfigError(
      file,
      dedupe(problems).sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0)),
    );
  return deepFreeze(value as Config);
}

type Report = (segments: ReadonlyArray<string | number>, message: string) => void;

/** Each version's `backend` is a union on `kind`: validate it against the one schema its kind names. */
function checkBackends(value: Record<string, unknown>, byKind: ReadonlyMap<string, BackendPlugin>, problem: Report): void {
  const models = Array.isArray(value.models) ? value.models : [];
  models.forEach((model: unknown, m) => {
    const versions = (model as { versions?: unknown })?.versions;
    if (!Array.isArray(versions)) return;
    versions.forEach((version: unknown, v) => {
      const at = ['models', m, 'versions', v, 'backend'];
      const backend = (version as { backend?: unknown })?.backend;
      if (backend === undefined) return problem(at, 'required: a backend with a `kind`');
      if (backend === null || typeof backend !== 'object') return problem(at, 'must be a mapping with a `kind`');
      const kind = (backend as { kind?: unknown }).kind;
      const plugin = typeof kind === 'string' ? byKind.get(kind) : undefined;
      if (plugin === undefined) {
        return problem([...at, 'kind'], `must be one of ${[...byKind.keys()].join(', ')}, got ${JSON.stringify(kind)}`);
      }
      const schema = plugin.schema;
      const filled = Value.Default(schema, Value.Convert(schema, backend));
      (version as { backend: unknown }).backend = filled;
      for (const error of Value.Errors(schema, filled)) {
        problem([...at, ...pointerToSegments(error.path)], describe(error));
      }
    });
  });
}

function isBackendPath(segments: ReadonlyArray<string | number>): boolean {
  return segments.length >= 5 && segments[0] === 'models' && segments[2] === 'versions' && segments[4] === 'backend';
}

function crossFieldRules(config: Config, byKind: ReadonlyMap<string, BackendPlugin>, problem: Report): void {
  if (config.auth.mode !== 'none' && config.auth.admin_key === '') {
    problem(
      ['auth', 'admin_key'],
      `\`${config.auth.mode}\` mode needs an admin key to manage tenants; set it, e.g. admin_key: \${INFERGATE_ADMIN_KEY}`,
    );
  }
  for (const p of trustedHeaderProblems(config.auth)) problem(p.path, p.message);
  if (config.auth.admin_key !== '' && config.auth.admin_key.length < 16) {
    problem(['auth', 'admin_key'], `the admin key must be at least 16 characters, got ${config.auth.admin_key.length}`);
  }
  // Node refuses a headers time-out longer than the whole request's (the headers are part of it).
  if (config.server.headers_timeout_ms > config.server.request_timeout_ms) {
    problem(
      ['server', 'headers_timeout_ms'],
      `must be <= server.request_timeout_ms (${config.server.request_timeout_ms}), got ${config.server.headers_timeout_ms}`,
    );
  }
  // A record renewed less often than twice a lease would lapse between renewals.
  if (config.fleet.heartbeat_ms * 2 > config.fleet.lease_ms) {
    problem(
      ['fleet', 'heartbeat_ms'],
      `must be at most half of fleet.lease_ms (${config.fleet.lease_ms}), got ${config.fleet.heartbeat_ms}`,
    );
  }
  const buffer = config.grpc.max_connection_buffer_bytes;
  if (buffer !== undefined && buffer < config.server.body_limit_bytes) {
    problem(
      ['grpc', 'max_connection_buffer_bytes'],
      `must be at least server.body_limit_bytes (${config.server.body_limit_bytes}), or no message that large could be read; got ${buffer}`,
    );
  }
  const names = new Map<string, number>();
  config.models.forEach((model, m) => {
    for (const [i, name] of [model.name, ...model.aliases].entries()) {
      const at = i === 0 ? ['models', m, 'name'] : ['models', m, 'aliases', i - 1];
      const other = names.get(name);
      if (other !== undefined) problem(at, `"${name}" is already used by models[${other}]`);
      else names.set(name, m);
    }
    const versions = new Set<string>();
    model.versions.forEach((version, v) => {
      const at = ['models', m, 'versions', v, 'backend'];
      const plugin = byKind.get(version.backend.kind) as BackendPlugin; // checkBackends reported any other kind
      for (const p of plugin.check?.(version.backend) ?? []) problem([...at, ...p.path], p.message);
      const backend = version.backend as Readonly<Record<string, unknown>>;
      for (const option of plugin.files) {
        const path = backend[option];
        if (typeof path !== 'string') continue;
        const url = isModelUrl(path);
        if (url ? !URL.canParse(path) : !existsSync(path)) problem([...at, option], `${url ? 'not a valid URL' : 'no such file'}: ${path}`);
      }
      if (versions.has(version.version)) problem(['models', m, 'versions', v, 'version'], `duplicate version "${version.version}"`);
      versions.add(version.version);
    });
    if (model.default_version !== undefined && !versions.has(model.default_version)) {
      problem(['models', m, 'default_version'], `"${model.default_version}" is not one of the versions (${[...versions].join(', ')})`);
    }
    if (model.rollout !== undefined) {
      for (const p of rolloutPlanProblems(model.rollout, [...versions])) problem(['models', m, 'rollout', ...p.path], p.message);
    }
  });
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/** Replaces `${VAR}` and `${VAR:-default}` inside string values (never in keys, so values cannot inject structure). */
function substituteEnv(node: unknown, path: Array<string | number>, env: NodeJS.ProcessEnv, problem: Report): unknown {
  if (typeof node === 'string') {
    return node.replace(ENV_REF, (_m, name: string, fallback: string | undefined) => {
      const value = env[name];
      if (value !== undefined) return value;
      if (fallback !== undefined) return fallback;
      problem(path, `environment variable ${name} is not set (write \${${name}:-default} for a default)`);
      return '';
    });
  }
  if (Array.isArray(node)) return node.map((item, i) => substituteEnv(item, [...path, i], env, problem));
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) out[key] = substituteEnv(value, [...path, key], env, problem);
    return out;
  }
  return node;
}

/** `1 item`, `2 items`. */
function plural(n: number | undefined, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

/** A schema error as one message, chosen by its kind (TypeBox's ValueErrorType), never by the wording of its text. */
function describe(error: ValueError): string {
  const schema = error.schema as {
    anyOf?: unknown[];
    minimum?: number;
    maximum?: number;
    exclusiveMinimum?: number;
    exclusiveMaximum?: number;
    minLength?: number;
    maxLength?: number;
    minItems?: number;
    maxItems?: number;
    pattern?: string;
  };
  const got = error.value === undefined ? '' : `, got ${JSON.stringify(error.value)}`;
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return 'required';
    case ValueErrorType.ObjectAdditionalProperties:
      return 'unknown option (check the spelling; see config/infergate.schema.json)';
    case ValueErrorType.Union: {
      const allowed = (schema.anyOf ?? []).map((s) => (s as { const?: unknown }).const ?? (s as { type?: string }).type).join(', ');
      return `must be one of ${allowed}${got}`;
    }
    case ValueErrorType.StringPattern:
      return `must match the pattern ${schema.pattern}${got}`;
    case ValueErrorType.NumberMinimum:
    case ValueErrorType.IntegerMinimum:
      return `must be >= ${schema.minimum}${got}`;
    case ValueErrorType.NumberMaximum:
    case ValueErrorType.IntegerMaximum:
      return `must be <= ${schema.maximum}${got}`;
    case ValueErrorType.NumberExclusiveMinimum:
    case ValueErrorType.IntegerExclusiveMinimum:
      return `must be > ${schema.exclusiveMinimum}${got}`;
    case ValueErrorType.NumberExclusiveMaximum:
    case ValueErrorType.IntegerExclusiveMaximum:
      return `must be < ${schema.exclusiveMaximum}${got}`;
    case ValueErrorType.StringMinLength:
      return `must be at least ${plural(schema.minLength, 'character')}${got}`;
    case ValueErrorType.StringMaxLength:
      return `must be at most ${plural(schema.maxLength, 'character')}${got}`;
    case ValueErrorType.ArrayMinItems:
      return `must have at least ${plural(schema.minItems, 'item')}${got}`;
    case ValueErrorType.ArrayMaxItems:
      return `must have at most ${plural(schema.maxItems, 'item')}${got}`;
    default:
      // The other kinds say what was expected ("Expected string"): kept as TypeBox words them.
      return `${error.message.replace(/^Expected/, 'must be')}${got}`;
  }
}

/** Makes each backend's file options (its plug-in's `files`) absolute, relative to the config file's folder. */
function resolvePaths(config: Config, byKind: ReadonlyMap<string, BackendPlugin>, base: string): void {
  for (const model of config.models) {
    for (const version of model.versions) {
      const backend = version.backend as Record<string, unknown>;
      for (const option of byKind.get(version.backend.kind)?.files ?? []) {
        const path = backend[option];
        // A URL is downloaded when the version loads (backends/model-file.ts), not a file next to the config.
        if (typeof path === 'string' && !isModelUrl(path) && !isAbsolute(path)) backend[option] = resolve(base, path);
      }
    }
  }
}

function pointerToSegments(pointer: string): Array<string | number> {
  if (pointer === '') return [];
  return pointer
    .split('/')
    .slice(1)
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p.replace(/~1/g, '/').replace(/~0/g, '~')));
}

function segmentsToPath(segments: ReadonlyArray<string | number>): string {
  return pointerToPath(segments.length === 0 ? '' : '/' + segments.join('/'));
}

function getIn(value: unknown, segments: readonly string[]): unknown {
  let node = value;
  for (const s of segments) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[s];
  }
  return node;
}

/** One problem per path: the first is the cause ("required"), later ones its echoes ("must be string"). */
function dedupe(problems: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    if (seen.has(p.path)) return false;
    seen.add(p.path);
    return true;
  });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
