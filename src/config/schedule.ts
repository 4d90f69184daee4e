import cron from 'node-cron';

/** When an activation runs: a cron expression, a fixed interval, or only by hand. */
export type Schedule =
  | { kind: 'cron'; expression: string; text: string }
  | { kind: 'interval'; everyMs: number; text: string }
  | { kind: 'manual'; text: string }
  /** After each successful dbt run that rebuilt the activation's dbt model (`tailor schedule` watches run_results.json). */
  | { kind: 'after_dbt'; text: string };

const EVERY = /^every\s+(?:(\d+)\s+)?(minute|minutes|hour|hours|day|days)$/i;
const UNIT_MS = { minute: 60_000, hour: 3_600_000, day: 86_400_000 } as const;

/**
 * Parses a schedule: `manual`, `every N minutes|hours|days` (N defaults to 1), or a cron expression
 * of 5 fields (6 with seconds first). Cron syntax is checked by node-cron, never by hand.
 */
export function parseSchedule(text: string): Schedule | { error: string } {
  const trimmed = text.trim();
  if (trimmed === '')
    return { error: 'schedule is empty (use a cron expression, "every N hours" or "manual")' };
  if (trimmed.toLowerCase() === 'manual') return { kind: 'manual', text: trimmed };
  if (/^after\s+dbt$/i.test(trimmed)) return { kind: 'after_dbt', text: 'after dbt' };
  const every = EVERY.exec(trimmed);
  if (every) {
    const count = every[1] === undefined ? 1 : Number(every[1]);
    if (!Number.isSafeInteger(count) || count < 1)
      return { error: `schedule "${trimmed}": N must be at least 1` };
    const unit = every[2]!.toLowerCase().replace(/s$/, '') as keyof typeof UNIT_MS;
    return { kind: 'interval', everyMs: count * UNIT_MS[unit], text: trimmed };
  }
  if (trimmed.toLowerCase().startsWith('every')) {
    return {
      error: `schedule "${trimmed}" is not understood (write "every N minutes", "every N hours" or "every N days")`,
    };
  }
  const fields = trimmed.split(/\s+/).length;
  if ((fields === 5 || fields === 6) && cron.validate(trimmed))
    return { kind: 'cron', expression: trimmed, text: trimmed };
  return {
    error: `schedule "${trimmed}" is neither a cron expression (5 or 6 fields), "every N minutes|hours|days", "after dbt" nor "manual"`,
  };
}

export function isTimezone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}
