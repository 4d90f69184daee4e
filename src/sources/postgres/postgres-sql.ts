import type { CompiledQuery, Kysely, RawBuilder } from 'kysely';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type {
  ActivationStatus,
  AudienceBinding,
  DiffCounts,
  InvalidKeyRow,
  RejectionRecord,
  RunRecord,
} from '../../diff/types.js';
import { errorMessage, ModelSqlError, WarehouseError } from '../../errors.js';
import { checkDiffToken, prepareOrClose } from '../warehouse-diff.js';
import {
  bindingFromRow,
  deltaFromRow,
  emptyCounts,
  invalidKeysFromRow,
  rebatch,
  runFromRow,
  statusFromRow,
  toDate,
  type BindingRow,
  type DeltaDbRow,
  type RunRow,
  type StatusRow,
} from '../warehouse-rows.js';
import type {
  HeldLock,
  MemberUpsert,
  WarehouseCapabilities,
  WarehouseDeltaRow,
  WarehouseDiff,
  WarehouseDiffInput,
  WarehouseRunFinish,
  WarehouseSql,
} from '../warehouse-sql.js';
import { textArrayLiteral } from './pg-array.js';
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js';

/** A dedicated connection: run-scoped temp tables, cursors and session-level advisory locks live on it. */
export interface PgSession {
  readonly db: Kysely<unknown>;
  /** Streams a query's rows over this session, `chunkSize` rows per round trip. */
  stream<R>(query: CompiledQuery<R>, chunkSize: number): AsyncIterable<R[]>;
  close(): Promise<void>;
}

/** `PgSession.stream` through Kysely's own streaming (the PGlite driver's WITH HOLD cursor). */
export async function* kyselyStream<R>(db: Kysely<unknown>, query: CompiledQuery<R>, chunkSize: number) {
  for await (const chunk of db.getExecutor().stream(query, chunkSize)) yield chunk.rows as R[];
}

export interface PostgresSqlOptions {
  /** Short statements (a pool on Postgres, the one backend on PGlite). */
  db: Kysely<unknown>;
  /** A connection held for a diff or a lock; never one of the pool's, so they cannot starve it. */
  openSession(): Promise<PgSession>;
  stateSchema: string;
  /** Rows per round trip when streaming (config `fetch_size`). */
  fetchSize: number;
  /**
   * `advisory`: `pg_try_advisory_lock` on a dedicated session (Postgres server). `in_process`: a mutex
   * in this process, for PGlite, where every "session" is the same backend and advisory locks would
   * be re-entrant; `scope` names the database (its data directory).
   */
  lock: { kind: 'advisory' } | { kind: 'in_process'; scope: string };
  logger: Logger;
}

/**
 * Session settings that decide how values render as text (`::text`, `json_build_array`): fixed so a
 * model's keys and fingerprints do not change with the server's or the role's defaults.
 * https://www.postgresql.org/docs/current/runtime-config-client.html#RUNTIME-CONFIG-CLIENT-FORMAT
 */
export const SESSION_SETTINGS = `select set_config('TimeZone', 'UTC', false), set_config('DateStyle', 'ISO, YMD', false),
  set_config('IntervalStyle', 'postgres', false), set_config('extra_float_digits', '1', false)`;

/** Change kinds by the rank the delta table stores; the delta is read in this order. */

/** Mutexes of `in_process` locks, by scope, schema and activation. */
const inProcessLocks = new Set<string>();

/**
 * The WarehouseSql of Postgres, serving both a Postgres server and PGlite (PG 18 inside): all SQL
 * here stays within what PG 15 supports, so one SQL path serves both. Everything runs through
 * Kysely (`sql` templates compiled by its Postgres compiler), identifiers quoted with `sql.id`.
 */
export class PostgresWarehouseSql implements WarehouseSql {
  readonly capabilities: WarehouseCapabilities;
  readonly stateSchema: string;
  readonly #db: Kysely<unknown>;
  readonly #options: PostgresSqlOptions;
  #migrated = false;

