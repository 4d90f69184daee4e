import type { Logger } from 'pino';
import type { ResolvedActivation } from '../config/resolve-activation.js';
import type { ApplyOutcome, Destination, MemberHashes } from '../destinations/destination.js';
import type {
  DeltaRow,
  DiffRun,
  MemberAck,
  MemberHashRow,
  RejectionRecord,
  StateStore,
} from '../diff/types.js';
import { countEffect, countInvalid, emptyCounts } from './counts.js';
import { memoryMb, StepTimer } from './diagnostics.js';
import type { ColumnMappings } from './mappings.js';
import {
  acknowledged,
  changeIndexes,
  deleteCandidates,
  type HashedRow,
  hashValues,
  heldOnceCommitted,
  holdsAny,
  intentsOf,
  isEmpty,
  markSuppressed,
  mayHold,
  memberEffect,
  type MemberPlan,
  planBatch,
} from './membership.js';
import { type RemovalEstimate, startEstimate } from './safety.js';
import type { SyncCounts, SyncOptions } from './types.js';
import { suppressionAppliedId } from '../config/suppression-config.js';

/**
 * Batches sent (or being sent) and not yet committed, at most; with the batch being read and hashed,
 * memory holds one more. Three lets two commits run at once while the next batch is sent: on a 1M
 * initial load the warehouse's commit work, not hashing or sending, sets the pace. Measured with two
 * (bench/RESULTS.md, "Tried and rejected"): the 5M incremental run peaked at 240-253 MB instead of
 * 260-293 MB, but 1M initial loads took about 13% longer.
 */
const MAX_UNCOMMITTED = 3;

/**
 * The destination operations those batches may hold, in batches' worth of members: a changed member
 * holds its new and its previous hashes and sends two operations (a Delete and an Update), an added
 * or removed one holds one set and sends one. So three batches of added or removed members, or two of
 * changed ones. A first load (one operation a member) is unaffected. Measured on 5M incremental runs
 * (50,000 changed members, five batches in a row): peak RSS 281-288 MB in three runs, against
 * 271-326 MB in six with three changed batches in flight (three of them over 300 MB), in the same
 * time (51.6-53.8 s against 51.6-55.5 s).
 */
const MAX_IN_FLIGHT_CHANGES_IN_BATCHES = 4;

/**
 * Whether the next batch, of `changes` destination operations, waits for the oldest batch in flight
 * to commit first. `inFlight`: each uncommitted batch's operations, oldest first.
 */
export function waitsForOldest(inFlight: readonly number[], changes: number, batchSize: number): boolean {
  if (inFlight.length === 0) return false;
  if (inFlight.length >= MAX_UNCOMMITTED) return true;
  let held = changes;
  for (const n of inFlight) held += n;
  return held > MAX_IN_FLIGHT_CHANGES_IN_BATCHES * batchSize;
}

/** What moving one run's delta needs. */
export interface DeltaContext {
  activation: ResolvedActivation;
  options: SyncOptions;
  logger: Logger;
  counts: SyncCounts;
  diff: DiffRun;
  destination: Destination;
  mappings: ColumnMappings;
  batchSize: number;
  progress: (phase: 'deliver' | 'commit' | 'done', done: number) => void;
  /**
   * Looks up which of the given hashes are suppressed (state.suppressedHashes over the project's
   * suppression models); absent when the project has none.
   */
  suppressed?: (hashes: readonly string[]) => Promise<Set<string>>;
  /** Send only what suppression requires (`tailor sync --suppression-only`): other changes wait. */
  suppressionOnly?: boolean;
}

/** What delivering needs beyond planning: where to send and where to record. */
export interface DeliverContext extends DeltaContext {
  state: StateStore;
  audienceId: string;
  runId: string;
  now: () => Date;
}

/** A batch of the delta as prepared for planning: its rows hashed, its invalid values as rejections. */
export interface PreparedBatch {
  batch: readonly DeltaRow[];
  hashed: HashedRow[];
  /** One per invalid value (`reason` is what `countInvalid` counts). */
  rejections: RejectionRecord[];
}

