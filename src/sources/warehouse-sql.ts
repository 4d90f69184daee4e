import type {
  ActivationStatus,
  AudienceBinding,
  DiffCounts,
  InvalidKeyRow,
  RejectionRecord,
  RunFinish,
  RunRecord,
} from '../diff/types.js';

/**
 * The one interface behind which every warehouse keeps the statements Kysely cannot express
 * portably (CONVENTIONS.md, "Dialect differences live in one place per kind"): the state schema's
 * migrations, the snapshot of a model with its fingerprint, the FULL OUTER JOIN delta, applying
 * acknowledged deltas into state, and the activation lock.
 *
 * One `WarehouseSql` is bound to one state schema (BigQuery: dataset). `src/diff/` builds the
 * `StateStore` and `DiffRun` on top of it and never asks which warehouse it talks to; everything a
 * warehouse does differently (types, quoting, typed null parameters, MERGE vs ON CONFLICT, temp vs
 * staging tables, advisory locks vs lease rows) stays inside its implementation:
 * `src/sources/postgres/postgres-sql.ts` serves Postgres and PGlite.
 *
 * Implementations receive keys, fingerprints and hashes, never raw identifiers, except for the
 * mapped column values read from the model inside `WarehouseDiff.delta`, which they must never log.
 */
/** A run's end as a warehouse records it: the cost is always given (null when there is none). */
export type WarehouseRunFinish = RunFinish & { cost: Record<string, unknown> | null };

export interface WarehouseSql {
  readonly capabilities: WarehouseCapabilities;
  /** The state schema this instance is bound to. */
  readonly stateSchema: string;

  /**
   * Creates or upgrades the state schema to the latest version (versioned migrations recorded in a
   * migrations table). Idempotent and safe when several processes call it at once.
   */
  migrate(): Promise<void>;

  /**
   * Tries once to take the lock of `activationId`. Returns the held lock, or `null` when another run
   * holds it. The caller (src/diff) polls for `wait: true` and throws LockBusyError.
   */
  tryLock(activationId: string): Promise<HeldLock | null>;

  // --- bindings ---------------------------------------------------------------------------------
  getBinding(activationId: string): Promise<AudienceBinding | undefined>;
  /** Inserts or replaces the binding of `binding.activationId`. */
  saveBinding(binding: AudienceBinding): Promise<void>;
  deleteBinding(activationId: string): Promise<void>;

  // --- member state -----------------------------------------------------------------------------
  memberCount(activationId: string): Promise<number>;
  /** Forgets every member (and its hashes) of the activation. */
  deleteAllMembers(activationId: string): Promise<void>;
  /**
   * Applies acknowledged changes in one go (one transaction where the warehouse has them), with
   * multi-row statements, never one statement per member. `upserts` replace the member's fingerprint
   * and its whole set of hashes; `lastSentAt: null` keeps the stored `last_sent_at` (a new member gets
   * null). `removals` delete the member and its hashes. Keys are distinct across both lists, and the
   * caller keeps each call within `capabilities.maxRowsPerStatement` members. Idempotent.
   */
  applyMemberChanges(
    activationId: string,
    changes: { upserts: readonly MemberUpsert[]; removals: readonly string[] },
  ): Promise<void>;
  /** Of `hashes`, those held in state by a member of the activation whose key is not in `excludingKeys`. */
  hashesHeldByOthers(
    activationId: string,
    hashes: readonly string[],
    excludingKeys: readonly string[],
  ): Promise<string[]>;

  // --- the diff ---------------------------------------------------------------------------------
  /**
   * Snapshots the model (its SQL wrapped as a subquery, never parsed) into a run-scoped table, with
   * the key as text and a fingerprint of the mapped columns; finds null and duplicated keys; and
   * compares the valid rows with the activation's state (FULL OUTER JOIN on the key) into a
   * run-scoped delta table. Throws ModelSqlError when the model's SQL fails, WarehouseError otherwise.
   * The returned diff owns the run-scoped tables and drops them when closed.
   */
  openDiff(input: WarehouseDiffInput): Promise<WarehouseDiff>;

  // --- run log and rejections -------------------------------------------------------------------
  insertRun(run: { id: string; activationId: string; startedAt: Date }): Promise<void>;
  finishRun(runId: string, result: WarehouseRunFinish): Promise<void>;
  /** Newest first. */
  listRuns(options: { activationId?: string; limit: number }): Promise<RunRecord[]>;
  /** Multi-row inserts; the caller keeps each call within `capabilities.maxRowsPerStatement` rows. */
  insertRejections(runId: string, activationId: string, rows: readonly RejectionRecord[]): Promise<void>;