  constructor(options: PostgresSqlOptions) {
    this.#options = options;
    this.#db = options.db;
    this.stateSchema = options.stateSchema;
    this.capabilities = {
      lockKind: options.lock.kind,
      lockPollMs: 250,
      // unnest() of array parameters: one statement whatever the row count; bound the batch anyway.
      maxRowsPerStatement: 10_000,
      maxHashesPerLookup: 10_000,
      transactions: true,
    };
  }

  #t(table: string): RawBuilder<unknown> {
    return sql.id(this.stateSchema, table);
  }

  async #run<R>(query: RawBuilder<R>, what: string, db: Kysely<unknown> = this.#db): Promise<R[]> {
    try {
      const result = await query.execute(db);
      return result.rows;
    } catch (error) {
      throw warehouseError(error, what);
    }
  }

  // --- migrations ---------------------------------------------------------------------------------

  async migrate(): Promise<void> {
    if (this.#migrated) return;
    const latest = POSTGRES_MIGRATIONS.at(-1)!.version;
    if ((await this.#appliedVersion(this.#db)) >= latest) {
      this.#migrated = true;
      return;
    }
    try {
      await this.#db.transaction().execute(async (trx) => {
        // Serializes concurrent migrations across processes: CREATE SCHEMA IF NOT EXISTS alone races.
        // https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADVISORY-LOCKS
        await sql`select pg_advisory_xact_lock(hashtext(${`tailor_migrate:${this.stateSchema}`}))`.execute(
          trx,
        );
        await sql`create schema if not exists ${sql.id(this.stateSchema)}`.execute(trx);
        await sql`create table if not exists ${this.#t('tailor_migrations')} (
          version integer primary key,
          name text not null,
          applied_at timestamptz not null default now()
        )`.execute(trx);
        const done = new Set(
          (
            await sql<{ version: number }>`select version from ${this.#t('tailor_migrations')}`.execute(trx)
          ).rows.map((row) => row.version),
        );
        for (const migration of POSTGRES_MIGRATIONS) {
          if (done.has(migration.version)) continue;
          for (const statement of migration.statements(this.stateSchema)) await statement.execute(trx);
          await sql`insert into ${this.#t('tailor_migrations')} (version, name)
            values (${migration.version}, ${migration.name})`.execute(trx);
          this.#options.logger.info(
            { stateSchema: this.stateSchema, version: migration.version },
            `state migration ${migration.version} (${migration.name}) applied`,
          );
        }
      });
    } catch (error) {
      throw warehouseError(error, `migrating the state schema ${this.stateSchema}`);
    }
    this.#migrated = true;
  }

  async #appliedVersion(db: Kysely<unknown>): Promise<number> {
    const rows = await this.#run(
      sql<{
        exists: boolean;
      }>`select to_regclass(${`${quoteIdent(this.stateSchema)}.tailor_migrations`}) is not null as exists`,
      'reading the state schema version',
      db,
    );
    if (!rows[0]?.exists) return 0;
    const versions = await this.#run(
      sql<{ version: number | null }>`select max(version) as version from ${this.#t('tailor_migrations')}`,
      'reading the state schema version',
      db,
    );
    return versions[0]?.version ?? 0;
  }

  // --- locks --------------------------------------------------------------------------------------

  async tryLock(activationId: string): Promise<HeldLock | null> {
    const lock = this.#options.lock;
    if (lock.kind === 'in_process') {
      const name = `${lock.scope}\u0000${this.stateSchema}\u0000${activationId}`;
      if (inProcessLocks.has(name)) return null;
      inProcessLocks.add(name);
      let held = true;
      return {
        release: async () => {
          if (held) inProcessLocks.delete(name);
          held = false;
        },
      };
    }
    // A session-level advisory lock on a dedicated connection: it lasts until released or until the
    // connection ends, so a killed process never leaves it behind.
    // https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS
    const session = await this.#openSession();
    const keys = sql`hashtext(${`tailor:${this.stateSchema}`}), hashtext(${activationId})`;
    let acquired = false;
    try {
      const rows = await this.#run(
        sql<{ locked: boolean }>`select pg_try_advisory_lock(${keys}) as locked`,
        `taking the lock of activation ${activationId}`,
        session.db,
      );
      acquired = rows[0]?.locked === true;
    } finally {
      if (!acquired) await session.close();
    }
    if (!acquired) return null;
    let held = true;
    return {
      release: async () => {
        if (!held) return;
        held = false;
        try {
          await sql`select pg_advisory_unlock(${keys})`.execute(session.db);
        } catch (error) {
          // Closing the session below releases the lock anyway.
          this.#options.logger.warn(
            { err: errorMessage(error) },
            'advisory unlock failed; closing its session',
          );
        } finally {
          await session.close();
        }
      },
    };
  }

  async #openSession(): Promise<PgSession> {
    try {
      return await this.#options.openSession();
    } catch (error) {
      throw warehouseError(error, 'opening a warehouse session');
    }
  }

  // --- bindings -----------------------------------------------------------------------------------

  async getBinding(activationId: string): Promise<AudienceBinding | undefined> {
    const rows = await this.#run(
      sql<
        BindingRow<Date | string>
      >`select activation_id, destination, account_id, audience_id, audience_name, bound_at
        from ${this.#t('bindings')} where activation_id = ${activationId}`,
      'reading a binding',
    );
    return rows[0] && bindingFromRow(rows[0], toDate);
  }

  async saveBinding(binding: AudienceBinding): Promise<void> {
    await this.#run(
      sql`insert into ${this.#t('bindings')} (activation_id, destination, account_id, audience_id, audience_name, bound_at)
        values (${binding.activationId}, ${binding.destination}, ${binding.accountId}, ${binding.audienceId},
                ${binding.audienceName}, ${binding.boundAt})
        on conflict (activation_id) do update set destination = excluded.destination,
          account_id = excluded.account_id, audience_id = excluded.audience_id,
          audience_name = excluded.audience_name, bound_at = excluded.bound_at`,
      'saving a binding',
    );
  }

  async deleteBinding(activationId: string): Promise<void> {
    await this.#run(
      sql`delete from ${this.#t('bindings')} where activation_id = ${activationId}`,
      'deleting a binding',
    );
  }

  // --- member state -------------------------------------------------------------------------------

  async memberCount(activationId: string): Promise<number> {
    const rows = await this.#run(
      sql<{
        n: string;
      }>`select count(*) as n from ${this.#t('members')} where activation_id = ${activationId}`,
      'counting members',
    );
    return Number(rows[0]?.n ?? 0);
  }

  async deleteAllMembers(activationId: string): Promise<void> {
    try {
      await this.#db.transaction().execute(async (trx) => {
        await sql`delete from ${this.#t('member_hashes')} where activation_id = ${activationId}`.execute(trx);
        await sql`delete from ${this.#t('members')} where activation_id = ${activationId}`.execute(trx);
      });
    } catch (error) {
      throw warehouseError(error, 'forgetting members');
    }
  }

  async applyMemberChanges(
    activationId: string,
    changes: { upserts: readonly MemberUpsert[]; removals: readonly string[] },
  ): Promise<void> {
    const { upserts, removals } = changes;
    if (upserts.length === 0 && removals.length === 0) return;
    // Hash rows are written as a difference where the member's previous rows are known: a changed
    // member usually changes one identifier of several, and a refreshed one none, so rewriting them
    // all cost 2 of every 3 row writes (and a full resync rewrote every row). Rows to insert are
    // deleted first as well, so committing the same acks twice still leaves one row each.
    const replaced = [...removals];
    const pairKeys: string[] = [];
    const pairTypes: string[] = [];
    const pairHashes: string[] = [];
    const inserts: (readonly [string, string, string])[] = [];
    for (const upsert of upserts) {
      // No previous rows (an added member): delete by key, not pair by pair. Both keep a second commit
      // of the same acks harmless, but a pair costs a probe of the hash index and a key one probe of
      // the member index: for a 10,000-member batch at 1M members, 296 ms against under 50 ms.
      if (upsert.previousHashes === undefined || upsert.previousHashes.length === 0) {
        replaced.push(upsert.key);
        for (const h of upsert.hashes) inserts.push([upsert.key, h.idType, h.hash]);
        continue;
      }
      const before = new Set(upsert.previousHashes.map((h) => `${h.idType}:${h.hash}`));
      const after = new Set(upsert.hashes.map((h) => `${h.idType}:${h.hash}`));
      for (const h of upsert.previousHashes) {
        if (after.has(`${h.idType}:${h.hash}`)) continue;
        pairKeys.push(upsert.key);
        pairTypes.push(h.idType);
        pairHashes.push(h.hash);
      }
      for (const h of upsert.hashes) {
        if (before.has(`${h.idType}:${h.hash}`)) continue;
        pairKeys.push(upsert.key);
        pairTypes.push(h.idType);
        pairHashes.push(h.hash);
        inserts.push([upsert.key, h.idType, h.hash]);
      }
    }
    try {
      // Array parameters with unnest(): one statement per table whatever the batch size (textArray).
      // https://www.postgresql.org/docs/current/functions-array.html
      await this.#db.transaction().execute(async (trx) => {
        if (replaced.length > 0) {
          await sql`delete from ${this.#t('member_hashes')}
            where activation_id = ${activationId} and member_key = any(${textArray(replaced)})`.execute(trx);
        }
        if (pairKeys.length > 0) {
          await sql`delete from ${this.#t('member_hashes')} h
            using unnest(${textArray(pairKeys)}, ${textArray(pairTypes)}, ${textArray(pairHashes)}) as u(k, t, h)
            where h.activation_id = ${activationId} and h.member_key = u.k and h.id_type = u.t
              and h.hash = u.h`.execute(trx);
        }
        if (removals.length > 0) {
          await sql`delete from ${this.#t('members')}
            where activation_id = ${activationId} and member_key = any(${textArray(removals)})`.execute(trx);
        }
        if (upserts.length > 0) {
          await sql`insert into ${this.#t('members')} as s (activation_id, member_key, fingerprint, last_sent_at, updated_at)
            select ${activationId}, u.k, u.f, u.s, now()
            from unnest(${textArray(upserts.map((u) => u.key))},
                        ${textArray(upserts.map((u) => u.fingerprint))},
                        ${textArrayLiteral(upserts.map((u) => u.lastSentAt?.toISOString() ?? null))}::timestamptz[]) as u(k, f, s)
            on conflict (activation_id, member_key) do update set fingerprint = excluded.fingerprint,
              last_sent_at = coalesce(excluded.last_sent_at, s.last_sent_at), updated_at = excluded.updated_at`.execute(
            trx,
          );
        }
        if (inserts.length > 0) {
          await sql`insert into ${this.#t('member_hashes')} (activation_id, member_key, id_type, hash)
            select ${activationId}, u.k, u.t, u.h
            from unnest(${textArray(inserts.map((r) => r[0]))}, ${textArray(inserts.map((r) => r[1]))},
                        ${textArray(inserts.map((r) => r[2]))}) as u(k, t, h)`.execute(trx);
        }
      });
    } catch (error) {
      throw warehouseError(error, 'committing acknowledged members');
    }
  }

  async hashesHeldByOthers(
    activationId: string,
    hashes: readonly string[],
    excludingKeys: readonly string[],
  ): Promise<string[]> {
    if (hashes.length === 0) return [];
    const rows = await this.#run(
      // `not in (select unnest(...))` is a hashed subplan; `<> all(array)` compared every matching
      // row with every excluded key (10,000 x 10,000 comparisons: 300 ms of a 1M-member run).
      sql<{ hash: string }>`select distinct hash from ${this.#t('member_hashes')}
        where activation_id = ${activationId} and hash = any(${textArray(hashes)})
          and member_key not in (select unnest(${textArray(excludingKeys)}))`,
      'looking up shared identifiers',
    );
    return rows.map((row) => row.hash);
  }

  // --- the diff -----------------------------------------------------------------------------------

  async openDiff(input: WarehouseDiffInput): Promise<WarehouseDiff> {
    checkDiffToken(input.token);
    const session = await this.#openSession();
    const logger = this.#options.logger.child({ activation: input.activationId });
    return prepareOrClose(new PostgresDiff(this, session, input, this.#options.fetchSize, logger));
  }

  /** @internal for PostgresDiff */
  table(name: string): RawBuilder<unknown> {
    return this.#t(name);
  }

  // --- run log and rejections ---------------------------------------------------------------------

  async insertRun(run: { id: string; activationId: string; startedAt: Date }): Promise<void> {
    await this.#run(
      sql`insert into ${this.#t('runs')} (run_id, activation_id, started_at, status)
        values (${run.id}, ${run.activationId}, ${run.startedAt}, 'running')`,
      'recording a run',
    );
  }

  async finishRun(runId: string, result: WarehouseRunFinish): Promise<void> {
    const c = result.counts;
    await this.#run(
      sql`update ${this.#t('runs')} set finished_at = ${result.finishedAt}, status = ${result.status},
          rows = ${c.rows}, added = ${c.added}, removed = ${c.removed}, changed = ${c.changed},
          refreshed = ${c.refreshed}, invalid = ${c.invalid}, rejected = ${c.rejected}, requests = ${c.requests},
          error = ${result.error}, cost = ${result.cost === null ? null : JSON.stringify(result.cost)}::jsonb
        where run_id = ${runId}`,
      'recording the end of a run',
    );
  }

  async listRuns(options: { activationId?: string; limit: number }): Promise<RunRecord[]> {
    const where =
      options.activationId === undefined ? sql`true` : sql`activation_id = ${options.activationId}`;
    const rows = await this.#run(
      sql<
        RunRow<Date | string, Record<string, unknown> | null>
      >`select run_id, activation_id, started_at, finished_at, status, rows, added, removed, changed,
          refreshed, invalid, rejected, requests, error, cost
        from ${this.#t('runs')} where ${where}
        order by started_at desc, run_id desc limit ${options.limit}`,
      'listing runs',
    );
    // jsonb comes back parsed.
    return rows.map((row) => runFromRow(row, { date: toDate, cost: (cost) => cost }));
  }

  async insertRejections(
    runId: string,
    activationId: string,
    rows: readonly RejectionRecord[],
  ): Promise<void> {
    if (rows.length === 0) return;
    await this.#run(
      sql`insert into ${this.#t('rejections')} (run_id, activation_id, member_key, identifier_type, reason)
        select ${runId}, ${activationId}, u.k, u.t, u.r
        from unnest(${textArray(rows.map((r) => r.memberKey))},
                    ${textArray(rows.map((r) => r.identifierType))},
                    ${textArray(rows.map((r) => r.reason))}) as u(k, t, r)`,
      'recording rejections',
    );
  }

  // --- scheduler bookkeeping ----------------------------------------------------------------------

  async getActivationStatus(activationId: string): Promise<ActivationStatus | undefined> {
    const rows = await this.#run(
      sql<
        StatusRow<Date | string>
      >`select * from ${this.#t('activation_status')} where activation_id = ${activationId}`,
      'reading activation status',
    );
    return rows[0] && statusFromRow(rows[0], toDate);
  }

  async setActivationStatus(status: ActivationStatus): Promise<void> {
    await this.#run(
      sql`insert into ${this.#t('activation_status')}
          (activation_id, consecutive_failures, paused_at, paused_reason, config_fingerprint, updated_at)
        values (${status.activationId}, ${status.consecutiveFailures}, ${status.pausedAt}::timestamptz,
                ${status.pausedReason}::text, ${status.configFingerprint}::text, ${status.updatedAt})
        on conflict (activation_id) do update set consecutive_failures = excluded.consecutive_failures,
          paused_at = excluded.paused_at, paused_reason = excluded.paused_reason,
          config_fingerprint = excluded.config_fingerprint, updated_at = excluded.updated_at`,
      'saving activation status',
    );
  }

  async listActivationStatus(): Promise<ActivationStatus[]> {
    const rows = await this.#run(
      sql<StatusRow<Date | string>>`select * from ${this.#t('activation_status')} order by activation_id`,
      'listing activation status',
    );
    return rows.map((row) => statusFromRow(row, toDate));
  }
}

