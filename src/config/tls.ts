/**
 * `server.tls`: the certificate and key for HTTPS and gRPC over TLS, each given as a PEM file's
 * path (relative to the config file) or as PEM text itself (from `${ENV}` substitution).
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import type { ServerConfig } from './schema.js';
import { ConfigError } from './load.js';

/** What node:tls takes: PEM bytes of the certificate chain and the private key. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** Reads `server.tls` into PEM bytes; null when TLS is off. A missing or unreadable file is a ConfigError naming the field. */
export function loadTls(tls: ServerConfig['tls'], configFile: string): TlsMaterial | null {
  if (tls === undefined) return null;
  const read = (field: 'cert' | 'key'): Buffer => {
    const value = tls[field];
    if (value.trimStart().startsWith('-----BEGIN')) return Buffer.from(value);
    const path = isAbsolute(value) ? value : resolve(dirname(configFile), value);
    try {
      return readFileSync(path);
    } catch (err) {
      const message = `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      throw new ConfigError(configFile, [{ path: `server.tls.${field}`, message, line: null, column: null }]);
    }
  };
  return { cert: read('cert'), key: read('key') };
}