/**
 * The largest delta the safety pass keeps in memory for delivery, in members: as many as the
 * pipeline holds in flight anyway (MAX_UNCOMMITTED batches). A delta this small is read from the
 * warehouse and hashed once instead of twice (the pass, then delivery): at 1M members with 1%
 * added, removed and changed, the whole delta.
 */
export function passCacheLimit(batchSize: number): number {
  return MAX_UNCOMMITTED * batchSize;
}

/**
 * Prepares (normalizes and hashes) a batch through the destination. Its invalid values are counted
 * by the caller once suppression is known (a suppressed member's are not: it is out either way).
 */
function prepareBatch(ctx: DeltaContext, batch: readonly DeltaRow[]): PreparedBatch {
  const options = { defaultRegion: ctx.activation.phoneDefaultRegion };
  const rejections: RejectionRecord[] = [];
  const hashed: HashedRow[] = batch.map((row) => {
    if (row.change === 'removed' || row.values === null) return { row, hashes: null };
    const { hashes, invalid } = ctx.destination.prepare(row.values, ctx.mappings, options);
    for (const problem of invalid) {
      rejections.push({ memberKey: row.key, identifierType: problem.type, reason: problem.reason });
    }
    return { row, hashes };
  });
  return { batch, hashed, rejections };
}

const NO_HASHES: ReadonlySet<string> = new Set();

/**
 * Marks the batch's suppressed members: those with a hash, now or as the destination may hold it
 * (acknowledged or pending), that a suppression model holds. The lookup runs in the warehouse, on
 * the batch's hashes only. Returns the suppressed hashes found (planBatch never keeps them). Then
 * counts the invalid values of the members that are not suppressed, and returns their rejections.
 */
async function applySuppression(
  ctx: DeltaContext,
  prepared: PreparedBatch,
): Promise<{ suppressedHashes: ReadonlySet<string>; rejections: RejectionRecord[] }> {
  let found: ReadonlySet<string> = NO_HASHES;
  if (ctx.suppressed) {
    const values = new Set<string>();
    for (const { row, hashes } of prepared.hashed) {
      for (const value of hashValues(hashes)) values.add(value);
      for (const value of hashValues(mayHold(row))) values.add(value);
    }
    if (values.size > 0) found = markSuppressed(prepared.hashed, await ctx.suppressed([...values]));
  }
  const out = new Set(prepared.hashed.filter((item) => item.suppressed).map((item) => item.row.key));
  const rejections = ctx.suppressionOnly
    ? []
    : prepared.rejections.filter((rejection) => !out.has(rejection.memberKey!));
  for (const rejection of rejections) countInvalid(ctx.counts, rejection.reason);
  return { suppressedHashes: found, rejections };
}

/**
 * Adds one hashed batch to the estimate of what the run would delete: the Deletes `planBatch` makes
 * for it when no member outside the batch is taken to hold any of its candidates.
 *
 * Why an upper bound and not the pipeline's exact plan: the pipeline asks `hashesHeldByOthers` of
 * a state that earlier batches' commits have moved on (a hash two members share, both losing it in
 * different batches, is kept by the first batch and deleted by the second). A pass that sends
 * nothing sees state as it was, so the same lookups would miss that Delete and count low; exact
 * counting would have to keep every earlier member's hashes in memory. Without the lookup, each
 * member's Delete is what the pipeline sends minus nothing: the pipeline keeps a superset (other
 * members' holdings and the same batch's new hashes), so its Deletes are subsets of these, batch by
 * batch, provided the batches are the same (same delta order, same batch size). The sum is then at
 * least the distinct hashes deleted. It counts high only for hashes a staying member shares.
 */
