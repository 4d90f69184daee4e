import type { MemberHashRow } from '../sources/warehouse-hooks.js';

export type { MemberHashRow };
/**
 * The contract between the diff and the sync layer. The diff runs inside the warehouse; only the
 * delta crosses into Node, in batches. Nothing here knows a destination: identifier types and
 * hashes are plain strings.
 */

/** A member's identifier hashes by identifier type (opaque strings to the diff). */
export type MemberHashes = Partial<Record<string, string[]>>;

/** What the diff needs to know about one activation's segment. */
export interface DiffSpec {
  activationId: string;
  /** The analyst's SQL, wrapped as a subquery, never parsed or rewritten. */
  modelSql: string;
  modelName: string;
  primaryKey: string;
  /** The mapped columns (fingerprinted and carried in the delta), as the model returns them. */
  columns: readonly string[];
  /** Members whose last acknowledged Update is older than this are emitted as `refresh`. */
  refreshBefore: Date | null;
  /** Emit every current member as `changed`-like `refresh` (re-send all) and everything beyond as `removed`. */
  fullResync: boolean;
  /**
   * The safety rule may ask for `heldHashCount()`: where the warehouse runs a state read beside the
   * diff at no cost but CPU (`hooks.speculativeReads`), the count starts with the diff instead of
   * after it. State does not move meanwhile: the run holds the activation's lock.
   */
  heldCountLikely?: boolean;
  /**
   * The share of members (by key digest) whose hashes `heldHashesAtLeast()` counts: a lower bound of
   * the held-hash count that settles most runs for a share of its cost (src/sync/safety.ts). Absent,
   * or 1: the exact count. Honoured on every warehouse; worth asking for only where
   * `StateStore.keyRangesIndexed`.
   */
  heldSample?: number;
}

export type ChangeKind = 'added' | 'removed' | 'changed' | 'refresh';

/** One member of the delta. Rows come ordered: removed, then changed, then refresh, then added. */
export interface DeltaRow {
  /** The primary key rendered as text (stable across runs and warehouses). */
  key: string;
  /**
   * An added member's key hash (decimal text), to be stored with it when it is committed; null or
   * absent when the diff leaves it to `settleKeyHashes` (docs/state.md, "Key hashes").
   */
  keyHash?: string | null;
  change: ChangeKind;
  /** The mapped columns' current values; null for removed members. Values are raw: never log them. */
  values: Record<string, unknown> | null;
  /** Fingerprint of the current mapped values; null for removed members. */
  fingerprint: string | null;
  /** The hashes the destination acknowledged for this member; null for added members. */
  previousHashes: MemberHashes | null;
  /**
   * Every hash named by requests sent for this member whose acknowledgement was never committed
   * (the run died after sending, or the request's outcome is unknown and the destination may still
   * apply it, within its late-apply window): the destination may hold any of them, or have lost any
   * of them. Null when there are none. Such a member is re-sent whole, and every hash it may hold and
   * no longer has is deleted, whatever the diff says of its values.
   */
  pendingHashes: MemberHashes | null;
}

export interface DiffCounts {
  /** Rows the model returned. */
  rows: number;
  /** Rows left out for a null or duplicated primary key. */
  invalidKeys: number;
  added: number;
  removed: number;
  changed: number;
  refresh: number;
  /** Members the state held before this run (the audience as Tailor knows it). */
  stateMembers: number;
}

/** A row left out of the segment by the diff (null or duplicated key); counted and recorded, never sent. */
export interface InvalidKeyRow {
  /** The key as text; null for a null key. */
  key: string | null;
  reason: 'null_primary_key' | 'duplicate_primary_key';
  /** How many rows share this key (1 for null keys, each counted). */
  rows: number;
}

/** What the sync layer reports back for one member once the destination has answered. */
export interface MemberAck {
  key: string;
  /** The delta row's `keyHash`, stored with a member the commit inserts. */
  keyHash?: string | null;
  change: ChangeKind;
  /** The new fingerprint (null for removed). */
  fingerprint: string | null;
  /** The hashes now held at the destination for this member (null for removed). */
  hashes: MemberHashes | null;
  /**
   * The hashes state held for the member when the diff was taken (the delta row's previousHashes),
   * so that a commit may write only the difference. Omitted: the commit replaces them all.
   */
  previousHashes?: MemberHashes | null;
  /** When an Update carrying this member was acknowledged; null if nothing was sent for it. */
  sentAt: Date | null;
  /** The intent recorded before this member's operations were sent (`recordIntent`); null if none. */
  intentId?: string | null;
}

/** The hashes of one member's operations, recorded before they are sent (intent before send). */
export interface MemberIntent {
  key: string;
  hashes: MemberHashes;
}

/** One batch's intent: its id, when it was recorded, and until when the destination may apply it. */
export interface IntentStamp {
  id: string;
  at: Date;
  until: Date;
}

