/**
 * Composes policy wrappers into one call, once per model version when the config loads: the
 * request path then makes one call into the chain, and a policy a version does not have costs
 * nothing, not even a check (undici's `dispatcher.compose()`, with the order reversed so that it
 * reads the way a call meets the wrappers).
 */
import type { VersionCall, Wrapper } from '../core/policy.js';

/**
 * The chain of `wrappers` around a base call, the first outermost: `compose(a, b)(base)` is
 * `a(b(base))`, so a call meets `a` first. A null entry is a disabled policy and is left out.
 */
export function compose<V>(...wrappers: ReadonlyArray<Wrapper<V> | null>): (base: VersionCall<V>) => VersionCall<V> {
  const present = wrappers.filter((w): w is Wrapper<V> => w !== null);
  return function chain(base) {
    let call = base;
    for (let i = present.length - 1; i >= 0; i--) call = (present[i] as Wrapper<V>)(call);
    return call;
  };
}
