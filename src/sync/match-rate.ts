import type { AudienceInfo } from '../destinations/destination.js';
import type { RunMatch } from '../diff/types.js';

/**
 * How much of an audience the destination matched to its users. X computes `audience_size` some
 * hours after members are sent (and reports none while processing or below its minimum size), so
 * both ratios are null until it has; `processedAt` says when X last updated the audience.
 */
export interface MatchRate {
  /** X's matched size; null while processing or too small to report. */
  audienceSize: number | null;
  /** Members sent with at least one valid identifier (state's members with identifier hashes). */
  sent: number;
  /** Rows the model returned in the last successful run; null before one. */
  rows: number | null;
  /** audienceSize ÷ sent. */
  ofSent: number | null;
  /** audienceSize ÷ rows (the figure Hightouch shows). */
  ofRows: number | null;
  /** When X last processed the audience (its `updated_at`); null when unknown. */
  processedAt: string | null;
}

const ratio = (size: number | null, of: number | null): number | null =>
  size === null || of === null || of === 0 ? null : Math.round((size / of) * 10_000) / 10_000;

export function matchRate(
  audience: Pick<AudienceInfo, 'size' | 'updatedAt'>,
  sent: number,
  rows: number | null,
): MatchRate {
  return {
    audienceSize: audience.size,
    sent,
    rows,
    ofSent: ratio(audience.size, sent),
    ofRows: ratio(audience.size, rows),
    processedAt: audience.updatedAt,
  };
}

/** The match rate of a run's recorded figures (run log, or the run just made) and its row count. */
export function matchRateOfRun(match: RunMatch, rows: number | null): MatchRate {
  return matchRate(
    { size: match.audienceSize, updatedAt: match.processedAt?.toISOString() ?? null },
    match.sent,
    rows,
  );
}

const percent = (rate: number | null) => (rate === null ? '-' : `${(rate * 100).toFixed(1)}%`);

/** Matched ÷ sent and ÷ rows for a table cell; `pending` until X has sized the audience. */
export function formatMatchRate(rate: MatchRate | null): string {
  if (!rate) return '-';
  if (rate.audienceSize === null) return 'pending';
  return `${percent(rate.ofSent)} / ${percent(rate.ofRows)}`;
}

/** The match rate as `--json`, the logs and webhooks show it (snake_case). */
export function matchRateJson(rate: MatchRate) {
  return {
    audience_size: rate.audienceSize,
    sent: rate.sent,
    rows: rate.rows,
    of_sent: rate.ofSent,
    of_rows: rate.ofRows,
    processed_at: rate.processedAt,
  };
}