/**
 * One diff on its own session: `tailor_snap_<token>` (the model's rows: key as text, fingerprint,
 * mapped values), `tailor_bad_<token>` (null and duplicated keys) and `tailor_delta_<token>` (the
 * FULL OUTER JOIN against state, delta rows only), all temp tables of the session.
 */
class PostgresDiff implements WarehouseDiff {
  counts: DiffCounts = emptyCounts();
  readonly #owner: PostgresWarehouseSql;
  readonly #session: PgSession;
  readonly #input: WarehouseDiffInput;
  readonly #fetchSize: number;
  readonly #snap: RawBuilder<unknown>;
  readonly #bad: RawBuilder<unknown>;
  readonly #delta: RawBuilder<unknown>;
  #closed = false;

  readonly #logger: Logger;

  constructor(
    owner: PostgresWarehouseSql,
    session: PgSession,
    input: WarehouseDiffInput,
    fetchSize: number,
    logger: Logger,
  ) {
    this.#owner = owner;
    this.#logger = logger;
    this.#session = session;
    this.#input = input;
    this.#fetchSize = fetchSize;
    this.#snap = sql.id(`tailor_snap_${input.token}`);
    this.#bad = sql.id(`tailor_bad_${input.token}`);
    this.#delta = sql.id(`tailor_delta_${input.token}`);
  }

