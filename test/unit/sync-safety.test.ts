import fc from 'fast-check';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ResolvedActivation } from '../../src/config/resolve-activation.js';
import type { Destination, MemberHashes } from '../../src/destinations/destination.js';
import type { DeltaRow, DiffRun } from '../../src/diff/types.js';
import { emptyCounts } from '../../src/sync/counts.js';
import { deleteCandidates, hashValues, planBatch } from '../../src/sync/membership.js';
import { type DeltaContext, estimateRemovals, type PreparedBatch } from '../../src/sync/pipeline.js';
import {
  heldSampleFor,
  mayDelete,
  removalHold,
  removalHoldFrom,
  segmentHold,
  settledBeforePass,
} from '../../src/sync/safety.js';

/**
 * The safety rule counts identifiers, not rows: a run that would delete more than max_removal_share
 * of the hashes X holds, or leave the audience empty, is held, whether rows left the segment or
 * their identifiers turned null or invalid.
 */

const activation = (mode: 'mirror' | 'upsert', maxRemovalShare = 0.5) =>
  ({
    mode,
    maxRemovalShare,
    model: { name: 'vip' },
    phoneDefaultRegion: 'US',
  }) as unknown as ResolvedActivation;
const diffCounts = (
  stateMembers: number,
  over: { removed?: number; changed?: number; refresh?: number } = {},
) => ({
  counts: {
    rows: 0,
    invalidKeys: 0,
    added: 0,
    removed: over.removed ?? 0,
    changed: over.changed ?? 0,
    refresh: over.refresh ?? 0,
    stateMembers,
  },
});

