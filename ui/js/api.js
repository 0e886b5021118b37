/**
 * Calls to the server. The admin key lives in sessionStorage only (gone when the tab closes) and
 * is sent only as an `Authorization: Bearer` header, never in a URL. Every call here is an
 * existing admin or model API call: the dashboard has no power of its own.
 */

const KEY = 'infergate.adminKey';

/** The server's root: the parent of /ui/, so the dashboard also works behind a path prefix. */
export const BASE = new URL('../', location.href);

/** A refusal or failure, with the API's own error fields when it sent them. */
export class ApiFailure extends Error {
  constructor(status, message, code = null, param = null) {
    super(message);
    this.name = 'ApiFailure';
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

export const session = {
  /** The admin key, or '' when none was given (auth.mode none on loopback). */
  get key() {
    return sessionStorage.getItem(KEY) ?? '';
  },
  set key(value) {
    if (value === '') sessionStorage.removeItem(KEY);
    else sessionStorage.setItem(KEY, value);
  },
};

let refused = () => undefined;

/** Called when an admin call answers 401 or 403 after sign-in: the key stopped working. */
export function onRefused(handler) {
  refused = handler;
}

/** Headers for an admin call with `key` (default: the session's). */
export function adminHeaders(key = session.key) {
  return key === '' ? {} : { authorization: `Bearer ${key}` };
}

/** The error message of an answer: OpenAI's `{error: {message}}`, KServe's `{error: "..."}`, or the status. */
export function failureOf(status, body) {
  const error = body !== null && typeof body === 'object' ? body.error : undefined;
  if (typeof error === 'string') return new ApiFailure(status, error);
  if (error !== null && typeof error === 'object' && typeof error.message === 'string') {
    return new ApiFailure(status, error.message, error.code ?? null, error.param ?? null);
  }
  return new ApiFailure(status, `the server answered ${status}`);
}

async function readBody(res) {
  const text = await res.text();
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * An admin API call: resolves to the parsed JSON answer (null for 204), throws ApiFailure
 * otherwise. `options.key` overrides the session's key (sign-in tries one before keeping it);
 * `options.quiet` keeps a 401 from signing the dashboard out.
 */
export async function admin(method, path, body, options = {}) {
  const headers = adminHeaders(options.key);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(new URL(path.replace(/^\//, ''), BASE), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: options.signal,
    cache: 'no-store',
  });
  const parsed = await readBody(res);
  if (res.ok) return parsed;
  const failure = failureOf(res.status, parsed);
  if ((res.status === 401 || res.status === 403) && options.quiet !== true) refused(failure);
  throw failure;
}

/** A model API call (/v1, /v2) with a tenant key (or none): the raw Response, for streaming. */
export function modelCall(method, path, body, tenantKey, signal) {
  const headers = tenantKey === '' ? {} : { authorization: `Bearer ${tenantKey}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  return fetch(new URL(path.replace(/^\//, ''), BASE), {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    signal,
    cache: 'no-store',
  });
}

/** A model API call whose whole answer is JSON: the parsed body, or ApiFailure. */
export async function modelJson(method, path, body, tenantKey, signal) {
  const res = await modelCall(method, path, body, tenantKey, signal);
  const parsed = await readBody(res);
  if (!res.ok) throw failureOf(res.status, parsed);
  return { body: parsed, headers: res.headers };
}

/** A path segment, escaped (model names, tenant ids and key ids come from the server, not from code). */
export function seg(value) {
  return encodeURIComponent(value);
}
