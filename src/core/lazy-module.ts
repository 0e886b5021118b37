/** CommonJS packages loaded on first use rather than at import. */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/**
 * `lazyModule<typeof import('x')>('x')`: a function that requires `x` once, on its first call, and
 * then answers the same module. A require gives the same instance an `import` elsewhere gets (both
 * go through Node's CommonJS cache).
 */
export function lazyModule<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(name) as T);
}