describe('the safety rules', () => {
  it('holds an empty segment while the audience has members, without a pass', () => {
    expect(segmentHold(activation('mirror'), diffCounts(10, { removed: 10 }), 0)).toMatch(
      /returned no members while the audience has 10/,
    );
    expect(segmentHold(activation('mirror'), diffCounts(0), 0)).toBeNull();
    expect(segmentHold(activation('mirror'), diffCounts(10), 3)).toBeNull();
    expect(segmentHold(activation('upsert'), diffCounts(10, { removed: 10 }), 0)).toBeNull();
  });

  it('needs the pass only when a mirror run over a non-empty state may delete', () => {
    expect(mayDelete(activation('mirror'), diffCounts(0))).toBe(false); // the initial load
    expect(mayDelete(activation('mirror'), diffCounts(100))).toBe(false); // added members only
    expect(mayDelete(activation('upsert'), diffCounts(100, { removed: 5 }))).toBe(false);
    expect(mayDelete(activation('mirror'), diffCounts(100, { removed: 1 }))).toBe(true);
    expect(mayDelete(activation('mirror'), diffCounts(100, { changed: 1 }))).toBe(true);
    expect(mayDelete(activation('mirror'), diffCounts(100, { refresh: 1 }))).toBe(true);
  });

  it('holds a run deleting more than max_removal_share of the hashes X holds', () => {
    const mirror = activation('mirror');
    expect(removalHold(mirror, 100, { deletes: 50, keepsAny: true })).toBeNull();
    expect(removalHold(mirror, 100, { deletes: 51, keepsAny: true })).toMatch(
      /delete up to 51 of the 100 identifiers X holds for the audience \(51%\), more than max_removal_share \(50%\)/,
    );
    expect(removalHold(activation('mirror', 0.9), 100, { deletes: 80, keepsAny: true })).toBeNull();
    expect(removalHold(activation('upsert'), 100, { deletes: 100, keepsAny: false })).toBeNull();
    expect(removalHold(mirror, 0, { deletes: 10, keepsAny: false })).toBeNull(); // X holds nothing
  });

  it('holds a run that would leave the audience empty, even when the share allows it', () => {
    const all = activation('mirror', 1);
    expect(removalHold(all, 100, { deletes: 100, keepsAny: false })).toMatch(
      /delete all 100 identifiers X holds .* leave it empty/,
    );
    expect(removalHold(all, 100, { deletes: 100, keepsAny: true })).toBeNull();
    expect(removalHold(all, 100, { deletes: 99, keepsAny: false })).toBeNull();
  });

  it('decides from a lower bound of the held hashes exactly as from the count itself', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: 1000 }),
        fc.nat({ max: 1000 }),
        fc.nat({ max: 1200 }),
        fc.boolean(),
        fc.constantFrom(0, 0.05, 0.1, 0.5, 0.9, 1),
        async (held, below, deletes, keepsAny, share) => {
          const atLeast = Math.min(below, held);
          const mirror = activation('mirror', share);
          const estimate = { deletes, keepsAny };
          let counted = 0;
          const exact = async () => {
            counted += 1;
            return held;
          };
          const settled = await removalHoldFrom(mirror, atLeast, exact, estimate);
          expect(settled.hold).toBe(removalHold(mirror, held, estimate));
          // The count is asked for only when the bound does not settle the run, and then once.
          expect(counted).toBe(settled.exact ? 1 : 0);
          expect(settled.held).toBe(settled.exact ? held : atLeast);
        },
      ),
    );
  });

  it('lets a run through before the pass only where the pass and the count would', () => {
    fc.assert(
      fc.property(
        fc.nat({ max: 500 }),
        fc.nat({ max: 500 }),
        fc.nat({ max: 600 }),
        fc.nat({ max: 600 }),
        fc.nat({ max: 3 }),
        fc.boolean(),
        fc.constantFrom(0, 0.05, 0.1, 0.5, 0.9, 1),
        (held, below, deletes, over, staying, learnsKeeps, share) => {
          const mirror = activation('mirror', share);
          // State's members outside the delta keep their identifiers: known before the pass.
          const diff = diffCounts(10 + staying, { removed: 10 });
          const keepsAny = staying > 0 || learnsKeeps;
          if (settledBeforePass(mirror, Math.min(below, held), deletes + over, diff))
            expect(removalHold(mirror, held, { deletes, keepsAny })).toBeNull();
        },
      ),
    );
    // The delta's members hold 80 hashes: at most 80 deletes, under half of a sample's 200.
    expect(settledBeforePass(activation('mirror'), 200, 80, diffCounts(1000, { removed: 20 }))).toBe(true);
    expect(settledBeforePass(activation('mirror'), 200, 101, diffCounts(1000, { removed: 20 }))).toBe(false);
    // A sample that found nothing settles nothing.
    expect(settledBeforePass(activation('mirror'), 0, 0, diffCounts(1000, { removed: 20 }))).toBe(false);
  });

  it('counts all the held hashes only when the sample does not settle the run', async () => {
    const mirror = activation('mirror');
    const never = () => Promise.reject(new Error('the sample settles this run'));
    // A sample of 200 hashes: 100 deletes are at most half of whatever X holds.
    expect(await removalHoldFrom(mirror, 200, never, { deletes: 100, keepsAny: true })).toEqual({
      hold: null,
      held: 200,
      exact: false,
    });
    // 101 deletes would be too many against the sample alone: the count (1,000) lets the run go.
    expect(await removalHoldFrom(mirror, 200, async () => 1000, { deletes: 101, keepsAny: true })).toEqual({
      hold: null,
      held: 1000,
      exact: true,
    });
    // ... or holds it, naming the count, not the sample.
    expect(
      (await removalHoldFrom(mirror, 200, async () => 201, { deletes: 101, keepsAny: true })).hold,
    ).toMatch(/delete up to 101 of the 201 identifiers/);
    // A sample that found nothing proves nothing.
    expect((await removalHoldFrom(mirror, 0, async () => 5, { deletes: 5, keepsAny: false })).hold).toMatch(
      /delete all 5 identifiers/,
    );
  });

  it('samples a share of members that settles runs deleting up to 4% of what X holds', () => {
    expect(heldSampleFor(0.5, true)).toBeCloseTo(0.08);
    expect(heldSampleFor(0.2, true)).toBeCloseTo(0.2);
    // A sample that would be most of the members costs about the count itself: count at once.
    expect(heldSampleFor(0.05, true)).toBe(1);
    expect(heldSampleFor(0, true)).toBe(1);
    // Where a range of keys costs a whole scan (BigQuery, Snowflake), never.
    expect(heldSampleFor(0.5, false)).toBe(1);
  });
});

