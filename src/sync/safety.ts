import type { ResolvedActivation } from '../config/resolve-activation.js';
import type { DiffRun } from '../diff/types.js';

/** Why a run must be held (mirror mode only: upsert never removes), or null. */
export function safetyHold(
  activation: Pick<ResolvedActivation, 'mode' | 'model' | 'maxRemovalShare'>,
  diff: Pick<DiffRun, 'counts'>,
  members: number,
): string | null {
  if (activation.mode !== 'mirror') return null;
  const { stateMembers, removed } = diff.counts;
  if (stateMembers === 0) return null;
  if (members === 0) {
    return `held: model ${activation.model.name} returned no members while the audience has ${stateMembers}; nothing was removed (run with --force if the segment is meant to be empty)`;
  }
  const share = removed / stateMembers;
  if (share > activation.maxRemovalShare) {
    const pct = (n: number) => `${Math.round(n * 1000) / 10}%`;
    return `held: this run would remove ${removed} of the audience's ${stateMembers} members (${pct(share)}), more than max_removal_share (${pct(activation.maxRemovalShare)}); nothing was sent (run with --force to remove them)`;
  }
  return null;
}
