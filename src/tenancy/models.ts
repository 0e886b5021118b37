/** Which models a tenant may use: names and patterns compiled once per tenant into one test. */

/** `*` alone: every model. Otherwise exact names, or patterns where `*` matches any run of characters. */
export function modelMatcher(patterns: readonly string[]): (model: string) => boolean {
  if (patterns.includes('*')) return () => true;
  const exact = new Set(patterns.filter((p) => !p.includes('*')));
  const globs = patterns.filter((p) => p.includes('*')).map(globToRegExp);
  if (globs.length === 0) return (model) => exact.has(model);
  return (model) => exact.has(model) || globs.some((g) => g.test(model));
}

function globToRegExp(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map(escape).join('.*')}$`);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
