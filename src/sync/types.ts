import type { Logger } from 'pino';
import type { Project } from '../config/load-project.js';
import type { AudienceInfo, Destination, DestinationObserver } from '../destinations/destination.js';
import type { RunCounts, RunStatus, StateStore } from '../diff/types.js';
import type { ColumnInfo } from '../sources/source.js';
import type { MatchRate } from './match-rate.js';

/**
 * The contract of one sync run, shared by the CLI (`plan`, `sync`, `activate`), the scheduler and
 * the benchmarks.
 */

export interface SyncOptions {
  /** Re-send the whole segment as Updates and delete what state holds beyond it. */
  fullResync: boolean;
  /** With fullResync: create a new audience when the bound one was deleted at X. */
  recreate: boolean;
  /**
   * Take over an audience whose owner mark names another activation or another project's state, or
   * an unmarked one with members (`tailor sync --adopt`); absent: refuse it.
   */
  adopt?: boolean;
  /** Run even when a safety rule (empty segment, too many removals) would hold it. */
  force: boolean;
  /**
   * Apply only what suppression requires (members who opted out leave every audience); the other
   * changes of the segment wait for the next ordinary run (`tailor sync --suppression-only`).
   */
  suppressionOnly?: boolean;
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
  /**
   * The kind of error (`src/errors.ts`' ErrorKind, e.g. `config`, `lock_busy`, `audience_missing`)
   * when the run failed or was skipped; absent otherwise. Lets callers map failures to exit codes.
   */
  errorKind?: string;
  /** X's view of the audience, asked once after a successful run (absent otherwise, or when X failed). */
  audience?: AudienceInfo;
  /** The match rate of that view: X's size ÷ members sent, and ÷ the run's rows. */
  matchRate?: MatchRate;
}

/** What a sync engine needs from the process around it. */
export interface SyncDeps {
  logger: Logger;
  observer?: DestinationObserver;
  now?: () => Date;
  /** Delta rows per batch (default DELTA_BATCH_SIZE); tests use small ones to run many batches. */
  deltaBatchSize?: number;
}

/**
 * One warehouse connection and the destinations of a project, kept open across runs (the CLI opens
 * one per command, the scheduler one per config generation). Different activations may sync in
 * parallel through one engine; one account's X rate limit is shared.
 */
export interface SyncEngine extends AsyncDisposable {
  readonly project: Project;
  /**
   * Runs one activation (or, with `dryRun`, plans it). Run failures are reported in the result
   * (status `failed` or `held`), not thrown; configuration errors throw ConfigError.
   */
  sync(activationId: string, options: SyncOptions): Promise<SyncReport>;
  state(): StateStore;
  destination(name: string): Destination;
  /** The columns a model returns, over the engine's warehouse connection (`tailor activate`). */
  describeModel?(modelName: string): Promise<ColumnInfo[]>;
  close(): Promise<void>;
}