// --- the planning pass -------------------------------------------------------------------------------

/** A destination whose "hash" of a value is the value itself (the pass needs prepare and capabilities). */
const destination = {
  capabilities: { deleteRemovesSharingRecords: true, lateApplyWindowMs: 0 },
  prepare(values: Record<string, unknown>) {
    const hashes: MemberHashes = {};
    const invalid = [];
    for (const [column, value] of Object.entries(values)) {
      if (value === null) continue;
      if (String(value).startsWith('bad'))
        invalid.push({ column, type: column, reason: `invalid_${column}` });
      else hashes[column] = [String(value)];
    }
    return { hashes, invalid };
  },
} as unknown as Destination;

function contextFor(
  delta: readonly DeltaRow[],
  batchSize: number,
  mode: 'mirror' | 'upsert' = 'mirror',
  staying = 0,
): DeltaContext {
  // State's members are the delta's removed, changed and refresh ones plus `staying` others.
  const count = (change: DeltaRow['change']) => delta.filter((row) => row.change === change).length;
  const inState = count('removed') + count('changed') + count('refresh');
  const diff = {
    counts: {
      ...diffCounts(inState + staying, {
        removed: count('removed'),
        changed: count('changed'),
        refresh: count('refresh'),
      }).counts,
      added: count('added'),
    },
    async *delta(size: number) {
      for (let i = 0; i < delta.length; i += size) yield delta.slice(i, i + size);
    },
  } as unknown as DiffRun;
  return {
    activation: activation(mode),
    options: { fullResync: false, recreate: false, force: false, dryRun: false, waitForLock: false },
    logger: pino({ level: 'silent' }),
    counts: emptyCounts(),
    diff,
    destination,
    mappings: { email: 'email', phone: 'phone_number' },
    batchSize,
    progress: () => undefined,
  };
}

