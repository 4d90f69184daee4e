/**
 * Time as the X client sees it: the wall clock (OAuth timestamps, rate-limit reset headers in epoch
 * seconds, retry deadlines) and waiting. Injectable so that tests of minute-long waits (a 429's reset,
 * exponential backoff) run in no real time.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Resolves after `ms`; rejects with the signal's reason when it aborts first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal!.reason);
      };
      const timer = setTimeout(
        () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        Math.max(0, ms),
      );
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

/**
 * A clock whose `sleep` returns at once and moves its own time forward instead: for tests of waits
 * that would take minutes. It starts at the real time so epoch-second headers from a live server
 * still make sense.
 */
export function createVirtualClock(startMs: number = Date.now()): Clock & { slept: number[] } {
  // Real time still passes (requests take some), so it is added on top of the virtual offset.
  const realStart = Date.now();
  let offset = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => startMs + offset + (Date.now() - realStart),
    sleep: async (ms, signal) => {
      if (signal?.aborted) throw signal.reason;
      slept.push(ms);
      offset += Math.max(0, ms);
      // Yield so that other tasks (and abort handlers) get to run, as a real wait would let them.
      await new Promise((resolve) => setImmediate(resolve));
      if (signal?.aborted) throw signal.reason;
    },
  };
}
