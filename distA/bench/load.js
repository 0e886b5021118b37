/**
 * Load generators: wrk (a C program, as a child process) when it is on the PATH, since it leaves
 * more of a 2-core machine to the server under test; autocannon (in-process) otherwise.
 */
import { execFile, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
const WRK_SCRIPT = fileURLToPath(new URL('../../bench/wrk-report.lua', import.meta.url));
export function loadGenerator() {
    return spawnSync('wrk', ['--version']).error === undefined ? 'wrk' : 'autocannon';
}
export function runLoad(spec, tool) {
    return tool === 'wrk' ? runWrk(spec) : runAutocannon(spec);
}
function runWrk(spec) {
    const hdrs = Object.entries(spec.headers)
        .map(([k, v]) => `${k}: ${v}`)
        .join('|');
    const args = ['-t1', `-c${spec.connections}`, `-d${spec.seconds}s`, '--timeout', '10s', '-s', WRK_SCRIPT, spec.url];
    return new Promise((resolve, reject) => {
        execFile('wrk', args, { env: { ...process.env, BODY: spec.bodyFile, HDRS: hdrs }, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
            if (err)
                return reject(new Error(`wrk failed: ${stderr || err.message}`));
            const line = stdout.split('\n').find((l) => l.startsWith('{"requests"'));
            if (line === undefined)
                return reject(new Error(`wrk printed no report:\n${stdout}`));
            const r = JSON.parse(line);
            const errors = Object.values(r.errors).reduce((a, b) => a + b, 0);
            const ms = (us) => us / 1000;
            resolve({
                requests: r.requests,
                qps: r.requests / (r.duration_us / 1e6),
                errors,
                latencyMs: { mean: ms(r.latency_us.mean), p50: ms(r.latency_us.p50), p99: ms(r.latency_us.p99), max: ms(r.latency_us.max) },
            });
        });
    });
}
async function runAutocannon(spec) {
    const { readFileSync } = await import('node:fs');
    const result = await autocannon({
        url: spec.url,
        method: 'POST',
        connections: spec.connections,
        duration: spec.seconds,
        body: readFileSync(spec.bodyFile, 'utf8'),
        headers: { 'content-type': 'application/json', ...spec.headers },
    });
    return {
        requests: result.requests.total,
        qps: result.requests.total / spec.seconds,
        errors: result.errors + result.timeouts + result.non2xx,
        latencyMs: { mean: result.latency.mean, p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
    };
}
//# sourceMappingURL=load.js.map