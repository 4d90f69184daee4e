import type { ActivationMode } from '../config/activation-mode.js';
import type {
  ApplyResult,
  DestinationCapabilities,
  MemberChange,
  MemberHashes,
} from '../destinations/destination.js';
import { hasHashes } from '../diff/diff-run.js';
import type { ChangeKind, DeltaRow } from '../diff/types.js';

/**
 * Exact membership, as pure functions: which Update and Delete operations one delta batch needs so that
 * the audience holds exactly the hashed identifiers of the segment's valid members (docs/state.md).
 *
 * - A hash another current member still holds is never sent in a Delete (an audience matches by
 *   identifier: deleting it would take it from that member too).
 * - Where a Delete removes every record sharing any identifier with it (the destination's
 *   `deleteRemovesSharingRecords`, as X does), a changed member's Update carries every hash it has
 *   now, not only the new ones, since a Delete of one of its old hashes may take its whole record.
 * - A change that leaves the hash set as it was (`User@X.com` → `user@x.com `) sends nothing,
 *   unless the member has `pendingHashes`: the destination may hold hashes of it that it never
 *   acknowledged, so its Update is sent again and every hash it may hold and no longer has is
 *   deleted.
 * Nothing here logs or knows where hashes come from; the engine feeds it and sends what it returns.
 */

/** What a member's row became once hashed: the counted effect of the row on the audience. */
export type MemberEffect = 'added' | 'removed' | 'changed' | 'refreshed' | 'suppressed' | 'none';

/** One delta row with its identifiers hashed (`hashes` is null for removed members). */
export interface HashedRow {
  row: DeltaRow;
  hashes: MemberHashes | null;
  /**
   * An identifier the member has, or the destination may hold for it, is in a suppression model
   * (docs/suppression.md): the member leaves the audience whatever the mode and its change, every
   * hash it may hold is deleted (bar those other current members hold), and it is never sent.
   */
  suppressed?: boolean;
}

/** What one member of a batch sends, and how to acknowledge it once the destination has answered. */
export interface MemberPlan {
  key: string;
  /** An added member's key hash, stored with it by its commit (DeltaRow.keyHash). */
  keyHash?: string | null;
  change: ChangeKind;
  fingerprint: string | null;
  /** The hashes the member holds once its changes are acknowledged (null for removed members). */
  hashes: MemberHashes | null;
  /** The hashes state held for it before this run (null for added members). */
  previousHashes: MemberHashes | null;
  effect: MemberEffect;
  /**
   * This member's operations are the batch's `changes` from `firstChange`, `changeCount` of them (0:
   * nothing to send; 2: a Delete then an Update). Two numbers rather than an array of indexes: a
   * batch's plans stay in memory until it commits (see changeIndexes).
   */
  firstChange: number;
  changeCount: number;
  /** Whether one of its operations is an Update (so that an acknowledgement refreshes its expiry). */
  sendsUpdate: boolean;
}

export interface BatchPlan {
  changes: MemberChange[];
  members: MemberPlan[];
}

/** Every hash value of a member, de-duplicated (the types' values never collide: they are SHA-256). */
export function hashValues(hashes: MemberHashes | null | undefined): Set<string> {
  const out = new Set<string>();
  if (!hashes) return out;
  for (const values of Object.values(hashes)) for (const value of values ?? []) out.add(value);
  return out;
}

