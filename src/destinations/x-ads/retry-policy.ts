/**
 * When to retry a request to X and how long to wait first (x-ads-api.md §9,
 * https://docs.x.com/x-ads-api/fundamentals/rate-limiting and the retry advice in
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

/** What happened to one attempt, as far as the retry policy cares. */
export type AttemptStatus = number | 'network_error' | 'timeout';

export type RetryDecision =
  { retry: false } | { retry: true; delayMs: number; reason: string; rateLimited: boolean };

/**
 * Whether an attempt's failure is transient, and the wait before the next attempt:
 * 429 → until the reset header; 503 → `retry-after` (else backoff); 500/502/504 and other 5xx, 408
 * `CANCELLED_REQUEST`, 423 `LOCK_ACQUISITION_TIMEOUT`, timeouts and dropped connections → backoff.
 * Anything else (2xx, other 4xx) is not retried here.
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
  if (status === 'network_error')
    return { retry: true, delayMs: jittered(), reason: 'connection failed', rateLimited: false };
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