function addRemovals(estimate: RemovalEstimate, ctx: DeltaContext, hashed: readonly HashedRow[]): void {
  const plan = planBatch(
    hashed,
    NOTHING_HELD,
    ctx.activation.mode,
    ctx.options.fullResync,
    ctx.destination.capabilities,
  );
  // Only the hashes state holds for the member: a Delete of what a request never acknowledged may
  // have left (its pending hashes) repairs, and is not among the hashes X is known to hold.
  // Distinct within the batch: members sharing a hash both name it.
  const deleted = new Set<string>();
  for (const member of plan.members) {
    if (member.changeCount === 0 || member.previousHashes === null) continue;
    const change = plan.changes[member.firstChange]!;
    if (change.op === 'delete') addHeld(deleted, change.user, member.previousHashes);
  }
  estimate.deletes += deleted.size;
  if (!estimate.keepsAny)
    estimate.keepsAny = hashed.some(({ row, hashes }) => row.change !== 'removed' && !isEmpty(hashes));
}

const NOTHING_HELD: ReadonlySet<string> = new Set();

/** Adds to `into` those of `hashes` (per type) that are among `held`'s. */
function addHeld(into: Set<string>, hashes: MemberHashes, held: MemberHashes): void {
  for (const [type, values] of Object.entries(hashes)) {
    const known = held[type];
    if (known) for (const value of values ?? []) if (known.includes(value)) into.add(value);
  }
}

/**
 * The planning pass of the safety rule (safety.ts), before anything is sent: reads the delta in the
 * batches delivery will use, hashes it (invalid values are not counted: delivery counts them) and
 * estimates the hashes its Deletes would name. Added members (read last) only delete what requests
 * never acknowledged may have left, so the pass stops at them, unless it still has to learn whether
 * any member keeps an identifier (`held`: the hashes state holds, or its count under way; a lower
 * bound of it will do, since the pass stops only where the bound proves that deletes are fewer).
 */
export async function estimateRemovals(
  ctx: DeltaContext,
  held: number | Promise<number>,
  estimate: RemovalEstimate = startEstimate(ctx.diff),
  /**
   * When given, the pass reads the whole delta (added members too) and keeps every prepared batch
   * here, in delta order, for `deliverDelta` to send without reading or hashing the delta again.
   * Only for a delta of at most `passCacheLimit` members: it stays in memory until delivered.
   */
  keep?: PreparedBatch[],
): Promise<RemovalEstimate> {
  const quiet = { ...ctx, counts: emptyCounts() };
  for await (const batch of ctx.diff.delta(ctx.batchSize)) {
    ctx.options.signal?.throwIfAborted();
    // `held` may still be being counted (engine.ts): awaited only when the pass reaches added members.
    if (!keep && batch[0]!.change === 'added' && (estimate.keepsAny || estimate.deletes < (await held)))
      break;
    const prepared = prepareBatch(quiet, batch);
    addRemovals(estimate, quiet, prepared.hashed);
    keep?.push(prepared);
  }
  return estimate;
}

/**
 * The delta's batches for delivery: the ones the safety pass kept, prepared (their invalid values
 * counted now, as delivery would have counted them), else read one at a time, to prepare. Same
 * batches either way: same delta order, same batch size.
 */
async function* deliveryBatches(
  ctx: DeltaContext,
  kept: readonly PreparedBatch[] | undefined,
): AsyncGenerator<{ batch: readonly DeltaRow[]; prepared?: PreparedBatch }> {
  if (kept) {
    for (const prepared of kept) yield { batch: prepared.batch, prepared };
    return;
  }
  for await (const batch of ctx.diff.delta(ctx.batchSize)) yield { batch };
}

/**
 * A plan's counts: the effects the delta would have, nothing sent, nothing committed. With
 * `estimate`, also what the safety rule's pass would find (from the same read).
 */
export async function countDelta(ctx: DeltaContext, estimate?: RemovalEstimate): Promise<Set<string>> {
  const suppressedKeys = new Set<string>();
  const { activation, options } = ctx;
  let done = 0;
  for await (const batch of ctx.diff.delta(ctx.batchSize)) {
    options.signal?.throwIfAborted();
    const prepared = prepareBatch(ctx, batch);
    const { hashed } = prepared;
    if (estimate) addRemovals(estimate, ctx, hashed);
    await applySuppression(ctx, prepared);
    for (const { row, hashes, suppressed } of hashed) {
      if (suppressed) {
        countEffect(ctx.counts, 'suppressed');
        suppressedKeys.add(row.key);
        continue;
      }
      if (ctx.suppressionOnly) continue;
      const effect = memberEffect(
        row.change,
        mayHold(row),
        hashes,
        activation.mode,
        options.fullResync,
        !isEmpty(row.pendingHashes),
      );
      countEffect(ctx.counts, effect);
    }
    done += batch.length;
  }
  ctx.progress('done', done);
  return suppressedKeys;
}

