import type { ResolvedActivation } from '../config/resolve-activation.js';
import type { DiffRun } from '../diff/types.js';

/**
 * The safety rules (mirror mode only: upsert never deletes). A run is held, nothing sent, unless
 * `--force`, when it would leave the audience empty or delete more than `max_removal_share` of the
 * identifiers X holds for it, whatever the cause: rows gone from the segment, or identifiers turned
 * null or invalid (a member whose email became NULL is a changed row, not a removed one, yet its
 * hash is deleted all the same). So the rule counts hashes, not rows:
 *
 * - `segmentHold`, before anything is read: the model returned no valid members while state has some.
 * - `removalHold`, after a planning pass over the delta (pipeline.ts, `estimateRemovals`): the hashes
 *   the run's Delete operations would name, against the distinct hashes state holds.
 */

type SafetyActivation = Pick<ResolvedActivation, 'mode' | 'model' | 'maxRemovalShare'>;

const pct = (n: number) => `${Math.round(n * 1000) / 10}%`;

/** Whether a run may delete anything, so that the planning pass and its count are needed at all. */
export function mayDelete(
  activation: Pick<ResolvedActivation, 'mode'>,
  diff: Pick<DiffRun, 'counts'>,
): boolean {
  const { stateMembers, removed, changed, refresh } = diff.counts;
  return activation.mode === 'mirror' && stateMembers > 0 && removed + changed + refresh > 0;
}

/** Held when the segment has no valid member while state holds some (no pass needed), else null. */
export function segmentHold(
  activation: SafetyActivation,
  diff: Pick<DiffRun, 'counts'>,
  members: number,
): string | null {
  if (activation.mode !== 'mirror') return null;
  const { stateMembers } = diff.counts;
  if (stateMembers === 0 || members > 0) return null;
  return `held: model ${activation.model.name} returned no members while the audience has ${stateMembers}; nothing was removed (run with --force if the segment is meant to be empty)`;
}

/** What the planning pass found: the hashes the run's Deletes would name (at most), and whether any remain. */
export interface RemovalEstimate {
  /**
   * Hash values the run's Delete operations would name, summed over its batches: an upper bound of
   * the distinct hashes it deletes (see `estimateRemovals` in pipeline.ts for why it is one).
   */
  deletes: number;
  /** Whether a current member keeps an identifier (one outside the delta, or one of it that has one). */
  keepsAny: boolean;
}

/**
 * A fresh estimate for the pass. Members outside the delta (in state, unchanged, not due a refresh)
 * keep their identifiers: with any of them the audience is not left empty (were all of theirs none,
 * deleting the rest still exceeds any max_removal_share under 1).
 */
export function startEstimate(diff: Pick<DiffRun, 'counts'>): RemovalEstimate {
  const { stateMembers, removed, changed, refresh } = diff.counts;
  return { deletes: 0, keepsAny: stateMembers - removed - changed - refresh > 0 };
}

/**
 * The share of held hashes up to which a run's deletes are settled by the sampled lower bound alone:
 * the sample covers `SETTLED_BY_SAMPLE / max_removal_share` of the members (8% at the default 0.5),
 * so a run deleting up to about 4% of what X holds never needs the full count. A run deleting more
 * counts exactly as well (at 1M members, about 2 s more).
 */
const SETTLED_BY_SAMPLE = 0.04;

/**
 * The share of members (by key digest) whose hashes the safety rule counts first, as a lower bound
 * of the held hashes (`DiffSpec.heldSample`): 1 (the exact count at once) where a share of members
 * costs a whole scan (`StateStore.keyRangesIndexed` false), or where the share is so small that the
 * sample would be most of the table.
 */
export function heldSampleFor(maxRemovalShare: number, keyRangesIndexed: boolean): number {
  if (!keyRangesIndexed || maxRemovalShare <= 0) return 1;
  const sample = SETTLED_BY_SAMPLE / maxRemovalShare;
  return sample >= 0.5 ? 1 : sample;
}

/**
 * Whether a run is let through before the planning pass, from a lower bound of the held hashes
 * (`heldAtLeast`) and an upper bound of what its Deletes name of them (`deletesAtMost`: every hash
 * state holds for the delta's removed, changed and refresh members, `DiffRun.heldByDelta`), with
 * `keepsAny` as known before the pass. The true count is at least the one, the pass's deletes at most
 * the other, and the pass can only learn that a member keeps an identifier, never the reverse; each
 * makes a hold less likely, so a run this lets through, the pass and the exact count would too.
 */
export function settledBeforePass(
  activation: SafetyActivation,
  heldAtLeast: number,
  deletesAtMost: number,
  diff: Pick<DiffRun, 'counts'>,
): boolean {
  const { keepsAny } = startEstimate(diff);
  return letThroughAtLeast(activation, heldAtLeast, { deletes: deletesAtMost, keepsAny });
}

/**
 * Whether `removalHold` lets the run through for any count of held hashes from `heldAtLeast` up:
 * a larger count leaves the share no larger and the deletes no closer to all. A bound of 0 proves
 * nothing (X may hold more), though `removalHold` lets a count of 0 through.
 */
function letThroughAtLeast(
  activation: SafetyActivation,
  heldAtLeast: number,
  estimate: RemovalEstimate,
): boolean {
  return heldAtLeast > 0 && removalHold(activation, heldAtLeast, estimate) === null;
}

/**
 * `removalHold` from a lower bound of the held hashes first (`DiffRun.heldHashesAtLeast`), and from
 * the exact count only when the bound does not let the run through (`letThroughAtLeast`): then the
 * exact count decides, and names the numbers in the reason.
 */
export async function removalHoldFrom(
  activation: SafetyActivation,
  heldAtLeast: number,
  exact: () => Promise<number>,
  estimate: RemovalEstimate,
): Promise<{ hold: string | null; held: number; exact: boolean }> {
  if (letThroughAtLeast(activation, heldAtLeast, estimate))
    return { hold: null, held: heldAtLeast, exact: false };
  const held = await exact();
  return { hold: removalHold(activation, held, estimate), held, exact: true };
}

/**
 * Held when the run would delete every hash state holds and add none back (the audience left empty),
 * or more than `max_removal_share` of them; else null. `held`: distinct hashes state holds.
 */
export function removalHold(
  activation: SafetyActivation,
  held: number,
  estimate: RemovalEstimate,
): string | null {
  if (activation.mode !== 'mirror' || held === 0) return null;
  const { deletes } = estimate;
  const force = 'nothing was sent (run with --force if that is meant)';
  if (deletes >= held && !estimate.keepsAny) {
    return `held: this run would delete all ${held} identifiers X holds for the audience of model ${activation.model.name} and leave it empty (rows gone, or identifiers turned null or invalid); ${force}`;
  }
  const share = deletes / held;
  if (share > activation.maxRemovalShare) {
    return `held: this run would delete up to ${deletes} of the ${held} identifiers X holds for the audience (${pct(Math.min(share, 1))}), more than max_removal_share (${pct(activation.maxRemovalShare)}) (rows gone, or identifiers turned null or invalid); ${force}`;
  }
  return null;
}
