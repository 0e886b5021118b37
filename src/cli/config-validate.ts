/** `infergate config validate FILE`: prints every problem with its path and line; exit 1 if any. */
import { ConfigError, formatProblem, loadConfig } from '../config/load.js';
import { loadTls } from '../config/tls.js';

/** Checks a config file and its TLS files; returns the exit code (0 valid, 1 problems printed). Other errors are thrown. */
export function validateConfig(file: string): number {
  try {
    const { config } = loadConfig(file);
    loadTls(config.server.tls, file); // the certificate and key are read at start too: check them here
    const versions = config.models.reduce((n, m) => n + m.versions.length, 0);
    console.log(`${file}: OK (${config.models.length} models, ${versions} versions)`);
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) console.error(formatProblem(file, p));
    console.error(`${file}: ${err.problems.length} problem(s)`);
    return 1;
  }
}