/**
 * Sends the delta and moves state forward for what the destination acknowledged. Returns how many
 * members were neither acknowledged nor rejected (retries gave up): the next run sends them again.
 *
 * The batches go through a pipeline: batch n+1 is read and hashed while batch n is sent and earlier
 * ones are committed. Sends go one at a time in delta order; each batch's commit starts when its send
 * is answered, and commits of different batches (different members, one transaction each) may run
 * side by side, on their own connections. At most MAX_UNCOMMITTED batches wait for the destination
 * or the warehouse. A batch that may delete identifiers asks state which of them members outside it
 * and outside the uncommitted batches hold; for the members of those batches it waits only for their
 * answers and works out what their commits will leave (heldOnceCommitted). So its plan is the one it
 * would make after those commits, without waiting for them.
 */
export async function deliverDelta(
  ctx: DeliverContext,
  /** The whole delta as the safety pass prepared it (estimateRemovals' `keep`), when it kept it. */
  kept?: readonly PreparedBatch[],
): Promise<{ unacknowledged: number }> {
  const { activation, options, counts, diff, destination } = ctx;
  let sent = 0; // members of the batches handed to the destination so far
  let committed = 0; // members of the batches committed so far
  let unacknowledged = 0;
  let lastSend: Promise<unknown> = Promise.resolve();
  let sendFailed = false;
  /** Batches sent or being sent and not yet known committed, oldest first: commit, operations. */
  const committing: { commit: Promise<void>; changes: number }[] = [];
  const commits = () => committing.map((batch) => batch.commit);
  /** Batches handed to the destination whose commit has not finished: their members and answers. */
  const uncommitted = new Set<{ members: readonly MemberPlan[]; sending: Promise<ApplyOutcome> }>();
  let commitFailed = false;
  let batchNumber = 0;
  let readStarted = performance.now();

  /** The commit stage of one batch: once the destination answered, acknowledge, commit, record. */
  const commitBatch = async (
    number: number,
    size: number,
    members: readonly MemberPlan[],
    rejections: RejectionRecord[],
    sending: Promise<ApplyOutcome>,
    intentId: string,
    timing: StepTimer,
  ): Promise<void> => {
    const outcome = await sending;
    timing.lap('sendMs');
    counts.requests += outcome.requests;
    const sentAt = ctx.now();
    const acks: MemberAck[] = [];
    for (const member of members) {
      if (acknowledged(member, outcome.results)) {
        acks.push({
          key: member.key,
          keyHash: member.keyHash ?? null,
          change: member.change,
          fingerprint: member.fingerprint,
          hashes: member.hashes,
          previousHashes: member.previousHashes,
          sentAt: member.sendsUpdate ? sentAt : null,
          intentId: member.changeCount > 0 ? intentId : null,
        });
        countEffect(counts, member.effect);
        continue;
      }
      const rejected = changeIndexes(member)
        .map((index) => outcome.results[index])
        .find((answer) => answer?.status === 'rejected');
      if (rejected && rejected.status === 'rejected') {
        counts.rejected++;
        rejections.push({ memberKey: member.key, identifierType: null, reason: rejected.reason });
      } else {
        unacknowledged++;
      }
    }
    await diff.commit(acks);
    if (rejections.length > 0) await ctx.state.recordRejections(ctx.runId, activation.id, rejections);
    timing.lap('commitMs');
    committed += size;
    ctx.progress('commit', committed);
    if (ctx.logger.isLevelEnabled('debug')) {
      ctx.logger.debug(
        { batch: number, members: size, requests: outcome.requests, ...timing.totals(), ...memoryMb() },
        'batch committed',
      );
    }
  };

  try {
    for await (const { batch, prepared } of deliveryBatches(ctx, kept)) {
      options.signal?.throwIfAborted();
      // Where a batch's time goes, for --debug: reading it, hashing (neither when the safety pass
      // kept it), waiting for earlier batches, looking up shared identifiers, sending and committing.
      const timing = new StepTimer();
      timing.add('readMs', performance.now() - readStarted);
      const ready = prepared ?? prepareBatch(ctx, batch);
      const { suppressedHashes, rejections } = await applySuppression(ctx, ready);
      // --suppression-only: the rest of the delta waits for the next ordinary run.
      const hashed = ctx.suppressionOnly ? ready.hashed.filter((item) => item.suppressed) : ready.hashed;
      timing.lap('hashMs');
      const candidates = deleteCandidates(hashed, activation.mode);
      let held = new Set<string>();
      if (candidates.length > 0) {
        // A failed send or commit ends the run: rethrow it before planning more deletes.
        if (sendFailed || commitFailed) await Promise.all(commits());
        const pending = [...uncommitted];
        const wanted = new Set(candidates);
        // Left out of the lookup: this batch, and the uncommitted members state may still show
        // holding a candidate their commit will take away. Any other uncommitted member shows either
        // no candidate (before its commit) or what heldOnceCommitted adds below (after it).
        const excluded = batch.map((row) => row.key);
        for (const { members } of pending) {
          for (const member of members)
            if (holdsAny(member.previousHashes, wanted)) excluded.push(member.key);
        }
        let answers: ApplyOutcome[];
        [held, answers] = await Promise.all([
          diff.hashesHeldByOthers(candidates, excluded),
          Promise.all(pending.map(({ sending }) => sending)),
        ]);
        timing.lap('lookupMs');
        pending.forEach(({ members }, i) => heldOnceCommitted(members, answers[i]!.results, wanted, held));
      }
      const plan = planBatch(
        hashed,
        held,
        activation.mode,
        options.fullResync,
        destination.capabilities,
        suppressedHashes,
      );
      const number = ++batchNumber;
      // Intent before send: what the batch's requests name is in state before they leave, so a run
      // that dies after the destination answered, or a request it applies after Tailor gave up on it,
      // is repaired by the next run. Recorded while the previous batch is still being sent.
      const intentAt = ctx.now();
      const stamp = {
        id: `${ctx.runId}:${number}`,
        at: intentAt,
        until: new Date(intentAt.getTime() + destination.capabilities.lateApplyWindowMs),
      };
      const intents = intentsOf(plan);
      const recorded = intents.length === 0 ? Promise.resolve() : diff.recordIntent(intents, stamp);
      recorded.catch(() => undefined); // awaited below; this only keeps an early failure handled
      const changes = plan.changes.length;
      while (
        waitsForOldest(
          committing.map((batch) => batch.changes),
          changes,
          ctx.batchSize,
        )
      ) {
        await committing.shift()!.commit;
      }
      await lastSend;
      // A send that threw (not a refused member: the audience gone, credentials revoked) ends the
      // run; its commit rethrows it here rather than after more batches went the same way.
      if (sendFailed) await Promise.all(commits());
      timing.lap('waitMs');
      await recorded;
      timing.lap('intentMs');
      const size = batch.length;
      const base = sent;
      sent += size;
      const sending =
        plan.changes.length === 0
          ? Promise.resolve({ results: [], requests: 0 })
          : destination.apply(ctx.audienceId, plan.changes, {
              ...(options.signal ? { signal: options.signal } : {}),
              onProgress: (p) => {
                // Changes are up to two per member; report members, proportionally.
                const share = p.total === 0 ? 1 : p.done / p.total;
                ctx.progress('deliver', base + Math.floor(share * size));
              },
            });
      lastSend = sending.catch(() => {
        sendFailed = true;
      });
      // Only what the commit needs stays referenced (not the rows' raw values nor the user objects).
      const inFlight = { members: plan.members, sending };
      uncommitted.add(inFlight);
      const commit = commitBatch(number, size, plan.members, rejections, sending, stamp.id, timing).then(
        () => void uncommitted.delete(inFlight),
        (error: unknown) => {
          commitFailed = true;
          throw error;
        },
      );
      // Awaited below (or by the next batch); this only keeps an early failure from being unhandled.
      commit.catch(() => undefined);
      committing.push({ commit, changes });
      readStarted = performance.now();
    }
    await Promise.all(commits());
  } catch (error) {
    // Let what is in flight finish (or fail) before the diff closes: nothing acknowledged is lost.
    await Promise.allSettled([lastSend, ...commits()]);
    throw error;
  }
  ctx.progress('done', committed);
  return { unacknowledged };
}

