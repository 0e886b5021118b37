/**
 * OpenAI's rate-limit headers. Built as object literals with constant names: header objects built
 * with computed names (`x-ratelimit-${kind}`) and then spread measured a third slower per call,
 * since V8 has to look every new name string up before it can use it as a key.
 */
import type { RateLimit, RateWindow } from '../../core/rate-limit.js';

/**
 * The answer's headers: `x-model-version` and `content-type`, plus the rate-limit headers when there
 * are any. A 429 passes null for both and gets the rate-limit headers alone.
 */
export function withRateLimit(rateLimit: RateLimit | null, version: string | null, contentType: string | null): Record<string, string> {
  if (version === null || contentType === null) return rateLimit === null ? {} : strip(withRateLimit(rateLimit, '', ''));
  if (rateLimit === null) return { 'x-model-version': version, 'content-type': contentType };
  const r = rateLimit.requests;
  const t = rateLimit.tokens;
  if (t === null && r !== null) {
    return {
      'x-ratelimit-limit-requests': String(r.limit),
      'x-ratelimit-remaining-requests': String(r.remaining),
      'x-ratelimit-reset-requests': duration(r.resetMs),
      'x-model-version': version,
      'content-type': contentType,
    };
  }
  if (r === null && t !== null) {
    return {
      'x-ratelimit-limit-tokens': String(t.limit),
      'x-ratelimit-remaining-tokens': String(t.remaining),
      'x-ratelimit-reset-tokens': duration(t.resetMs),
      'x-model-version': version,
      'content-type': contentType,
    };
  }
  const req = r as RateWindow;
  const tok = t as RateWindow;
  return {
    'x-ratelimit-limit-requests': String(req.limit),
    'x-ratelimit-remaining-requests': String(req.remaining),
    'x-ratelimit-reset-requests': duration(req.resetMs),
    'x-ratelimit-limit-tokens': String(tok.limit),
    'x-ratelimit-remaining-tokens': String(tok.remaining),
    'x-ratelimit-reset-tokens': duration(tok.resetMs),
    'x-model-version': version,
    'content-type': contentType,
  };
}

/** Milliseconds as OpenAI writes them: "20ms", "1.5s", "6m0s". */
export function duration(ms: number): string {
  // Whole milliseconds divided by 1000 print with at most three decimals, without toFixed's cost.
  const whole = Math.max(0, Math.round(ms));
  if (whole < 1000) return `${whole}ms`;
  if (whole < 60_000) return `${whole / 1000}s`;
  return `${Math.floor(whole / 60_000)}m${(whole % 60_000) / 1000}s`;
}

/** Drops the two headers a refusal does not carry. */
function strip(headers: Record<string, string>): Record<string, string> {
  delete headers['x-model-version'];
  delete headers['content-type'];
  return headers;
}
