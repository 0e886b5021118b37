/**
 * The model file of an in-process backend: a local file, or an `http(s)://` URL downloaded into a
 * local cache when the version loads, in both cases checked against an optional SHA-256 before the
 * runtime sees it. This is how new weights reach many replicas without a model hub: publish the file
 * anywhere HTTP reaches, put its URL and hash in the config, reload.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { mkdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Logger } from 'pino';

/** What {@link resolveModelFile} needs: the configured `path`, `sha256` and `cache_dir` of a version. */
export interface ModelFileOptions {
  /** A local file (absolute, as the config made it) or an `http://` / `https://` URL. */
  readonly path: string;
  /** The file's expected SHA-256, 64 lowercase hex digits; absent: not checked. */
  readonly sha256?: string | undefined;
  /** Where downloads are kept, relative to the working directory unless absolute. */
  readonly cacheDir: string;
  /** Told when a download starts, every few seconds of it, and when it ends; absent: silent. */
  readonly log?: Pick<Logger, 'info'> | undefined;
}

/** Redirects followed before a download fails (object stores and CDNs use one or two). */
const MAX_REDIRECTIONS = 5;
/** Longest wait for the TCP/TLS connection (and each silence before the headers), then for the headers, in milliseconds. */
const CONNECT_TIMEOUT_MS = 10_000;
const HEADERS_TIMEOUT_MS = 30_000;
/** Longest pause between two chunks of the body: a stalled server fails the load instead of hanging it. */
const BODY_TIMEOUT_MS = 60_000;
/** How often a running download logs its progress. */
const PROGRESS_INTERVAL_MS = 5_000;
const USER_AGENT = 'infergate';

/** Downloads running in this process, by URL and expected hash: concurrent loads of one file share one download. */
const downloads = new Map<string, Promise<string>>();

/** Whether a configured `path` is a URL to download rather than a file (config/load.ts does not resolve these). */
export function isModelUrl(path: string): boolean {
  return /^https?:\/\//i.test(path);
}

/**
 * The local file a backend should load for `options.path`: the path itself, or the cached download
 * of the URL. Rejects, with a message for `/health/ready`, when the file cannot be had or its
 * SHA-256 is not `options.sha256` (`sha256 mismatch for <path>: expected <x>, got <y>`).
 */
export async function resolveModelFile(options: ModelFileOptions): Promise<string> {
  const { path, sha256 } = options;
  if (!isModelUrl(path)) {
    if (sha256 !== undefined) verify(path, await hashFile(path), sha256);
    return path;
  }
  const key = `${path}\n${sha256 ?? ''}`;
  let pending = downloads.get(key);
  if (pending === undefined) {
    pending = cachedDownload(options).finally(() => downloads.delete(key));
    downloads.set(key, pending);
  }
  return pending;
}

/** The SHA-256 of a file as lowercase hex, read as a stream (model files can be larger than memory). */
export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A URL as messages and logs show it: without credentials or query, which often carry a signature (pre-signed object-store URLs). */
export function displayUrl(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}${u.search === '' ? '' : '?…'}`;
}

/** The cache's file for a URL: a hash of the whole URL (so two URLs never share a file) and its last path segment, for people. */
export function cacheFileName(url: string): string {
  const id = createHash('sha256').update(url).digest('hex').slice(0, 32);
  const last = basename(new URL(url).pathname)
    .replace(/[^A-Za-z0-9._-]/g, '_')
    .slice(-100);
  return last === '' || /^\.+$/.test(last) ? id : `${id}-${last}`;
}

/** A failure worded in full for `/health/ready` (a hash mismatch, a status, too many redirects): passed on as it is. */
class ModelFileError extends Error {}

function verify(what: string, got: string, expected: string): void {
  if (got !== expected) throw new ModelFileError(`sha256 mismatch for ${what}: expected ${expected}, got ${got}`);
}

/** The cached copy when it is there (and has the expected hash), else a fresh download. */
async function cachedDownload(options: ModelFileOptions): Promise<string> {
  const dir = resolve(options.cacheDir);
  const file = join(dir, cacheFileName(options.path));
  if (await isFile(file)) {
    if (options.sha256 === undefined) return file;
    const got = await hashFile(file);
    if (got === options.sha256) return file;
    // Not an error: the URL now serves new weights (the config has their hash), or an old copy was damaged.
    options.log?.info(
      { url: displayUrl(options.path), file, expected: options.sha256, got },
      'cached model file is stale; downloading it again',
    );
  }
  await mkdir(dir, { recursive: true });
  await download(options, file);
  return file;
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/**
 * Downloads into a temporary file next to `file`, checks its hash, then renames it into place: a
 * reader (another worker process, the next start) sees the whole verified file or none.
 */
async function download(options: ModelFileOptions, file: string): Promise<void> {
  const { path: url, sha256, log } = options;
  const shown = displayUrl(url);
  const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.part`;
  const started = performance.now();
  let bytes = 0;
  try {
    const res = await followRedirects(new URL(url), shown);
    const length = Number(res.headers['content-length']);
    const total = Number.isSafeInteger(length) ? length : null;
    log?.info({ url: shown, bytes: total }, 'downloading model file');
    const hash = createHash('sha256');
    let lastLog = started;
    await pipeline(
      res,
      async function* hashed(source: AsyncIterable<Buffer>) {
        for await (const chunk of source) {
          hash.update(chunk);
          bytes += chunk.length;
          const now = performance.now();
          if (log !== undefined && now - lastLog >= PROGRESS_INTERVAL_MS) {
            lastLog = now;
            log.info({ url: shown, bytes, total }, 'downloading model file');
          }
          yield chunk;
        }
      },
      // flush: the data is on disk before the rename makes it the cached copy.
      createWriteStream(temp, { flush: true }),
    );
    // Without sha256 this is the only check that the file is whole (a server that closed early).
    if (total !== null && bytes !== total) throw new Error(`got ${bytes} of ${total} bytes`);
    if (sha256 !== undefined) verify(shown, hash.digest('hex'), sha256);
    await rename(temp, file);
    log?.info({ url: shown, file, bytes, ms: Math.round(performance.now() - started) }, 'downloaded model file');
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    if (err instanceof ModelFileError) throw err;
    const after = bytes === 0 ? '' : ` after ${bytes} bytes`;
    throw new Error(`download of ${shown} failed${after}: ${describeError(err as Error)}`, { cause: err });
  }
}

