/**
 * When to retry a request to X and how long to wait first
 * (https://docs.x.com/x-ads-api/fundamentals/rate-limiting and the retry advice in
 * https://docs.x.com/x-ads-api/analytics). Pure functions of the response and the time, so the policy
 * is unit-tested without a server or a real clock.
 */

/** Exponential backoff with full jitter: a random wait in [0, min(cap, base * 2^(attempt-1))). */
export interface BackoffOptions {
  baseMs: number;
  capMs: number;
}

/**
 * X's own advice is "retry at once, then after 1 min, then after 5 min, …". Full jitter from 1 s
 * doubling to a 2 minute cap spreads many workers' retries apart and still reaches the minute scale
 * after a handful of failures.
 */
export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1_000, capMs: 120_000 };

/** Added to a rate-limit reset time: X's clock and ours differ, and the SDKs add 5 s (§9.2). */
export const RESET_MARGIN_MS = 2_000;

/** A 429 without any reset header: wait out one full window of the per-minute limits (§9.1). */
export const RATE_LIMIT_FALLBACK_MS = 60_000;

export function backoffDelayMs(
  attempt: number,
  random: number,
  options: BackoffOptions = DEFAULT_BACKOFF,
): number {
  const exponent = Math.max(0, attempt - 1);
  const ceiling = Math.min(options.capMs, options.baseMs * 2 ** Math.min(exponent, 30));
  return Math.floor(Math.min(Math.max(random, 0), 1 - Number.EPSILON) * ceiling);
}

export type HeaderLookup = (name: string) => string | undefined;

/**
 * Milliseconds until the rate-limit window resets, from `x-account-rate-limit-reset` (it takes
 * precedence where present) or `x-rate-limit-reset`, both Unix epoch seconds (§9.2), plus a margin.
 * Undefined when neither header holds a number.
 */
export function rateLimitResetDelayMs(
  header: HeaderLookup,
  nowMs: number,
  marginMs = RESET_MARGIN_MS,
): number | undefined {
  for (const name of ['x-account-rate-limit-reset', 'x-rate-limit-reset']) {
    const value = header(name)?.trim();
    if (value && /^\d+(\.\d+)?$/.test(value)) {
      return Math.max(0, Number(value) * 1000 - nowMs) + marginMs;
    }
  }
  return undefined;
}

