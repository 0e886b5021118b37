/** The request context of an HTTP request: id, pinned version, and a signal aborted when the client leaves. */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { RequestContext } from '../../core/context.js';

/** Creates the AbortController (about 1 µs and a listener) only when a backend reads `signal`. */
class HttpContext implements RequestContext {
  readonly id: string;
  readonly pinnedVersion: string | undefined;
  readonly #res: ServerResponse;
  #signal: AbortSignal | null = null;

  constructor(id: string, pinnedVersion: string | undefined, res: ServerResponse) {
    this.id = id;
    this.pinnedVersion = pinnedVersion;
    this.#res = res;
  }

  get signal(): AbortSignal {
    if (this.#signal !== null) return this.#signal;
    const controller = new AbortController();
    this.onAbort(() => controller.abort());
    return (this.#signal = controller.signal);
  }

  onAbort(listener: () => void): void {
    const res = this.#res;
    if (res.closed) {
      if (!res.writableFinished) listener();
      return;
    }
    res.once('close', () => res.writableFinished || listener());
  }
}

/** The context of one call: a version pinned by the URL wins over the `x-model-version` header. */
export function httpContext(id: string, headers: IncomingHttpHeaders, res: ServerResponse, pinnedVersion?: string): RequestContext {
  const header = headers['x-model-version'];
  const pinned = pinnedVersion ?? (typeof header === 'string' && header !== '' ? header : undefined);
  return new HttpContext(id, pinned, res);
}
