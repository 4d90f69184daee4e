import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ApplyResult, MemberChange, MemberHashes } from '../../src/destinations/destination.js';
import type { ActivationMode } from '../../src/config/activation-mode.js';
import type { ChangeKind, DeltaRow, MemberAck } from '../../src/diff/types.js';
import {
  acknowledged,
  changeIndexes,
  deleteCandidates,
  type HashedRow,
  heldOnceCommitted,
  hashValues,
  intentsOf,
  holdsAny,
  markSuppressed,
  memberEffect,
  type MemberPlan,
  planBatch,
  sameHashes,
  subtractHashes,
} from '../../src/sync/membership.js';

/**
 * What X holds: user records added by Update; a Delete removes every record sharing any identifier
 * with it ("Delete matching" on X's Custom Audience users endpoint, https://docs.x.com/x-ads-api/audiences;
 * docs/sync.md, "Exact membership"); deletes go before updates.
 */
class AudienceModel {
  records: Set<string>[] = [];

  apply(changes: readonly MemberChange[]): void {
    for (const change of changes.filter((c) => c.op === 'delete')) {
      const values = hashValues(change.user);
      this.records = this.records.filter((record) => ![...record].some((value) => values.has(value)));
    }
    for (const change of changes.filter((c) => c.op === 'update')) this.records.push(hashValues(change.user));
  }

  identifiers(): string[] {
    const out = new Set<string>();
    for (const record of this.records) for (const value of record) out.add(value);
    return [...out].sort();
  }
}

interface Member {
  /** The identifiers after hashing: what X would receive. */
  hashes: MemberHashes;
  /** Stands in for the raw values: a case-only change alters it but not the hashes. */
  raw: string;
}

interface StateRow {
  fingerprint: string;
  hashes: MemberHashes;
}

/** An Update recorded before it was sent (intent before send), until its commit clears it. */
interface IntentRow {
  hashes: MemberHashes;
  /** The model clock when it was recorded, and until when the destination may apply it late. */
  at: number;
  until: number;
}

/**
 * A faithful small model of state (docs/state.md): acknowledged members, and the intents of Updates
 * whose acknowledgement was never committed. `now` counts runs.
 */
interface ModelState {
  members: Map<string, StateRow>;
  intents: Map<string, IntentRow[]>;
  now: number;
  /** Suppressed hashes already deleted from an upsert audience (deleteSuppressedHashes' record). */
  suppressionApplied: Set<string>;
}

const newState = (): ModelState => ({
  members: new Map(),
  intents: new Map(),
  now: 0,
  suppressionApplied: new Set(),
});

function union(...sets: (MemberHashes | null | undefined)[]): MemberHashes {
  const out: Record<string, Set<string>> = {};
  for (const hashes of sets) {
    for (const [type, values] of Object.entries(hashes ?? {})) {
      for (const value of values ?? []) (out[type] ??= new Set()).add(value);
    }
  }
  return Object.fromEntries(Object.entries(out).map(([type, values]) => [type, [...values].sort()]));
}

/**
 * The diff engine's contract (src/diff/types.ts) over the model: the delta ordered removed, changed,
 * refresh, added. State's side is its members and the keys with intents; a member's previous hashes
 * are the acknowledged ones, its pending hashes those intended and not acknowledged; a member with
 * pending hashes is re-emitted even if its values did not change.
 */
