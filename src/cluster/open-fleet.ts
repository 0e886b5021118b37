/**
 * Which store a fleet member uses, as `fleet.store` says: etcd or Redis when configured (shared by
 * every replica), else this process's memory (a replica alone: nothing changes for it). The store
 * modules load only when used.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { MemoryFleetStore, type FleetStore } from './fleet-store.js';

/** A store, who shares it, and how the start-up line names it. */
export interface OpenedFleetStore {
  readonly store: FleetStore;
  /** Whether every process of this replica sees it (a store in the primary, Redis, etcd). */
  readonly shared: boolean;
  /** Whether other replicas see it too (Redis, etcd): registry discovery needs that. */
  readonly fleetWide: boolean;
  readonly describe: string;
}

/** The etcd endpoints and Redis URL in force: the config's, else the environment's. */
function urls(config: Config): { etcd: string[]; redis: string } {
  const etcd = config.fleet.etcd_url !== '' ? config.fleet.etcd_url : (process.env.ETCD_URL ?? '');
  const redis = config.state.redis_url !== '' ? config.state.redis_url : (process.env.REDIS_URL ?? '');
  return {
    etcd: etcd
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u !== ''),
    redis,
  };
}

/**
 * Opens the store `fleet.store` names (`auto`: etcd, else Redis, else memory). A store named but
 * not configured is an error. Memory under node:cluster is the primary's, reached over IPC, so the
 * workers of one replica share their overrides and rollouts without Redis.
 */
export async function openFleetStore(config: Config, log: Logger, worker = false): Promise<OpenedFleetStore> {
  const { etcd, redis } = urls(config);
  const choice = config.fleet.store === 'auto' ? (etcd.length > 0 ? 'etcd' : redis !== '' ? 'redis' : 'none') : config.fleet.store;
  if (choice === 'etcd') {
    if (etcd.length === 0) throw new Error('fleet.store is etcd but neither fleet.etcd_url nor $ETCD_URL is set');
    const { EtcdFleetStore } = await import('./etcd-fleet-store.js');
    const prefix = `/${config.state.key_prefix.replace(/:$/, '')}/fleet/`;
    return { store: new EtcdFleetStore(etcd, prefix, log), shared: true, fleetWide: true, describe: `etcd ${etcd.join(',')}` };
  }
  if (choice === 'redis') {
    if (redis === '') throw new Error('fleet.store is redis but neither state.redis_url nor $REDIS_URL is set');
    const { RedisFleetStore } = await import('./redis-fleet-store.js');
    return { store: new RedisFleetStore(redis, `${config.state.key_prefix}fleet:`, log), shared: true, fleetWide: true, describe: 'redis' };
  }
  if (worker) {
    const { IpcFleetStore } = await import('./ipc-fleet-store.js');
    return { store: new IpcFleetStore(process), shared: true, fleetWide: false, describe: 'memory' };
  }
  return { store: new MemoryFleetStore(), shared: false, fleetWide: false, describe: 'memory' };
}

/** The environment variable a cluster primary hands its workers their replica's id in. */
export const INSTANCE_ENV = 'INFERGATE_FLEET_INSTANCE';

/** This replica's id: the config's, $INFERGATE_INSTANCE_ID, the one the primary handed down, or the host name and a random suffix. */
export function instanceId(config: Config): string {
  if (config.fleet.instance_id !== '') return config.fleet.instance_id;
  const env = process.env.INFERGATE_INSTANCE_ID ?? process.env[INSTANCE_ENV] ?? '';
  if (env !== '') return env;
  return `${hostname().slice(0, 100)}-${randomBytes(3).toString('hex')}`;
}

/** The URL others reach this replica at: `fleet.advertise_url`, else the listening URL (on a wildcard address, the host's name). */
export function advertisedUrl(config: Config, listening: string): string {
  if (config.fleet.advertise_url !== '') return config.fleet.advertise_url.replace(/\/+$/, '');
  return listening.replace(/\/\/(0\.0\.0\.0|\[::\]):/, `//${hostname()}:`);
}
