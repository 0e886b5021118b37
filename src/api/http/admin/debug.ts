/** `/admin/debug/*`: profiles on demand, like Go's pprof (see telemetry/profiling.ts). */
import type { FastifyInstance } from 'fastify';
import { fastError } from '../../../core/errors.js';
import { MAX_PROFILE_SECONDS, cpuProfile, heapSnapshot } from '../../../telemetry/profiling.js';

/**
 * Registers `GET /debug/cpu-profile?seconds=N` (default 10; it answers after N seconds) and `GET
 * /debug/heap-snapshot`, as file downloads. Adds no guard of its own: register it under /admin's.
 */
export async function adminDebugRoutes(app: FastifyInstance): Promise<void> {
  // Profiles of the worker that serves the call (with several workers, each call may reach another one).
  app.get<{ Querystring: { seconds?: string } }>('/debug/cpu-profile', async (request, reply) => {
    const text = request.query.seconds ?? '10';
    const seconds = Number(text);
    if (!/^\d+(\.\d+)?$/.test(text) || seconds <= 0 || seconds > MAX_PROFILE_SECONDS) {
      throw fastError(
        'invalid_request',
        `\`seconds\` must be a number in (0, ${MAX_PROFILE_SECONDS}], got ${JSON.stringify(text).slice(0, 40)}`,
        'seconds',
      );
    }
    const profile = await cpuProfile(seconds);
    return reply
      .header('content-type', 'application/json')
      .header('content-disposition', `attachment; filename="infergate-${process.pid}-${Date.now()}.cpuprofile"`)
      .send(profile);
  });
  app.get('/debug/heap-snapshot', async (_request, reply) =>
    reply
      .header('content-type', 'application/json')
      .header('content-disposition', `attachment; filename="infergate-${process.pid}-${Date.now()}.heapsnapshot"`)
      .send(heapSnapshot()),
  );
}