function diffOf(segment: Map<string, Member>, state: ModelState, fullResync: boolean): DeltaRow[] {
  const order: Record<ChangeKind, number> = { removed: 0, changed: 1, refresh: 2, added: 3 };
  const rows: DeltaRow[] = [];
  const keys = new Set([...state.members.keys(), ...state.intents.keys()]);
  const previousOf = (key: string) => {
    const member = state.members.get(key);
    const intents = state.intents.get(key) ?? [];
    const pendingHashes = intents.length > 0 ? union(...intents.map((i) => i.hashes)) : null;
    return { member, previousHashes: member?.hashes ?? {}, pendingHashes };
  };
  for (const key of keys) {
    if (segment.has(key)) continue;
    const { previousHashes, pendingHashes } = previousOf(key);
    rows.push({ key, change: 'removed', values: null, fingerprint: null, previousHashes, pendingHashes });
  }
  for (const [key, member] of segment) {
    const fingerprint = member.raw;
    const base = { key, values: { raw: member.raw }, fingerprint };
    if (!keys.has(key)) {
      rows.push({ ...base, change: 'added', previousHashes: null, pendingHashes: null });
      continue;
    }
    const { member: previous, ...hashes } = previousOf(key);
    const row = { ...base, ...hashes };
    if (previous?.fingerprint !== fingerprint) rows.push({ ...row, change: 'changed' });
    else if (fullResync || hashes.pendingHashes) rows.push({ ...row, change: 'refresh' });
  }
  return rows.sort((a, b) => order[a.change] - order[b.change] || (a.key < b.key ? -1 : 1));
}

function heldByOthers(state: ModelState, hashes: readonly string[], excluding: readonly string[]) {
  const skip = new Set(excluding);
  const wanted = new Set(hashes);
  const out = new Set<string>();
  for (const [key, row] of state.members) {
    if (skip.has(key)) continue;
    for (const value of hashValues(row.hashes)) if (wanted.has(value)) out.add(value);
  }
  return out;
}

/** The commit: acknowledged members move forward; their intents go once answered or past their window. */
function commit(state: ModelState, acks: readonly (MemberAck & { intentAt: number | null })[]) {
  for (const ack of acks) {
    if (ack.change === 'removed') state.members.delete(ack.key);
    else state.members.set(ack.key, { fingerprint: ack.fingerprint!, hashes: ack.hashes ?? {} });
    const left = (state.intents.get(ack.key) ?? []).filter(
      (i) => i.at !== ack.intentAt && i.until > state.now,
    );
    if (left.length > 0) state.intents.set(ack.key, left);
    else state.intents.delete(ack.key);
  }
}

/**
 * What happens to one operation: `ok`; `retryable` (X refused it and applied nothing); `unknown`
 * (Tailor never saw an answer, and X applies it later, when the test says); `crash` (X applied it
 * and answered, and the process died before committing anything more).
 */
type Fate = 'ok' | 'retryable' | 'unknown' | 'crash';

/** Requests X received and has not applied yet (their answers never arrived). */
type Late = MemberChange[][];

/**
 * One run as the engine does it, in batches, with `fate(i)` deciding what becomes of each operation.
 * Returns the changes sent. The commits of the last `lag` batches are still pending when a batch
 * plans (the engine's pipeline): its lookup leaves their members out and `heldOnceCommitted` says
 * what they will hold. Before a batch is sent, its Updates are recorded as intents.
 */
function run(
  segment: Map<string, Member>,
  state: ModelState,
  audience: AudienceModel,
  mode: ActivationMode,
  options: {
    batchSize: number;
    fullResync?: boolean;
    fail?: (index: number) => boolean;
    fate?: (index: number) => Fate;
    lag?: number;
    late?: Late;
    window?: number;
    /**
     * The suppressed hashes (docs/suppression.md): delta members holding one leave, and after the
     * delta, state members holding one are removed in a second pass (the engine's
     * removeSuppressedMembers).
     */
    suppressed?: ReadonlySet<string>;
  },
): MemberChange[] {
  state.now++;
  const rows = diffOf(segment, state, options.fullResync ?? false);
  if (options.suppressed) {
    const sent = runRows(rows, segment, state, audience, mode, options);
    const holders: DeltaRow[] = [...state.members]
      .filter(([, member]) => holdsAny(member.hashes, options.suppressed!))
      .map(([key, member]) => ({
        key,
        change: 'removed',
        values: null,
        fingerprint: null,
        previousHashes: member.hashes,
        pendingHashes: null,
      }));
    const out = [...sent, ...runRows(holders, segment, state, audience, mode, options)];
    if (mode === 'upsert') {
      // The audience keeps leavers state forgot: every suppressed hash not yet deleted is.
      const toDelete = [...options.suppressed].filter((value) => !state.suppressionApplied.has(value));
      const deletes: MemberChange[] = toDelete.map((value) => ({ op: 'delete', user: { any: [value] } }));
      audience.apply(deletes);
      out.push(...deletes);
      state.suppressionApplied = new Set(
        [...state.suppressionApplied, ...toDelete].filter((value) => options.suppressed!.has(value)),
      );
    }
    return out;
  }
  return runRows(rows, segment, state, audience, mode, options);
}

