/**
 * A CommonJS package loaded on first use rather than at import: `lazyModule<typeof import('x')>('x')`
 * returns a function that requires it once and then answers the same module. A require gives the
 * same instance an `import` elsewhere gets (both go through Node's CommonJS cache).
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export function lazyModule<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(name) as T);
}
