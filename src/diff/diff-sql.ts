import { sql, type RawBuilder } from 'kysely';
import type { Logger } from 'pino';
import { WarehouseError } from '../errors.js';
import { wrapModelSql } from '../sources/model-sql.js';
import type { MemberHashRow, WarehouseSession } from '../sources/warehouse-hooks.js';
import { unpackIntentHashes, type StateSql } from './state-sql.js';
import type { ChangeKind, DiffCounts, InvalidKeyRow } from './types.js';

/**
 * The diff, written once for every warehouse: the model's rows are snapshotted into a run-scoped
 * table (key as text, a fingerprint of the mapped columns, the mapped values `v_<i>`), null and
 * duplicated keys are set apart, and the valid rows are compared with the activation's state by a
 * FULL OUTER JOIN on the key into a run-scoped delta table, delta rows only, ranked removed (0),
 * changed (1), refresh (2), added (3). When state holds nothing for the activation (a first load),
 * there is nothing to compare: every valid row is added, and the delta is read from the snapshot
 * itself. Only the delta crosses into Node, in batches. What differs
 * per warehouse (the key cast, the fingerprint, scratch tables, aggregating a member's stored
 * hashes, key order) comes from its hooks.
 *
 * The CREATE TABLE ... AS statements carry no parameters: values are literals (the activation id
 * is checked, literals are escaped by the compiler), which keeps BigQuery's DDL jobs free of
 * parameter restrictions and Snowflake's free of binds.
 */

/** What one diff compares. */
export interface DiffInput {
  activationId: string;
  modelName: string;
  /** The analyst's SQL: wrapped as `(<sql>\n) AS m` (src/sources/model-sql.ts), never otherwise rewritten. */
  modelSql: string;
  primaryKey: string;
  /** Mapped columns, in this order: fingerprinted (order-defined, null-safe) and carried in the delta. */
  columns: readonly string[];
  refreshBefore: Date | null;
  fullResync: boolean;
  /** Unique per diff, `[a-z0-9_]{1,32}`: names the run-scoped tables. */
  token: string;
}

/** One delta row as read back; src/diff/diff-run.ts turns it into a `DeltaRow`. */
export interface RawDeltaRow {
  key: string;
  /** The key's hash (decimal text) for an added member, where the diff knows it is unique; else null. */
  keyHash: string | null;
  change: ChangeKind;
  /** The mapped columns' values in `columns` order; null for removed members. Raw: never log. */
  values: unknown[] | null;
  fingerprint: string | null;
  /** The member's stored hashes; null for added members (an empty list when it has none). */
  previousHashes: MemberHashRow[] | null;
  /** The hashes of the member's uncleared intents; null when it has none. */
  pendingHashes: MemberHashRow[] | null;
}

/** Change kinds by the rank the delta table stores; the delta is read in this order. */
const CHANGE_BY_RANK = ['removed', 'changed', 'refresh', 'added'] as const;

/** Opens a diff: takes the snapshot and compares it; if that fails, drops what it made and rethrows. */
export async function openDiff(state: StateSql, input: DiffInput, logger: Logger): Promise<WarehouseDiff> {
  if (!/^[a-z0-9_]{1,32}$/.test(input.token)) throw new WarehouseError(`invalid diff token ${input.token}`);
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(input.activationId)) {
    throw new WarehouseError(`invalid activation id ${JSON.stringify(input.activationId)}`);
  }
  const session = await state.hooks.openSession();
  const diff = new WarehouseDiff(state, session, input, logger);
  try {
    await diff.prepare();
    return diff;
  } catch (error) {
    await diff.close();
    throw error;
  }
}

/**
 * A prepared diff: `tailor_snap_<token>`, `tailor_bad_<token>` and `tailor_delta_<token>` on its own
 * session, dropped by `close`. `invalidKeys` and `delta` are read one at a time, never nested
 * (diff-run.ts enforces it); state statements may run while a delta is being read, since they do
 * not use the diff's session.
 */