/** State's members (key → hashes) and the segment (key → values) as the diff would order them. */
function deltaOf(
  state: Map<string, MemberHashes>,
  segment: Map<string, Record<string, string | null>>,
): DeltaRow[] {
  const rows: DeltaRow[] = [];
  const fingerprint = (values: Record<string, string | null>) => JSON.stringify(values);
  const rank = { removed: 0, changed: 1, refresh: 2, added: 3 } as const;
  for (const [key, hashes] of state) {
    const values = segment.get(key);
    if (!values)
      rows.push({
        key,
        change: 'removed',
        values: null,
        fingerprint: null,
        previousHashes: hashes,
        pendingHashes: null,
      });
    else if (fingerprint(values) !== fingerprint(stateValues(hashes)))
      rows.push({
        key,
        change: 'changed',
        values,
        fingerprint: fingerprint(values),
        previousHashes: hashes,
        pendingHashes: null,
      });
  }
  for (const [key, values] of segment) {
    if (!state.has(key))
      rows.push({
        key,
        change: 'added',
        values,
        fingerprint: fingerprint(values),
        previousHashes: null,
        pendingHashes: null,
      });
  }
  return rows.sort((a, b) => rank[a.change] - rank[b.change] || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

function stateValues(hashes: MemberHashes): Record<string, string | null> {
  return { email: hashes.email?.[0] ?? null, phone: hashes.phone?.[0] ?? null };
}

describe('estimateRemovals, the pass before anything is sent', () => {
  it('counts every hash a nulled identifier deletes, though no row left the segment', async () => {
    const state = new Map<string, MemberHashes>();
    const segment = new Map<string, Record<string, string | null>>();
    for (let i = 0; i < 2000; i++) {
      const key = String(i).padStart(4, '0');
      state.set(key, { email: [`e${i}`] });
      segment.set(key, { email: i % 2 === 0 ? null : `bad${i}`, phone: null }); // NULL or invalid
    }
    const delta = deltaOf(state, segment);
    expect(delta.every((row) => row.change === 'changed')).toBe(true);
    const ctx = contextFor(delta, 300);
    const estimate = await estimateRemovals(ctx, 2000);
    expect(estimate).toEqual({ deletes: 2000, keepsAny: false });
    expect(removalHold(activation('mirror'), 2000, estimate)).toMatch(/delete all 2000 identifiers/);
    // The pass counts nothing into the run's own counts: delivery does.
    expect(ctx.counts.invalid).toBe(0);
  });

  it('stops at the added members once the answer is known', async () => {
    const state = new Map<string, MemberHashes>([['a', { email: ['x'] }]]);
    const segment = new Map<string, Record<string, string | null>>([
      ['a', { email: 'y', phone: null }],
      ['b', { email: 'z', phone: null }],
    ]);
    const delta = deltaOf(state, segment);
    let read = 0;
    const ctx = contextFor(delta, 1);
    const inner = ctx.diff.delta.bind(ctx.diff);
    ctx.diff = {
      ...ctx.diff,
      async *delta(size: number) {
        for await (const batch of inner(size)) {
          read += batch.length;
          yield batch;
        }
      },
    } as DiffRun;
    expect(await estimateRemovals(ctx, 1)).toEqual({ deletes: 1, keepsAny: true });
    expect(read).toBe(2); // the changed member, then the first added batch is seen and left
  });

  it('reads the whole delta once and keeps it prepared for delivery when asked to keep it', async () => {
    const state = new Map<string, MemberHashes>([
      ['a', { email: ['x'] }],
      ['c', { email: ['w'] }],
    ]);
    const segment = new Map<string, Record<string, string | null>>([
      ['a', { email: 'y', phone: null }],
      ['b', { email: 'z', phone: 'bad' }],
      ['d', { email: 'v', phone: null }],
    ]);
    const delta = deltaOf(state, segment);
    let read = 0;
    const ctx = contextFor(delta, 1);
    const inner = ctx.diff.delta.bind(ctx.diff);
    ctx.diff = {
      ...ctx.diff,
      async *delta(size: number) {
        for await (const batch of inner(size)) {
          read += batch.length;
          yield batch;
        }
      },
    } as DiffRun;
    const kept: PreparedBatch[] = [];
    // The same estimate as without keeping, but every batch read (the added members too: delivery
    // needs them), in delta order and in the pass's batches.
    const keeping = await estimateRemovals(ctx, 2, undefined, kept);
    expect(read).toBe(delta.length);
    read = 0;
    expect(await estimateRemovals(ctx, 2)).toEqual(keeping);
    expect(read).toBe(3); // removed, changed, then the first added batch seen and left
    expect(kept.map((k) => k.batch)).toEqual(delta.map((row) => [row]));
    expect(kept.map((k) => k.hashed.map((h) => h.row.key))).toEqual(delta.map((row) => [row.key]));
    // The invalid phone is kept as a rejection for delivery to count; the pass counts nothing.
    expect(kept.flatMap((k) => k.rejections)).toEqual([
      { memberKey: 'b', identifierType: 'phone', reason: expect.any(String) as string },
    ]);
    expect(ctx.counts.invalid).toBe(0);
  });

  it('is an upper bound of the hashes the pipeline deletes, batch by batch with its lookups', async () => {
    const value = (pool: string) => fc.option(fc.constantFrom(...pool.split(' ')), { nil: null });
    const memberArb = fc.record({ email: value('e1 e2 e3 e4 e5 bad'), phone: value('p1 p2 p3 bad') });
    const keys = fc.uniqueArray(fc.constantFrom(...'abcdefghijkl'.split('')), { maxLength: 12 });
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(keys, fc.array(memberArb, { minLength: 12, maxLength: 12 })),
        fc.tuple(keys, fc.array(memberArb, { minLength: 12, maxLength: 12 })),
        fc.integer({ min: 1, max: 5 }),
        async ([stateKeys, stateMembers], [segmentKeys, segmentMembers], batchSize) => {
          const state = new Map<string, MemberHashes>();
          stateKeys.forEach((key, i) => {
            state.set(key, destination.prepare(stateMembers[i]!, {}, { defaultRegion: 'US' }).hashes);
          });
          const segment = new Map<string, Record<string, string | null>>();
          segmentKeys.forEach((key, i) => segment.set(key, segmentMembers[i]!));
          const delta = deltaOf(state, segment);
          const ctx = contextFor(
            delta,
            batchSize,
            'mirror',
            state.size - delta.filter((r) => r.change !== 'added').length,
          );
          const held = new Set([...state.values()].flatMap((hashes) => [...hashValues(hashes)]));
          const estimate = await estimateRemovals(ctx, held.size);

          // The pipeline, batch after batch, each committed before the next asks state.
          const live = new Map(state);
          const deleted = new Set<string>();
          for (let i = 0; i < delta.length; i += batchSize) {
            const batch = delta.slice(i, i + batchSize);
            const hashed = batch.map((row) => ({
              row,
              hashes: row.values ? destination.prepare(row.values, {}, { defaultRegion: 'US' }).hashes : null,
            }));
            const inBatch = new Set(batch.map((row) => row.key));
            const candidates = new Set(deleteCandidates(hashed, 'mirror'));
            const held = new Set<string>();
            for (const [key, hashes] of live)
              if (!inBatch.has(key)) for (const h of hashValues(hashes)) if (candidates.has(h)) held.add(h);
            const plan = planBatch(hashed, held, 'mirror');
            for (const change of plan.changes)
              if (change.op === 'delete') for (const h of hashValues(change.user)) deleted.add(h);
            for (const { row, hashes } of hashed) {
              if (row.change === 'removed') live.delete(row.key);
              else live.set(row.key, hashes!);
            }
          }
          expect(estimate.deletes).toBeGreaterThanOrEqual(deleted.size);
          const remaining = new Set([...live.values()].flatMap((hashes) => [...hashValues(hashes)]));
          if (remaining.size > 0 && held.size > 0) {
            // "Empty" is never claimed of an audience that keeps something.
            expect(estimate.deletes < held.size || estimate.keepsAny).toBe(true);
          }
          // Before the pass, the hashes the delta's members hold in state (DiffRun.heldByDelta) bound
          // what it counts; so a run they settle, against any lower bound of what X holds, the pass
          // lets through too.
          const heldByDelta = delta
            .filter((row) => row.change !== 'added')
            .reduce((n, row) => n + Object.values(row.previousHashes!).flat().length, 0);
          expect(estimate.deletes).toBeLessThanOrEqual(heldByDelta);
          for (const atLeast of new Set([held.size, Math.ceil(held.size / 2), 1])) {
            if (settledBeforePass(ctx.activation, atLeast, heldByDelta, ctx.diff))
              expect(removalHold(ctx.activation, held.size, estimate)).toBeNull();
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('deletes nothing in upsert mode', async () => {
    const state = new Map<string, MemberHashes>([['a', { email: ['x'] }]]);
    const delta = deltaOf(state, new Map());
    expect(await estimateRemovals(contextFor(delta, 10, 'upsert'), 1)).toEqual({
      deletes: 0,
      keepsAny: false,
    });
  });
});