  // --- scheduler bookkeeping --------------------------------------------------------------------
  getActivationStatus(activationId: string): Promise<ActivationStatus | undefined>;
  /** Inserts or replaces. */
  setActivationStatus(status: ActivationStatus): Promise<void>;
  listActivationStatus(): Promise<ActivationStatus[]>;
}

/** What a warehouse can do, with safe defaults (`DEFAULT_CAPABILITIES`) for anything not stated. */
export interface WarehouseCapabilities {
  /**
   * How the activation lock is held: a session-level `advisory` lock (Postgres), an `in_process`
   * mutex (PGlite, single-process), or a `lease` row with an expiry (BigQuery, Snowflake).
   */
  readonly lockKind: 'advisory' | 'in_process' | 'lease';
  /** How often src/diff retries `tryLock` while waiting for a lock. */
  readonly lockPollMs: number;
  /** Most members per `applyMemberChanges` call and rows per `insertRejections` call. */
  readonly maxRowsPerStatement: number;
  /** Most hashes (and excluded keys) per `hashesHeldByOthers` call. */
  readonly maxHashesPerLookup: number;
  /** Whether `applyMemberChanges` is atomic (a failure leaves state as it was). */
  readonly transactions: boolean;
}

export const DEFAULT_CAPABILITIES: WarehouseCapabilities = {
  lockKind: 'lease',
  lockPollMs: 1000,
  maxRowsPerStatement: 1000,
  maxHashesPerLookup: 1000,
  transactions: false,
};

/** A held activation lock. `release` is idempotent. */
export interface HeldLock {
  release(): Promise<void>;
}

/** One identifier hash of a member, as stored in state (`member_hashes`). */
export interface MemberHashRow {
  /** The destination's identifier type, e.g. `email`. */
  idType: string;
  hash: string;
}

export interface MemberUpsert {
  key: string;
  fingerprint: string;
  hashes: readonly MemberHashRow[];
  /** When an Update carrying this member was acknowledged; null keeps the stored value. */
  lastSentAt: Date | null;
  /**
   * The hash rows state held for the member when the diff was taken (empty for an added member).
   * A warehouse may use it to write only the difference (Postgres does); when absent, or ignored,
   * the member's hash rows are replaced as a whole. Either way the result is `hashes`.
   */
  previousHashes?: readonly MemberHashRow[];
}

export interface WarehouseDiffInput {
  activationId: string;
  modelName: string;
  /** The analyst's SQL: wrap it as `(<sql>) AS m`, never parse or rewrite it. */
  modelSql: string;
  primaryKey: string;
  /** Mapped columns, in this order: fingerprinted (order-defined, null-safe) and carried in the delta. */
  columns: readonly string[];
  refreshBefore: Date | null;
  fullResync: boolean;
  /** Unique per diff, `[a-z0-9_]{1,32}`: names the run-scoped tables. */
  token: string;
}

/** One delta row as the warehouse returns it; src/diff turns it into a `DeltaRow`. */
export interface WarehouseDeltaRow {
  key: string;
  change: 'added' | 'removed' | 'changed' | 'refresh';
  /** The mapped columns' values in `columns` order; null for removed members. Raw: never log. */
  values: unknown[] | null;
  fingerprint: string | null;
  /** The member's stored hashes; null for added members (an empty list when it has none). */
  previousHashes: MemberHashRow[] | null;
}

/**
 * A prepared diff: run-scoped snapshot and delta tables, dropped by `close`. `invalidKeys` and `delta`
 * are read one at a time (src/diff enforces it), never nested; any other WarehouseSql method may run
 * while a delta is being read, so those must not need the diff's session.
 */
export interface WarehouseDiff {
  /** Counted when the diff was opened. */
  readonly counts: DiffCounts;
  /** Null keys (one row each) and duplicated keys (one row per key), in batches of ≤ `batchSize`. */
  invalidKeys(batchSize: number): AsyncIterable<InvalidKeyRow[]>;
  /**
   * The delta ordered removed, changed, refresh, added (then by key), in batches of ≤ `batchSize`,
   * with bounded memory (a cursor or keyset pagination). May be read more than once.
   */
  delta(batchSize: number): AsyncIterable<WarehouseDeltaRow[]>;
  /** Drops the run-scoped tables and releases the session; idempotent. */
  close(): Promise<void>;
}
