import { WarehouseError } from '../errors.js';
import type { MemberHashRow } from '../sources/warehouse-hooks.js';
import { lookupInChunks } from './chunked-lookup.js';
import type { WarehouseDiff } from './diff-sql.js';
import { heldSampleBound, type MemberUpsert, type StateSql } from './state-sql.js';
import type {
  DeltaRow,
  DiffCounts,
  DiffRun,
  DiffSpec,
  IntentStamp,
  InvalidKeyRow,
  MemberAck,
  MemberHashes,
  MemberIntent,
} from './types.js';

/** Invalid keys are read in batches of this many. */
const INVALID_KEY_BATCH = 1000;

/** Intents whose members a run remembers, to clear one by its id (a few batches are in flight). */
const RECORDED_INTENTS = 16;

/**
 * A prepared diff over any warehouse: the set-based work happened in the warehouse (diff-sql.ts);
 * this turns its rows into the sync layer's shapes and moves state forward for acknowledged members.
 */
export class WarehouseDiffRun implements DiffRun {
  readonly #sql: StateSql;
  readonly #diff: WarehouseDiff;
  readonly #spec: DiffSpec;
  /** A delta being read holds the diff's session (a cursor on Postgres); reads take turns. */
  #reading = false;
  /** The held-hash count, once started (with the diff, where the store started it early). */
  #held: Promise<number> | undefined;
  /** The key bound of the spec's held-hash sample (`heldSampleBound`); undefined without one. */
  readonly #heldBound: string | undefined;
  /** The count over that sample, a lower bound of the whole, once started. */
  #heldAtLeast: Promise<number> | undefined;
  /**
   * The members each intent of this run recorded a row for, by intent id, until the commit that
   * names the intent: when it acknowledges every one of them, the intent is cleared by its id alone.
   */
  readonly #recorded = new Map<string, string[]>();

  /** Members with hashes when the diff was taken (where the store counted them), moved by each commit. */
  readonly #identified: Promise<number> | undefined;
  #identifiedMoved = 0;
  /** False once a commit's effect on that count is unknown (the commit could not say, or failed). */
  #identifiedExact = true;

  constructor(
    sql: StateSql,
    diff: WarehouseDiff,
    spec: DiffSpec,
    heldStarted?: Promise<number>,
    identified?: Promise<number>,
  ) {
    this.#sql = sql;
    this.#diff = diff;
    this.#spec = spec;
    // What the store started beside the diff: the sample's count, or without one the count itself.
    this.#heldBound = heldSampleBound(spec.heldSample);
    if (this.#heldBound === undefined) this.#held = heldStarted;
    else this.#heldAtLeast = heldStarted;
    this.#identified = identified;
  }

  get counts(): DiffCounts {
    return this.#diff.counts;
  }

  get keysCompared(): 'hash' | 'digest' {
    return this.#diff.keysCompared;
  }

  async *invalidKeys(): AsyncIterable<InvalidKeyRow[]> {
    this.#startReading('invalidKeys');
    try {
      yield* this.#diff.invalidKeys(INVALID_KEY_BATCH);
    } finally {
      this.#reading = false;
    }
  }

  async *delta(batchSize: number): AsyncIterable<DeltaRow[]> {
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new RangeError('batchSize must be a positive integer');
    this.#startReading('delta');
    const columns = this.#spec.columns;
    try {
      for await (const rows of this.#diff.delta(batchSize)) {
        yield rows.map((row) => ({
          key: row.key,
          keyHash: row.keyHash,
          change: row.change,
          values: row.values === null ? null : Object.fromEntries(columns.map((c, i) => [c, row.values![i]])),
          fingerprint: row.fingerprint,
          previousHashes: row.previousHashes === null ? null : hashesFromRows(row.previousHashes),
          // Two intents may name one hash: each once.
          pendingHashes: row.pendingHashes === null ? null : hashesFromRows(distinctRows(row.pendingHashes)),
        }));
      }
    } finally {
      this.#reading = false;
    }
  }

  /**
   * `invalidKeys()` and `delta()` read over the diff's own session, one at a time: nesting them would
   * wait forever for the session the outer read holds, so it fails fast instead. `commit` and
   * `hashesHeldByOthers` use other connections and may run at any time.
   */
  #startReading(what: string): void {
    if (this.#reading) {
      throw new WarehouseError(
        `DiffRun.${what}() was called while another read of this diff is in progress`,
        {
          hint: 'read invalidKeys() and delta() one after the other, not nested',
        },
      );
    }
    this.#reading = true;
  }