function runRows(
  rows: readonly DeltaRow[],
  segment: Map<string, Member>,
  state: ModelState,
  audience: AudienceModel,
  mode: ActivationMode,
  options: Parameters<typeof run>[4],
): MemberChange[] {
  const sent: MemberChange[] = [];
  const pending: {
    members: MemberPlan[];
    results: ApplyResult[];
    acks: (MemberAck & { intentAt: number | null })[];
  }[] = [];
  const fate = (i: number): Fate => options.fate?.(i) ?? (options.fail?.(i) ? 'retryable' : 'ok');
  let counter = 0;
  for (let start = 0; start < rows.length; start += options.batchSize) {
    const batch = rows.slice(start, start + options.batchSize);
    const hashed: HashedRow[] = batch.map((row) => ({
      row,
      hashes: row.change === 'removed' ? null : segment.get(row.key)!.hashes,
    }));
    const found = markSuppressed(hashed, options.suppressed ?? new Set());
    const candidates = deleteCandidates(hashed, mode);
    const wanted = new Set(candidates);
    // As the engine does: only uncommitted members state shows holding a candidate are left out.
    const excluded = batch.map((r) => r.key);
    for (const { members } of pending) {
      excluded.push(...members.filter((m) => holdsAny(m.previousHashes, wanted)).map((m) => m.key));
    }
    const held = heldByOthers(state, candidates, excluded);
    for (const { members, results } of pending) heldOnceCommitted(members, results, wanted, held);
    const plan = planBatch(hashed, held, mode, options.fullResync ?? false, undefined, found);
    // Intent before send.
    const intentAt = state.now * 1000 + start;
    for (const intent of intentsOf(plan)) {
      const rows = state.intents.get(intent.key) ?? [];
      rows.push({ hashes: intent.hashes, at: intentAt, until: state.now + (options.window ?? 1000) });
      state.intents.set(intent.key, rows);
    }
    const fates = plan.changes.map(() => fate(counter++));
    const results: ApplyResult[] = fates.map((f) =>
      f === 'ok' ? { status: 'ok' } : { status: 'retryable', reason: f },
    );
    sent.push(...plan.changes);
    // X applies what it acknowledged and what it answered before the crash; unknown ones come later.
    audience.apply(plan.changes.filter((_, i) => fates[i] === 'ok' || fates[i] === 'crash'));
    const unknown = plan.changes.filter((_, i) => fates[i] === 'unknown');
    if (unknown.length > 0) options.late?.push(unknown);
    if (fates.includes('crash')) return sent; // killed: nothing more is committed
    const acks: (MemberAck & { intentAt: number | null })[] = [];
    for (const member of plan.members) {
      if (acknowledged(member, results)) {
        acks.push({
          key: member.key,
          change: member.change,
          fingerprint: member.fingerprint,
          hashes: member.hashes,
          sentAt: member.sendsUpdate ? new Date(0) : null,
          intentAt: member.changeCount > 0 ? intentAt : null,
        });
      }
    }
    pending.push({ members: plan.members, results, acks });
    while (pending.length > (options.lag ?? 0)) commit(state, pending.shift()!.acks);
  }
  for (const { acks } of pending) commit(state, acks);
  return sent;
}

function expectedIdentifiers(segment: Map<string, Member>): string[] {
  const out = new Set<string>();
  for (const member of segment.values()) for (const value of hashValues(member.hashes)) out.add(value);
  return [...out].sort();
}

