import cron from 'node-cron';
import type { Schedule } from '../config/schedule.js';

/** X builds and sizes audiences in batches about every 6 hours (https://docs.x.com/x-ads-api/audiences). */
export const X_PROCESSING_WINDOW_MS = 6 * 3_600_000;
/** X does not target an audience under 100 matched users (https://docs.x.com/x-ads-api/audiences). */
export const X_MIN_TARGETABLE = 100;

/**
 * The shortest time between two firings of a schedule, or null for `manual`. Cron expressions are
 * parsed by node-cron; only the time-of-day fields matter here (a day filter only lengthens the gaps).
 */
export function shortestInterval(schedule: Schedule): number | null {
  if (schedule.kind === 'manual' || schedule.kind === 'after_dbt') return null;
  if (schedule.kind === 'interval') return schedule.everyMs;
  let fields: ReturnType<typeof cron.parse>;
  try {
    fields = cron.parse(schedule.expression);
  } catch {
    return null;
  }
  const seconds = [...new Set(fields.second)].sort((a, b) => a - b);
  const minutes = [...new Set(fields.minute)].sort((a, b) => a - b);
  const hours = [...new Set(fields.hour)].sort((a, b) => a - b);
  const gap = (values: number[], period: number) => {
    if (values.length < 2) return period;
    let min = values[0]! + period - values[values.length - 1]!;
    for (let i = 1; i < values.length; i++) min = Math.min(min, values[i]! - values[i - 1]!);
    return min;
  };
  if (seconds.length > 1) return gap(seconds, 60) * 1000;
  if (minutes.length > 1) return gap(minutes, 60) * 60_000;
  return gap(hours, 24) * 3_600_000;
}

/** Warnings a user should see about an activation, whatever the run did. */
export function activationWarnings(input: { members: number; schedule: Schedule }): string[] {
  const warnings: string[] = [];
  if (input.members < X_MIN_TARGETABLE) {
    warnings.push(
      `the segment has ${input.members} member${input.members === 1 ? '' : 's'}: X does not target an audience of fewer than ${X_MIN_TARGETABLE} matched users`,
    );
  }
  const interval = shortestInterval(input.schedule);
  if (interval !== null && interval < X_PROCESSING_WINDOW_MS) {
    warnings.push(
      `schedule "${input.schedule.text}" runs more often than every 6 hours; X processes audience changes about every 6 hours, so more frequent runs add requests but no freshness`,
    );
  }
  return warnings;
}