/**
 * Removes from the audience the members state holds that hold a suppressed hash and that the delta
 * did not already take out (members whose rows did not change: a new opt-out matched them). Found by
 * a join in the warehouse (state.membersHoldingSuppressed), sent as Deletes through the same
 * pipeline, in mirror and upsert mode alike, and counted as suppressed. Not subject to the safety
 * hold: an opt-out is honoured whatever share of the audience it takes.
 */
export async function removeSuppressedMembers(
  ctx: DeliverContext,
  stateIds: readonly string[],
): Promise<{ unacknowledged: number }> {
  const members = await ctx.state.membersHoldingSuppressed(ctx.activation.id, stateIds);
  if (members.length === 0) return { unacknowledged: 0 };
  const kept: PreparedBatch[] = [];
  for (let i = 0; i < members.length; i += ctx.batchSize) {
    const batch: DeltaRow[] = members.slice(i, i + ctx.batchSize).map(({ key, hashes }) => ({
      key,
      change: 'removed',
      values: null,
      fingerprint: null,
      previousHashes: hashes,
      pendingHashes: null,
    }));
    kept.push({
      batch,
      hashed: batch.map((row) => ({ row, hashes: null, suppressed: true })),
      rejections: [],
    });
  }
  return deliverDelta(ctx, kept);
}