function entries(hashes: MemberHashes | null | undefined): Array<[string, string[]]> {
  if (!hashes) return [];
  return Object.entries(hashes)
    .filter((entry): entry is [string, string[]] => (entry[1]?.length ?? 0) > 0)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export function isEmpty(hashes: MemberHashes | null | undefined): boolean {
  return !hasHashes(hashes);
}

/** Same keys with the same values, ignoring order and duplicates. */
export function sameHashes(a: MemberHashes | null | undefined, b: MemberHashes | null | undefined): boolean {
  const left = entries(a);
  const right = entries(b);
  if (left.length !== right.length) return false;
  for (let i = 0; i < left.length; i++) {
    const [typeA, valuesA] = left[i]!;
    const [typeB, valuesB] = right[i]!;
    if (typeA !== typeB) return false;
    const setA = new Set(valuesA);
    const setB = new Set(valuesB);
    if (setA.size !== setB.size) return false;
    for (const value of setA) if (!setB.has(value)) return false;
  }
  return true;
}

/** `from` without the values in `minus` (per type) nor in `keep` (any type); empty keys dropped. */
export function subtractHashes(
  from: MemberHashes | null | undefined,
  minus: MemberHashes | null | undefined,
  keep: ReadonlySet<string>,
): MemberHashes {
  const out: MemberHashes = {};
  for (const [type, values] of entries(from)) {
    const drop = new Set(minus?.[type] ?? []);
    const left = [...new Set(values)].filter((value) => !drop.has(value) && !keep.has(value)).sort();
    if (left.length > 0) out[type] = left;
  }
  return out;
}

/** Every hash the destination may hold for the member: acknowledged ∪ pending. */
export function mayHold(row: Pick<DeltaRow, 'previousHashes' | 'pendingHashes'>): MemberHashes | null {
  if (isEmpty(row.pendingHashes)) return row.previousHashes;
  const out: MemberHashes = {};
  for (const [type, values] of [...entries(row.previousHashes), ...entries(row.pendingHashes)]) {
    out[type] = [...new Set([...(out[type] ?? []), ...values])].sort();
  }
  return out;
}

/**
 * The counted effect of one hashed row, the same in `plan` and `sync` (so a plan's counts are what the
 * sync would send): a member whose hash set is unchanged is `none` (unless `fullResync`, or the
 * member is `unconfirmed`: then it is re-sent); so is an upsert-mode removal. `previous` is every
 * hash the destination may hold for it (`mayHold`).
 */
export function memberEffect(
  change: ChangeKind,
  previous: MemberHashes | null,
  next: MemberHashes | null,
  mode: ActivationMode,
  fullResync = false,
  unconfirmed = false,
): MemberEffect {
  switch (change) {
    case 'removed':
      return mode === 'mirror' ? 'removed' : 'none';
    case 'added':
      return isEmpty(next) ? 'none' : 'added';
    case 'refresh':
      if (!isEmpty(next)) return 'refreshed';
      // Every identifier became invalid since the last run: what X holds for it must go.
      return mode === 'mirror' && !isEmpty(previous) ? 'changed' : 'none';
    case 'changed':
      // A full resync re-sends every member, whichever way the diff classed it.
      if (sameHashes(previous, next))
        return (fullResync || unconfirmed) && !isEmpty(next) ? 'refreshed' : 'none';
      return mode === 'upsert' && isEmpty(next) ? 'none' : 'changed';
  }
}

/**
 * Hashes a batch would delete, before asking which of them other members still hold: the previous
 * hashes each member no longer has. In upsert mode, which never deletes otherwise, only those of
 * suppressed members.
 */
export function deleteCandidates(rows: readonly HashedRow[], mode: ActivationMode): string[] {
  const out = new Set<string>();
  for (const { row, hashes, suppressed } of rows) {
    // A suppressed member leaves in upsert mode too: everything it may hold is a candidate.
    if (suppressed) {
      for (const value of hashValues(mayHold(row))) out.add(value);
      continue;
    }
    if (mode === 'upsert') continue;
    const gone = subtractHashes(mayHold(row), hashes, new Set());
    for (const value of hashValues(gone)) out.add(value);
  }
  return [...out];
}

const NO_HASHES: ReadonlySet<string> = new Set();

/** X's semantics, the strictest: the default where a caller does not name a destination's. */
const SHARING_DELETES: Pick<DestinationCapabilities, 'deleteRemovesSharingRecords'> = {
  deleteRemovesSharingRecords: true,
};

/**
 * The operations of one batch. `heldByOthers` are the candidate hashes that members outside the batch
 * still hold (the state store answers that); the hashes the batch's own members have after this run are
 * added here, so a hash passed from one member to another in the same batch is never deleted.
 */
export function planBatch(
  rows: readonly HashedRow[],
  heldByOthers: ReadonlySet<string>,
  mode: ActivationMode,
  fullResync = false,
  capabilities: Pick<DestinationCapabilities, 'deleteRemovesSharingRecords'> = SHARING_DELETES,
  /** Suppressed hashes among the batch's: never kept, whoever else holds them. */
  suppressedHashes: ReadonlySet<string> = NO_HASHES,
): BatchPlan {
  // Built when a member has something to delete (never on a first load: nothing is held yet).
  let kept: Set<string> | undefined;
  const keepSet = (): Set<string> => {
    if (kept) return kept;
    kept = new Set(heldByOthers);
    for (const { row, hashes, suppressed } of rows) {
      if (row.change === 'removed' || suppressed || !hashes) continue;
      for (const type in hashes) for (const value of hashes[type] ?? []) kept.add(value);
    }
    for (const value of suppressedHashes) kept.delete(value);
    return kept;
  };
  const changes: MemberChange[] = [];
  const members: MemberPlan[] = [];
  for (const { row, hashes, suppressed } of rows) {
    if (suppressed) {
      // Out of the audience in mirror and upsert mode alike; committed as a removal, so state no
      // longer holds it and a later run (once it is no longer suppressed) adds it back as new.
      const firstChange = changes.length;
      const held = mayHold(row);
      const gone = isEmpty(held) ? {} : subtractHashes(held, null, keepSet());
      if (!isEmpty(gone)) changes.push({ op: 'delete', user: gone });
      members.push({
        key: row.key,
        change: 'removed',
        fingerprint: null,
        hashes: null,
        previousHashes: row.previousHashes,
        effect: 'suppressed',
        firstChange,
        changeCount: changes.length - firstChange,
        sendsUpdate: false,
      });
      continue;
    }
    const next = row.change === 'removed' ? null : (hashes ?? {});
    const unconfirmed = !isEmpty(row.pendingHashes);
    const previous = mayHold(row);
    const effect = memberEffect(row.change, previous, next, mode, fullResync, unconfirmed);
    const firstChange = changes.length;
    let sendsUpdate = false;
    if (mode === 'mirror' && !isEmpty(previous)) {
      const gone = subtractHashes(previous, next, keepSet());
      if (!isEmpty(gone)) changes.push({ op: 'delete', user: gone });
    }
    if (effect === 'added' || effect === 'refreshed' || (effect === 'changed' && !isEmpty(next))) {
      // Where a Delete takes whole records, the whole current set (a Delete above may have removed
      // the member's old record); else only what the destination may not hold yet. A refresh, or a
      // member the destination may hold unacknowledged hashes of, sends the whole set either way.
      const whole = capabilities.deleteRemovesSharingRecords || effect !== 'changed' || unconfirmed;
      const user = whole ? next! : subtractHashes(next, row.previousHashes, new Set());
      if (!isEmpty(user)) {
        changes.push({ op: 'update', user });
        sendsUpdate = true;
      }
    }
    members.push({
      key: row.key,
      keyHash: row.keyHash ?? null,
      change: row.change,
      fingerprint: row.change === 'removed' ? null : row.fingerprint,
      hashes: next,
      previousHashes: row.previousHashes,
      effect,
      firstChange,
      changeCount: changes.length - firstChange,
      sendsUpdate,
    });
  }
  return { changes, members };
}

/**
 * Marks the rows of a batch whose member is suppressed: a hash it has now, or that the destination
 * may hold for it (acknowledged or pending), is among `suppressed` (the batch's hashes a suppression
 * model holds, looked up in the warehouse). Returns the suppressed hashes the batch names, which
 * planBatch never keeps.
 */
export function markSuppressed(rows: HashedRow[], suppressed: ReadonlySet<string>): Set<string> {
  const found = new Set<string>();
  if (suppressed.size === 0) return found;
  for (const item of rows) {
    for (const value of [...hashValues(item.hashes), ...hashValues(mayHold(item.row))]) {
      if (suppressed.has(value)) {
        found.add(value);
        item.suppressed = true;
      }
    }
  }
  return found;
}

/** Whether any of the member's hashes is in `values`. */
export function holdsAny(hashes: MemberHashes | null | undefined, values: ReadonlySet<string>): boolean {
  if (!hashes) return false;
  for (const list of Object.values(hashes))
    for (const value of list ?? []) if (values.has(value)) return true;
  return false;
}

/**
 * The intents of a batch, recorded in state before it is sent: per member with operations, every
 * hash they name (an Update's and a Delete's alike). Until the commit of the member's
 * acknowledgement clears it, the member is re-sent by later runs: whichever way the request went,
 * the destination may then hold any of these hashes, or have lost any of them.
 */
export function intentsOf(plan: BatchPlan): { key: string; hashes: MemberHashes }[] {
  const out: { key: string; hashes: MemberHashes }[] = [];
  for (const member of plan.members) {
    if (member.changeCount === 0) continue;
    // One operation (nearly every member): its hashes as they are; state's rows drop duplicates.
    if (member.changeCount === 1) {
      out.push({ key: member.key, hashes: plan.changes[member.firstChange]!.user });
      continue;
    }
    const hashes: Record<string, Set<string>> = {};
    for (let i = member.firstChange; i < member.firstChange + member.changeCount; i++) {
      for (const [type, values] of entries(plan.changes[i]!.user)) {
        const set = (hashes[type] ??= new Set());
        for (const value of values) set.add(value);
      }
    }
    out.push({
      key: member.key,
      hashes: Object.fromEntries(Object.entries(hashes).map(([type, set]) => [type, [...set].sort()])),
    });
  }
  return out;
}

/** Whether the destination acknowledged every operation of the member (one with none to send is). */
export function acknowledged(member: MemberPlan, results: readonly ApplyResult[]): boolean {
  for (let i = 0; i < member.changeCount; i++) {
    if (results[member.firstChange + i]?.status !== 'ok') return false;
  }
  return true;
}

/** Indexes into the batch's `changes` of the member's operations (none: nothing to send). */
export function changeIndexes(member: MemberPlan): number[] {
  return Array.from({ length: member.changeCount }, (_, i) => member.firstChange + i);
}

/**
 * Adds to `into` the hashes of `wanted` that members of a batch sent but not yet committed hold once
 * it is: an acknowledged member commits the hashes it was sent; any other keeps the ones state holds
 * for it now (an unanswered Update's intent is not a holding: the member is re-sent by the next run).
 * A later batch asks this instead of waiting for the commit to look it up in state.
 */
export function heldOnceCommitted(
  members: readonly MemberPlan[],
  results: readonly ApplyResult[],
  wanted: ReadonlySet<string>,
  into: Set<string>,
): void {
  for (const member of members) {
    const holds = acknowledged(member, results) ? member.hashes : member.previousHashes;
    for (const value of hashValues(holds)) if (wanted.has(value)) into.add(value);
  }
}
