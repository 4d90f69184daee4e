import { describe, expect, it } from 'vitest';
import {
  backoffDelayMs,
  classifyConnectionError,
  pastDeadline,
  RATE_LIMIT_FALLBACK_MS,
  RESET_MARGIN_MS,
  rateLimitResetDelayMs,
  retryAfterDelayMs,
  retryDecision,
} from '../../src/destinations/x-ads/retry-policy.js';

const NOW = Date.UTC(2026, 0, 1, 0, 0, 0);
const headers =
  (values: Record<string, string>) =>
  (name: string): string | undefined =>
    values[name];

describe('backoff with full jitter', () => {
  const options = { baseMs: 1_000, capMs: 120_000 };
  it('grows exponentially up to the cap, scaled by the random draw', () => {
    expect(backoffDelayMs(1, 0.5, options)).toBe(500);
    expect(backoffDelayMs(2, 0.5, options)).toBe(1_000);
    expect(backoffDelayMs(4, 0.5, options)).toBe(4_000);
    expect(backoffDelayMs(20, 0.5, options)).toBe(60_000);
    expect(backoffDelayMs(1000, 0.999, options)).toBeLessThan(120_000);
  });
  it('is zero at a draw of 0 and below the ceiling at a draw near 1', () => {
    expect(backoffDelayMs(3, 0, options)).toBe(0);
    expect(backoffDelayMs(3, 1, options)).toBeLessThan(4_000);
  });
});

describe('rate-limit reset', () => {
  it('prefers x-account-rate-limit-reset, then x-rate-limit-reset (epoch seconds), plus a margin', () => {
    const reset = NOW / 1000 + 30;
    expect(
      rateLimitResetDelayMs(
        headers({ 'x-account-rate-limit-reset': String(reset), 'x-rate-limit-reset': String(reset + 100) }),
        NOW,
      ),
    ).toBe(30_000 + RESET_MARGIN_MS);
    expect(rateLimitResetDelayMs(headers({ 'x-rate-limit-reset': String(reset) }), NOW)).toBe(
      30_000 + RESET_MARGIN_MS,
    );
  });
  it('a reset in the past waits only the margin; no header gives undefined', () => {
    expect(rateLimitResetDelayMs(headers({ 'x-rate-limit-reset': String(NOW / 1000 - 5) }), NOW)).toBe(
      RESET_MARGIN_MS,
    );
    expect(rateLimitResetDelayMs(headers({ 'x-rate-limit-reset': 'soon' }), NOW)).toBeUndefined();
    expect(rateLimitResetDelayMs(headers({}), NOW)).toBeUndefined();
  });
});

describe('retry-after', () => {
  it('reads delta-seconds and HTTP dates', () => {
    expect(retryAfterDelayMs('30', NOW)).toBe(30_000);
    expect(retryAfterDelayMs(new Date(NOW + 90_000).toUTCString(), NOW)).toBe(90_000);
    expect(retryAfterDelayMs('garbage', NOW)).toBeUndefined();
    expect(retryAfterDelayMs(undefined, NOW)).toBeUndefined();
  });
});

describe('retryDecision', () => {
  const none = headers({});
  it('429 waits for the reset header, or a full window without one', () => {
    const reset = String(NOW / 1000 + 12);
    expect(retryDecision(429, headers({ 'x-rate-limit-reset': reset }), NOW, 1, 0.5)).toEqual({
      retry: true,
      delayMs: 12_000 + RESET_MARGIN_MS,
      reason: 'rate limited (429)',
      rateLimited: true,
    });
    expect(retryDecision(429, none, NOW, 1, 0.5)).toMatchObject({
      retry: true,
      delayMs: RATE_LIMIT_FALLBACK_MS,
    });
  });
  it('503 honours retry-after, else backs off', () => {
    expect(retryDecision(503, headers({ 'retry-after': '7' }), NOW, 3, 0.5)).toMatchObject({
      retry: true,
      delayMs: 7_000,
    });
    expect(retryDecision(503, none, NOW, 3, 0.5)).toMatchObject({ retry: true, delayMs: 2_000 });
  });
  it.each([500, 502, 504, 408, 423, 520, 'network_error', 'timeout'] as const)('%s backs off', (status) => {
    expect(retryDecision(status, none, NOW, 2, 0.5)).toMatchObject({
      retry: true,
      delayMs: 1_000,
      rateLimited: false,
    });
  });
  it('an unreachable X (refused, no such host, TLS refused) is not retried', () => {
    expect(retryDecision('unreachable', none, NOW, 1, 0.5)).toEqual({ retry: false });
  });
  it.each([200, 201, 400, 401, 403, 404, 405, 413, 415])('%s is not retried', (status) => {
    expect(retryDecision(status, none, NOW, 1, 0.5)).toEqual({ retry: false });
  });
});

