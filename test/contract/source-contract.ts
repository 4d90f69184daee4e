import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { MemberHashes } from '../../src/destinations/destination.js';
import type { DeltaRow, DiffRun, DiffSpec, MemberAck, StateStore } from '../../src/diff/types.js';
import { LockBusyError, ModelSqlError } from '../../src/errors.js';
import type { Source } from '../../src/sources/source.js';
import { createStateStore } from '../../src/diff/state-store.js';
import { silentLogger } from '../helpers/warehouse.js';
import { runCountsOf } from '../helpers/counts.js';

/**
 * The contract every warehouse source keeps, run against each of them (test/contract/<kind>.test.ts).
 *
 * To plug in a new warehouse, write a factory that returns a fresh, isolated `ContractWarehouse` per
 * test (its own schema/dataset or database copy) and call
 * `defineSourceContract('<kind>', factory, options)` from `test/contract/<kind>.test.ts`.
 */

/** One row of a seeded table: `id` is the primary key, `email` and `phone` the mapped columns. */
export interface SeedRow {
  id: string | number | null;
  email: string | null;
  phone: string | null;
}

export interface ContractWarehouse {
  /** An open source; the suite never closes it (cleanup does). */
  source: Source;
  /** The state schema (BigQuery: dataset) the suite uses; it need not exist yet. */
  stateSchema: string;
  /**
   * Creates (or replaces) table `name` with columns `id` (an integer type for `int`, a string type for
   * `text`), `email` and `phone` (strings), holding exactly `rows`.
   */
  load(name: string, keyType: 'int' | 'text', rows: readonly SeedRow[]): Promise<void>;
  /** The table's name as model SQL must write it (qualified and quoted as the warehouse needs). */
  table(name: string): string;
  /** Every row of every table in the state schema, rendered as text: scanned for raw identifiers. */
  dumpState(): Promise<string>;
  /** Opens another source on the same warehouse (a second process, as far as locks can tell). */
  reopen(): Promise<Source>;
  /** Closes every source it opened and drops what the test created. */
  cleanup(): Promise<void>;
}

export interface ContractOptions {
  /** fast-check runs of the property test (each run is several diffs); default 12. */
  propertyRuns?: number;
  /** Time allowed for the whole property test; default the suite's 60 s (each statement is slow on an emulator). */
  propertyTimeoutMs?: number;
  /** Rows for the bounded-batches case; default 2,500. */
  bulkRows?: number;
  /**
   * The engine's message for an unknown column quotes the name in double quotes (DuckDB under
   * bqemulator), which BigQuery's redaction of quoted values takes out: expect the rest of it.
   */
  unknownColumnMessage?: RegExp;
}

export const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

/** What a destination would acknowledge for a delta row: SHA-256 hashes of the mapped values. */
export function hashesOf(values: Record<string, unknown> | null): MemberHashes {
  const hashes: MemberHashes = {};
  if (values?.email != null) hashes.email = [sha256(String(values.email))];
  if (values?.phone != null) hashes.phone_number = [sha256(String(values.phone))];
  return hashes;
}

/** The ack of a delta row; `withPrevious` carries its previous hashes, so the commit may write a difference. */
export function ackOf(row: DeltaRow, sentAt: Date | null = new Date(), withPrevious = false): MemberAck {
  const previous = withPrevious ? { previousHashes: row.previousHashes } : {};
  return row.change === 'removed'
    ? { key: row.key, change: 'removed', fingerprint: null, hashes: null, sentAt, ...previous }
    : {
        key: row.key,
        keyHash: row.keyHash ?? null,
        change: row.change,
        fingerprint: row.fingerprint,
        hashes: hashesOf(row.values),
        sentAt,
        ...previous,
      };
}

/** Every message, property and cause of an error, as text: what a log or a report could show of it. */
export function everything(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current && depth < 8; depth++) {
    if (current instanceof Error) parts.push(current.message, String(current.stack ?? ''));
    try {
      parts.push(JSON.stringify(current));
    } catch {
      parts.push(String(current));
    }
    current = (current as { cause?: unknown }).cause;
  }
  return parts.join('\n');
}

export async function readDelta(run: DiffRun, batchSize = 1000): Promise<DeltaRow[]> {
  const rows: DeltaRow[] = [];
  for await (const batch of run.delta(batchSize)) {
    expect(batch.length).toBeGreaterThan(0);
    expect(batch.length).toBeLessThanOrEqual(batchSize);
    rows.push(...batch);
  }
  return rows;
}

const RANK = { removed: 0, changed: 1, refresh: 2, added: 3 } as const;

/** A key as state holds it: the SHA-256 hex of its text. */
export const digest = (key: string) => sha256(key);
const RAW = new Map<string, string>();
for (const key of [...Array.from({ length: 1000 }, (_, i) => String(i)), 'B', 'a', 'ü-1', '1234567890123'])
  RAW.set(digest(key), key);
/** The raw key of a digest the suite's tables use (the digest itself when unknown). */
const raw = (key: string) => RAW.get(key) ?? key;

/** The row of the raw key. */
const rowOf = (rows: readonly DeltaRow[], key: string) => rows.find((r) => r.key === digest(key))!;

