/** Builds the request context from an HTTP request: id, pinned version, and a signal aborted when the client leaves. */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RequestContext } from '../../core/context.js';

export function httpContext(request: FastifyRequest, reply: FastifyReply, pinnedVersion?: string): RequestContext {
  const controller = new AbortController();
  const res = reply.raw;
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  const header = request.headers['x-model-version'];
  return {
    id: request.id,
    pinnedVersion: pinnedVersion ?? (typeof header === 'string' && header !== '' ? header : undefined),
    signal: controller.signal,
  };
}