// Small pools, so that members share identifiers and identifiers move between members often.
const emailArb = fc.constantFrom('e1', 'e2', 'e3', 'e4', 'e5', 'e6');
const phoneArb = fc.constantFrom('p1', 'p2', 'p3', 'p4');
const memberArb: fc.Arbitrary<Member> = fc
  .record({
    email: fc.uniqueArray(emailArb, { maxLength: 2 }),
    phone: fc.uniqueArray(phoneArb, { maxLength: 2 }),
    upper: fc.boolean(),
  })
  .map(({ email, phone, upper }) => {
    const hashes: MemberHashes = {};
    if (email.length) hashes.email = [...email].sort();
    if (phone.length) hashes.phone_number = [...phone].sort();
    const raw = JSON.stringify(hashes);
    return { hashes, raw: upper ? raw.toUpperCase() : raw };
  });
const segmentArb = fc
  .dictionary(fc.constantFrom('k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7'), memberArb, { maxKeys: 7 })
  .map((dict) => new Map(Object.entries(dict)));

/** Segments in turn, each with the operations X refuses in its first run (by operation index). */
const refusingStepsArb = fc.array(fc.tuple(segmentArb, fc.array(fc.boolean(), { maxLength: 30 })), {
  minLength: 1,
  maxLength: 5,
});

