/** A real HTTP file server on loopback (node:http), as a model store would be, counting the requests it answers. */
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve, sep } from 'node:path';

export interface FileServer {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The path and query of every request so far, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

/**
 * Serves the files under `root` by path. Two more routes: `/redirect/<n>/<path>` answers 302 and
 * counts down to `/<path>`; `/status/<code>/...` answers that status with no file; `/truncated/...`
 * sends 100 of the 1000 bytes it announces; `/close/<path>` serves <path> and closes the connection.
 */
export async function startFileServer(root: string): Promise<FileServer> {
  const base = resolve(root);
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(req.url ?? '/');
    const redirect = /^\/redirect\/(\d+)\/(.*)$/.exec(path);
    if (redirect !== null) {
      const n = Number(redirect[1]);
      res.writeHead(302, { location: n > 1 ? `/redirect/${n - 1}/${redirect[2]}` : `/${redirect[2]}` }).end();
      return;
    }
    if (path.startsWith('/truncated/')) {
      // Promises more bytes than it sends, then closes: a server that died mid-file.
      res.writeHead(200, { 'content-length': 1000 });
      res.write(Buffer.alloc(100));
      setImmediate(() => res.destroy());
      return;
    }
    const status = /^\/status\/(\d{3})\//.exec(path);
    if (status !== null) {
      res.writeHead(Number(status[1]), { 'content-type': 'text/plain' }).end('no model here');
      return;
    }
    // `/close/<path>`: <path>, then the connection closes, as HTTP/1.0 servers (python -m http.server) do.
    const close = path.startsWith('/close/');
    const file = join(base, close ? path.slice('/close'.length) : path);
    const size = file.startsWith(base + sep) ? fileSize(file) : null;
    if (size === null) {
      res.writeHead(404).end();
      return;
    }
    if (close) {
      // All of it at once, then FIN: the client's parser is still behind (backpressure) when the socket ends.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size, connection: 'close' });
      res.end(readFileSync(file));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => {
      server.closeAllConnections();
      return new Promise((done) => server.close(() => done()));
    },
  };
}

function fileSize(file: string): number | null {
  try {
    const s = statSync(file);
    return s.isFile() ? s.size : null;
  } catch {
    return null;
  }
}