  async hashesHeldByOthers(
    hashes: readonly string[],
    excludingKeys: readonly string[],
  ): Promise<Set<string>> {
    const excluded = [...new Set(excludingKeys)];
    return lookupInChunks([...new Set(hashes)], this.#sql.hooks.maxHashesPerLookup, (chunk) =>
      this.#sql.hashesHeldByOthers(this.#spec.activationId, chunk, excluded),
    );
  }

  heldHashCount(): Promise<number> {
    this.#held ??= this.#sql.heldHashCount(this.#spec.activationId);
    return this.#held;
  }

  async heldByDelta(): Promise<number> {
    this.#startReading('heldByDelta');
    try {
      return await this.#diff.heldByDelta();
    } finally {
      this.#reading = false;
    }
  }

  heldHashesAtLeast(): Promise<number> {
    if (this.#heldBound === undefined) return this.heldHashCount();
    this.#heldAtLeast ??= this.#sql.heldHashCount(this.#spec.activationId, this.#heldBound);
    return this.#heldAtLeast;
  }

  async recordIntent(intents: readonly MemberIntent[], stamp: IntentStamp): Promise<void> {
    // One row per member with hashes (packed), in chunks of at most maxRowsPerStatement members.
    const rows = intents.map((intent) => ({ key: intent.key, hashes: rowsFromHashes(intent.hashes) }));
    let recorded = this.#recorded.get(stamp.id);
    if (recorded === undefined) {
      this.#recorded.set(stamp.id, (recorded = []));
      // A commit forgets the intents its acks name; one that names none (a batch of which nothing was
      // acknowledged) would stay. The oldest go past a few batches in flight: they clear by key.
      for (const id of this.#recorded.keys()) {
        if (this.#recorded.size <= RECORDED_INTENTS) break;
        this.#recorded.delete(id);
      }
    }
    for (const row of rows) if (row.hashes.length > 0) recorded.push(row.key);
    const step = this.#sql.hooks.maxRowsPerStatement;
    for (let i = 0; i < rows.length; i += step) {
      await this.#sql.recordIntents(this.#spec.activationId, rows.slice(i, i + step), stamp);
    }
  }

  async commit(acks: readonly MemberAck[]): Promise<void> {
    // The last ack of a key wins, so a batch that names a member twice still commits one state.
    const byKey = new Map<string, MemberAck>();
    for (const ack of acks) {
      if (ack.change !== 'removed' && ack.fingerprint === null) {
        throw new TypeError(`ack for a ${ack.change} member has no fingerprint`);
      }
      byKey.delete(ack.key);
      byKey.set(ack.key, ack);
    }
    const all = [...byKey.values()];
    const step = this.#sql.hooks.maxRowsPerStatement;
    const whole = wholeIntents(this.#recorded, byKey, all.length <= step);
    for (let i = 0; i < all.length; i += step) {
      const upserts: MemberUpsert[] = [];
      const removals: string[] = [];
      const intentIds = new Set<string>();
      const intentKeys: string[] = [];
      /** Removed members that held a hash at the diff (undefined once one's previous hashes are not given). */
      let removalsIdentified: number | undefined = 0;
      for (const ack of all.slice(i, i + step)) {
        if (ack.intentId) {
          intentIds.add(ack.intentId);
          intentKeys.push(ack.key);
        }
        if (ack.change === 'removed') {
          removals.push(ack.key);
          if (ack.previousHashes === undefined) removalsIdentified = undefined;
          else if (removalsIdentified !== undefined && hasHashes(ack.previousHashes)) removalsIdentified++;
        } else
          upserts.push({
            key: ack.key,
            keyHash: ack.keyHash ?? null,
            fingerprint: ack.fingerprint!,
            hashes: rowsFromHashes(ack.hashes),
            lastSentAt: ack.sentAt,
            ...(ack.previousHashes === undefined
              ? {}
              : { previousHashes: rowsFromHashes(ack.previousHashes) }),
          });
      }
      let moved: number | undefined;
      try {
        ({ identifiedMoved: moved } = await this.#sql.applyMemberChanges(this.#spec.activationId, {
          upserts,
          removals,
          intentIds: [...intentIds],
          olderIntents: this.#diff.hasIntents,
          intentKeys,
          wholeIntents: whole,
          ...(removalsIdentified === undefined ? {} : { removalsIdentified }),
        }));
      } catch (error) {
        this.#identifiedExact = false;
        throw error;
      }
      if (moved === undefined) this.#identifiedExact = false;
      else this.#identifiedMoved += moved;
    }
  }

  settleKeyHashes(): Promise<void> {
    return this.#diff.settleKeyHashes();
  }

  async identifiedMemberCount(): Promise<number> {
    if (this.#identified !== undefined && this.#identifiedExact) {
      const counted = await this.#identified.catch(() => undefined);
      if (counted !== undefined) return counted + this.#identifiedMoved;
    }
    return this.#sql.identifiedMemberCount(this.#spec.activationId);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    // A count started with the diff and never asked for (the run turned out to delete nothing).
    await this.#heldAtLeast?.catch(() => undefined);
    await this.#held?.catch(() => undefined);
    await this.#diff.close();
  }
}

/**
 * The intents whose every recorded member (`recorded`: keys by intent id) the acks acknowledge, when
 * they are committed in one statement batch (`oneChunk`; else none: clearing a whole intent in a
 * first chunk would drop the intents of members a later chunk has yet to commit). Every intent the
 * acks name leaves `recorded`, whole or not: a later commit naming it again clears by key.
 */
export function wholeIntents(
  recorded: Map<string, readonly string[]>,
  acks: ReadonlyMap<string, MemberAck>,
  oneChunk: boolean,
): Set<string> {
  const whole = new Set<string>();
  const named = new Set<string>();
  for (const ack of acks.values()) if (ack.intentId) named.add(ack.intentId);
  for (const id of named) {
    const keys = recorded.get(id);
    recorded.delete(id);
    if (oneChunk && keys !== undefined && keys.every((key) => acks.get(key)?.intentId === id)) whole.add(id);
  }
  return whole;
}

/** Whether a member's hashes hold any value (no entries array: called for every member of a batch). */
export function hasHashes(hashes: MemberHashes | null | undefined): boolean {
  if (!hashes) return false;
  for (const type in hashes) if ((hashes[type]?.length ?? 0) > 0) return true;
  return false;
}

/** MemberHashes as state rows: one per (type, hash), duplicates dropped. */
export function rowsFromHashes(hashes: MemberHashes | null): MemberHashRow[] {
  if (hashes === null) return [];
  // Sized up front: a batch's rows stay in memory while it commits, and flatMap or push() would
  // reserve 17 slots for a member's four or five (see appendValue). A type's single value (nearly
  // always) needs no Set to drop duplicates: this runs for every member of every commit.
  let size = 0;
  for (const idType in hashes) size += hashes[idType]?.length ?? 0;
  const rows = new Array<MemberHashRow>(size);
  let i = 0;
  for (const idType in hashes) {
    const values = hashes[idType] ?? [];
    if (values.length === 1) rows[i++] = { idType, hash: values[0]! };
    else for (const hash of new Set(values)) rows[i++] = { idType, hash };
  }
  if (i < size) rows.length = i;
  return rows;
}

/**
 * Each (type, hash) once, in first-seen order; `rows` itself when nothing repeats. A member has a
 * handful, compared pairwise without a Set of joined strings (this runs for every member of a
 * commit); a Set past a few dozen.
 */
export function distinctRows(rows: readonly MemberHashRow[]): readonly MemberHashRow[] {
  if (rows.length <= 32 && !repeatsAny(rows)) return rows;
  const seen = new Set<string>();
  return rows.filter((row) => {
    const id = `${row.idType}\u0000${row.hash}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

function repeatsAny(rows: readonly MemberHashRow[]): boolean {
  for (let i = 1; i < rows.length; i++) {
    for (let j = 0; j < i; j++) {
      if (rows[j]!.hash === rows[i]!.hash && rows[j]!.idType === rows[i]!.idType) return true;
    }
  }
  return false;
}

/** State rows back into MemberHashes (types in the order stored, values sorted). */
export function hashesFromRows(rows: readonly MemberHashRow[]): MemberHashes {
  const hashes: MemberHashes = {};
  for (const { idType, hash } of rows) {
    // A one-slot array for the first value: push() would reserve 17 (see appendValue).
    const list = hashes[idType];
    if (list) list.push(hash);
    else hashes[idType] = [hash];
  }
  for (const values of Object.values(hashes)) values?.sort();
  return hashes;
}