/** `retry-after` as delta-seconds or an HTTP-date (RFC 9110 §10.2.3), in milliseconds. */
export function retryAfterDelayMs(value: string | undefined, nowMs: number): number | undefined {
  const text = value?.trim();
  if (!text) return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

/**
 * What happened to one attempt, as far as the retry policy cares: X's HTTP status, or no answer at
 * all, sorted by whether waiting can help (see `classifyConnectionError`).
 */
export type AttemptStatus = number | 'network_error' | 'timeout' | 'unreachable';

/** What a user must check when X cannot be reached at all. */
export type UnreachableCause = 'refused' | 'dns' | 'tls' | 'network';

/** Why an attempt got no answer. */
export type ConnectionFailure =
  | { status: 'unreachable'; cause: UnreachableCause; code: string }
  | { status: 'network_error' | 'timeout'; code: string | undefined };

/**
 * Faults of the path to X, not of X: no wait within a run mends them, and retrying only hid them behind
 * a minute of silence and "connection failed". They fail the call at once, naming the address.
 *
 * - ECONNREFUSED: nothing listens there (a local emulator not started, a wrong port in api_url). X's
 *   edge does not refuse connections while it is up; an outage of X answers 5xx or times out instead.
 * - DNS: ENOTFOUND is a host name that does not exist. EAI_AGAIN is "temporary failure" in getaddrinfo's
 *   words, so arguably transient, but what it reports in practice is this machine's resolver not
 *   answering (offline, a broken container DNS), which X cannot recover and a retry a few seconds later
 *   rarely does. It fails at once too: the run ends with the cause in its message, and the next
 *   scheduled run tries again, as after any failed run.
 * - No route (ENETUNREACH, EHOSTUNREACH, ...): this machine's network.
 * - TLS (certificate refused, or https spoken to a plain-http port): a wrong api_url, a wrong clock or an
 *   intercepting proxy, none of which change by waiting.
 */
const REFUSED_CODES = new Set(['ECONNREFUSED']);
const DNS_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EAI_NODATA']);
const NO_ROUTE_CODES = new Set(['ENETUNREACH', 'EHOSTUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'EADDRNOTAVAIL']);
/** Timeouts, connecting or waiting for an answer (TLS handshake included): retried. */
const TIMEOUT_CODES = new Set([
  'ETIMEDOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ERR_TLS_HANDSHAKE_TIMEOUT',
]);
/**
 * OpenSSL's certificate verification codes (CERT_HAS_EXPIRED, DEPTH_ZERO_SELF_SIGNED_CERT,
 * UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...), Node's ERR_TLS_* and OpenSSL's ERR_SSL_* (e.g.
 * ERR_SSL_WRONG_VERSION_NUMBER: https spoken to a plain-http port), and EPROTO (a TLS alert).
 */
const TLS_CODE =
  /^(?:ERR_TLS_|ERR_SSL_|EPROTO$)|CERT|SELF_SIGNED|^UNABLE_TO_|HOSTNAME_MISMATCH|^INVALID_CA$|^PATH_LENGTH_EXCEEDED$|^INVALID_PURPOSE$/;

function unreachableCause(code: string): UnreachableCause | undefined {
  if (TIMEOUT_CODES.has(code)) return undefined;
  if (REFUSED_CODES.has(code)) return 'refused';
  if (DNS_CODES.has(code)) return 'dns';
  if (NO_ROUTE_CODES.has(code)) return 'network';
  if (TLS_CODE.test(code)) return 'tls';
  return undefined;
}

/** The `code`s of an error, its causes and, for an AggregateError (a host of several addresses), its parts. */
function errorCodes(error: unknown, depth = 0): string[] {
  if (depth > 4 || error === null || typeof error !== 'object') return [];
  const { code, cause, errors } = error as { code?: unknown; cause?: unknown; errors?: unknown };
  const out = typeof code === 'string' ? [code] : [];
  out.push(...errorCodes(cause, depth + 1));
  if (Array.isArray(errors)) for (const part of errors) out.push(...errorCodes(part, depth + 1));
  return out;
}

/**
 * Sorts a request's failure to get an answer: `unreachable` (not retried), `timeout` or
 * `network_error` (a connection dropped mid-request, or anything not recognised: retried). When one
 * address of a host timed out and another refused, the transient cause wins, and it is retried.
 */
export function classifyConnectionError(error: unknown): ConnectionFailure {
  const codes = errorCodes(error);
  const timeout = codes.find((code) => TIMEOUT_CODES.has(code));
  if (timeout) return { status: 'timeout', code: timeout };
  const unreachable = codes.find((code) => unreachableCause(code) !== undefined);
  if (unreachable && codes.every((code) => unreachableCause(code) !== undefined)) {
    return { status: 'unreachable', cause: unreachableCause(unreachable)!, code: unreachable };
  }
  return { status: 'network_error', code: codes.find((code) => unreachableCause(code) === undefined) };
}

export type RetryDecision =
  { retry: false } | { retry: true; delayMs: number; reason: string; rateLimited: boolean };

/**
 * Whether an attempt's failure is transient, and the wait before the next attempt:
 * 429 → until the reset header; 503 → `retry-after` (else backoff); 500/502/504 and other 5xx, 408
 * `CANCELLED_REQUEST`, 423 `LOCK_ACQUISITION_TIMEOUT`, timeouts and dropped connections → backoff.
 * Anything else (2xx, other 4xx, an unreachable X) is not retried here.
 */
export function retryDecision(
  status: AttemptStatus,
  header: HeaderLookup,
  nowMs: number,
  attempt: number,
  random: number,
  backoff: BackoffOptions = DEFAULT_BACKOFF,
): RetryDecision {
  const jittered = () => backoffDelayMs(attempt, random, backoff);
  if (status === 'unreachable') return { retry: false };
  if (status === 'network_error')
    return { retry: true, delayMs: jittered(), reason: 'connection lost', rateLimited: false };
  if (status === 'timeout')
    return { retry: true, delayMs: jittered(), reason: 'request timed out', rateLimited: false };
  if (status === 429) {
    return {
      retry: true,
      delayMs: rateLimitResetDelayMs(header, nowMs) ?? RATE_LIMIT_FALLBACK_MS,
      reason: 'rate limited (429)',
      rateLimited: true,
    };
  }
  if (status === 503) {
    return {
      retry: true,
      delayMs: retryAfterDelayMs(header('retry-after'), nowMs) ?? jittered(),
      reason: 'service unavailable (503)',
      rateLimited: false,
    };
  }
  if (status === 408 || status === 423 || (status >= 500 && status <= 599)) {
    return { retry: true, delayMs: jittered(), reason: `server error (${status})`, rateLimited: false };
  }
  return { retry: false };
}

/**
 * Whether waiting `delayMs` more would pass the retry deadline of a request first tried at
 * `startedMs`. Past it, the caller gives up and reports its users as retryable for the next run.
 */
export function pastDeadline(startedMs: number, nowMs: number, delayMs: number, deadlineMs: number): boolean {
  return nowMs + delayMs - startedMs > deadlineMs;
}
