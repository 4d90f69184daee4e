/** How numbers, instants and durations read for people, the same in the CLI's tables and the web UI. */

/** A count for people, the same in every table: `1,234,567`. (`--json` keeps plain numbers.) */
export function formatCount(value: number): string {
  return value.toLocaleString('en-US', { maximumFractionDigits: 0 });
}

/** An instant for people, the same in every table: `2026-01-01 06:00:00Z`. (`--json` keeps ISO 8601.) */
export function formatInstant(date: Date | null | undefined): string {
  return date
    ? date
        .toISOString()
        .replace('T', ' ')
        .replace(/\.\d+Z$/, 'Z')
    : '-';
}

/** A duration for people, the same in every table: `0.4s`, `54.0s`, `12m05s`, `3h02m`. */
export function formatDuration(ms: number): string {
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  const whole = Math.round(seconds);
  if (whole < 3600) return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, '0')}s`;
  return `${Math.floor(whole / 3600)}h${String(Math.floor((whole % 3600) / 60)).padStart(2, '0')}m`;
}