/** One prepared diff: the snapshot is taken and compared; read the delta, then commit what was acknowledged. */
export interface DiffRun extends AsyncDisposable {
  readonly counts: DiffCounts;
  invalidKeys(): AsyncIterable<InvalidKeyRow[]>;
  /** The delta in batches of at most `batchSize` rows, with bounded memory whatever the segment size. */
  delta(batchSize: number): AsyncIterable<DeltaRow[]>;
  /**
   * Of the given hashes, those still held (in state) by a member whose key is not in `excludingKeys`.
   * Used so a shared identifier is never deleted while another current member still has it.
   */
  hashesHeldByOthers(hashes: readonly string[], excludingKeys: readonly string[]): Promise<Set<string>>;
  /**
   * How many distinct hashes state holds for the activation (what X holds for its audience, as far
   * as state knows). One aggregate statement, run only when asked (the safety rule asks when a run
   * may delete).
   */
  heldHashCount(): Promise<number>;
  /**
   * At most `heldHashCount()`: the distinct hashes of the members in the spec's `heldSample` (the
   * exact count itself, and the same promise, without one). Started with the diff where the count
   * would be (`heldCountLikely`).
   */
  heldHashesAtLeast(): Promise<number>;
  /**
   * The hashes state holds for the delta's removed, changed and refresh members, counted in the
   * warehouse (0 on a first load): at least the hashes X is known to hold that the run's Deletes name.
   * Read over the diff's session, like `delta()`, so not while a read of it is open.
   */
  heldByDelta(): Promise<number>;
  /**
   * Records, before a request is sent, the hashes its operations name. Until the commit of a
   * member's acknowledgement clears its intent (and, past `until`, every older one), the diff
   * reports those hashes as the member's `pendingHashes`. Idempotent.
   */
  recordIntent(intents: readonly MemberIntent[], stamp: IntentStamp): Promise<void>;
  /**
   * Moves state forward for acknowledged members only, and clears their intents: the one named by
   * the ack's `intentId`, and those whose window has passed. Safe to call once per delta batch.
   */
  commit(acks: readonly MemberAck[]): Promise<void>;
  /**
   * After the run's commits: gives the members the diff compared by key digest their key hashes,
   * so the next diff compares by key hash (docs/state.md, "Key hashes"). Nothing to do when this one
   * did. A dry run never calls it: it writes state.
   */
  settleKeyHashes(): Promise<void>;
  /**
   * What the diff compared the segment with state by: each key's 64-bit hash (when every member had
   * one and none had intents), or its digest.
   */
  readonly keysCompared: 'hash' | 'digest';
  /**
   * How many members state holds at least one hash for, after this run's commits (the match rate's
   * members sent). Where the store counted them with the diff, that count moved by what each commit
   * did; otherwise one aggregate statement. Valid after the diff is disposed.
   */
  identifiedMemberCount(): Promise<number>;
}

/** The audience an activation is bound to, so a run never creates a second one. */
export interface AudienceBinding {
  activationId: string;
  destination: string;
  accountId: string;
  audienceId: string;
  audienceName: string;
  boundAt: Date;
}

/** How a run ended, as recorded in the run log. */
export interface RunFinish {
  status: Exclude<RunStatus, 'running'>;
  counts: RunCounts;
  error: string | null;
  finishedAt: Date;
  /** X's view of the audience at the end of a successful run, for the run log's match rate. */
  match?: RunMatch | null;
}

/** What a run recorded of its match rate: X's size (null while X has not sized it) ÷ members sent. */
export interface RunMatch {
  audienceSize: number | null;
  /** Members state holds with at least one valid identifier hash when the run ended. */
  sent: number;
  /** When X last processed the audience, as X reported it; null when X does not say. */
  processedAt: Date | null;
}

/**
 * `interrupted`: stopped by a signal (Ctrl-C, SIGTERM); what X acknowledged was committed, and the
 * next run sends the rest. `abandoned`: left `running` by a process that died without a word (SIGKILL,
 * a crash, a lost machine), closed as such by the next run of the activation, under its lock.
 */
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'held' | 'interrupted' | 'abandoned';

export interface RunCounts {
  rows: number;
  added: number;
  removed: number;
  changed: number;
  refreshed: number;
  invalid: number;
  rejected: number;
  requests: number;
  /**
   * Members left out of the segment, or removed from the audience, because an identifier of theirs
   * is in a suppression model (docs/suppression.md). Never counted as invalid.
   */
  suppressed: number;
}

export interface RunRecord {
  id: string;
  activationId: string;
  startedAt: Date;
  finishedAt: Date | null;
  status: RunStatus;
  counts: RunCounts;
  error: string | null;
  /** Warehouse cost figures where the warehouse reports them (BigQuery bytes, Snowflake query ids). */
  cost?: Record<string, unknown> | null;
  /** The match rate's figures recorded at the end of a successful run; null for other runs. */
  match?: RunMatch | null;
}

/** One rejected or invalid identifier: the member key, the type and the reason. Never the raw value. */
export interface RejectionRecord {
  memberKey: string | null;
  identifierType: string | null;
  reason: string;
}