/** A plan's count of what removeSuppressedMembers would remove: members the delta did not count. */
export async function countSuppressedMembers(
  ctx: DeltaContext & { state: StateStore },
  stateIds: readonly string[],
  counted: ReadonlySet<string>,
): Promise<void> {
  const members = await ctx.state.membersHoldingSuppressed(ctx.activation.id, stateIds);
  for (const { key } of members) if (!counted.has(key)) ctx.counts.suppressed++;
}

/**
 * Upsert mode keeps segment leavers at the destination and forgets them in state, so a person who
 * opts out after leaving the segment is still in the audience with nothing in state to find them
 * by. So an upsert audience is sent a Delete of every suppressed hash not yet deleted from it (its
 * record under suppressionAppliedId, kept in the warehouse; a hash un-suppressed leaves the record,
 * so a later opt-out deletes it again). A Delete of a hash the audience does not hold changes
 * nothing. Returns how many Deletes were not acknowledged (retried by the next run).
 */
export async function deleteSuppressedHashes(
  ctx: DeliverContext,
  stateIds: readonly string[],
): Promise<{ unacknowledged: number }> {
  const appliedId = suppressionAppliedId(ctx.activation.id);
  const rows = await ctx.state.suppressionToApply(appliedId, stateIds);
  const deleted: MemberHashRow[] = [];
  let unacknowledged = 0;
  for (let i = 0; i < rows.length; i += ctx.batchSize) {
    ctx.options.signal?.throwIfAborted();
    const chunk = rows.slice(i, i + ctx.batchSize);
    const outcome = await ctx.destination.apply(
      ctx.audienceId,
      chunk.map((row) => ({ op: 'delete', user: { [row.idType]: [row.hash] } })),
      ctx.options.signal ? { signal: ctx.options.signal } : {},
    );
    ctx.counts.requests += outcome.requests;
    chunk.forEach((row, index) => {
      if (outcome.results[index]?.status === 'ok') deleted.push(row);
      else unacknowledged++;
    });
  }
  await ctx.state.recordSuppressionApplied(appliedId, stateIds, deleted);
  return { unacknowledged };
}
