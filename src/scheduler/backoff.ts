/** How long a failing activation waits before its next attempt. */
export interface BackoffPolicy {
  /** The wait after the first failure. */
  initialMs: number;
  /** The wait never grows beyond this. */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 30_000, maxMs: 60 * 60_000 };

/**
 * Exponential backoff after `failures` consecutive failures: initial, 2×, 4×, … capped at `maxMs`.
 * No jitter: workers coordinate through the run log and the warehouse lock, not through timing.
 */
export function backoffMs(failures: number, policy: BackoffPolicy): number {
  if (failures <= 0) return 0;
  // 2 ** 40 already dwarfs any cap; clamping the exponent keeps the number finite.
  const factor = 2 ** Math.min(failures - 1, 40);
  return Math.min(policy.initialMs * factor, policy.maxMs);
}
