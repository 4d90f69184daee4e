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
