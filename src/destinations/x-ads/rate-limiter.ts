import type { Clock } from './clock.js';

/**
 * Client-side throttling at or below X's published limits
 * (https://docs.x.com/x-ads-api/fundamentals/rate-limiting): the users endpoint takes 1,500 requests a
 * minute per account, audience writes 450 a minute. X counts per account, not per process object, so
 * the limiters live in one module-level registry keyed by API URL and account: every activation and
 * every destination instance of the process that talks to one account shares them.
 */

const WINDOW_MS = 60_000;

/** A sliding one-minute window: at most `limit` starts in any 60 s. */
export class SlidingWindowLimiter {
  #limit: number;
  readonly #windowMs: number;
  readonly #starts: number[] = [];
  #pausedUntil = 0;

  constructor(limit: number, windowMs = WINDOW_MS) {
    this.#limit = limit;
    this.#windowMs = windowMs;
  }

  get limit(): number {
    return this.#limit;
  }

  /** Two destinations configured with different limits for one account: the stricter one holds. */
  lowerLimit(limit: number): void {
    this.#limit = Math.min(this.#limit, limit);
  }

  /** After a 429, nobody sharing this limiter sends before X's reset time. */
  pauseUntil(epochMs: number): void {
    this.#pausedUntil = Math.max(this.#pausedUntil, epochMs);
  }

  /** The wait before one more request may start now, or 0 (pure: does not take a slot). */
  waitMs(nowMs: number): number {
    this.#prune(nowMs);
    if (this.#pausedUntil > nowMs) return this.#pausedUntil - nowMs;
    if (this.#starts.length < this.#limit) return 0;
    return this.#starts[this.#starts.length - this.#limit]! + this.#windowMs - nowMs;
  }

  /** Waits for a slot and takes it. Rejects with the signal's reason when aborted while waiting. */
  async acquire(clock: Clock, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const now = clock.now();
      const wait = this.waitMs(now);
      if (wait <= 0) {
        this.#starts.push(now);
        return;
      }
      await clock.sleep(wait, signal);
    }
  }

  #prune(nowMs: number): void {
    const from = nowMs - this.#windowMs;
    let drop = 0;
    while (drop < this.#starts.length && this.#starts[drop]! <= from) drop += 1;
    if (drop > 0) this.#starts.splice(0, drop);
  }
}

export interface AccountLimiters {
  users: SlidingWindowLimiter;
  writes: SlidingWindowLimiter;
}

const registry = new Map<string, AccountLimiters>();

/** The process-wide limiters of one X ad account at one API URL. */
export function accountLimiters(
  apiUrl: string,
  accountId: string,
  limits: { usersPerMinute: number; writesPerMinute: number },
): AccountLimiters {
  const key = `${apiUrl.replace(/\/+$/, '')}|${accountId.toLowerCase()}`;
  let entry = registry.get(key);
  if (!entry) {
    entry = {
      users: new SlidingWindowLimiter(limits.usersPerMinute),
      writes: new SlidingWindowLimiter(limits.writesPerMinute),
    };
    registry.set(key, entry);
  } else {
    entry.users.lowerLimit(limits.usersPerMinute);
    entry.writes.lowerLimit(limits.writesPerMinute);
  }
  return entry;
}