  async #exec<R>(query: RawBuilder<R>, what: string): Promise<R[]> {
    const started = performance.now();
    try {
      return (await query.execute(this.#session.db)).rows;
    } catch (error) {
      throw warehouseError(error, what);
    } finally {
      this.#logger.debug({ step: what, ms: Math.round(performance.now() - started) }, 'diff step');
    }
  }

  async prepare(): Promise<void> {
    const { modelSql, modelName, primaryKey, columns, activationId } = this.#input;
    const m = (column: string) => sql.id('m', column);
    const values = columns.map((column, i) => sql`${m(column)} as ${sql.id(`v_${i}`)}`);
    // The fingerprint: a 64-bit hash of a JSON array of the mapped values in `columns` order. JSON
    // keeps nulls apart from the text 'null' and each value's type apart (1 vs '1'), so it is
    // null-safe and order-defined; the same values of the same types always render the same text.
    // hashtextextended (the hash of hash partitioning, stable across versions) rather than md5:
    // measured on 1M rows, md5 added 0.9 s to the snapshot, hashtextextended 0.08 s. A fingerprint is
    // only ever compared with the same member's previous one, so 64 bits make a missed change a
    // 2^-64 event. https://www.postgresql.org/docs/current/functions-string.html
    const fingerprint = sql`to_hex(hashtextextended(json_build_array(${sql.join(columns.map(m))})::text, 0))`;
    const snapshot = sql`select (${m(primaryKey)})::text as member_key, ${fingerprint} as fingerprint
          ${sql.join(
            values.map((v) => sql`, ${v}`),
            sql``,
          )}
        from (${sql.raw(modelSql)}) as m`;
    const started = performance.now();
    let rowCount: bigint | undefined;
    try {
      // Created empty, then filled by an INSERT: an INSERT reports its row count, which spares a
      // count(*) over the whole snapshot (a full scan: 0.1 s per 1M rows here).
      await sql`create temp table ${this.#snap} as ${snapshot} with no data`.execute(this.#session.db);
      rowCount = (await sql`insert into ${this.#snap} ${snapshot}`.execute(this.#session.db)).numAffectedRows;
    } catch (error) {
      throw modelError(error, modelName);
    }
    this.#logger.debug({ step: 'snapshot', ms: Math.round(performance.now() - started) }, 'diff step');
    const t = this.#owner.table.bind(this.#owner);
    const valueRefs = columns.map((_, i) => sql`, s.${sql.id(`v_${i}`)}`);
    await this.#exec(
      sql`create temp table ${this.#bad} as select member_key, count(*)::bigint as n from ${this.#snap}
        group by member_key having member_key is null or count(*) > 1`,
      'finding null and duplicated keys',
    );
    await this.#exec(
      sql`create temp table ${this.#delta} as
        select case when s.member_key is null then 0 when t.member_key is null then 3
                    when s.fingerprint <> t.fingerprint then 1 else 2 end as change_rank,
               coalesce(s.member_key, t.member_key) as member_key, s.fingerprint
               ${sql.join(valueRefs, sql``)}
        from (select * from ${this.#snap} s0 where s0.member_key is not null
                and not exists (select 1 from ${this.#bad} b where b.member_key = s0.member_key)) s
        full join (select member_key, fingerprint, last_sent_at from ${t('members')}
                   where activation_id = ${activationId}) t on s.member_key = t.member_key
        where s.member_key is null or t.member_key is null or s.fingerprint <> t.fingerprint
           or ${this.#input.fullResync}::boolean or t.last_sent_at < ${this.#input.refreshBefore}::timestamptz`,
      'comparing the segment with state',
    );
    const [totals] = await this.#exec(
      sql<{ rows: string; invalid: string }>`select
          ${rowCount === undefined ? sql`(select count(*) from ${this.#snap})` : sql`${String(rowCount)}::bigint`} as rows,
          (select coalesce(sum(n), 0) from ${this.#bad}) as invalid`,
      'counting the diff',
    );
    const byRank = await this.#exec(
      sql<{
        change_rank: number;
        n: string;
      }>`select change_rank, count(*) as n from ${this.#delta} group by change_rank`,
      'counting the diff',
    );
    const count = (rank: number) => Number(byRank.find((r) => r.change_rank === rank)?.n ?? 0);
    const rows = Number(totals?.rows ?? 0);
    const invalidKeys = Number(totals?.invalid ?? 0);
    this.counts = {
      rows,
      invalidKeys,
      removed: count(0),
      changed: count(1),
      refresh: count(2),
      added: count(3),
      // State's members, without a count over them: each of the snapshot's valid rows (a key of its
      // own) either matches one of them or is added (rank 3); the others are removed (rank 0). State
      // holds each key once (its primary key).
      stateMembers: rows - invalidKeys - count(3) + count(0),
    };
  }

  async *#stream<R>(query: RawBuilder<R>, what: string): AsyncGenerator<R[]> {
    if (this.#closed) throw new WarehouseError('the diff was already closed');
    const compiled = query.compile(this.#session.db);
    try {
      // pg-cursor (Postgres) or a WITH HOLD cursor (PGlite): `fetchSize` rows per round trip, never
      // the whole result in memory.
      yield* this.#session.stream(compiled, this.#fetchSize);
    } catch (error) {
      throw warehouseError(error, what);
    }
  }

  async *invalidKeys(batchSize: number): AsyncIterable<InvalidKeyRow[]> {
    yield* rebatch(this.#invalidKeyPages(), batchSize, invalidKeysFromRow);
  }

  /**
   * Keyset pages rather than a cursor: the session stays free between pages, so a caller may read
   * the delta (which holds a cursor on this session) while it reads these.
   */
  async *#invalidKeyPages(): AsyncGenerator<{ member_key: string | null; n: string }[]> {
    let after: string | null = null;
    let first = true;
    for (;;) {
      const page: { member_key: string | null; n: string }[] = await this.#exec(
        sql<{ member_key: string | null; n: string }>`select member_key, n from ${this.#bad}
          where ${first ? sql`true` : sql`member_key collate "C" > ${after}`}
          order by member_key collate "C" nulls first limit ${this.#fetchSize}`,
        'reading invalid keys',
      );
      first = false;
      yield page;
      for (const row of page) if (row.member_key !== null) after = row.member_key;
      if (page.length < this.#fetchSize) break;
    }
  }

  async *delta(batchSize: number): AsyncIterable<WarehouseDeltaRow[]> {
    const columns = this.#input.columns;
    const t = this.#owner.table.bind(this.#owner);
    const values = columns.map((_, i) => sql`, d.${sql.id(`v_${i}`)}`);
    const query = sql<
      DeltaDbRow<[string, string][] | string | null>
    >`select d.change_rank, d.member_key, d.fingerprint ${sql.join(values, sql``)},
        case when d.change_rank <> 3 then coalesce(
          (select json_agg(json_build_array(h.id_type, h.hash) order by h.id_type, h.hash)
           from ${t('member_hashes')} h
           where h.activation_id = ${this.#input.activationId} and h.member_key = d.member_key),
          '[]'::json) end as previous_hashes
      from ${this.#delta} d order by d.change_rank, d.member_key collate "C"`;
    // previous_hashes is null exactly for rank 3 (added), as deltaFromRow expects.
    yield* rebatch(this.#stream(query, 'reading the delta'), batchSize, (row) => [
      deltaFromRow(row, columns, (hashes) =>
        parseJson<[string, string][]>(hashes).map(([idType, hash]) => ({ idType, hash })),
      ),
    ]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await sql`drop table if exists ${this.#delta}, ${this.#bad}, ${this.#snap}`.execute(this.#session.db);
    } catch {
      // The session ends below, which drops its temp tables anyway.
    } finally {
      await this.#session.close();
    }
  }
}

function parseJson<T>(value: unknown): T {
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}

/**
 * A `text[]` parameter sent as the text of one array literal, not built element by element by
 * node-postgres (see textArrayLiteral).
 */
function textArray(values: readonly (string | null)[]): RawBuilder<unknown> {
  return sql`${textArrayLiteral(values)}::text[]`;
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Postgres SQLSTATE classes that mean the warehouse, not the model, failed. */
const WAREHOUSE_STATE = /^(08|28|3D|53|54|57|58|XX)/;

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * The driver's error, reduced to what may be shown: message and SQLSTATE. PGlite's errors carry the
 * statement's `params` (keys, hashes) and Postgres' a `detail` that may quote values; neither may
 * reach a log. Data exceptions (SQLSTATE classes 22, 23) quote the offending value in the message
 * itself, e.g. `invalid input syntax for type integer: "jane@example.com"`, so those quotes are
 * redacted too. https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function safeDriverError(error: unknown): Error {
  const code = sqlState(error);
  let message = errorMessage(error);
  if (code?.startsWith('22') || code?.startsWith('23')) message = message.replace(/"(?:[^"]|"")*"/g, '"…"');
  const safe = new Error(message);
  safe.name = error instanceof Error ? error.name : 'Error';
  if (code !== undefined) Object.assign(safe, { code });
  return safe;
}

/** A warehouse failure with a hint, carrying neither parameters nor values. */
export function warehouseError(error: unknown, what: string): WarehouseError | ModelSqlError {
  if (error instanceof WarehouseError || error instanceof ModelSqlError) return error;
  const code = sqlState(error);
  const safe = safeDriverError(error);
  let hint = 'check that the warehouse is reachable and the state schema is usable';
  if (code === '42501') hint = 'grant the warehouse user the privileges Tailor needs (see docs/state.md)';
  else if (code?.startsWith('28')) hint = 'check the warehouse credentials in tailor.yml';
  else if (code?.startsWith('08') || code === undefined)
    hint = 'check the warehouse URL and that the server is running';
  return new WarehouseError(`${what} failed: ${safe.message}`, { cause: safe, hint });
}

/** A failure of the model's own SQL, unless it is the connection or permissions. */
export function modelError(error: unknown, modelName: string): Error {
  const code = sqlState(error);
  if (code === undefined || WAREHOUSE_STATE.test(code) || code === '42501') {
    return warehouseError(error, `snapshotting model ${modelName}`);
  }
  const safe = safeDriverError(error);
  return new ModelSqlError(modelName, safe.message, {
    cause: safe,
    hint: `run models/${modelName}.sql in the warehouse to see the error; Tailor runs it unchanged`,
  });
}
