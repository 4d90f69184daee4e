import type { ActivationStatus, RunRecord } from '../diff/types.js';

export type ResumeReason = 'config_changed' | 'synced';

/**
 * Applies the two ways a paused (or failing) activation recovers without the scheduler: its config
 * changed since it was paused (a different fingerprint), or a run succeeded after it was paused or
 * last failed (a `tailor sync` by hand; sync runs know nothing of pausing). Returns the status the
 * scheduler should act on, and why it was reset, if it was.
 */
export function resolvePause(
  status: ActivationStatus | undefined,
  fingerprint: string,
  recentRuns: readonly RunRecord[],
  now: Date,
): { status: ActivationStatus | undefined; resumed: ResumeReason | null } {
  if (!status || (status.consecutiveFailures <= 0 && !status.pausedAt)) return { status, resumed: null };
  const reset = (resumed: ResumeReason) => ({
    status: {
      activationId: status.activationId,
      consecutiveFailures: 0,
      pausedAt: null,
      pausedReason: null,
      configFingerprint: fingerprint,
      updatedAt: now,
    },
    resumed,
  });
  if (status.pausedAt && status.configFingerprint !== null && status.configFingerprint !== fingerprint)
    return reset('config_changed');
  const since = status.pausedAt ?? status.updatedAt;
  const succeeded = recentRuns.find(
    (run) => run.status === 'succeeded' && (run.finishedAt ?? run.startedAt) > since,
  );
  if (succeeded) return reset('synced');
  return { status, resumed: null };
}
