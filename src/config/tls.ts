/**
 * `server.tls`: the certificate and key for HTTPS and gRPC over TLS, each given as a PEM file's
 * path (relative to the config file) or as PEM text itself (from `${ENV}` substitution).
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { ServerConfig } from './schema.js';
import { ConfigError } from './config-error.js';

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
  const material = { cert: read('cert'), key: read('key') };
  // Parsed now, so that a file that is not PEM, or a key that is not the certificate's, is a config
  // error naming the field rather than a stack trace from the first server that uses them.
  checkPem(configFile, 'cert', () => createSecureContext({ cert: material.cert }));
  checkPem(configFile, 'key', () => createSecureContext(material));
  return material;
}

function checkPem(configFile: string, field: 'cert' | 'key', parse: () => unknown): void {
  try {
    parse();
  } catch (err) {
    const message = `not a usable PEM ${field === 'cert' ? 'certificate' : 'private key for the certificate'}: ${(err as Error).message}`;
    throw new ConfigError(configFile, [{ path: `server.tls.${field}`, message, line: null, column: null }]);
  }
}
