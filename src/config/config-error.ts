/**
 * A config's problems and the error that lists them, apart from load.ts: this module imports
 * nothing, so whoever only reports a ConfigError (the entry point, the cluster primary, TLS
 * loading) does not load the schema, TypeBox, yaml and every backend kind with it.
 */

/** One problem in a config file. */
export interface ConfigProblem {
  /** Dotted path in the document, e.g. `models[0].versions[1].weight`. */
  readonly path: string;
  readonly message: string;
  /** 1-based line and column in the file, where known. */
  readonly line: number | null;
  readonly column: number | null;
}

/** Thrown when a config cannot be used; `problems` lists every one found, not only the first. */
export class ConfigError extends Error {
  readonly file: string;
  readonly problems: readonly ConfigProblem[];
  constructor(file: string, problems: readonly ConfigProblem[]) {
    super(`${file}: ${problems.length} problem(s)\n${problems.map((p) => '  ' + formatProblem(file, p)).join('\n')}`);
    this.name = 'ConfigError';
    this.file = file;
    this.problems = problems;
  }
}

/** A problem as `file:line:column path: message` (the file alone when the line is unknown; `(root)` for an empty path). */
export function formatProblem(file: string, p: ConfigProblem): string {
  const where = p.line === null ? file : `${file}:${p.line}:${p.column}`;
  return `${where} ${p.path || '(root)'}: ${p.message}`;
}