describe('pastDeadline', () => {
  it('gives up when the next wait would end past the deadline', () => {
    expect(pastDeadline(0, 50_000, 10_000, 60_000)).toBe(false);
    expect(pastDeadline(0, 50_000, 10_000, 59_999)).toBe(true);
    expect(pastDeadline(0, 0, 0, 0)).toBe(false);
  });
});

describe('classifyConnectionError', () => {
  const coded = (code: string, message = `some ${code}`) => Object.assign(new Error(message), { code });

  it.each([
    ['ECONNREFUSED', 'refused'],
    ['ENOTFOUND', 'dns'],
    // EAI_AGAIN is the resolver not answering: this machine's network, not X (see retry-policy.ts).
    ['EAI_AGAIN', 'dns'],
    ['EAI_FAIL', 'dns'],
    ['ENETUNREACH', 'network'],
    ['EHOSTUNREACH', 'network'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'tls'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'tls'],
    ['CERT_HAS_EXPIRED', 'tls'],
    ['CERT_NOT_YET_VALID', 'tls'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'tls'],
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'tls'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'tls'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'tls'],
  ])('%s: unreachable (%s), failed at once', (code, cause) => {
    expect(classifyConnectionError(coded(code))).toEqual({ status: 'unreachable', cause, code });
  });

  it('looks through wrappers: a cause chain, and the AggregateError of a host with several addresses', () => {
    const wrapped = new Error('fetch failed', { cause: coded('ECONNREFUSED') });
    expect(classifyConnectionError(wrapped)).toMatchObject({ status: 'unreachable', cause: 'refused' });
    const both = new AggregateError([coded('ECONNREFUSED'), coded('ECONNREFUSED')], 'connect failed');
    expect(classifyConnectionError(both)).toMatchObject({ status: 'unreachable', cause: 'refused' });
  });

  it.each([
    ['ECONNRESET', 'network_error'],
    ['EPIPE', 'network_error'],
    ['UND_ERR_SOCKET', 'network_error'],
    ['ETIMEDOUT', 'timeout'],
    ['UND_ERR_CONNECT_TIMEOUT', 'timeout'],
    ['UND_ERR_HEADERS_TIMEOUT', 'timeout'],
    ['ERR_TLS_HANDSHAKE_TIMEOUT', 'timeout'],
  ])('%s: %s, which X (or the path to it) can recover from, so retried', (code, status) => {
    expect(classifyConnectionError(coded(code))).toEqual({ status, code });
    expect(retryDecision(status as 'network_error' | 'timeout', headers({}), NOW, 1, 0.5)).toMatchObject({
      retry: true,
    });
  });

  it('an address that timed out beside one that refused is retried: a transient cause wins', () => {
    const mixed = new AggregateError([coded('ECONNREFUSED'), coded('ETIMEDOUT')], 'connect failed');
    expect(classifyConnectionError(mixed)).toMatchObject({ status: 'timeout' });
  });

  it('an error of unknown shape is retried as a dropped connection', () => {
    expect(classifyConnectionError(new Error('boom'))).toEqual({ status: 'network_error', code: undefined });
    expect(classifyConnectionError('not even an error')).toEqual({
      status: 'network_error',
      code: undefined,
    });
  });
});
