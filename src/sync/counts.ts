import type { RunCounts } from '../diff/types.js';
import type { MemberEffect } from './membership.js';
import type { SyncCounts } from './types.js';

export function emptyCounts(): SyncCounts {
  return {
    rows: 0,
    added: 0,
    removed: 0,
    changed: 0,
    refreshed: 0,
    invalid: 0,
    rejected: 0,
    requests: 0,
    suppressed: 0,
    invalidByReason: {},
  };
}

/** The counts without the breakdown, as the run log keeps them. */
export function runCounts(counts: SyncCounts): RunCounts {
  const { invalidByReason: _ignored, ...rest } = counts;
  return rest;
}

export function countEffect(counts: SyncCounts, effect: MemberEffect): void {
  if (effect === 'added') counts.added++;
  else if (effect === 'removed') counts.removed++;
  else if (effect === 'changed') counts.changed++;
  else if (effect === 'refreshed') counts.refreshed++;
  else if (effect === 'suppressed') counts.suppressed++;
}

export function countInvalid(counts: SyncCounts, reason: string, by = 1): void {
  counts.invalid += by;
  counts.invalidByReason[reason] = (counts.invalidByReason[reason] ?? 0) + by;
}
