import type { RunCounts } from '../../src/diff/types.js';
import { emptyCounts, runCounts } from '../../src/sync/counts.js';

/** A run's counts as the run log keeps them: zero but for `counts` (a new count column stays zero). */
export function runCountsOf(counts: Partial<RunCounts> = {}): RunCounts {
  return { ...runCounts(emptyCounts()), ...counts };
}
