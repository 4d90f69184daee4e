import cron from 'node-cron';
import type { Schedule } from '../config/schedule.js';
import type { ActivationStatus, RunRecord } from '../diff/types.js';
import { type BackoffPolicy, backoffMs } from './backoff.js';

/** The next times a cron expression fires after now, in the activation's time zone (node-cron does the maths). */
export function cronNextRuns(expression: string, timezone: string, count: number): Date[] {
  // A created task is registered in node-cron's process-wide registry; destroying it removes it.
  const task = cron.createTask(expression, () => undefined, { timezone });
  try {
    return task.getNextRuns(count);
  } finally {
    void task.destroy();
  }
}

/** When the run log says an interval activation is due: its last run's finish plus the interval. */
export function intervalDueAt(everyMs: number, lastRun: RunRecord | undefined, now: Date): Date {
  if (!lastRun) return now;
  const base = lastRun.finishedAt ?? lastRun.startedAt;
  return new Date(base.getTime() + everyMs);
}

/** The earliest time a failing activation may run again, or null when it is not backing off. */
export function backoffUntil(status: ActivationStatus | undefined, policy: BackoffPolicy): Date | null {
  if (!status || status.consecutiveFailures <= 0) return null;
  return new Date(status.updatedAt.getTime() + backoffMs(status.consecutiveFailures, policy));
}

export type NextRunReason = 'scheduled' | 'backoff' | 'paused' | 'manual' | 'after_dbt' | 'disabled';

export interface PlannedRun {
  /** When the scheduler would next start a run; null when it never will on its own. */
  at: Date | null;
  reason: NextRunReason;
}

/**
 * When the scheduler would next run an activation, from the run log and its pause/failure status.
 * `status` must already reflect resumption (see `resolvePause`).
 */
export function plannedNextRun(input: {
  schedule: Schedule;
  timezone: string;
  enabled: boolean;
  lastRun: RunRecord | undefined;
  status: ActivationStatus | undefined;
  now: Date;
  backoff: BackoffPolicy;
}): PlannedRun {
  const { schedule } = input;
  if (!input.enabled) return { at: null, reason: 'disabled' };
  if (schedule.kind === 'manual') return { at: null, reason: 'manual' };
  if (schedule.kind === 'after_dbt') return { at: null, reason: 'after_dbt' };
  if (input.status?.pausedAt) return { at: null, reason: 'paused' };
  const notBefore = backoffUntil(input.status, input.backoff);
  if (schedule.kind === 'interval') {
    const due = intervalDueAt(schedule.everyMs, input.lastRun, input.now);
    if (notBefore && notBefore > due) return { at: notBefore, reason: 'backoff' };
    return { at: due, reason: 'scheduled' };
  }
  const [next] = cronNextRuns(schedule.expression, input.timezone, 1);
  if (!next) return { at: null, reason: 'scheduled' };
  if (!notBefore || notBefore <= next) return { at: next, reason: 'scheduled' };
  // Backing off skips ticks: the next run is the first tick at or after the backoff ends. A bounded
  // look-ahead keeps this cheap; beyond it, the end of the backoff is a fair answer.
  const ticks = cronNextRuns(schedule.expression, input.timezone, 512);
  return { at: ticks.find((tick) => tick >= notBefore) ?? notBefore, reason: 'backoff' };
}
