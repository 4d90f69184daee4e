import { describe, expect, it } from 'vitest';
import { createVirtualClock, type Clock } from '../../src/destinations/x-ads/clock.js';
import { accountLimiters, SlidingWindowLimiter } from '../../src/destinations/x-ads/rate-limiter.js';

describe('SlidingWindowLimiter', () => {
  it('lets `limit` requests start within a minute, then waits for the oldest to leave the window', async () => {
    const clock = createVirtualClock(1_000_000);
    const limiter = new SlidingWindowLimiter(1500);
    for (let i = 0; i < 1500; i += 1) await limiter.acquire(clock);
    expect(clock.slept).toEqual([]);
    const before = clock.now();
    await limiter.acquire(clock);
    expect(clock.slept).toHaveLength(1);
    expect(clock.now() - before).toBeGreaterThanOrEqual(59_000);
    expect(clock.slept[0]).toBeLessThanOrEqual(60_000);
  });

  it('never lets more than `limit` starts into any 60 s window', async () => {
    // Time moves only when the limiter sleeps, so the time read after each acquire is the start the
    // limiter recorded. (The virtual clock adds real time too: a start read a few ms after its slot was
    // taken could put six of them in one window, each granted correctly.)
    let now = 0;
    const clock: Clock = {
      now: () => now,
      sleep: async (ms) => {
        now += Math.max(0, ms);
      },
    };
    const limiter = new SlidingWindowLimiter(5);
    const starts: number[] = [];
    for (let i = 0; i < 23; i += 1) {
      await limiter.acquire(clock);
      starts.push(clock.now());
    }
    for (const start of starts) {
      expect(starts.filter((t) => t >= start && t < start + 60_000).length).toBeLessThanOrEqual(5);
    }
  });

  it('pauses everyone until a 429 reset', async () => {
    const clock = createVirtualClock(0);
    const limiter = new SlidingWindowLimiter(100);
    limiter.pauseUntil(clock.now() + 30_000);
    expect(limiter.waitMs(clock.now())).toBeGreaterThan(29_000);
    await limiter.acquire(clock);
    expect(clock.slept[0]).toBeGreaterThan(29_000);
  });

  it('stops waiting when aborted', async () => {
    const clock = createVirtualClock(0);
    const limiter = new SlidingWindowLimiter(1);
    await limiter.acquire(clock);
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    await expect(limiter.acquire(clock, controller.signal)).rejects.toThrow('stop');
  });
});

describe('accountLimiters', () => {
  it('is shared per API URL and account, whatever the destination instance, and keeps the stricter limit', () => {
    const a = accountLimiters('https://ads-api.x.com/', 'AbC1', {
      usersPerMinute: 1500,
      writesPerMinute: 450,
    });
    const b = accountLimiters('https://ads-api.x.com', 'abc1', {
      usersPerMinute: 1000,
      writesPerMinute: 450,
    });
    expect(b).toBe(a);
    expect(a.users.limit).toBe(1000);
    const other = accountLimiters('https://ads-api.x.com', 'xyz9', {
      usersPerMinute: 1500,
      writesPerMinute: 450,
    });
    expect(other).not.toBe(a);
    const sandbox = accountLimiters('https://ads-api-sandbox.x.com', 'abc1', {
      usersPerMinute: 1500,
      writesPerMinute: 450,
    });
    expect(sandbox).not.toBe(a);
  });
});
