/** CPU time and resident memory of a process and all its descendants, read from /proc (Linux). */
import { readFileSync } from 'node:fs';
const TICKS_PER_SECOND = 100; // USER_HZ on Linux
function children(pid) {
    const out = [];
    try {
        for (const tid of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)) {
            if (tid !== '')
                out.push(Number(tid), ...children(Number(tid)));
        }
    }
    catch {
        // gone, or no such file
    }
    return out;
}
function tree(pid) {
    return [pid, ...children(pid)];
}
/** CPU seconds (user + system) used so far by the process tree. */
export function cpuSeconds(pid) {
    let ticks = 0;
    for (const p of tree(pid)) {
        try {
            const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
            const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
            ticks += Number(fields[11]) + Number(fields[12]);
        }
        catch {
            // exited
        }
    }
    return ticks / TICKS_PER_SECOND;
}
/** Resident set size of the process tree, in MiB. */
export function rssMiB(pid) {
    let kb = 0;
    for (const p of tree(pid)) {
        try {
            const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'));
            if (m)
                kb += Number(m[1]);
        }
        catch {
            // exited
        }
    }
    return kb / 1024;
}
/** Samples a process tree while `work` runs: CPU% over the run (100 = one core) and peak RSS. */
export async function measure(pid, work) {
    if (pid === null)
        return { result: await work(), cpuPercent: null, rssMiB: null };
    const start = cpuSeconds(pid);
    const t0 = performance.now();
    let peak = rssMiB(pid);
    const timer = setInterval(() => (peak = Math.max(peak, rssMiB(pid))), 250);
    try {
        const result = await work();
        const seconds = (performance.now() - t0) / 1000;
        return { result, cpuPercent: ((cpuSeconds(pid) - start) / seconds) * 100, rssMiB: peak };
    }
    finally {
        clearInterval(timer);
    }
}
//# sourceMappingURL=proc.js.map