/** A run's rejections: counts by reason and identifier type, and the first rows (keys, never values). */
export interface RunRejections {
  byReason: { reason: string; identifierType: string | null; count: number }[];
  sample: RejectionRecord[];
}

/** A held warehouse lock; release it on every path (`await using`). */
export interface ActivationLock extends AsyncDisposable {
  release(): Promise<void>;
}

/**
 * State kept in the warehouse's `state_schema`, created by versioned migrations on first use:
 * bindings, member state, the run log and rejections. Raw identifiers are never stored.
 */
export interface StateStore extends ActivationStatusStore {
  /** Creates or upgrades the state schema (idempotent, safe under concurrency). */
  migrate(): Promise<void>;
  /**
   * Takes the activation's lock. With `wait: false` a held lock throws LockBusyError at once;
   * with `wait: true` it waits (up to `timeoutMs`, then LockBusyError).
   */
  lock(activationId: string, options: { wait: boolean; timeoutMs?: number }): Promise<ActivationLock>;
  getBinding(activationId: string): Promise<AudienceBinding | undefined>;
  saveBinding(binding: AudienceBinding): Promise<void>;
  /** Prepares a diff of the activation's segment against its state (call under the lock). */
  prepareDiff(spec: DiffSpec): Promise<DiffRun>;
  /**
   * Whether a share of the members, by a range of key digests, costs about that share of a scan (an
   * index reads it: PostgreSQL, PGlite), so that a sampled lower bound of the held-hash count
   * (`DiffSpec.heldSample`) is worth asking for. Not BigQuery and Snowflake, which scan whole columns.
   */
  readonly keyRangesIndexed: boolean;
  /**
   * Who feeds the activation's audience, as the owner mark in its description names it: a digest of
   * the state schema's random id (made once, kept by `reset`) and the activation id, so it reveals
   * neither the schema's nor the activation's name.
   */
  ownerId(activationId: string): Promise<string>;
  /**
   * Of `hashes`, those held by any of the given suppression states (their member_hashes rows are
   * the suppressed identifiers, docs/suppression.md).
   */
  suppressedHashes(stateIds: readonly string[], hashes: readonly string[]): Promise<Set<string>>;
  /**
   * The members state holds for the activation that hold a hash of any of the given suppression
   * states, each with every hash state holds for it. Joined in the warehouse.
   */
  membersHoldingSuppressed(
    activationId: string,
    stateIds: readonly string[],
  ): Promise<{ key: string; hashes: MemberHashes }[]>;
  /**
   * Suppressed hashes (any of `stateIds`) not yet recorded as deleted under `appliedId`: for an
   * audience whose state does not know all it holds (upsert mode), what must still be deleted.
   */
  suppressionToApply(appliedId: string, stateIds: readonly string[]): Promise<MemberHashRow[]>;
  /** Records `deleted` as deleted under `appliedId`, and forgets the hashes no longer suppressed. */
  recordSuppressionApplied(
    appliedId: string,
    stateIds: readonly string[],
    deleted: readonly MemberHashRow[],
  ): Promise<void>;
  /** Members held in state for the activation. */
  memberCount(activationId: string): Promise<number>;
  /**
   * Members held in state with at least one identifier hash: those sent to the destination with at
   * least one valid identifier (the denominator of the match rate).
   */
  identifiedMemberCount(activationId: string): Promise<number>;
  /**
   * Records a new run. Call it under the activation's lock: runs of the activation still `running`
   * then belong to a dead process, and are closed as `abandoned` first.
   */
  startRun(activationId: string, startedAt: Date): Promise<string>;
  finishRun(runId: string, result: RunFinish): Promise<void>;
  recordRejections(runId: string, activationId: string, rows: readonly RejectionRecord[]): Promise<void>;
  /** Runs newest first; all activations when `activationId` is undefined. */
  listRuns(options: { activationId?: string; limit: number }): Promise<RunRecord[]>;
  /** A run's rejections by reason, and the member keys of the first `limit`. */
  listRejections(runId: string, limit: number): Promise<RunRejections>;
  /** Forgets members and binding of an activation (its next run is a full sync); keeps the run log. */
  reset(activationId: string, options?: { keepBinding?: boolean }): Promise<void>;
}

/** Scheduler bookkeeping per activation: consecutive failures and pausing. */
export interface ActivationStatus {
  activationId: string;
  consecutiveFailures: number;
  pausedAt: Date | null;
  pausedReason: string | null;
  /** Fingerprint of the activation's config when it was paused; a change resumes it. */
  configFingerprint: string | null;
  updatedAt: Date;
}

/** The parts of StateStore the scheduler uses for pausing; implemented by every state store. */
export interface ActivationStatusStore {
  getActivationStatus(activationId: string): Promise<ActivationStatus | undefined>;
  setActivationStatus(status: ActivationStatus): Promise<void>;
  listActivationStatus(): Promise<ActivationStatus[]>;
}