describe('exact membership (property-based)', () => {
  it('after every run, X holds exactly the hashes of the current members (mirror)', () => {
    fc.assert(
      fc.property(
        fc.array(segmentArb, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 3 }),
        (segments, batchSize, lag) => {
          const state = newState();
          const audience = new AudienceModel();
          for (const segment of segments) {
            run(segment, state, audience, 'mirror', { batchSize, lag });
            expect(audience.identifiers()).toEqual(expectedIdentifiers(segment));
            // A second run of the same segment sends nothing.
            expect(run(segment, state, audience, 'mirror', { batchSize, lag })).toEqual([]);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('converges after runs in which X refused operations at random', () => {
    fc.assert(
      fc.property(
        refusingStepsArb,
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 3 }),
        (steps, batchSize, lag) => {
          const state = newState();
          const audience = new AudienceModel();
          for (const [segment, failures] of steps) {
            run(segment, state, audience, 'mirror', { batchSize, lag, fail: (i) => failures[i] ?? false });
            run(segment, state, audience, 'mirror', { batchSize, lag });
            expect(audience.identifiers()).toEqual(expectedIdentifiers(segment));
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a run killed after X answered, at any point, is repaired by the next clean run', () => {
    const fateArb = fc.constantFrom<Fate>('ok', 'ok', 'ok', 'crash', 'retryable');
    fc.assert(
      fc.property(
        fc.array(fc.tuple(segmentArb, fc.array(fateArb, { maxLength: 20 })), { minLength: 2, maxLength: 5 }),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 2 }),
        (steps, batchSize, lag) => {
          // window 0: an intent ends with the next acknowledgement, so convergence is also quiet.
          const state = newState();
          const audience = new AudienceModel();
          for (let i = 0; i + 1 < steps.length; i++) {
            const [segment, fates] = steps[i]!;
            run(segment, state, audience, 'mirror', {
              batchSize,
              lag,
              window: 0,
              fate: (n) => fates[n] ?? 'ok',
            });
            // Then the segment moves on (members leave, identifiers change), and one clean run.
            const next = steps[i + 1]![0];
            run(next, state, audience, 'mirror', { batchSize, lag, window: 0 });
            expect(audience.identifiers()).toEqual(expectedIdentifiers(next));
            expect(run(next, state, audience, 'mirror', { batchSize, lag, window: 0 })).toEqual([]);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it('a request X applies after Tailor gave up on it is undone by the runs within its window', () => {
    const fateArb = fc.constantFrom<Fate>('ok', 'ok', 'unknown', 'retryable');
    fc.assert(
      fc.property(
        segmentArb,
        fc.array(fateArb, { maxLength: 20 }),
        segmentArb,
        fc.boolean(),
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 0, max: 2 }),
        (first, fates, second, lateFirst, batchSize, lag) => {
          const state = newState();
          const audience = new AudienceModel();
          const late: Late = [];
          run(first, state, audience, 'mirror', { batchSize, lag, late, fate: (n) => fates[n] ?? 'ok' });
          // X applies what it never answered: before the next run, or only after it.
          if (lateFirst) for (const request of late.splice(0)) audience.apply(request);
          run(second, state, audience, 'mirror', { batchSize, lag });
          for (const request of late.splice(0)) audience.apply(request);
          run(second, state, audience, 'mirror', { batchSize, lag });
          expect(audience.identifiers()).toEqual(expectedIdentifiers(second));
        },
      ),
      { numRuns: 400 },
    );
  });

  it('pipelined batches send what batches committed one by one would, refusals included', () => {
    fc.assert(
      fc.property(
        refusingStepsArb,
        fc.integer({ min: 1, max: 3 }),
        fc.integer({ min: 1, max: 3 }),
        (steps, batchSize, lag) => {
          const serial = { state: newState(), audience: new AudienceModel() };
          const piped = { state: newState(), audience: new AudienceModel() };
          for (const [segment, failures] of steps) {
            const fail = (i: number) => failures[i] ?? false;
            const one = run(segment, serial.state, serial.audience, 'mirror', { batchSize, fail });
            const many = run(segment, piped.state, piped.audience, 'mirror', { batchSize, fail, lag });
            expect(many).toEqual(one);
            expect(piped.state).toEqual(serial.state);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a full resync keeps the invariant and re-sends every member with identifiers', () => {
    fc.assert(
      fc.property(segmentArb, segmentArb, (first, second) => {
        const state = newState();
        const audience = new AudienceModel();
        run(first, state, audience, 'mirror', { batchSize: 3 });
        const sent = run(second, state, audience, 'mirror', { batchSize: 3, fullResync: true });
        expect(audience.identifiers()).toEqual(expectedIdentifiers(second));
        const updates = sent.filter((c) => c.op === 'update').length;
        const withIds = [...second.values()].filter((m) => hashValues(m.hashes).size > 0).length;
        expect(updates).toBe(withIds);
      }),
      { numRuns: 200 },
    );
  });

  it('upsert mode never deletes, and holds at least the current members', () => {
    fc.assert(
      fc.property(fc.array(segmentArb, { minLength: 1, maxLength: 5 }), (segments) => {
        const state = newState();
        const audience = new AudienceModel();
        for (const segment of segments) {
          const sent = run(segment, state, audience, 'upsert', { batchSize: 2 });
          expect(sent.filter((c) => c.op === 'delete')).toEqual([]);
          const held = new Set(audience.identifiers());
          for (const value of expectedIdentifiers(segment)) expect(held.has(value)).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });
});

const row = (over: Partial<DeltaRow> & Pick<DeltaRow, 'key' | 'change'>): DeltaRow => ({
  values: over.change === 'removed' ? null : {},
  fingerprint: over.change === 'removed' ? null : 'f',
  previousHashes: null,
  pendingHashes: null,
  ...over,
});

describe('suppression (property-based)', () => {
  /** Suppressed identifier sets drawn from the same small pools, so they hit shared identifiers. */
  const suppressedArb = fc
    .uniqueArray(fc.constantFrom('e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'p1', 'p2', 'p3', 'p4'), {
      maxLength: 4,
    })
    .map((values) => new Set(values));
  const isSuppressed = (member: Member, suppressed: ReadonlySet<string>) =>
    [...hashValues(member.hashes)].some((value) => suppressed.has(value));
  const unsuppressed = (segment: Map<string, Member>, suppressed: ReadonlySet<string>) =>
    new Map([...segment].filter(([, member]) => !isSuppressed(member, suppressed)));

  for (const mode of ['mirror', 'upsert'] as const) {
    it(`no suppressed hash is in the audience after any run, whatever the order of segment and suppression changes (${mode})`, () => {
      fc.assert(
        fc.property(
          fc.array(fc.tuple(segmentArb, suppressedArb), { minLength: 1, maxLength: 6 }),
          fc.integer({ min: 1, max: 4 }),
          fc.integer({ min: 0, max: 3 }),
          (steps, batchSize, lag) => {
            const state = newState();
            const audience = new AudienceModel();
            for (const [segment, suppressed] of steps) {
              run(segment, state, audience, mode, { batchSize, lag, suppressed });
              const held = new Set(audience.identifiers());
              for (const value of suppressed) expect(held.has(value)).toBe(false);
              // Nor does state keep a suppressed member: it would not be re-checked by later runs.
              for (const member of state.members.values())
                expect(holdsAny(member.hashes, suppressed)).toBe(false);
            }
            // Once the inputs stay put (a member whose old identifier was suppressed leaves for one
            // run, then comes back with its new ones), every unsuppressed member is in the audience:
            // exactly them in mirror mode, at least them in upsert mode.
            const [segment, suppressed] = steps.at(-1)!;
            run(segment, state, audience, mode, { batchSize, lag, suppressed });
            const wanted = expectedIdentifiers(unsuppressed(segment, suppressed));
            if (mode === 'mirror') expect(audience.identifiers()).toEqual(wanted);
            else expect(audience.identifiers()).toEqual(expect.arrayContaining(wanted));
            for (const value of suppressed) expect(audience.identifiers()).not.toContain(value);
          },
        ),
        { numRuns: 300 },
      );
    });
  }

  it('a suppressed member leaves, its identifier another member shares stays, and it comes back once un-suppressed', () => {
    const state = newState();
    const audience = new AudienceModel();
    const a: Member = { hashes: { email: ['e1'], phone_number: ['p1'] }, raw: 'a' };
    const b: Member = { hashes: { phone_number: ['p1'] }, raw: 'b' };
    const segment = new Map([
      ['ka', a],
      ['kb', b],
    ]);
    run(segment, state, audience, 'mirror', { batchSize: 10, suppressed: new Set() });
    expect(audience.identifiers()).toEqual(['e1', 'p1']);
    run(segment, state, audience, 'mirror', { batchSize: 10, suppressed: new Set(['e1']) });
    expect(audience.identifiers()).toEqual(['p1']);
    expect([...state.members.keys()]).toEqual(['kb']);
    run(segment, state, audience, 'mirror', { batchSize: 10, suppressed: new Set() });
    expect(audience.identifiers()).toEqual(['e1', 'p1']);
  });
});

describe('planBatch', () => {
  it('never deletes a hash another member still holds', () => {
    const removed = row({
      key: 'a',
      change: 'removed',
      previousHashes: { email: ['shared'], phone_number: ['mine'] },
    });
    const plan = planBatch([{ row: removed, hashes: null }], new Set(['shared']), 'mirror');
    expect(plan.changes).toEqual([{ op: 'delete', user: { phone_number: ['mine'] } }]);
    expect(plan.members[0]).toMatchObject({ effect: 'removed', sendsUpdate: false });
    expect(changeIndexes(plan.members[0]!)).toEqual([0]);
  });

  it('sends nothing for a removed member whose every hash is held by others, and still removes it', () => {
    const removed = row({ key: 'a', change: 'removed', previousHashes: { email: ['shared'] } });
    const plan = planBatch([{ row: removed, hashes: null }], new Set(['shared']), 'mirror');
    expect(plan.changes).toEqual([]);
    expect(plan.members[0]).toMatchObject({ change: 'removed', effect: 'removed' });
    expect(changeIndexes(plan.members[0]!)).toEqual([]);
  });

  it('deletes the old hash of a changed member and re-sends its whole current set', () => {
    const changed = row({
      key: 'a',
      change: 'changed',
      previousHashes: { email: ['old'], phone_number: ['p'] },
    });
    const plan = planBatch(
      [{ row: changed, hashes: { email: ['new'], phone_number: ['p'] } }],
      new Set(),
      'mirror',
    );
    expect(plan.changes).toEqual([
      { op: 'delete', user: { email: ['old'] } },
      { op: 'update', user: { email: ['new'], phone_number: ['p'] } },
    ]);
    expect(plan.members[0]).toMatchObject({ effect: 'changed', sendsUpdate: true });
    expect(changeIndexes(plan.members[0]!)).toEqual([0, 1]);
  });

  it('where a Delete takes only the identifiers it names, sends only the new hashes of a changed member', () => {
    const changed = row({
      key: 'a',
      change: 'changed',
      previousHashes: { email: ['old'], phone_number: ['p'] },
    });
    const plan = planBatch(
      [{ row: changed, hashes: { email: ['new'], phone_number: ['p'] } }],
      new Set(),
      'mirror',
      false,
      { deleteRemovesSharingRecords: false },
    );
    expect(plan.changes).toEqual([
      { op: 'delete', user: { email: ['old'] } },
      { op: 'update', user: { email: ['new'] } },
    ]);
    const dropped = planBatch(
      [{ row: changed, hashes: { phone_number: ['p'] } }],
      new Set(),
      'mirror',
      false,
      { deleteRemovesSharingRecords: false },
    );
    expect(dropped.changes).toEqual([{ op: 'delete', user: { email: ['old'] } }]);
    expect(dropped.members[0]).toMatchObject({ effect: 'changed', sendsUpdate: false });
  });

  it('re-sends a member with pending hashes whose hashes did not change, and deletes what it no longer has', () => {
    const same = row({ key: 'a', change: 'refresh', previousHashes: {}, pendingHashes: { email: ['h'] } });
    const plan = planBatch([{ row: same, hashes: { email: ['h'] } }], new Set(), 'mirror');
    expect(plan.changes).toEqual([{ op: 'update', user: { email: ['h'] } }]);
    expect(plan.members[0]).toMatchObject({ effect: 'refreshed', sendsUpdate: true });
    // A case-only change of a member with a pending hash it no longer has: that hash is deleted and
    // the member re-sent (the Delete may take its record).
    const cased = row({
      key: 'b',
      change: 'changed',
      previousHashes: { email: ['h'] },
      pendingHashes: { email: ['x'] },
    });
    const both = planBatch([{ row: cased, hashes: { email: ['h'] } }], new Set(), 'mirror');
    expect(both.changes).toEqual([
      { op: 'delete', user: { email: ['x'] } },
      { op: 'update', user: { email: ['h'] } },
    ]);
  });

  it('sends nothing for a change in case or spacing only', () => {
    const changed = row({ key: 'a', change: 'changed', previousHashes: { email: ['h'] } });
    const plan = planBatch([{ row: changed, hashes: { email: ['h'] } }], new Set(), 'mirror');
    expect(plan.changes).toEqual([]);
    expect(plan.members[0]).toMatchObject({ effect: 'none', hashes: { email: ['h'] }, fingerprint: 'f' });
  });

  it('keeps a hash passed to another member of the same batch', () => {
    const loser = row({ key: 'a', change: 'changed', previousHashes: { email: ['x', 'y'] } });
    const gainer = row({ key: 'b', change: 'added' });
    const plan = planBatch(
      [
        { row: loser, hashes: { email: ['y'] } },
        { row: gainer, hashes: { email: ['x'] } },
      ],
      new Set(),
      'mirror',
    );
    expect(plan.changes.filter((c) => c.op === 'delete')).toEqual([]);
  });

  it('in upsert mode sends no deletes and acknowledges removals without sending', () => {
    const removed = row({ key: 'a', change: 'removed', previousHashes: { email: ['gone'] } });
    const changed = row({ key: 'b', change: 'changed', previousHashes: { email: ['old'] } });
    const plan = planBatch(
      [
        { row: removed, hashes: null },
        { row: changed, hashes: { email: ['new'] } },
      ],
      new Set(),
      'upsert',
    );
    expect(plan.changes).toEqual([{ op: 'update', user: { email: ['new'] } }]);
    expect(plan.members.map((m) => m.effect)).toEqual(['none', 'changed']);
  });

  it('commits a member without valid identifiers with empty hashes, sending nothing', () => {
    const added = row({ key: 'a', change: 'added' });
    const plan = planBatch([{ row: added, hashes: {} }], new Set(), 'mirror');
    expect(plan.changes).toEqual([]);
    expect(plan.members[0]).toMatchObject({ effect: 'none', hashes: {} });
    expect(changeIndexes(plan.members[0]!)).toEqual([]);
  });

  it('re-sends refreshed members as Updates', () => {
    const refresh = row({ key: 'a', change: 'refresh', previousHashes: { email: ['h'] } });
    const plan = planBatch([{ row: refresh, hashes: { email: ['h'] } }], new Set(), 'mirror');
    expect(plan.changes).toEqual([{ op: 'update', user: { email: ['h'] } }]);
    expect(plan.members[0]).toMatchObject({ effect: 'refreshed', sendsUpdate: true });
  });
});

describe('heldOnceCommitted', () => {
  it('takes what an acknowledged member was sent, else what state holds for it', () => {
    const plan = planBatch(
      [
        {
          row: row({ key: 'a', change: 'changed', previousHashes: { email: ['a0'] } }),
          hashes: { email: ['a1'] },
        },
        {
          row: row({ key: 'b', change: 'changed', previousHashes: { email: ['b0'] } }),
          hashes: { email: ['b1'] },
        },
        { row: row({ key: 'c', change: 'removed', previousHashes: { email: ['c0'] } }), hashes: null },
        { row: row({ key: 'd', change: 'added' }), hashes: { email: ['d1'] } },
        {
          row: row({ key: 'e', change: 'changed', previousHashes: { email: ['e0'] } }),
          hashes: { email: ['e0'] },
        },
      ],
      new Set(),
      'mirror',
    );
    // a, c and e acknowledged (e sent nothing); b and d refused.
    const refused = new Set(
      plan.members.filter((m) => m.key === 'b' || m.key === 'd').flatMap(changeIndexes),
    );
    const results: ApplyResult[] = plan.changes.map((_, i) =>
      refused.has(i) ? { status: 'rejected', reason: 'x' } : { status: 'ok' },
    );
    const held = new Set<string>();
    const wanted = new Set(['a0', 'a1', 'b0', 'b1', 'c0', 'd1', 'e0']);
    heldOnceCommitted(plan.members, results, wanted, held);
    expect([...held].sort()).toEqual(['a1', 'b0', 'e0']);
    const some = new Set<string>();
    heldOnceCommitted(plan.members, results, new Set(['b0', 'zz']), some);
    expect([...some]).toEqual(['b0']);
  });
});

describe('hash set helpers', () => {
  it('compares hash sets ignoring order, duplicates and empty keys', () => {
    expect(sameHashes({ email: ['b', 'a'], phone_number: [] }, { email: ['a', 'b', 'a'] })).toBe(true);
    expect(sameHashes({ email: ['a'] }, { handle: ['a'] })).toBe(false);
    expect(sameHashes(null, {})).toBe(true);
  });

  it('subtracts per type and keeps held values', () => {
    expect(
      subtractHashes({ email: ['a', 'b', 'c'], handle: ['h'] }, { email: ['a'] }, new Set(['b'])),
    ).toEqual({
      email: ['c'],
      handle: ['h'],
    });
  });

  it('counts effects the same way in plan and sync', () => {
    expect(memberEffect('changed', { email: ['a'] }, { email: ['a'] }, 'mirror')).toBe('none');
    expect(memberEffect('changed', { email: ['a'] }, {}, 'mirror')).toBe('changed');
    expect(memberEffect('changed', { email: ['a'] }, {}, 'upsert')).toBe('none');
    expect(memberEffect('refresh', { email: ['a'] }, {}, 'mirror')).toBe('changed');
    expect(memberEffect('removed', { email: ['a'] }, null, 'upsert')).toBe('none');
    expect(memberEffect('added', null, {}, 'mirror')).toBe('none');
  });
});
