/**
 * Fixed-window rate limits (https://docs.x.com/x-ads-api/fundamentals/rate-limiting). Windows open at a
 * bucket's first request and reset `windowMs` later; `*-reset` headers
 * carry that moment in Unix epoch seconds. The clock is the emulator's (injectable).
 */
import type { RateLimitOptions } from './types.js';

export type BucketKind = 'users' | 'writes' | 'reads' | 'total_count';

export interface BucketSpec {
  limit: number;
  windowMs: number;
}

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Epoch seconds when the window resets. */
  resetEpochSeconds: number;
}

export function resolveRateLimits(
  options: RateLimitOptions | false | undefined,
): Record<BucketKind, BucketSpec> | null {
  if (options === false) return null;
  return {
    users: { limit: options?.usersPerMinute ?? 1500, windowMs: 60_000 },
    writes: { limit: options?.writesPerMinute ?? 450, windowMs: 60_000 },
    reads: { limit: options?.readsPer15Minutes ?? 2000, windowMs: 15 * 60_000 },
    total_count: { limit: options?.totalCountPer15Minutes ?? 200, windowMs: 15 * 60_000 },
  };
}

export class RateLimiter {
  readonly #specs: Record<BucketKind, BucketSpec>;
  readonly #windows = new Map<string, { start: number; count: number }>();

  constructor(specs: Record<BucketKind, BucketSpec>) {
    this.#specs = specs;
  }

  /** Counts one request against `kind`/`key` unless the window is exhausted. */
  take(kind: BucketKind, key: string, now: number): RateLimitDecision {
    const spec = this.#specs[kind];
    const id = `${kind}\u0000${key}`;
    let window = this.#windows.get(id);
    if (!window || now >= window.start + spec.windowMs) {
      window = { start: now, count: 0 };
      this.#windows.set(id, window);
    }
    const resetEpochSeconds = Math.ceil((window.start + spec.windowMs) / 1000);
    if (window.count >= spec.limit) {
      return { allowed: false, limit: spec.limit, remaining: 0, resetEpochSeconds };
    }
    window.count += 1;
    return { allowed: true, limit: spec.limit, remaining: spec.limit - window.count, resetEpochSeconds };
  }
}
