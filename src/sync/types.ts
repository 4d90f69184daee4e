import type { RunCounts, RunStatus } from '../diff/types.js';

/**
 * The contract of one sync run, shared by the CLI (`plan`, `sync`, `activate`), the scheduler and
 * the benchmarks. Built in issue #5.
 */

export interface SyncOptions {
  /** Re-send the whole segment as Updates and delete what state holds beyond it. */
  fullResync: boolean;
  /** With fullResync: create a new audience when the bound one was deleted at X. */
  recreate: boolean;
  /** Run even when a safety rule (empty segment, too many removals) would hold it. */
  force: boolean;
  /** Compute the counts only; send nothing, commit nothing. */
  dryRun: boolean;
  /** Wait for the activation's lock instead of failing at once when another run holds it. */
  waitForLock: boolean;
  signal?: AbortSignal;
  onProgress?: (progress: SyncProgress) => void;
}

export interface SyncProgress {
  activationId: string;
  phase: 'snapshot' | 'deliver' | 'commit' | 'done';
  /** Delta members handled so far, and the delta's size. */
  done: number;
  total: number;
}

/** Counts of a run, as printed by `sync --json` and `plan --json` per activation. */
export interface SyncCounts extends RunCounts {
  /** Invalid values and rows by reason (e.g. `invalid_email`, `null_primary_key`). */
  invalidByReason: Record<string, number>;
}

export interface SyncReport {
  activationId: string;
  runId: string | null;
  status: RunStatus | 'skipped';
  counts: SyncCounts;
  audienceId: string | null;
  durationMs: number;
  /** Why a run was held or failed, in words a user can act on. */
  error: string | null;
  warnings: string[];
  /** Warehouse cost figures where available (BigQuery bytes processed, Snowflake query ids). */
  cost?: Record<string, unknown> | null;
}
