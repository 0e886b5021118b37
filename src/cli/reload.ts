/**
 * Hot reload: reads the config file again and, if it is valid, serves the new models without
 * dropping a request. Versions whose backend settings did not change keep their loaded backend
 * (no model is loaded twice); new ones load before the swap; calls in flight finish on the
 * versions they started with, and retired backends unload after `server.shutdown_timeout_ms`.
 * An invalid file changes nothing: its problems are logged and returned.
 */
import type { ReloadResult } from '../config/reload-result.js';
import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, formatProblem, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Gateway } from '../pipeline/gateway.js';
import { Registry, type RegistryContext } from '../routing/registry.js';

/** Re-exported so a reload's callers need not import config/reload-result.ts. */
export type { ReloadResult };

/** Reloads the config on demand; `reason` is only logged. An invalid file resolves with `ok: false`; only an unexpected error rejects. */
export interface Reloader {
  reload(reason: string): Promise<ReloadResult>;
  /** Reloads for a signal or a file change, where nobody awaits the result: an unexpected error is logged, never left unhandled (which would end the process). */
  trigger(reason: string): void;
}

/** Sections read once at start: a change in them applies after a restart. */
const RESTART_SECTIONS = ['server', 'auth', 'storage', 'state', 'usage', 'responses', 'metrics', 'tracing', 'grpc'] as const;

/** A reloader for `file`: reloads run one at a time, in the order asked. */
export function createReloader(options: {
  readonly file: string;
  readonly gateway: Gateway;
  readonly context: RegistryContext;
  /** The running config: its `server` section stays (a change there needs a restart). */
  readonly running: Config;
  readonly log: Logger;
}): Reloader {
  const { file, gateway, context, running, log } = options;
  let queue: Promise<unknown> = Promise.resolve();

  async function apply(reason: string): Promise<ReloadResult> {
    let next: Config;
    try {
      next = loadConfig(file).config;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      const problems = err.problems.map((p) => formatProblem(file, p));
      log.error({ reason, problems }, 'config reload rejected; still serving the previous config');
      return { ok: false, problems };
    }
    const previous = gateway.registry;
    const registry = new Registry({ ...next, server: running.server }, { ...context, previous });
    await registry.load((version, error) =>
      log.error({ model: version.model.name, version: version.version, err: error }, 'model failed to load'),
    );
    gateway.swap(registry);
    const before = new Set(previous.models.map((m) => m.name));
    const after = registry.models.map((m) => m.name);
    const added = after.filter((m) => !before.has(m));
    const removed = [...before].filter((m) => !after.includes(m));
    const restartNeeded = RESTART_SECTIONS.flatMap((section) =>
      Object.keys(next[section])
        .filter(
          (k) =>
            JSON.stringify((next[section] as Record<string, unknown>)[k]) !==
            JSON.stringify((running[section] as Record<string, unknown>)[k]),
        )
        .map((k) => `${section}.${k}`),
    );
    const retired = previous.retiredBy(registry);
    const reused = registry.models.reduce((n, m) => n + [...m.backends.keys()].filter((b) => m.isReused(b)).length, 0);
    if (retired.length > 0) {
      // In-flight calls hold their version; give them the drain time before their backends go.
      setTimeout(() => {
        Promise.all(retired.map((b) => b.unload())).catch((err: unknown) => log.error({ err }, 'a retired backend failed to unload'));
      }, running.server.shutdown_timeout_ms).unref();
    }
    log.info({ reason, models: after, added, removed, reused, retired: retired.length, restart_needed: restartNeeded }, 'config reloaded');
    if (restartNeeded.length > 0) log.warn({ options: restartNeeded }, 'changed options apply after a restart (only models reload)');
    return { ok: true, models: after, added, removed, reused, restartNeeded };
  }

  // One reload at a time, in order: a burst of triggers cannot interleave two swaps.
  function reload(reason: string): Promise<ReloadResult> {
    const result = queue.then(() => apply(reason));
    queue = result.catch(() => undefined);
    return result;
  }

  return {
    reload,
    trigger(reason) {
      reload(reason).catch((err: unknown) => log.error({ reason, err }, 'config reload failed; still serving the previous config'));
    },
  };
}

/**
 * Reloads when the file changes. Watches its folder, since editors and Kubernetes ConfigMaps
 * replace the file rather than write to it; waits for 200 ms of quiet, as writes come in bursts.
 */
export function watchConfig(file: string, reloader: Reloader): () => void {
  let timer: NodeJS.Timeout | null = null;
  const name = basename(file);
  const watcher = watch(dirname(file), (_event, changed) => {
    if (changed !== null && changed !== name && !changed.startsWith('..')) return;
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(() => reloader.trigger('file changed'), 200);
  });
  watcher.unref();
  return () => watcher.close();
}
