/**
 * gRPC connections under node:cluster: the primary accepts them and hands each to the worker that
 * holds the fewest. A gRPC client keeps one HTTP/2 connection for all its calls, so which worker
 * takes a connection decides where all of its load goes: with the kernel deciding (`direct`
 * accept), 16 connections often split 4/12 over two workers; dealt by count, they split 8/8. The
 * hand-off (the socket sent over the IPC channel, unread) happens once a connection; calls then go
 * straight to the worker.
 */
import type { Worker } from 'node:cluster';
import { createServer, type Server, type Socket } from 'node:net';

/** The message a worker gets with a connection's socket. */
export const GRPC_CONNECTION = 'grpc-connection';
/** The message a worker sends the primary when one of those connections closes. */
export const GRPC_CLOSED = 'grpc-closed';

/**
 * The primary's gRPC port: each connection accepted goes, unread, to the ready worker that holds the
 * fewest (ties in turn); with no worker ready it is closed, and the client retries.
 */
export class GrpcBalancer {
  readonly #server: Server;
  /** gRPC connections each ready worker holds. */
  readonly #open = new Map<Worker, number>();
  /** Where the search for the fewest starts, so ties go round. */
  #next = 0;

  constructor() {
    this.#server = createServer({ pauseOnConnect: true }, (socket) => this.#deal(socket));
  }

  /** Listens on `host:port` (0: any free port); resolves with the port bound. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve((this.#server.address() as { port: number }).port);
      });
    });
  }

  /** A worker is ready for connections. */
  add(worker: Worker): void {
    if (!this.#open.has(worker)) this.#open.set(worker, 0);
  }

  /** A worker is gone: it gets no more connections (its own closed with it). */
  remove(worker: Worker): void {
    this.#open.delete(worker);
  }

  /** One of a worker's connections closed. */
  closed(worker: Worker): void {
    const n = this.#open.get(worker);
    if (n !== undefined && n > 0) this.#open.set(worker, n - 1);
  }

  /** Stops accepting; the workers drain the connections they hold. */
  close(): void {
    if (this.#server.listening) this.#server.close();
  }

  #deal(socket: Socket): void {
    const workers = [...this.#open.keys()];
    let best: Worker | null = null;
    let fewest = Number.POSITIVE_INFINITY;
    for (let k = 0; k < workers.length; k++) {
      const w = workers[(this.#next + k) % workers.length] as Worker;
      const n = this.#open.get(w) as number;
      if (n < fewest) {
        best = w;
        fewest = n;
      }
    }
    this.#next++;
    if (best === null || !best.isConnected()) {
      socket.destroy(); // no worker is ready: the client retries
      return;
    }
    const chosen = best;
    this.#open.set(chosen, fewest + 1);
    chosen.send({ type: GRPC_CONNECTION }, socket, (err: Error | null) => {
      if (err === null) return;
      socket.destroy();
      this.closed(chosen);
    });
  }
}
