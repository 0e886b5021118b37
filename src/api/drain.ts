/** Back-pressure for every transport's streamed answers: wait for room before writing more. */

/** A stream that can be written to until it is full: a ServerResponse, an HTTP/2 stream. */
interface Drainable {
  on(event: 'drain' | 'close', listener: () => void): unknown;
  off(event: 'drain' | 'close', listener: () => void): unknown;
}

/** Resolves when `stream` has room again (`drain`) or is gone (`close`); a streamed answer's writer awaits it once a write fills the buffer. */
export function drained(stream: Drainable): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}