export class WarehouseDiff {
  counts: DiffCounts = {
    rows: 0,
    invalidKeys: 0,
    added: 0,
    removed: 0,
    changed: 0,
    refresh: 0,
    stateMembers: 0,
  };
  readonly #state: StateSql;
  readonly #session: WarehouseSession;
  readonly #input: DiffInput;
  readonly #logger: Logger;
  readonly #snap: RawBuilder<unknown>;
  readonly #bad: RawBuilder<unknown>;
  /** By key hash: null keys and key hashes more than one row carries (hash mode). */
  readonly #badHash: RawBuilder<unknown>;
  readonly #pend: RawBuilder<unknown>;
  readonly #delta: RawBuilder<unknown>;
  readonly #created: RawBuilder<unknown>[] = [];
  /** Whether any member of the activation has an uncleared intent (then the delta reads them). */
  #pending = false;
  /**
   * Whether state holds nothing for the activation (no member, no intent): a first load, or the first
   * run after `tailor state reset`. Then every valid snapshot row is added, and the delta is read from
   * the snapshot itself: no comparison, no delta table.
   */
  #firstLoad = false;
  /**
   * Whether the snapshot has a null or duplicated key (a row in `tailor_bad_<token>`). Nearly always
   * false, and then the reads of the snapshot skip the anti-join against that table, which probed an
   * empty hash table once per row: at 1M rows (PG 15, by hand) the comparison took 1.31 s with it and
   * 1.16 s without.
   */
  #anyInvalidKey = true;
  /**
   * Whether the segment is compared with state by key hash rather than by key digest (docs/state.md,
   * "Key hashes"): when every member has a key hash and no member has intents. Then the snapshot
   * computes no digest; only added members get theirs. Else (digest mode) the snapshot digests every
   * key, as before key hashes, and `settleKeyHashes` gives members theirs after the run's commits.
   */
  #hashMode = false;
  /** Whether some member lacked a key hash when the diff was taken. */
  #membersWithoutKeyHash = false;

  /** What the segment was compared with state by: the key hash, or (digest mode) the key's digest. */
  get keysCompared(): 'hash' | 'digest' {
    return this.#hashMode ? 'hash' : 'digest';
  }

  /** Whether the activation had uncleared intents when the diff was taken. */
  get hasIntents(): boolean {
    return this.#pending;
  }
  #closed = false;

  constructor(state: StateSql, session: WarehouseSession, input: DiffInput, logger: Logger) {
    this.#state = state;
    this.#session = session;
    this.#input = input;
    this.#logger = logger;
    this.#snap = state.hooks.scratchTable(`tailor_snap_${input.token}`);
    this.#bad = state.hooks.scratchTable(`tailor_bad_${input.token}`);
    this.#badHash = state.hooks.scratchTable(`tailor_badh_${input.token}`);
    this.#pend = state.hooks.scratchTable(`tailor_pend_${input.token}`);
    this.#delta = state.hooks.scratchTable(`tailor_delta_${input.token}`);
  }

  async #exec<R>(query: RawBuilder<R>, what: string): Promise<R[]> {
    const started = performance.now();
    try {
      return (await this.#state.hooks.run(what, () => query.execute(this.#session.db))).rows;
    } finally {
      this.#logger.debug({ step: what, ms: Math.round(performance.now() - started) }, 'diff step');
    }
  }

