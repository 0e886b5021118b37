/**
 * The dashboard's static files: `GET /ui/<path>` serves the repository's `ui/` folder (next to
 * `src/`, copied into the image alike), `/ui/vendor/uplot.{js,css}` serve uPlot from
 * node_modules, and `/` and `/ui` redirect to `/ui/`. Files are read at each request (they are
 * few and small, and an edit shows without a restart); the path is checked segment by segment
 * after decoding, then the file's real path must still be inside the folder, so no `..`, encoded
 * separator or symbolic link reaches anything else. Every answer carries the security headers
 * below: scripts, styles and connections from this origin only, no framing.
 */
import { readFile, realpath } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { extname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { routeNotFound, sendOpenAIError } from '../errors.js';

/** The repository's ui/ folder: this file is dist/src/api/http/ui/routes.js once compiled. */
export const UI_DIR = fileURLToPath(new URL('../../../../../ui/', import.meta.url));

/** The headers of every /ui answer (and of the redirects to it). */
export const UI_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cache-control': 'no-cache',
};

/** The types of the files served; any other extension is not served. */
const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** Files of packages in node_modules served under /ui/vendor/, by the name they are served as. */
const VENDOR: Readonly<Record<string, string>> = {
  'uplot.js': 'uplot/dist/uPlot.iife.min.js',
  'uplot.css': 'uplot/dist/uPlot.min.css',
};

/** The file a /ui path names inside `root`, or null when it names none it may (traversal, odd bytes, a folder). */
export function uiFile(root: string, url: string): string | null {
  const q = url.indexOf('?');
  const path = (q === -1 ? url : url.slice(0, q)).slice('/ui/'.length);
  if (path === '') return join(root, 'index.html');
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return null;
  }
  const segments = decoded.split('/');
  for (const s of segments) {
    // '' (a double slash, or a trailing one: a folder), dot segments and dot-files, and anything a file system reads as a separator or an end.
    if (s === '' || s.startsWith('.') || /[\\\0:]/.test(s)) return null;
  }
  if (TYPES[extname(decoded).toLowerCase()] === undefined) return null;
  return join(root, ...segments);
}

/** Registers /, /ui, /ui/* and the vendor files, with UI_HEADERS on every answer. */
export function registerUi(app: FastifyInstance, root: string = UI_DIR): void {
  const require = createRequire(import.meta.url);
  // Resolved once: a package not installed answers 404.
  const vendor = Object.entries(VENDOR).map(([name, spec]) => {
    try {
      return { name, file: require.resolve(spec) };
    } catch {
      return { name, file: null };
    }
  });
  app.register(async (scope) => {
    scope.addHook('onSend', async (_request, reply, payload) => {
      reply.headers(UI_HEADERS);
      return payload;
    });
    scope.get('/', (_request, reply) => reply.redirect('/ui/', 302));
    scope.get('/ui', (_request, reply) => reply.redirect('/ui/', 302));
    for (const { name, file } of vendor) {
      scope.get(`/ui/vendor/${name}`, (request, reply) => (file === null ? notFound(request, reply) : send(reply, file, file)));
    }
    let realRoot: string | null = null;
    scope.get('/ui/*', async (request, reply) => {
      const file = uiFile(root, request.url);
      if (file === null) return notFound(request, reply);
      realRoot ??= await realpath(root).catch(() => null);
      const real = await realpath(file).catch(() => null);
      if (realRoot === null || real === null || !real.startsWith(realRoot + sep)) return notFound(request, reply);
      return send(reply, real, file);
    });
  });
}

async function send(reply: FastifyReply, file: string, named: string): Promise<FastifyReply> {
  const body = await readFile(file).catch(() => null);
  if (body === null) return notFound(reply.request, reply);
  return reply.type(TYPES[extname(named).toLowerCase()] ?? 'application/octet-stream').send(body);
}

function notFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  sendOpenAIError(routeNotFound(request), request, reply);
  return reply;
}