const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/** The 2xx response to GET `url`, after at most {@link MAX_REDIRECTIONS} redirects. */
async function followRedirects(url: URL, shown: string): Promise<IncomingMessage> {
  for (let redirects = 0; ; redirects++) {
    const res = await get(url);
    const status = res.statusCode ?? 0;
    const location = res.headers.location;
    if (REDIRECT_STATUSES.has(status) && location !== undefined) {
      res.resume();
      if (redirects === MAX_REDIRECTIONS) throw new ModelFileError(`download of ${shown} failed: more than ${MAX_REDIRECTIONS} redirects`);
      const next = new URL(location, url);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw new ModelFileError(`download of ${shown} failed: redirected to a ${next.protocol} URL`);
      }
      // Weights fetched over TLS stay on TLS: a redirect to cleartext would let anyone on the path swap them.
      if (url.protocol === 'https:' && next.protocol === 'http:') {
        throw new ModelFileError(`download of ${shown} failed: redirected from https to cleartext http`);
      }
      url = next;
      continue;
    }
    if (status < 200 || status > 299) {
      res.resume();
      throw new ModelFileError(`download of ${shown} failed: the server answered HTTP ${status}`);
    }
    return res;
  }
}

/**
 * One GET with node:http(s), not undici: undici 7's HTTP/1 client crashes the process (an
 * uncatchable assertion, nodejs/undici#5360; 7.30.2, the newest 7.x, has it) when a server closes the
 * connection after the body while the reader applies backpressure, which a file download does
 * whenever the disk is slower than the network. Time-outs: connecting and each silence before the
 * headers, the headers themselves, then each silence of the body.
 */
function get(url: URL): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, { agent: false, timeout: CONNECT_TIMEOUT_MS, headers: { 'user-agent': USER_AGENT } });
    let res: IncomingMessage | null = null;
    const headers = setTimeout(() => req.destroy(new Error(`no response headers in ${HEADERS_TIMEOUT_MS} ms`)), HEADERS_TIMEOUT_MS);
    req.on('timeout', () => {
      const err = new Error(
        res !== null
          ? `no data for ${BODY_TIMEOUT_MS} ms`
          : req.socket?.connecting === false
            ? `no response for ${CONNECT_TIMEOUT_MS} ms`
            : `could not connect in ${CONNECT_TIMEOUT_MS} ms`,
      );
      if (res !== null) res.destroy(err);
      else req.destroy(err);
    });
    req.once('response', (response) => {
      clearTimeout(headers);
      res = response;
      req.setTimeout(BODY_TIMEOUT_MS);
      resolve(response);
    });
    // `on`, not `once`: an error with no listener would be thrown (a socket can fail twice).
    req.on('error', (err) => {
      clearTimeout(headers);
      reject(err);
    });
    req.end();
  });
}

/** A network error's message, with its code where the message lacks it. */
function describeError(err: Error): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
}