  /** Creates a scratch table (dropped by `close`). */
  async #create(table: RawBuilder<unknown>, select: RawBuilder<unknown>, what: string): Promise<void> {
    const { statements } = this.#state.hooks.createScratch(table, select);
    this.#created.push(table);
    for (const statement of statements) await this.#exec(statement, what);
  }

  async prepare(): Promise<void> {
    const hooks = this.#state.hooks;
    const { activationId } = this.#input;
    const id = (name: string) => sql.id(name);
    const key = id('member_key');
    const aid = hooks.literal(activationId, 'text');
    const members = this.#state.table('members');

    // Members with uncleared intents (requests sent whose acknowledgement was never committed):
    // nearly always none, and then the comparison below is the plain one.
    await this.#create(
      this.#pend,
      sql`select distinct ${key} from ${this.#state.table('member_intents')} where ${id('activation_id')} = ${aid}`,
      'finding members with intents',
    );
    // With it, whether the activation has any member at all, and whether any member lacks a key
    // hash (each one row looked for, by the key's prefix or an index of such members only), in the
    // same round trip: the snapshot's form depends on them.
    const [pendRow] = await this.#exec(
      sql<{ n: number | string; m: number | string; u: number | string }>`select count(*) as ${id('n')},
          (select count(*) from (select 1 as ${id('one')} from ${members}
                                 where ${id('activation_id')} = ${aid} limit 1) as ${id('x')}) as ${id('m')},
          (select count(*) from (select 1 as ${id('one')} from ${members}
                                 where ${id('activation_id')} = ${aid} and ${id('key_hash')} is null limit 1) as ${id('y')}) as ${id('u')}
        from ${this.#pend}`,
      'finding members with intents',
    );
    this.#pending = Number(pendRow?.n ?? 0) > 0;
    this.#firstLoad = !this.#pending && Number(pendRow?.m ?? 0) === 0;
    this.#membersWithoutKeyHash = Number(pendRow?.u ?? 1) > 0;
    // Intents name members by digest only: a member with intents is compared by digest.
    this.#hashMode = !this.#pending && !this.#membersWithoutKeyHash;

    let rowCount = await this.#snapshot();
    if (this.#hashMode && !(await this.#invalidKeysByHash())) {
      // Two different keys of the segment share a key hash: compare by digest this time (the
      // snapshot again, with every key's digest). Neither gets a key hash while both are there.
      this.#logger.info(
        { step: 'finding null and duplicated keys' },
        'two keys share a key hash: comparing the segment with state by key digest',
      );
      await this.#drop([this.#bad, this.#badHash, this.#snap]);
      this.#hashMode = false;
      rowCount = await this.#snapshot();
    }
    if (!this.#hashMode) await this.#invalidKeysByDigest();

    const rows =
      rowCount !== undefined ? sql.lit(Number(rowCount)) : sql`(select count(*) from ${this.#snap})`;
    const invalid = this.#anyInvalidKey
      ? sql`(select coalesce(sum(${id('n')}), 0) from ${this.#hashMode ? this.#badHash : this.#bad})`
      : sql.lit(0);
    if (this.#firstLoad) {
      const [totals] = await this.#exec(
        sql<Record<'row_count' | 'invalid', number | string>>`select ${rows} as ${id('row_count')},
            ${invalid} as ${id('invalid')}
          from (select 1 as ${id('one')}) as ${id('x')}`,
        'counting the diff',
      );
      const rowTotal = Number(totals?.row_count ?? 0);
      const invalidKeys = Number(totals?.invalid ?? 0);
      this.counts = {
        rows: rowTotal,
        invalidKeys,
        removed: 0,
        changed: 0,
        refresh: 0,
        added: rowTotal - invalidKeys,
        stateMembers: 0,
      };
      return;
    }

    await this.#create(
      this.#delta,
      this.#hashMode ? this.#comparisonByHash(aid) : this.#comparisonByDigest(aid),
      'comparing the segment with state',
    );

    // One scan of the delta for its ranks; the snapshot's rows from its INSERT where the warehouse
    // reports them (Postgres), else counted (BigQuery and Snowflake answer a table's count(*) from
    // its metadata).
    const rank = (n: number, name: string) =>
      sql`coalesce(sum(case when ${id('change_rank')} = ${sql.lit(n)} then 1 else 0 end), 0) as ${id(name)}`;
    const [totals] = await this.#exec(
      sql<
        Record<'row_count' | 'invalid' | 'removed' | 'changed' | 'refresh' | 'added', number | string>
      >`select
          ${rows} as ${id('row_count')},
          ${invalid} as ${id('invalid')},
          ${sql.ref('d.removed')}, ${sql.ref('d.changed')}, ${sql.ref('d.refresh')}, ${sql.ref('d.added')}
        from (select ${rank(0, 'removed')}, ${rank(1, 'changed')}, ${rank(2, 'refresh')}, ${rank(3, 'added')}
              from ${this.#delta}) as ${id('d')}`,
      'counting the diff',
    );
    const count = (name: 'row_count' | 'invalid' | 'removed' | 'changed' | 'refresh' | 'added') =>
      Number(totals?.[name] ?? 0);
    const counts = {
      rows: count('row_count'),
      invalidKeys: count('invalid'),
      removed: count('removed'),
      changed: count('changed'),
      refresh: count('refresh'),
      added: count('added'),
    };
    this.counts = {
      ...counts,
      // State's members, without a count over them: each of the snapshot's valid rows (a key of its
      // own) either matches one of them or is added (rank 3); the others are removed (rank 0). State
      // holds each key once (its primary key), and each key hash once.
      stateMembers: counts.rows - counts.invalidKeys - counts.added + counts.removed,
    };
  }

  /**
   * Takes the snapshot: each row's key hash, a fingerprint of the mapped columns and their values,
   * with the key itself (hash mode: its digest is computed for added members only) or its digest
   * (digest mode). The snapshot's row count, where the warehouse reports it.
   */
  async #snapshot(): Promise<bigint | undefined> {
    const hooks = this.#state.hooks;
    const { modelSql, modelName, primaryKey, columns } = this.#input;
    const id = (name: string) => sql.id(name);
    const m = (column: string) => sql.id('m', column);
    const values = sql.join(
      columns.map((column, i) => sql`, ${m(column)} as ${id(`v_${i}`)}`),
      sql``,
    );
    const text = hooks.keyText(m(primaryKey));
    // Hash mode keeps the key as the model returns it: its text is made again only where a digest
    // is needed, not twice for every row.
    const keyColumn = this.#hashMode
      ? sql`${m(primaryKey)} as ${id('key_value')}`
      : sql`${hooks.keyDigest(text)} as ${id('member_key')}`;
    const snapshot = sql`select ${keyColumn}, ${hooks.keyHash(text)} as ${id('key_hash')}, ${hooks.fingerprint(columns.map(m))} as ${id('fingerprint')}${values}
      from ${sql.raw(wrapModelSql(modelSql))} as m`;
    const started = performance.now();
    const { statements, rowsCounted } = hooks.createScratch(this.#snap, snapshot, { countRows: true });
    this.#created.push(this.#snap);
    let rowCount: bigint | undefined;
    try {
      // The last statement is the one that reads the model: it runs read-only (see readModel).
      for (const [i, statement] of statements.entries()) {
        const result =
          i === statements.length - 1
            ? await hooks.readModel(this.#session.db, statement)
            : await statement.execute(this.#session.db);
        rowCount = result.numAffectedRows;
      }
    } catch (error) {
      throw hooks.modelError(error, modelName);
    }
    this.#logger.debug(
      {
        step: 'snapshot',
        ms: Math.round(performance.now() - started),
        keys: this.#hashMode ? 'hash' : 'digest',
      },
      'diff step',
    );
    return rowsCounted ? rowCount : undefined;
  }

  /** Digest mode: null and duplicated keys by digest, as `tailor_bad_<token>`. */
  async #invalidKeysByDigest(): Promise<void> {
    this.#anyInvalidKey = await this.#nullOrShared(this.#bad, 'member_key');
  }

  /**
   * Into `table`: each value of the snapshot's `column` that is null or more than one row carries,
   * with its rows' count (`n`). Whether there is any.
   */
  async #nullOrShared(table: RawBuilder<unknown>, column: string): Promise<boolean> {
    const id = (name: string) => sql.id(name);
    const value = id(column);
    await this.#create(
      table,
      sql`select ${value}, count(*) as ${id('n')} from ${this.#snap}
        group by ${value} having ${value} is null or count(*) > 1`,
      'finding null and duplicated keys',
    );
    return this.#anyRow(table);
  }

  /**
   * Hash mode: null keys and key hashes more than one row carries (`tailor_badh_<token>`), unless a
   * unique index on the key hash says there are none (`uniqueIndex`: Postgres). Where there are any
   * (rarely), their rows are grouped by key as well (`tailor_bad_<token>`, with each key's digest,
   * for the invalid-key report). False when two different keys share a key hash.
   */
  async #invalidKeysByHash(): Promise<boolean> {
    const hooks = this.#state.hooks;
    const id = (name: string) => sql.id(name);
    const hash = id('key_hash');
    if (await this.#uniqueKeyHashes()) {
      this.#anyInvalidKey = false;
      return true;
    }
    this.#anyInvalidKey = await this.#nullOrShared(this.#badHash, 'key_hash');
    if (!this.#anyInvalidKey) return true;
    const g = (column: string) => sql.ref(`g.${column}`);
    await this.#create(
      this.#bad,
      sql`select ${g('key_hash')}, ${hooks.keyDigest(g('key_text'))} as ${id('member_key')}, ${g('n')}
        from (select ${sql.ref('s.key_hash')}, ${hooks.keyText(sql.ref('s.key_value'))} as ${id('key_text')}, count(*) as ${id('n')}
              from ${this.#snap} as ${id('s')}
              where ${sql.ref('s.key_hash')} in (select ${sql.ref('b.key_hash')} from ${this.#badHash} as ${id('b')})
              group by 1, 2) as ${id('g')}
        union all
        select ${hash}, null, ${id('n')} from ${this.#badHash} where ${hash} is null`,
      'finding null and duplicated keys',
    );
    const [row] = await this.#exec(
      sql<{ c: number | string }>`select count(*) as ${id('c')}
        from (select ${hash} from ${this.#bad} where ${hash} is not null group by ${hash} having count(*) > 1) as ${id('z')}`,
      'finding null and duplicated keys',
    );
    return Number(row?.c ?? 0) === 0;
  }

  /**
   * Where the warehouse builds unique indexes: whether every key hash of the snapshot is there and
   * held by one row, found by building a unique index on it (a duplicate fails the build) and looking
   * for a null through it. False sends the diff to the grouping, which also finds out which keys.
   */
  async #uniqueKeyHashes(): Promise<boolean> {
    const { uniqueIndex, duplicateKey } = this.#state.hooks;
    if (!uniqueIndex || !duplicateKey) return false;
    const id = (name: string) => sql.id(name);
    const what = 'finding null and duplicated keys';
    const started = performance.now();
    try {
      // Run as it is: the duplicate's error is read before it becomes a WarehouseError.
      await uniqueIndex(this.#snap, 'key_hash').execute(this.#session.db);
    } catch (error) {
      if (duplicateKey(error)) return false;
      return this.#state.hooks.run(what, () => Promise.reject(error));
    } finally {
      this.#logger.debug({ step: what, ms: Math.round(performance.now() - started) }, 'diff step');
    }
    return !(await this.#anyRow(this.#snap, sql`${id('key_hash')} is null`));
  }

  /** Whether a scratch table holds a row (where `condition` holds): one row looked for. */
  async #anyRow(table: RawBuilder<unknown>, condition?: RawBuilder<unknown>): Promise<boolean> {
    const id = (name: string) => sql.id(name);
    const where = condition ? sql` where ${condition}` : sql``;
    const [row] = await this.#exec(
      sql<{
        b: number | string;
      }>`select count(*) as ${id('b')} from (select 1 as ${id('one')} from ${table}${where} limit 1) as ${id('y')}`,
      'finding null and duplicated keys',
    );
    return Number(row?.b ?? 1) > 0;
  }

  /** Drops scratch tables made so far (to take them again). */
  async #drop(tables: readonly RawBuilder<unknown>[]): Promise<void> {
    for (const table of tables) {
      const at = this.#created.indexOf(table);
      if (at < 0) continue;
      await this.#exec(sql`drop table if exists ${table}`, 'dropping scratch tables');
      this.#created.splice(at, 1);
    }
  }

  /**
   * Digest mode's comparison: a FULL OUTER JOIN of the valid snapshot rows with the members (and,
   * where intents exist, the keys that have only intents) on the key's digest.
   */
  #comparisonByDigest(aid: RawBuilder<unknown>): RawBuilder<unknown> {
    const hooks = this.#state.hooks;
    const id = (name: string) => sql.id(name);
    const key = id('member_key');
    const members = this.#state.table('members');
    const s = (column: string) => sql.ref(`s.${column}`);
    const t = (column: string) => sql.ref(`t.${column}`);
    // State's side: the members, and, where intents exist, which of them have some (`pending`) and
    // the keys that have only intents (a member whose first Update's acknowledgement was never
    // committed), with no fingerprint. A member with intents is always in the delta; one with only
    // intents is `added` while in the segment, else `removed`.
    const stateSide = this.#pending
      ? sql`select ${sql.ref('sm.member_key')}, ${sql.ref('sm.fingerprint')}, ${sql.ref('sm.last_sent_at')},
              case when ${sql.ref('sp.member_key')} is null then 0 else 1 end as ${id('pending')}
            from ${members} as ${id('sm')} left join ${this.#pend} as ${id('sp')} on ${sql.ref('sp.member_key')} = ${sql.ref('sm.member_key')}
            where ${sql.ref('sm.activation_id')} = ${aid}
            union all
            select ${sql.ref('sp.member_key')}, ${hooks.literal(null, 'text')}, ${hooks.literal(null, 'timestamptz')}, 1
            from ${this.#pend} as ${id('sp')}
            where not exists (select 1 from ${members} as ${id('sm')}
                              where ${sql.ref('sm.activation_id')} = ${aid} and ${sql.ref('sm.member_key')} = ${sql.ref('sp.member_key')})`
      : sql`select ${key}, ${id('fingerprint')}, ${id('last_sent_at')}, 0 as ${id('pending')} from ${members}
            where ${id('activation_id')} = ${aid}`;
    return sql`select case when ${s('member_key')} is null then 0
                      when ${t('member_key')} is null or ${t('fingerprint')} is null then 3
                      when ${s('fingerprint')} <> ${t('fingerprint')} then 1 else 2 end as ${id('change_rank')},
               coalesce(${s('member_key')}, ${t('member_key')}) as ${key}, ${s('fingerprint')}${this.#valueColumns('s')}
        from (select * from ${this.#snap} as ${id('s0')} where ${this.#validKey('s0')}) as ${id('s')}
        full outer join (${stateSide}) as ${id('t')}
          on ${s('member_key')} = ${t('member_key')}
        where ${s('member_key')} is null or ${t('member_key')} is null or ${s('fingerprint')} <> ${t('fingerprint')}
           or ${t('pending')} = 1
           or ${this.#changedSince(t)}`;
  }

  /**
   * Hash mode's comparison: the same FULL OUTER JOIN on the key hash, which each valid snapshot row
   * and each member holds once. Only an added member's digest is computed. A segment row can meet a
   * member whose key is another with the same hash (that member left the segment): it is then taken
   * for that member, unchanged when its mapped values are the same (so are the identifiers), else
   * changed (the old ones deleted, the new ones added). The audience is exact either way.
   */
  #comparisonByHash(aid: RawBuilder<unknown>): RawBuilder<unknown> {
    const hooks = this.#state.hooks;
    const id = (name: string) => sql.id(name);
    const s = (column: string) => sql.ref(`s.${column}`);
    const t = (column: string) => sql.ref(`t.${column}`);
    return sql`select case when ${s('key_hash')} is null then 0
                      when ${t('key_hash')} is null then 3
                      when ${s('fingerprint')} <> ${t('fingerprint')} then 1 else 2 end as ${id('change_rank')},
               case when ${t('key_hash')} is null then ${hooks.keyDigest(hooks.keyText(s('key_value')))} else ${t('member_key')} end as ${id('member_key')},
               case when ${t('key_hash')} is null then ${s('key_hash')} end as ${id('key_hash')},
               ${s('fingerprint')}${this.#valueColumns('s')}
        from (select * from ${this.#snap} as ${id('s0')} where ${this.#validKey('s0')}) as ${id('s')}
        full outer join (select ${id('member_key')}, ${id('key_hash')}, ${id('fingerprint')}, ${id('last_sent_at')} from ${this.#state.table('members')}
                         where ${id('activation_id')} = ${aid}) as ${id('t')}
          on ${s('key_hash')} = ${t('key_hash')}
        where ${s('key_hash')} is null or ${t('key_hash')} is null or ${s('fingerprint')} <> ${t('fingerprint')}
           or ${this.#changedSince(t)}`;
  }

  /** A full resync, or a member last sent before the refresh horizon. */
  #changedSince(t: (column: string) => RawBuilder<unknown>): RawBuilder<unknown> {
    const hooks = this.#state.hooks;
    return sql`${hooks.literal(this.#input.fullResync, 'boolean')}
           or ${t('last_sent_at')} < ${hooks.literal(this.#input.refreshBefore, 'timestamptz')}`;
  }

  /** `, <alias>.v_0, <alias>.v_1, …`: the mapped values. */
  #valueColumns(alias: string): RawBuilder<unknown> {
    return sql.join(
      this.#input.columns.map((_, i) => sql`, ${sql.ref(`${alias}.v_${i}`)}`),
      sql``,
    );
  }

  /**
   * After the run's commits, in digest mode: gives each member the key hash of its snapshot row,
   * where no other row of the snapshot and no other member has it. Then the next run compares by
   * key hash, unless a member is left without one (its key hash is another's, or it was not in the
   * segment): that member keeps the next run in digest mode. Nothing to do in hash mode, where every
   * member had one and each added member was written with its own.
   */
  async settleKeyHashes(): Promise<void> {
    if (this.#closed) throw new WarehouseError('the diff was already closed');
    if (this.#hashMode || (!this.#membersWithoutKeyHash && this.counts.added === 0)) return;
    const hooks = this.#state.hooks;
    const id = (name: string) => sql.id(name);
    const aid = hooks.literal(this.#input.activationId, 'text');
    const members = this.#state.table('members');
    const s = (column: string) => sql.ref(`s.${column}`);
    // The target is named by its table name, not an alias: Snowflake's UPDATE takes none.
    const m = (column: string) => sql.id('members', column);
    await this.#exec(
      sql`update ${members} set ${id('key_hash')} = ${sql.ref('u.key_hash')}
        from (select ${s('member_key')}, ${s('key_hash')} from ${this.#snap} as ${id('s')}
              where ${s('key_hash')} in (select ${sql.ref('c.key_hash')} from ${this.#snap} as ${id('c')}
                                         group by ${sql.ref('c.key_hash')} having count(*) = 1)
                and not exists (select 1 from ${members} as ${id('o')}
                                where ${sql.ref('o.activation_id')} = ${aid} and ${sql.ref('o.key_hash')} = ${s('key_hash')})) as ${id('u')}
        where ${m('activation_id')} = ${aid} and ${m('member_key')} = ${sql.ref('u.member_key')}
          and ${m('key_hash')} is null`,
      'giving members their key hashes',
    );
  }

  async *#stream<R>(query: RawBuilder<R>, what: string, batchSize: number): AsyncGenerator<R[]> {
    if (this.#closed) throw new WarehouseError('the diff was already closed');
    const compiled = query.compile(this.#session.db);
    // Bounded memory: a cursor (Postgres: pg-cursor; PGlite: a WITH HOLD cursor), result pages
    // (BigQuery's jobs.getQueryResults) or result chunks (Snowflake), never the whole result.
    const chunk = Math.min(batchSize, this.#state.hooks.fetchSize);
    try {
      yield* this.#session.stream(compiled, chunk);
    } catch (error) {
      await this.#state.hooks.run(what, () => Promise.reject(error));
      throw error;
    }
  }

  /** Null keys (one row each) and duplicated keys (one row per key), in batches of ≤ `batchSize`. */
  async *invalidKeys(batchSize: number): AsyncIterable<InvalidKeyRow[]> {
    yield* rebatch(this.#invalidKeyPages(), batchSize, invalidKeysFromRow);
  }

  /**
   * Keyset pages rather than a cursor: the session stays free between pages, so a caller may read
   * the delta (which holds a cursor on this session) while it reads these.
   */
  async *#invalidKeyPages(): AsyncGenerator<{ member_key: string | null; n: number | string }[]> {
    if (this.#closed) throw new WarehouseError('the diff was already closed');
    // Hash mode makes the table of invalid keys by digest only when there are some.
    if (!this.#anyInvalidKey) return;
    const hooks = this.#state.hooks;
    const key = hooks.keyOrder(sql.id('member_key'));
    const size = hooks.fetchSize;
    let after: string | null = null;
    let first = true;
    for (;;) {
      const page: { member_key: string | null; n: number | string }[] = await this.#exec(
        sql<{ member_key: string | null; n: number | string }>`select ${sql.id('member_key')}, ${sql.id('n')}
          from ${this.#bad} ${first ? sql`` : sql`where ${key} > ${after}`}
          order by ${key} nulls first limit ${sql.lit(size)}`,
        'reading invalid keys',
      );
      first = false;
      yield page;
      for (const row of page) if (row.member_key !== null) after = row.member_key;
      if (page.length < size) break;
    }
  }

  /**
   * The delta ordered removed, changed, refresh, added (then by key, in code point order), in
   * batches of ≤ `batchSize`, with bounded memory. May be read more than once.
   */
  async *delta(batchSize: number): AsyncIterable<RawDeltaRow[]> {
    const hooks = this.#state.hooks;
    const columns = this.#input.columns;
    const query = this.#firstLoad ? this.#firstLoadDelta() : this.#deltaQuery();
    yield* rebatch(this.#stream(query, 'reading the delta', batchSize), batchSize, (row) => {
      const change = CHANGE_BY_RANK[Number(row.change_rank)]!;
      return [
        {
          key: String(row.member_key),
          keyHash: change === 'added' && row.key_hash != null ? String(row.key_hash) : null,
          change,
          values: change === 'removed' ? null : columns.map((_, i) => row[`v_${i}`] ?? null),
          fingerprint: change === 'removed' ? null : (row.fingerprint as string),
          previousHashes: change === 'added' ? null : hooks.parseHashes(row.previous_hashes),
          pendingHashes: this.#pending
            ? nonEmpty(unpackIntentHashes(hooks.parseHashes(row.pending_hashes)))
            : null,
        },
      ];
    });
  }

  /** Of the snapshot's rows (as `alias`), those whose key is neither null nor duplicated. */
  #validKey(alias: string): RawBuilder<unknown> {
    const column = this.#hashMode ? 'key_hash' : 'member_key';
    const key = sql.ref(`${alias}.${column}`);
    if (!this.#anyInvalidKey) return sql`${key} is not null`;
    return sql`${key} is not null
      and not exists (select 1 from ${this.#hashMode ? this.#badHash : this.#bad} as ${sql.id('b')} where ${sql.ref(`b.${column}`)} = ${key})`;
  }

  /** The delta's key hash column as read (decimal text: a driver may read a 64-bit integer inexactly). */
  #keyHashRead(alias: string): RawBuilder<unknown> {
    return this.#hashMode ? this.#state.hooks.keyText(sql.ref(`${alias}.key_hash`)) : sql`null`;
  }

  /** A first load's delta: the snapshot's rows with a valid key, every one added (rank 3). */
  #firstLoadDelta(): RawBuilder<Record<string, unknown>> {
    const hooks = this.#state.hooks;
    const s = (column: string) => sql.ref(`s.${column}`);
    // Hash mode digests each key here, once: the sort is by the output column, in key order.
    const key = this.#hashMode
      ? sql`${hooks.keyOrder(hooks.keyDigest(hooks.keyText(s('key_value'))))} as ${sql.id('member_key')}`
      : s('member_key');
    const order = this.#hashMode ? sql.id('member_key') : hooks.keyOrder(s('member_key'));
    return sql<
      Record<string, unknown>
    >`select ${sql.lit(3)} as ${sql.id('change_rank')}, ${key}, ${this.#keyHashRead('s')} as ${sql.id('key_hash')}, ${s('fingerprint')}${this.#valueColumns('s')}
      from ${this.#snap} as ${sql.id('s')} where ${this.#validKey('s')}
      order by ${order}`;
  }

  /** The delta table's rows with each member's stored hashes (and its intents', where some exist), ranked. */
  #deltaQuery(): RawBuilder<Record<string, unknown>> {
    const hooks = this.#state.hooks;
    const d = (column: string) => sql.ref(`d.${column}`);
    const aid = this.#input.activationId;
    const hashes = hooks.deltaHashes({
      hashes: this.#state.table('member_hashes'),
      delta: this.#delta,
      activationId: aid,
      name: 'h',
      skipAdded: true,
    });
    // The intents' hashes only when some member has intents: else no read of the intents at all.
    const pending = this.#pending
      ? hooks.deltaHashes({
          hashes: this.#state.table('member_intents'),
          delta: this.#delta,
          activationId: aid,
          name: 'p',
          skipAdded: false,
        })
      : { column: sql`null` };
    const withs = [hashes.with, pending.with].filter((w): w is RawBuilder<unknown> => w !== undefined);
    const order = (column: (name: string) => RawBuilder<unknown>) =>
      sql`order by ${column('change_rank')}, ${hooks.keyOrder(column('member_key'))}`;
    // Sorted first where the hook asks (see DeltaHashesSql.sortDeltaFirst): the outer order by is the
    // same, so the planner keeps the subquery's order and sorts nothing twice.
    const source = hashes.sortDeltaFirst
      ? sql`(select * from ${this.#delta} ${order((name) => sql.id(name))})`
      : this.#delta;
    return sql<Record<string, unknown>>`${withs.length > 0 ? sql`with ${sql.join(withs)} ` : sql``}select
        ${d('change_rank')}, ${d('member_key')}, ${this.#keyHashRead('d')} as ${sql.id('key_hash')}, ${d('fingerprint')}${this.#valueColumns('d')},
        ${hashes.column} as ${sql.id('previous_hashes')},
        ${pending.column} as ${sql.id('pending_hashes')}
      from ${source} as ${sql.id('d')} ${hashes.join ?? sql``} ${pending.join ?? sql``}
      ${order(d)}`;
  }

  /**
   * The hash rows state holds for the delta's removed, changed and refresh members (none on a first
   * load): at least the hashes X holds that the run's Deletes name, since a Delete names only a
   * member's stored hashes or what its unacknowledged requests named (the safety rule, before its
   * pass). One lookup of the member index per such member, where there is one.
   */
  async heldByDelta(): Promise<number> {
    if (this.#firstLoad) return 0;
    const id = (name: string) => sql.id(name);
    const aid = this.#state.hooks.literal(this.#input.activationId, 'text');
    const [row] = await this.#exec(
      sql<{ n: number | string }>`select count(*) as ${id('n')}
        from ${this.#delta} as ${id('d')}
        join ${this.#state.table('member_hashes')} as ${id('h')}
          on ${sql.ref('h.activation_id')} = ${aid} and ${sql.ref('h.member_key')} = ${sql.ref('d.member_key')}
        where ${sql.ref('d.change_rank')} <> ${sql.lit(3)}`,
      'counting the hashes the delta holds',
    );
    return Number(row?.n ?? 0);
  }

  /** Drops the run-scoped tables (one per statement: BigQuery drops one at a time) and the session. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      for (const table of this.#created.reverse()) {
        // A failure leaves the table to the session's end (temp tables) or its expiration (BigQuery).
        await sql`drop table if exists ${table}`.execute(this.#session.db).catch(() => undefined);
      }
    } finally {
      await this.#session.close();
    }
  }
}

function nonEmpty(rows: MemberHashRow[]): MemberHashRow[] | null {
  return rows.length > 0 ? rows : null;
}

/**
 * A row of the bad-keys table (a key and how many snapshot rows carry it) as invalid-key rows: each
 * null-key row on its own, a duplicated key once with its count. Lazy: a model may hold millions of
 * null keys.
 */
function* invalidKeysFromRow(row: {
  member_key: string | null;
  n: number | string;
}): Generator<InvalidKeyRow> {
  const n = Number(row.n);
  if (row.member_key === null) {
    for (let i = 0; i < n; i++) yield { key: null, reason: 'null_primary_key', rows: 1 };
  } else {
    yield { key: row.member_key, reason: 'duplicate_primary_key', rows: n };
  }
}

/**
 * Pages of rows as the warehouse streams them, re-cut into batches of `batchSize` items (the last
 * may be shorter), each row mapped to zero or more items. Pulls the next page only when needed.
 */
async function* rebatch<R, T>(
  pages: AsyncIterable<R[]>,
  batchSize: number,
  map: (row: R) => Iterable<T>,
): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const rows of pages) {
    for (const row of rows) {
      for (const item of map(row)) {
        batch.push(item);
        if (batch.length >= batchSize) {
          yield batch;
          batch = [];
        }
      }
    }
  }
  if (batch.length > 0) yield batch;
}
