/** `server.cpu_affinity`: each worker's event loop on a CPU of its own, through the real CLI and /proc. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { CpuPinning, allowedCpus } from '../src/cli/cpu-affinity.js';
import { startServer, writeConfig } from './helpers/server.js';

const cpus = allowedCpus();
const tasksetMissing = spawnSync('taskset', ['--version']).error !== undefined;
const skip =
  cpus.length < 2
    ? 'needs at least 2 CPUs'
    : tasksetMissing
      ? 'needs taskset (util-linux)'
      : process.platform !== 'linux'
        ? 'Linux only'
        : false;

/** The worker processes of a server (the primary's children) and the CPUs each one's main thread may run on. */
function workerCpus(primary: number): string[] {
  const children = readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  return children.map((pid) => /^Cpus_allowed_list:\s*(.+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]?.trim() ?? '');
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

describe('cpu affinity', () => {
  it('reads the allowed CPU list of /proc/self/status', () => {
    assert.deepEqual(allowedCpus('Name:\tnode\nCpus_allowed_list:\t0-1\n'), [0, 1]);
    assert.deepEqual(allowedCpus('Cpus_allowed_list:\t0,2-4,7\n'), [0, 2, 3, 4, 7]);
    assert.deepEqual(allowedCpus('Cpus_allowed_list:\tx\n'), []);
    assert.deepEqual(allowedCpus('Name:\tnode\n'), []);
  });

  it('pins only with one worker per allowed CPU, and only in auto', () => {
    assert.equal(new CpuPinning('auto', 2, [0, 1]).active, true);
    assert.equal(new CpuPinning('auto', 3, [0, 1]).active, false);
    assert.equal(new CpuPinning('auto', 1, [0]).active, false);
    assert.equal(new CpuPinning('off', 2, [0, 1]).active, false);
  });

  it('gives each worker of a server its own CPU, and none with cpu_affinity: off', { skip }, async () => {
    const models = `models: [{ name: m, versions: [{ version: '1', backend: { kind: mock } }] }]\n`;
    const pinned = await startServer({ config: writeConfig(models), args: ['--workers', String(cpus.length)] });
    try {
      const pid = pinned.process.pid as number;
      // Pinned once each worker listens; taskset runs beside the announcement.
      const ok = await until(() => {
        const lists = workerCpus(pid);
        return lists.length === cpus.length && new Set(lists).size === cpus.length && lists.every((l) => /^\d+$/.test(l));
      }, 3000);
      assert.ok(ok, `workers' CPUs: ${workerCpus(pid).join(' | ')}`);
      assert.deepEqual(
        workerCpus(pid)
          .map(Number)
          .sort((a, b) => a - b),
        cpus,
      );
    } finally {
      assert.equal(await pinned.stop(), 0);
    }
    const free = await startServer({
      config: writeConfig(`server: { cpu_affinity: 'off' }\n${models}`),
      args: ['--workers', String(cpus.length)],
    });
    try {
      const lists = workerCpus(free.process.pid as number);
      assert.equal(lists.length, cpus.length);
      for (const l of lists) assert.deepEqual(allowedCpus(`Cpus_allowed_list:\t${l}\n`), cpus);
    } finally {
      assert.equal(await free.stop(), 0);
    }
  });
});
