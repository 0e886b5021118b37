/** Every installed package supports the Node versions package.json declares (npm ci prints EBADENGINE otherwise). */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import semver from 'semver';
import { ROOT } from './helpers/server.js';

interface LockEntry {
  readonly version?: string;
  readonly engines?: { readonly node?: string } | readonly string[];
}

describe('engines', () => {
  const project = JSON.parse(readFileSync(`${ROOT}/package.json`, 'utf8')) as { engines: { node: string } };
  const declared = project.engines.node;

  it('the running Node is one the project declares', () => {
    assert.ok(semver.satisfies(process.version, declared), `node ${process.version} is outside engines.node ${declared}`);
  });

  it("every locked package's engines.node includes the oldest Node the project declares", () => {
    const oldest = semver.minVersion(declared);
    assert.ok(oldest !== null, `engines.node ${declared} is not a semver range`);
    const lock = JSON.parse(readFileSync(`${ROOT}/package-lock.json`, 'utf8')) as { packages: Record<string, LockEntry> };
    const misfits: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      const node = Array.isArray(entry.engines) ? undefined : (entry.engines as { node?: string } | undefined)?.node;
      if (path === '' || node === undefined) continue;
      if (!semver.satisfies(oldest, node)) misfits.push(`${path.replace(/^.*node_modules\//, '')}@${entry.version} needs node ${node}`);
    }
    assert.deepEqual(misfits, [], `packages that do not support node ${oldest.version} (engines.node ${declared})`);
  });
});