/** `change:rawKey` per row, by rank then raw key (within a rank the delta is in digest order). */
const summary = (rows: readonly DeltaRow[]) =>
  rows
    .map((r) => ({ rank: RANK[r.change], text: `${r.change}:${raw(r.key)}`, key: raw(r.key) }))
    .sort((a, b) => a.rank - b.rank || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((r) => r.text);

export function defineSourceContract(
  name: string,
  factory: () => Promise<ContractWarehouse>,
  options: ContractOptions = {},
): void {
  describe(`source contract: ${name}`, () => {
    let wh: ContractWarehouse;
    let state: StateStore;
    beforeEach(async () => {
      wh = await factory();
      state = createStateStore(wh.source, wh.stateSchema, { logger: silentLogger });
    });
    afterEach(async () => {
      await wh?.cleanup();
    });

    const spec = (table: string, overrides: Partial<DiffSpec> = {}): DiffSpec => ({
      activationId: 'act_a',
      modelSql: `select id, email, phone from ${wh.table(table)}`,
      modelName: 'segment',
      primaryKey: 'id',
      columns: ['email', 'phone'],
      refreshBefore: null,
      fullResync: false,
      ...overrides,
    });

    /** Diffs, reads the whole delta, commits all of it (or `pick`), and returns the delta. */
    async function syncOnce(
      s: DiffSpec,
      opts: { pick?: (row: DeltaRow) => boolean; sentAt?: Date | null } = {},
    ): Promise<{ delta: DeltaRow[]; counts: DiffRun['counts'] }> {
      await using run = await state.prepareDiff(s);
      const delta = await readDelta(run);
      const sentAt = opts.sentAt === undefined ? new Date() : opts.sentAt;
      const acks = delta.filter(opts.pick ?? (() => true)).map((r) => ackOf(r, sentAt));
      await run.commit(acks);
      await run.settleKeyHashes();
      return { delta, counts: run.counts };
    }

    it('checks the connection and describes a model without reading rows', async () => {
      await wh.source.check();
      await wh.load('people', 'int', [{ id: 1, email: 'a@example.com', phone: null }]);
      const columns = await wh.source.describeModel(
        'segment',
        `select id, email, phone from ${wh.table('people')}`,
      );
      expect(columns.map((c) => c.name)).toEqual(['id', 'email', 'phone']);
      for (const column of columns) expect(column.type.length).toBeGreaterThan(0);
      await expect(
        wh.source.describeModel('segment', `select nope from ${wh.table('people')}`),
      ).rejects.toThrow(ModelSqlError);
    });

    it('migrates idempotently, also when several processes migrate at once', async () => {
      const other = await wh.reopen();
      await Promise.all([
        state.migrate(),
        createStateStore(other, wh.stateSchema, { logger: silentLogger }).migrate(),
        state.migrate(),
      ]);
      await state.migrate();
      expect(await state.memberCount('act_a')).toBe(0);
      expect(
        await createStateStore(other, wh.stateSchema, { logger: silentLogger }).memberCount('act_a'),
      ).toBe(0);
    });

    it('emits added, then removed/changed/refresh/added in order, with previous hashes', async () => {
      const rows: SeedRow[] = [
        { id: 1, email: 'one@example.com', phone: '+15550000001' },
        { id: 2, email: 'two@example.com', phone: null },
        { id: 3, email: 'three@example.com', phone: '+15550000003' },
        { id: 4, email: null, phone: '+15550000004' },
      ];
      await wh.load('people', 'int', rows);
      {
        // A first load deletes nothing: state holds no hash for any of its members.
        await using load = await state.prepareDiff(spec('people'));
        expect(await load.heldByDelta()).toBe(0);
      }
      const t0 = new Date('2026-01-01T00:00:00Z');
      const first = await syncOnce(spec('people'), { sentAt: t0 });
      expect(summary(first.delta)).toEqual(['added:1', 'added:2', 'added:3', 'added:4']);
      expect(first.counts).toMatchObject({
        rows: 4,
        invalidKeys: 0,
        added: 4,
        removed: 0,
        changed: 0,
        refresh: 0,
      });
      expect(first.counts.stateMembers).toBe(0);
      expect(rowOf(first.delta, '1').values).toEqual({ email: 'one@example.com', phone: '+15550000001' });
      expect(rowOf(first.delta, '1').previousHashes).toBeNull();
      expect(rowOf(first.delta, '1').fingerprint).toMatch(/\S/);
      expect(await state.memberCount('act_a')).toBe(4);
      expect(await state.identifiedMemberCount('act_a')).toBe(4);

      // Nothing changed: an empty delta.
      expect((await syncOnce(spec('people'))).delta).toEqual([]);

      await wh.load('people', 'int', [
        { id: 1, email: 'one@example.com', phone: '+15550000001' },
        { id: 2, email: 'two-new@example.com', phone: null },
        { id: 4, email: null, phone: '+15550000004' },
        { id: 5, email: 'five@example.com', phone: null },
      ]);
      await using run = await state.prepareDiff(
        spec('people', { refreshBefore: new Date(t0.getTime() + 1) }),
      );
      const delta = await readDelta(run, 2);
      expect(summary(delta)).toEqual(['removed:3', 'changed:2', 'refresh:1', 'refresh:4', 'added:5']);
      // The delta can be read again (e.g. a plan, then a sync), whole or stopped early.
      expect(await readDelta(run, 5)).toEqual(delta);
      for await (const batch of run.delta(1)) {
        expect(batch).toEqual([delta[0]]);
        break;
      }
      expect(await readDelta(run, 3)).toEqual(delta);
      expect(run.counts).toMatchObject({
        rows: 4,
        removed: 1,
        changed: 1,
        refresh: 2,
        added: 1,
        stateMembers: 4,
      });
      const [removed, changed] = delta;
      const refresh = rowOf(delta, '1');
      expect(removed!.values).toBeNull();
      expect(removed!.fingerprint).toBeNull();
      expect(removed!.previousHashes).toEqual(
        hashesOf({ email: 'three@example.com', phone: '+15550000003' }),
      );
      expect(changed!.values).toEqual({ email: 'two-new@example.com', phone: null });
      expect(changed!.previousHashes).toEqual(hashesOf({ email: 'two@example.com', phone: null }));
      expect(changed!.fingerprint).not.toEqual(rowOf(first.delta, '2').fingerprint);
      expect(refresh.fingerprint).toEqual(rowOf(first.delta, '1').fingerprint);
      expect(refresh.previousHashes).toEqual(hashesOf({ email: 'one@example.com', phone: '+15550000001' }));
      // What the safety rule bounds a run's Deletes by: the hashes state holds for the delta's
      // removed (3: two), changed (2: one) and refresh (1: two; 4: one) members; the added one none.
      const stored = delta
        .filter((row) => row.change !== 'added')
        .reduce((n, row) => n + Object.values(row.previousHashes!).flat().length, 0);
      expect(stored).toBe(6);
      expect(await run.heldByDelta()).toBe(stored);
    });

    it('renders numeric and text keys as stable text', async () => {
      await wh.load('num', 'int', [
        { id: 10, email: 'a@example.com', phone: null },
        { id: 9, email: 'b@example.com', phone: null },
        { id: 1234567890123, email: 'c@example.com', phone: null },
      ]);
      const numeric = await syncOnce(spec('num'));
      expect(numeric.delta.map((r) => r.key).sort()).toEqual(['10', '1234567890123', '9'].map(digest).sort());
      await wh.load('txt', 'text', [
        { id: 'B', email: 'a@example.com', phone: null },
        { id: 'a', email: 'b@example.com', phone: null },
        { id: 'ü-1', email: 'c@example.com', phone: null },
      ]);
      const text = await syncOnce(spec('txt', { activationId: 'act_t' }));
      expect(text.delta.map((r) => r.key).sort()).toEqual(['B', 'a', 'ü-1'].map(digest).sort());
      expect((await syncOnce(spec('txt', { activationId: 'act_t' }))).delta).toEqual([]);
    });

    it('leaves out null and duplicated keys, counts and lists them', async () => {
      await wh.load('people', 'int', [
        { id: 1, email: 'one@example.com', phone: null },
        { id: 2, email: 'two@example.com', phone: null },
      ]);
      await syncOnce(spec('people'));
      await wh.load('people', 'int', [
        { id: 1, email: 'one@example.com', phone: null },
        { id: 2, email: 'two@example.com', phone: null },
        { id: 2, email: 'two-bis@example.com', phone: null },
        { id: null, email: 'nokey@example.com', phone: null },
        { id: null, email: 'nokey2@example.com', phone: null },
        { id: 3, email: 'three@example.com', phone: null },
        { id: 3, email: 'three@example.com', phone: null },
        { id: 3, email: 'three@example.com', phone: null },
        { id: 4, email: 'four@example.com', phone: null },
      ]);
      await using run = await state.prepareDiff(spec('people'));
      // State holds 1 and 2 (2 among the invalid keys now, so counted as removed, yet still in state).
      expect(run.counts).toMatchObject({
        rows: 9,
        invalidKeys: 7,
        added: 1,
        removed: 1,
        changed: 0,
        stateMembers: 2,
      });
      const invalid = [];
      for await (const batch of run.invalidKeys()) invalid.push(...batch);
      expect(invalid).toEqual([
        { key: null, reason: 'null_primary_key', rows: 1 },
        { key: null, reason: 'null_primary_key', rows: 1 },
        ...[
          { key: digest('2'), reason: 'duplicate_primary_key', rows: 2 },
          { key: digest('3'), reason: 'duplicate_primary_key', rows: 3 },
        ].sort((a, b) => (a.key < b.key ? -1 : 1)),
      ]);
      // Member 2 became ambiguous: it leaves the segment (removed) until its key is unique again.
      expect(summary(await readDelta(run))).toEqual(['removed:2', 'added:4']);
    });

    it('re-emits what was not acknowledged, and keeps its old state', async () => {
      await wh.load('people', 'int', [
        { id: 1, email: 'one@example.com', phone: null },
        { id: 2, email: 'two@example.com', phone: null },
        { id: 3, email: 'three@example.com', phone: null },
        { id: 4, email: 'four@example.com', phone: null },
      ]);
      const first = await syncOnce(spec('people'), {
        pick: (r) => raw(r.key) === '1' || raw(r.key) === '2' || raw(r.key) === '3',
      });
      expect(first.delta).toHaveLength(4);
      expect(summary((await syncOnce(spec('people'), { pick: () => false })).delta)).toEqual(['added:4']);

      await wh.load('people', 'int', [
        { id: 2, email: 'two-new@example.com', phone: null },
        { id: 3, email: 'three@example.com', phone: null },
        { id: 4, email: 'four@example.com', phone: null },
      ]);
      // Nothing acknowledged: the same delta comes back, with the same previous hashes.
      const unacked = await syncOnce(spec('people'), { pick: () => false });
      expect(summary(unacked.delta)).toEqual(['removed:1', 'changed:2', 'added:4']);
      const again = await syncOnce(spec('people'), { pick: (r) => r.change === 'changed' });
      expect(again.delta).toEqual(unacked.delta);
      const last = await syncOnce(spec('people'));
      expect(summary(last.delta)).toEqual(['removed:1', 'added:4']);
      expect((await syncOnce(spec('people'))).delta).toEqual([]);
      expect(await state.memberCount('act_a')).toBe(3);
    });

    it('commits idempotently: re-committing the same acknowledgements is harmless', async () => {
      await wh.load('people', 'int', [
        { id: 1, email: 'one@example.com', phone: '+15550000001' },
        { id: 2, email: 'two@example.com', phone: null },
      ]);
      await using run = await state.prepareDiff(spec('people'));
      const acks = (await readDelta(run)).map((r) => ackOf(r));
      await run.commit(acks);
      await run.commit(acks);
      await run.commit([...acks, ...acks]);
      expect(await state.memberCount('act_a')).toBe(2);
      await using next = await state.prepareDiff(spec('people'));
      expect(await readDelta(next)).toEqual([]);
      // A crash after removing at X, before committing: the removal is re-sent and re-committed.
      await wh.load('people', 'int', [{ id: 1, email: 'one@example.com', phone: '+15550000001' }]);
      await using third = await state.prepareDiff(spec('people'));
      const removal = (await readDelta(third)).map((r) => ackOf(r));
      await third.commit(removal);
      await third.commit(removal);
      expect(await state.memberCount('act_a')).toBe(1);
    });

    it('commits idempotently also when acks carry previous hashes (added members have none)', async () => {
      await wh.load('people', 'int', [
        { id: 1, email: 'one@example.com', phone: '+15550000001' },
        { id: 2, email: 'two@example.com', phone: null },
      ]);
      await using run = await state.prepareDiff(spec('people'));
      const acks = (await readDelta(run)).map((r) => ackOf(r, new Date(), true));
      expect(acks.every((ack) => ack.previousHashes === null)).toBe(true);
      await run.commit(acks);
      await run.commit(acks);
      // Member 1 changes its email, member 2 is removed: their previous hashes come back once each.
      await wh.load('people', 'int', [{ id: 1, email: 'uno@example.com', phone: '+15550000001' }]);
      await using next = await state.prepareDiff(spec('people'));
      const delta = await readDelta(next);
      expect(delta.map((r) => [raw(r.key), r.change, r.previousHashes])).toEqual([
        ['2', 'removed', hashesOf({ email: 'two@example.com', phone: null })],
        ['1', 'changed', hashesOf({ email: 'one@example.com', phone: '+15550000001' })],
      ]);
      const changed = delta.filter((r) => r.change === 'changed').map((r) => ackOf(r, new Date(), true));
      await next.commit(changed);
      await next.commit(changed);
      await using third = await state.prepareDiff(spec('people', { fullResync: true }));
      expect((await readDelta(third)).map((r) => [raw(r.key), r.change, r.previousHashes])).toEqual([
        ['2', 'removed', hashesOf({ email: 'two@example.com', phone: null })],
        ['1', 'refresh', hashesOf({ email: 'uno@example.com', phone: '+15550000001' })],
      ]);
    });

    it('refreshes by last_sent_at, kept when nothing was sent', async () => {
      await wh.load('people', 'int', [
        { id: 1, email: 'one@example.com', phone: null },
        { id: 2, email: null, phone: null },
      ]);
      const t0 = new Date('2026-01-01T00:00:00Z');
      await syncOnce(spec('people'), { sentAt: t0, pick: (r) => raw(r.key) === '1' });
      await syncOnce(spec('people'), { sentAt: null });
      const later = new Date('2026-06-01T00:00:00Z');
      // Member 2 was never sent (sentAt null): nothing to refresh.
      const refresh = await syncOnce(spec('people', { refreshBefore: later }), { sentAt: null });
      expect(summary(refresh.delta)).toEqual(['refresh:1']);
      // Committing a refresh with sentAt null kept the old last_sent_at, so it is still due.
      const still = await syncOnce(spec('people', { refreshBefore: later }), { sentAt: later });
      expect(summary(still.delta)).toEqual(['refresh:1']);
      expect((await syncOnce(spec('people', { refreshBefore: later }))).delta).toEqual([]);
    });

    it('full resync re-sends every member and removes what is beyond the segment', async () => {
      await wh.load('people', 'int', [
        { id: 1, email: 'one@example.com', phone: null },
        { id: 2, email: 'two@example.com', phone: null },
        { id: 3, email: 'three@example.com', phone: null },
      ]);
      await syncOnce(spec('people'));
      await wh.load('people', 'int', [
        { id: 1, email: 'one@example.com', phone: null },
        { id: 2, email: 'two-new@example.com', phone: null },
        { id: 4, email: 'four@example.com', phone: null },
      ]);
      const resync = await syncOnce(spec('people', { fullResync: true }));
      expect(summary(resync.delta)).toEqual(['removed:3', 'changed:2', 'refresh:1', 'added:4']);
      expect(resync.counts).toMatchObject({ removed: 1, changed: 1, refresh: 1, added: 1 });
      expect(summary((await syncOnce(spec('people', { fullResync: true }))).delta)).toEqual([
        'refresh:1',
        'refresh:2',
        'refresh:4',
      ]);
    });

    it('keeps keys as SHA-256 digests: no raw key in state, and a key of any length works', async () => {
      const long = `k${'x'.repeat(10_000)}`;
      await wh.load('keys', 'text', [
        { id: 'jane@example.com', email: 'a@example.com', phone: null },
        { id: long, email: 'b@example.com', phone: null },
        { id: 'dup@example.com', email: 'c@example.com', phone: null },
        { id: 'dup@example.com', email: 'd@example.com', phone: null },
      ]);
      const first = await syncOnce(spec('keys'));
      expect(first.delta.map((r) => r.key).sort()).toEqual(['jane@example.com', long].map(digest).sort());
      const invalid = [];
      {
        // Closed before state is scanned: a diff's run-scoped tables hold the model's keys and
        // values while it is open (on BigQuery, in the state dataset).
        await using run = await state.prepareDiff(spec('keys'));
        for await (const batch of run.invalidKeys()) invalid.push(...batch);
        expect(invalid).toEqual([
          { key: digest('dup@example.com'), reason: 'duplicate_primary_key', rows: 2 },
        ]);
        expect(await readDelta(run)).toEqual([]);
      }
      const runId = await state.startRun('act_a', new Date());
      await state.recordRejections(runId, 'act_a', [
        { memberKey: invalid[0]!.key, identifierType: null, reason: 'duplicate_primary_key' },
      ]);
      // A changed email under the long key is still one member.
      await wh.load('keys', 'text', [{ id: long, email: 'b2@example.com', phone: null }]);
      const next = await syncOnce(spec('keys'));
      expect(next.delta.map((r) => [r.change, r.key])).toEqual([
        ['removed', digest('jane@example.com')],
        ['changed', digest(long)],
      ]);
      const dump = await wh.dumpState();
      for (const key of ['jane@example.com', 'dup@example.com', 'xxxxxxxxxxxxxxxxxxxx'])
        expect(dump).not.toContain(key);
    });

    /** A state store over the same warehouse whose key hash is the key's length: keys of one length share one. */
    const weakHashState = (): StateStore =>
      createStateStore(
        {
          stateBackend: (schema: string) => {
            const backend = wh.source.stateBackend(schema);
            return {
              stateSchema: backend.stateSchema,
              db: backend.db,
              hooks: { ...backend.hooks, keyHash: (text) => sql`length(${text})` },
            };
          },
        },
        wh.stateSchema,
        { logger: silentLogger },
      );

    /** Diffs with `store`, commits every delta row, gives key hashes; the delta and what it compared by. */
    async function syncWith(
      store: StateStore,
      s: DiffSpec,
    ): Promise<{ delta: string[]; keysCompared: 'hash' | 'digest'; rows: DeltaRow[] }> {
      await using run = await store.prepareDiff(s);
      const rows = await readDelta(run);
      await run.commit(rows.map((r) => ackOf(r, new Date(), true)));
      await run.settleKeyHashes();
      return { delta: summary(rows), keysCompared: run.keysCompared, rows };
    }

    /**
     * The membership invariant, read back through a full resync's delta: every member state holds is
     * a row of the segment whose identifiers' hashes are exactly the hashes state holds for it.
     */
    async function expectStateHoldsSegment(store: StateStore, s: DiffSpec, members: number): Promise<void> {
      await using run = await store.prepareDiff({ ...s, fullResync: true });
      const rows = await readDelta(run);
      expect(rows.filter((r) => r.change !== 'refresh').map((r) => r.change)).toEqual([]);
      for (const r of rows) expect(r.previousHashes).toEqual(hashesOf(r.values));
      expect(rows).toHaveLength(members);
    }

    it('compares by key hash once every member has one, and gives members written without one theirs', async () => {
      const person = (id: number, email = `e${id}@example.com`) => ({ id, email, phone: null });
      await wh.load('people', 'int', [person(1), person(2), person(3)]);
      const first = await syncWith(state, spec('people'));
      expect(first.keysCompared).toBe('hash');
      expect(first.rows.every((r) => typeof r.keyHash === 'string')).toBe(true);
      // As a state written before key hashes were: members without one.
      const backend = wh.source.stateBackend(wh.stateSchema);
      await sql`update ${sql.id(backend.stateSchema, 'members')} set ${sql.id('key_hash')} = null
        where ${sql.id('activation_id')} = ${sql.lit('act_a')}`.execute(backend.db);
      await wh.load('people', 'int', [person(1, 'new@example.com'), person(2), person(4)]);
      const byDigest = await syncWith(state, spec('people'));
      expect(byDigest.keysCompared).toBe('digest');
      expect(byDigest.delta).toEqual(['removed:3', 'changed:1', 'added:4']);
      // Given their key hashes after that run's commits: compared by them from then on.
      const settled = await syncWith(state, spec('people'));
      expect(settled).toMatchObject({ keysCompared: 'hash', delta: [] });
      await wh.load('people', 'int', [person(2, 'other@example.com'), person(4), person(5)]);
      const byHash = await syncWith(state, spec('people'));
      expect(byHash.keysCompared).toBe('hash');
      expect(byHash.delta).toEqual(['removed:1', 'changed:2', 'added:5']);
      expect(byHash.rows.find((r) => r.change === 'added')!.keyHash).toMatch(/^-?\d+$/);
      await expectStateHoldsSegment(state, spec('people'), 3);
      // A member with intents is compared by digest (intents name members by digest).
      await using run = await state.prepareDiff(spec('people'));
      await run.recordIntent([{ key: digest('5'), hashes: hashesOf({ email: 'x@example.com' }) }], {
        id: 'run9:1',
        at: new Date(),
        until: new Date(Date.now() + 60_000),
      });
      await using next = await state.prepareDiff(spec('people'));
      expect(next.keysCompared).toBe('digest');
    });

    it('never mixes two members up when their keys share a key hash', async () => {
      const weak = weakHashState();
      const person = (id: number, email: string) => ({ id, email, phone: null });
      const s = spec('people');
      await wh.load('people', 'int', [person(1, 'a'), person(22, 'b'), person(333, 'c')]);
      expect(await syncWith(weak, s)).toMatchObject({
        keysCompared: 'hash',
        delta: ['added:1', 'added:22', 'added:333'],
      });
      // 44 replaces 22 with the same values: taken for member 22 (same hash), nothing to send.
      await wh.load('people', 'int', [person(1, 'a'), person(44, 'b'), person(333, 'c')]);
      expect(await syncWith(weak, s)).toMatchObject({ keysCompared: 'hash', delta: [] });
      await expectStateHoldsSegment(weak, s, 3);
      // Its values change: member 22 changes (its old hashes deleted, the new ones added).
      await wh.load('people', 'int', [person(1, 'a'), person(44, 'b2'), person(333, 'c')]);
      expect(await syncWith(weak, s)).toMatchObject({ keysCompared: 'hash', delta: ['changed:22'] });
      await expectStateHoldsSegment(weak, s, 3);
      // 55 joins: two keys of the segment share a hash, so this diff compares by digest.
      await wh.load('people', 'int', [person(1, 'a'), person(44, 'b2'), person(55, 'd'), person(333, 'c')]);
      expect(await syncWith(weak, s)).toMatchObject({
        keysCompared: 'digest',
        delta: ['removed:22', 'added:44', 'added:55'],
      });
      // Neither gets a key hash while both are there.
      expect(await syncWith(weak, s)).toMatchObject({ keysCompared: 'digest', delta: [] });
      await expectStateHoldsSegment(weak, s, 4);
      // 55 leaves; 44's key hash is its own again.
      await wh.load('people', 'int', [person(1, 'a'), person(44, 'b2'), person(333, 'c'), person(333, 'c')]);
      expect(await syncWith(weak, s)).toMatchObject({
        keysCompared: 'digest',
        delta: ['removed:333', 'removed:55'],
      });
      await using run = await weak.prepareDiff(s);
      expect(run.keysCompared).toBe('hash');
      const invalid = [];
      for await (const batch of run.invalidKeys()) invalid.push(...batch);
      expect(invalid).toEqual([{ key: digest('333'), reason: 'duplicate_primary_key', rows: 2 }]);
      expect(run.counts.invalidKeys).toBe(2);
      expect(await readDelta(run)).toEqual([]);
    });

    it(
      'keeps state exactly the segment when keys share key hashes (property)',
      async () => {
        const weak = weakHashState();
        const row = fc.record({
          // Keys of one to three digits: any two of one length share a key hash.
          id: fc.option(fc.integer({ min: 0, max: 120 }), { nil: null, freq: 8 }),
          email: fc.option(
            fc.integer({ min: 0, max: 3 }).map((i) => `e${i}`),
            { nil: null, freq: 4 },
          ),
          phone: fc.constant(null),
        });
        let activation = 0;
        await fc.assert(
          fc.asyncProperty(
            fc.array(fc.record({ rows: fc.array(row, { maxLength: 8 }), settle: fc.boolean() }), {
              minLength: 1,
              maxLength: 4,
            }),
            async (steps) => {
              activation += 1;
              const s = spec(`weak_${activation}`, {
                activationId: `weak_${activation}`,
                modelSql: `select * from ${wh.table(`weak_${activation}`)}`,
              });
              let valid = 0;
              for (const step of steps) {
                await wh.load(`weak_${activation}`, 'int', step.rows);
                const counts = new Map<number, number>();
                for (const r of step.rows) if (r.id !== null) counts.set(r.id, (counts.get(r.id) ?? 0) + 1);
                valid = [...counts.values()].filter((n) => n === 1).length;
                await using run = await weak.prepareDiff(s);
                const rows = await readDelta(run, 3);
                await run.commit(rows.map((r) => ackOf(r, new Date(), true)));
                if (step.settle) await run.settleKeyHashes();
                expect(run.counts.invalidKeys).toBe(step.rows.length - valid);
                expect(await weak.memberCount(s.activationId)).toBe(valid);
              }
              await expectStateHoldsSegment(weak, s, valid);
            },
          ),
          { numRuns: Math.max(3, Math.ceil((options.propertyRuns ?? 12) / 2)) },
        );
      },
      options.propertyTimeoutMs,
    );

    it('intent before send: what was sent and never committed comes back, until it is acknowledged', async () => {
      await wh.load('people', 'int', [
        { id: 1, email: 'one@example.com', phone: null },
        // Two identifiers: one intent row holds both (packed), on every warehouse.
        { id: 2, email: 'two@example.com', phone: '+15550000002' },
        { id: 3, email: 'three@example.com', phone: null },
      ]);
      const at = new Date();
      const window = (hours: number) => new Date(at.getTime() + hours * 3_600_000);
      {
        await using run = await state.prepareDiff(spec('people'));
        const delta = await readDelta(run);
        // The batch's intent is recorded, then the process "dies" after X answered for 1 and 2: only
        // 3's acknowledgement is committed.
        await run.recordIntent(
          delta.map((r) => ({ key: r.key, hashes: hashesOf(r.values) })),
          { id: 'run1:1', at, until: window(48) },
        );
        await run.commit([{ ...ackOf(rowOf(delta, '3')), intentId: 'run1:1' }]);
      }
      // 1 and 2 were never acknowledged-and-committed: they come back as added, with what X may hold.
      await wh.load('people', 'int', [
        { id: 1, email: 'one@example.com', phone: null },
        { id: 3, email: 'three-new@example.com', phone: null },
      ]);
      await using second = await state.prepareDiff(spec('people'));
      const delta = await readDelta(second);
      expect(summary(delta)).toEqual(['removed:2', 'changed:3', 'added:1']);
      expect(rowOf(delta, '2')).toMatchObject({
        previousHashes: {},
        pendingHashes: hashesOf({ email: 'two@example.com', phone: '+15550000002' }),
      });
      expect(rowOf(delta, '1')).toMatchObject({
        previousHashes: null,
        pendingHashes: hashesOf({ email: 'one@example.com' }),
      });
      expect(rowOf(delta, '3')).toMatchObject({
        previousHashes: hashesOf({ email: 'three@example.com' }),
        pendingHashes: null,
      });
      expect(second.counts).toMatchObject({ added: 1, removed: 1, changed: 1, stateMembers: 2 });
      // This run's intents for 3 (a Delete of its old email, an Update of the new one) go out
      // unanswered: 3 comes back with both hashes pending, even with its values unchanged, and even
      // once their window has passed (here at once): X may have applied either.
      await second.recordIntent([{ key: digest('3'), hashes: hashesOf({ email: 'three@example.com' }) }], {
        id: 'run2:1',
        at,
        until: window(-1),
      });
      await second.recordIntent(
        [{ key: digest('3'), hashes: hashesOf({ email: 'three-new@example.com' }) }],
        { id: 'run2:2', at, until: window(-1) },
      );
      // 1 and 2 are acknowledged in this run: their own intents (run1:1) are older and still within
      // their window, so they stay (X may still apply those requests late).
      await second.commit([
        { ...ackOf(rowOf(delta, '1')), intentId: 'run2:3' },
        { ...ackOf(rowOf(delta, '2')), intentId: 'run2:3' },
      ]);
      await using third = await state.prepareDiff(spec('people'));
      const again = await readDelta(third);
      expect(summary(again)).toEqual(['removed:2', 'changed:3', 'refresh:1']);
      expect(rowOf(again, '3').pendingHashes).toEqual({
        email: [sha256('three-new@example.com'), sha256('three@example.com')].sort(),
      });
      // Once acknowledged, a member's intents go: the one the ack answers, and those whose window has
      // passed (3's); 1's and 2's first intent (run1:1) is still within its window, so they come back
      // (a late apply of that request is undone), 2 as removed again.
      await third.recordIntent(
        again.map((r) => ({ key: r.key, hashes: hashesOf(r.values) })),
        { id: 'run3:1', at, until: window(-1) },
      );
      await third.commit(again.map((r) => ({ ...ackOf(r), intentId: 'run3:1' })));
      expect(summary((await syncOnce(spec('people'))).delta)).toEqual(['removed:2', 'refresh:1']);
      // A reset forgets intents with the members.
      await state.reset('act_a');
      expect(summary((await syncOnce(spec('people'))).delta)).toEqual(['added:1', 'added:3']);
    });

    it('suppression: which hashes are suppressed, who holds them, and what an upsert audience has still to lose', async () => {
      await wh.load('people', 'int', [
        { id: 1, email: 'out@example.com', phone: '+15550000001' },
        { id: 2, email: 'in@example.com', phone: '+15550000001' },
        { id: 3, email: 'other@example.com', phone: null },
      ]);
      await syncOnce(spec('people'));
      // A suppression model's state is kept like an activation's, under its own id.
      await wh.load('optouts', 'int', [{ id: 9, email: 'out@example.com', phone: null }]);
      const suppression = ['suppression__optouts'];
      await syncOnce(spec('optouts', { activationId: suppression[0]! }));
      const out = sha256('out@example.com');
      const phone = sha256('+15550000001');
      expect(await state.suppressedHashes(suppression, [out, phone, sha256('in@example.com')])).toEqual(
        new Set([out]),
      );
      expect(await state.suppressedHashes([], [out])).toEqual(new Set());
      // The member holding it, with every hash state holds for it; other activations never count.
      expect(await state.membersHoldingSuppressed('act_a', suppression)).toEqual([
        { key: digest('1'), hashes: { email: [out], phone_number: [phone] } },
      ]);
      expect(await state.membersHoldingSuppressed('act_b', suppression)).toEqual([]);
      // What an upsert audience has still to lose: recorded once deleted, forgotten once lifted.
      const applied = 'suppression-applied:act_a';
      expect(await state.suppressionToApply(applied, suppression)).toEqual([{ idType: 'email', hash: out }]);
      await state.recordSuppressionApplied(applied, suppression, [{ idType: 'email', hash: out }]);
      expect(await state.suppressionToApply(applied, suppression)).toEqual([]);
      await wh.load('optouts', 'int', [{ id: 9, email: null, phone: null }]);
      await syncOnce(spec('optouts', { activationId: suppression[0]! }));
      expect(await state.suppressedHashes(suppression, [out])).toEqual(new Set());
      await state.recordSuppressionApplied(applied, suppression, []);
      await wh.load('optouts', 'int', [{ id: 9, email: 'out@example.com', phone: null }]);
      await syncOnce(spec('optouts', { activationId: suppression[0]! }));
      expect(await state.suppressionToApply(applied, suppression)).toEqual([{ idType: 'email', hash: out }]);
    });

    it('answers which hashes another member still holds', async () => {
      await wh.load('people', 'int', [
        { id: 1, email: 'shared@example.com', phone: '+15550000001' },
        { id: 2, email: 'shared@example.com', phone: null },
        { id: 3, email: 'own@example.com', phone: null },
      ]);
      await syncOnce(spec('people'));
      await using run = await state.prepareDiff(spec('people'));
      const shared = sha256('shared@example.com');
      const own = sha256('own@example.com');
      const phone = sha256('+15550000001');
      expect(await run.hashesHeldByOthers([shared, own, phone, sha256('x')], [digest('1')])).toEqual(
        new Set([shared, own]),
      );
      expect(await run.hashesHeldByOthers([shared, own, phone], ['1', '2', '3'].map(digest))).toEqual(
        new Set(),
      );
      expect(await run.hashesHeldByOthers([phone], [])).toEqual(new Set([phone]));
      expect(await run.hashesHeldByOthers([], [digest('1')])).toEqual(new Set());
      // More hashes than one statement takes (10,000 on PostgreSQL and BigQuery): several lookups,
      // some at once, answer as one would, wherever in the list the held hashes fall.
      const absent = Array.from({ length: 25_000 }, (_, i) => sha256(`absent-${i}`));
      expect(
        await run.hashesHeldByOthers(
          [shared, ...absent.slice(0, 12_000), own, ...absent.slice(12_000), phone],
          [digest('1')],
        ),
      ).toEqual(new Set([shared, own]));
      // Other activations' members never count.
      await syncOnce(spec('people', { activationId: 'act_b' }));
      expect(await run.hashesHeldByOthers([own], [digest('3')])).toEqual(new Set());
      // The share rule's count: distinct hashes (a shared email once), this activation's only; the
      // same count when started with the diff (heldCountLikely) or asked for after it.
      expect(await run.heldHashCount()).toBe(3);
      await using early = await state.prepareDiff({ ...spec('people'), heldCountLikely: true });
      expect(await early.heldHashCount()).toBe(3);
      // Its lower bound over a sample of members, by key digest: the distinct hashes of the members
      // below the sample's bound, on every warehouse (whether the engine asks is another matter).
      const holds = new Map([
        [digest('1'), [shared, phone]],
        [digest('2'), [shared]],
        [digest('3'), [own]],
      ]);
      const keys = [...holds.keys()].sort();
      for (const [i, key] of keys.entries()) {
        // The smallest share of the digest space that takes this member (and those below it) in.
        const heldSample = (Number.parseInt(key.slice(0, 8), 16) + 1) / 2 ** 32;
        const expected = new Set(keys.slice(0, i + 1).flatMap((k) => holds.get(k)!)).size;
        for (const heldCountLikely of [false, true]) {
          await using sampled = await state.prepareDiff({ ...spec('people'), heldCountLikely, heldSample });
          expect(await sampled.heldHashesAtLeast()).toBe(expected);
          expect(await sampled.heldHashCount()).toBe(3);
        }
      }
      await using none = await state.prepareDiff({ ...spec('people'), heldSample: 0 });
      expect(await none.heldHashesAtLeast()).toBe(0);
      expect(await early.heldHashesAtLeast()).toBe(3); // no sample: the count itself
      expect(await state.identifiedMemberCount('act_a')).toBe(3);
      // A partner_user_id is stored as the partner knows it, not as hex digits: counted all the same.
      await run.commit([
        {
          key: digest('4'),
          change: 'added',
          fingerprint: 'f4',
          hashes: { partner_user_id: ['crm-000123'] },
          sentAt: new Date(),
        },
      ]);
      await using later = await state.prepareDiff({ ...spec('people'), heldCountLikely: true });
      expect(await later.heldHashCount()).toBe(4);
    });

    it('keeps two runs of one activation apart with its lock', async () => {
      await state.migrate();
      const lock = await state.lock('act_a', { wait: false });
      await expect(state.lock('act_a', { wait: false })).rejects.toThrow(LockBusyError);
      await expect(state.lock('act_a', { wait: true, timeoutMs: 300 })).rejects.toThrow(LockBusyError);
      const other = createStateStore(await wh.reopen(), wh.stateSchema, { logger: silentLogger });
      await expect(other.lock('act_a', { wait: false })).rejects.toThrow(LockBusyError);
      // Another activation runs in parallel.
      const b = await other.lock('act_b', { wait: false });
      const waiting = other.lock('act_a', { wait: true, timeoutMs: 30_000 });
      await lock.release();
      await lock.release();
      const taken = await waiting;
      await expect(state.lock('act_a', { wait: false })).rejects.toThrow(LockBusyError);
      await taken[Symbol.asyncDispose]();
      await b.release();
      {
        await using again = await state.lock('act_a', { wait: false });
        expect(again).toBeDefined();
      }
      const after = await state.lock('act_a', { wait: false });
      await after.release();
    });

    it('reads a large delta in bounded batches', async () => {
      const n = options.bulkRows ?? 2500;
      await wh.load(
        'bulk',
        'int',
        Array.from({ length: n }, (_, i) => ({ id: i, email: `user${i}@example.com`, phone: null })),
      );
      await using run = await state.prepareDiff(spec('bulk'));
      let total = 0;
      let previous = '';
      for await (const batch of run.delta(700)) {
        expect(batch.length).toBeLessThanOrEqual(700);
        for (const row of batch) {
          expect(row.change).toBe('added');
          expect(row.key > previous || previous === '').toBe(true);
          previous = row.key;
        }
        total += batch.length;
        await run.commit(batch.map((r) => ackOf(r)));
      }
      expect(total).toBe(n);
      expect(await state.memberCount('act_a')).toBe(n);
    });

    it('reports a failing model as ModelSqlError, with the warehouse message', async () => {
      await wh.load('people', 'int', []);
      const error = await state
        .prepareDiff(spec('people', { modelSql: `select id, emial from ${wh.table('people')}` }))
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ModelSqlError);
      expect((error as ModelSqlError).message).toMatch(options.unknownColumnMessage ?? /emial/);
      await expect(state.prepareDiff(spec('people', { columns: ['email', 'nope'] }))).rejects.toThrow(
        ModelSqlError,
      );
    });

    it('takes a model ending in a comment or a semicolon as it is', async () => {
      await wh.load('people', 'int', [{ id: 1, email: 'a@example.com', phone: null }]);
      const base = `select id, email, phone from ${wh.table('people')}`;
      for (const modelSql of [
        `${base} -- the whole segment`,
        `${base};`,
        `${base} ;  \n`,
        `${base}; -- done\n/* really */\n`,
        `-- people\n${base}\n-- ends here`,
      ]) {
        const columns = await wh.source.describeModel('segment', modelSql);
        expect(columns.map((c) => c.name)).toEqual(['id', 'email', 'phone']);
        await using run = await state.prepareDiff(spec('people', { modelSql }));
        expect(run.counts.rows).toBe(1);
      }
    });

    it('runs a model as one read-only statement: SQL that closes the wrapping runs nothing else', async () => {
      await wh.load('people', 'int', [{ id: 1, email: 'a@example.com', phone: null }]);
      const people = wh.table('people');
      // Closes Tailor's `(... ) as m`, runs a DROP, and reopens a subquery for Tailor's closing
      // parenthesis that does not read the table (a statement failing after the DROP would undo it).
      const modelSql = `select id, email, phone from ${people}) as m; drop table ${people}; select * from (select 2 as id, 'b@example.com' as email, '1' as phone`;
      await expect(wh.source.describeModel('segment', modelSql)).rejects.toThrow(ModelSqlError);
      await expect(state.prepareDiff(spec('people', { modelSql }))).rejects.toThrow(ModelSqlError);
      // The table is still there, whole.
      const { counts } = await syncOnce(spec('people'));
      expect(counts.rows).toBe(1);
    });

    it('keeps a value out of the error even when it holds quotes', async () => {
      const values = ['ja"ne@example.com', 'o\'ha"ra@example.com', 'x\\"y\nz@example.com'];
      await wh.load(
        'people',
        'text',
        values.map((email, i) => ({ id: String(i), email, phone: null })),
      );
      const modelSql = `select cast(email as integer) as id, email, phone from ${wh.table('people')}`;
      const error = await state.prepareDiff(spec('people', { modelSql })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ModelSqlError);
      const shown = everything(error);
      expect(shown).not.toMatch(/example\.com|ja"ne|ha"ra|o'ha/);
    });

    it('keeps bindings, the run log, rejections and activation status', async () => {
      expect(await state.getBinding('act_a')).toBeUndefined();
      const binding = {
        activationId: 'act_a',
        destination: 'x',
        accountId: '18ce54d4x5t',
        audienceId: '1nmth',
        audienceName: 'VIP',
        boundAt: new Date('2026-01-02T03:04:05Z'),
      };
      await state.saveBinding(binding);
      await state.saveBinding({ ...binding, audienceName: 'VIP customers' });
      expect(await state.getBinding('act_a')).toEqual({ ...binding, audienceName: 'VIP customers' });

      const r1 = await state.startRun('act_a', new Date('2026-01-01T00:00:00Z'));
      const r2 = await state.startRun('act_b', new Date('2026-01-01T01:00:00Z'));
      const counts = runCountsOf({
        rows: 10,
        added: 3,
        removed: 1,
        changed: 2,
        invalid: 1,
        rejected: 1,
        requests: 2,
        suppressed: 4,
      });
      const match = { audienceSize: 7, sent: 9, processedAt: new Date('2026-01-01T00:00:30Z') };
      await state.finishRun(r1, {
        status: 'succeeded',
        counts,
        error: null,
        finishedAt: new Date('2026-01-01T00:01:00Z'),
        match,
      });
      await state.recordRejections(r1, 'act_a', [
        { memberKey: '7', identifierType: 'email', reason: 'invalid_email' },
        { memberKey: null, identifierType: null, reason: 'null_primary_key' },
      ]);
      const runs = await state.listRuns({ limit: 10 });
      expect(runs.map((r) => r.id)).toEqual([r2, r1]);
      expect(runs[1]).toMatchObject({
        activationId: 'act_a',
        status: 'succeeded',
        counts,
        error: null,
        finishedAt: new Date('2026-01-01T00:01:00Z'),
        match,
      });
      expect(runs[0]).toMatchObject({ status: 'running', finishedAt: null, match: null });
      expect((await state.listRuns({ activationId: 'act_a', limit: 10 })).map((r) => r.id)).toEqual([r1]);
      expect(await state.listRuns({ limit: 1 })).toHaveLength(1);
      // r2 is left running, as by a killed process: the next run of act_b (under its lock) closes it
      // as abandoned; act_a's runs are untouched.
      const r3 = await state.startRun('act_b', new Date('2026-01-01T02:00:00Z'));
      const [latest, killed] = await state.listRuns({ activationId: 'act_b', limit: 10 });
      expect(latest).toMatchObject({ id: r3, status: 'running', finishedAt: null });
      expect(killed).toMatchObject({
        id: r2,
        status: 'abandoned',
        finishedAt: new Date('2026-01-01T02:00:00Z'),
        error: expect.stringContaining('killed'),
      });
      expect((await state.listRuns({ activationId: 'act_a', limit: 1 }))[0]).toMatchObject({
        status: 'succeeded',
      });

      expect(await state.getActivationStatus('act_a')).toBeUndefined();
      const status = {
        activationId: 'act_a',
        consecutiveFailures: 3,
        pausedAt: new Date('2026-01-03T00:00:00Z'),
        pausedReason: 'three failures in a row',
        configFingerprint: 'abc',
        updatedAt: new Date('2026-01-03T00:00:00Z'),
      };
      await state.setActivationStatus(status);
      await state.setActivationStatus({
        ...status,
        activationId: 'act_b',
        pausedAt: null,
        pausedReason: null,
      });
      await state.setActivationStatus({ ...status, consecutiveFailures: 4 });
      expect(await state.getActivationStatus('act_a')).toEqual({ ...status, consecutiveFailures: 4 });
      expect((await state.listActivationStatus()).map((s) => s.activationId)).toEqual(['act_a', 'act_b']);

      await wh.load('people', 'int', [{ id: 1, email: 'one@example.com', phone: null }]);
      await syncOnce(spec('people'));
      await state.reset('act_a', { keepBinding: true });
      expect(await state.memberCount('act_a')).toBe(0);
      expect(await state.getBinding('act_a')).toBeDefined();
      await state.reset('act_a');
      expect(await state.getBinding('act_a')).toBeUndefined();
      expect(await state.listRuns({ activationId: 'act_a', limit: 10 })).toHaveLength(1);
    });

    it('never stores a raw identifier in any state table', async () => {
      const raw = [
        { id: 101, email: 'Raw.Person@Example.com', phone: '+15557654321' },
        { id: 102, email: 'second.raw@example.org', phone: '+15551234567' },
      ];
      await wh.load('people', 'int', raw);
      const runId = await state.startRun('act_a', new Date());
      await state.saveBinding({
        activationId: 'act_a',
        destination: 'x',
        accountId: 'acc',
        audienceId: 'aud',
        audienceName: 'name',
        boundAt: new Date(),
      });
      await syncOnce(spec('people'));
      await state.recordRejections(runId, 'act_a', [
        { memberKey: '101', identifierType: 'email', reason: 'invalid' },
      ]);
      await state.finishRun(runId, {
        status: 'failed',
        counts: runCountsOf({ rows: 2, added: 2, rejected: 1, requests: 1 }),
        error: 'something failed',
        finishedAt: new Date(),
      });
      const dump = (await wh.dumpState()).toLowerCase();
      expect(dump).toContain(sha256('Raw.Person@Example.com'));
      for (const row of raw) {
        expect(dump).not.toContain(row.email.toLowerCase());
        expect(dump).not.toContain(row.phone);
        expect(dump).not.toContain(row.phone.slice(1));
      }
    });

    it(
      'state equals what was acknowledged and the next diff is exactly the remaining difference (property)',
      async () => {
        type Row = { id: number | null; email: string | null; phone: string | null };
        interface Member {
          email: string | null;
          phone: string | null;
          hashes: MemberHashes;
        }
        const value = (prefix: string) =>
          fc.option(
            fc.integer({ min: 0, max: 3 }).map((i) => `${prefix}${i}`),
            { nil: null, freq: 4 },
          );
        const row = fc.record({
          id: fc.option(fc.integer({ min: 0, max: 9 }), { nil: null, freq: 8 }),
          email: value('e'),
          phone: value('p'),
        });
        const edit = fc.oneof(
          fc.record({ op: fc.constant('insert' as const), row }),
          fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
          fc.record({
            op: fc.constant('value' as const),
            at: fc.nat(),
            email: value('e'),
            phone: value('p'),
          }),
          fc.record({
            op: fc.constant('key' as const),
            at: fc.nat(),
            id: fc.option(fc.integer({ min: 0, max: 9 })),
          }),
        );
        const step = fc.record({
          edits: fc.array(edit, { maxLength: 6 }),
          ackSeed: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
          fullResync: fc.boolean(),
          // Every ack with its previous hashes, as the engine commits them; else half of them.
          allPrevious: fc.boolean(),
          // Key hashes given after the commits, as the engine does (the next diff compares by them).
          settle: fc.boolean(),
        });
        let activation = 0;
        await fc.assert(
          fc.asyncProperty(
            fc.array(row, { maxLength: 8 }),
            fc.array(step, { minLength: 1, maxLength: 4 }),
            async (initial, steps) => {
              activation += 1;
              const activationId = `prop_${activation}`;
              const table = `prop_${activation}`;
              const segment: Row[] = initial.map((r) => ({ ...r }));
              const model = new Map<string, Member>();
              for (const s of steps) {
                for (const e of s.edits) {
                  const at = 'at' in e && segment.length > 0 ? e.at % segment.length : -1;
                  if (e.op === 'insert') segment.push({ ...e.row });
                  else if (e.op === 'delete' && at >= 0) segment.splice(at, 1);
                  else if (e.op === 'value' && at >= 0)
                    segment[at] = { ...segment[at]!, email: e.email, phone: e.phone };
                  else if (e.op === 'key' && at >= 0) segment[at] = { ...segment[at]!, id: e.id };
                }
                await wh.load(table, 'int', segment);
                // The expected delta, from the in-memory model.
                const counts = new Map<string, number>();
                for (const r of segment)
                  if (r.id !== null) counts.set(String(r.id), (counts.get(String(r.id)) ?? 0) + 1);
                // Keyed as state keys them: by digest (the delta comes in digest order within a rank).
                const valid = new Map(
                  segment
                    .filter((r) => r.id !== null && counts.get(String(r.id)) === 1)
                    .map((r) => [digest(String(r.id)), r]),
                );
                const expected: string[] = [];
                for (const [key, member] of model) {
                  const now = valid.get(key);
                  if (!now) expected.push(`removed:${key}`);
                  else if (now.email !== member.email || now.phone !== member.phone)
                    expected.push(`changed:${key}`);
                  else if (s.fullResync) expected.push(`refresh:${key}`);
                }
                for (const key of valid.keys()) if (!model.has(key)) expected.push(`added:${key}`);
                const order = (x: string) => RANK[x.split(':')[0] as keyof typeof RANK];
                const key = (x: string) => x.slice(x.indexOf(':') + 1);
                expected.sort(
                  (a, b) => order(a) - order(b) || (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0),
                );

                await using run = await state.prepareDiff(
                  spec(table, {
                    activationId,
                    fullResync: s.fullResync,
                    modelSql: `select * from ${wh.table(table)}`,
                  }),
                );
                const delta = await readDelta(run, 3);
                expect(delta.map((r) => `${r.change}:${r.key}`)).toEqual(expected);
                expect(run.counts.rows).toBe(segment.length);
                expect(run.counts.invalidKeys).toBe(segment.length - valid.size);
                expect(run.counts.stateMembers).toBe(model.size);
                for (const d of delta) {
                  if (d.change === 'added') expect(d.previousHashes).toBeNull();
                  else expect(d.previousHashes).toEqual(model.get(d.key)!.hashes);
                  if (d.change !== 'removed') {
                    const r = valid.get(d.key)!;
                    expect(d.values).toEqual({ email: r.email, phone: r.phone });
                  }
                }
                // Acknowledge a pseudo-random part of the delta, in two commits (one repeated).
                const acked = delta.filter((_, i) => s.ackSeed[i % s.ackSeed.length]);
                // Half of them with their previous hashes: both ways of committing hash rows.
                const acks = acked.map((d, i) => ackOf(d, new Date(), s.allPrevious || i % 2 === 0));
                await run.commit(acks.slice(0, Math.ceil(acks.length / 2)));
                await run.commit(acks.slice(Math.floor(acks.length / 2)));
                if (s.settle) await run.settleKeyHashes();
                // The members holding a hash after the commits, as the run tracks them (where the
                // store counted them with the diff), equal a count of state, repeated commit included.
                expect(await run.identifiedMemberCount()).toBe(
                  await state.identifiedMemberCount(activationId),
                );
                for (const d of acked) {
                  if (d.change === 'removed') model.delete(d.key);
                  else {
                    const v = d.values as { email: string | null; phone: string | null };
                    model.set(d.key, { email: v.email, phone: v.phone, hashes: hashesOf(d.values) });
                  }
                }
                expect(await state.memberCount(activationId)).toBe(model.size);
              }
            },
          ),
          { numRuns: options.propertyRuns ?? 12 },
        );
      },
      options.propertyTimeoutMs,
    );
  });
}
