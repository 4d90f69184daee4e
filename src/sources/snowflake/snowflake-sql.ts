import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type RawBuilder } from 'kysely';
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
import { leasedLock } from '../lease-lock.js';
import { RunCostMarks } from '../run-cost.js';
import {
  checkDiffToken,
  checkLiteralActivationId,
  prepareOrClose,
  queryRows,
  streamRows,
} from '../warehouse-diff.js';
import { asWarehouseError, causes } from '../warehouse-errors.js';
import {
  bindingFromRow,
  costFromJson,
  countsFromRow,
  dedupeHashes,
  deltaFromRow,
  emptyCounts,
  fromEpochMs,
  invalidKeysFromRow,
  rebatch,
  runFromRow,
  statusFromRow,
  type BindingRow,
  type CountRow,
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

export interface SnowflakeSqlOptions {
  /** Kysely over SnowflakeDialect (one session). */
  db: Kysely<unknown>;
  /** The state schema, inside the connection's database. */
  schema: string;
  logger: Logger;
  /** How long a lock row stays valid without renewal; renewed every third of it while held. */
  leaseMs?: number;
  /** Query ids since `mark` (SnowflakeExecutor.summary) and the current mark, for the run log. */
  costSince?: (mark: number) => Record<string, unknown>;
  costMark?: () => number;
}

/**
 * The WarehouseSql of Snowflake. Statements are Kysely `sql` templates compiled by
 * SnowflakeQueryCompiler: identifiers are sent quoted in their stored upper-case form, because
 * Snowflake upper-cases unquoted names (`tailor.members` is TAILOR.MEMBERS, and a model's
 * `select email` returns EMAIL): https://docs.snowflake.com/en/sql-reference/identifiers-syntax
 *
 * - Run-scoped snapshot and delta tables are TEMPORARY tables of the session (dropped with it).
 *   https://docs.snowflake.com/en/user-guide/tables-temp-transient
 * - The fingerprint is `MD5(TO_JSON(OBJECT_CONSTRUCT_KEEP_NULL(...)))`: JSON keeps null apart from
 *   'null' and 1 apart from '1'. https://docs.snowflake.com/en/sql-reference/functions/md5
 * - Acknowledged changes are applied in one transaction by multi-row statements over bound
 *   `VALUES` lists (never a statement per member).
 * - The activation lock is a lease row taken by a conditional MERGE (Snowflake has no advisory
 *   locks; DML on one table is serialized by its table lock), checked by its affected row count and
 *   read back; it is renewed while held and expires if its holder dies.
 * - Timestamps are bound as ISO text through TO_TIMESTAMP_TZ and read back as epoch milliseconds,
 *   so no session time zone or output format can change them.
 */
export class SnowflakeWarehouseSql implements WarehouseSql {
  readonly capabilities: WarehouseCapabilities = {
    lockKind: 'lease',
    lockPollMs: 2000,
    // Bound VALUES lists: Snowflake allows up to 16,384 rows in one VALUES clause.
    // https://docs.snowflake.com/en/sql-reference/constructs/values
    maxRowsPerStatement: 1000,
    maxHashesPerLookup: 1000,
    transactions: true,
  };
  readonly stateSchema: string;
  readonly #db: Kysely<unknown>;
  readonly #options: SnowflakeSqlOptions;
  readonly #costs: RunCostMarks;
  #migrated = false;

  constructor(options: SnowflakeSqlOptions) {
    this.#options = options;
    this.#costs = new RunCostMarks(options);
    this.#db = options.db;
    this.stateSchema = options.schema;
  }

  /** "SCHEMA"."TABLE" */
  table(name: string): RawBuilder<unknown> {
    return sql.id(this.stateSchema, name);
  }

  async #rows<R>(query: RawBuilder<R>, what: string, db: Kysely<unknown> = this.#db): Promise<R[]> {
    return queryRows(query, db, what);
  }

  async #affected(query: RawBuilder<unknown>, what: string, db: Kysely<unknown> = this.#db): Promise<number> {
    try {
      return Number((await query.execute(db)).numAffectedRows ?? 0n);
    } catch (error) {
      throw asWarehouseError(error, what);
    }
  }

  // --- migrations ---------------------------------------------------------------------------------

  async migrate(): Promise<void> {
    if (this.#migrated) return;
    const latest = SNOWFLAKE_MIGRATIONS.at(-1)!.version;
    if ((await this.#appliedVersion()) >= latest) {
      this.#migrated = true;
      return;
    }
    // Idempotent statements (IF NOT EXISTS, a version row inserted only when absent), so concurrent
    // first runs converge. The schema is created only when missing: a pre-created schema needs no
    // CREATE SCHEMA privilege on the database.
    const schemas = await this.#rows(
      sql<{ n: number }>`SELECT COUNT(*) AS n FROM INFORMATION_SCHEMA.SCHEMATA
        WHERE SCHEMA_NAME = ${snowflakeName(this.stateSchema)}`,
      'looking for the state schema',
    );
    if (Number(schemas[0]?.n ?? 0) === 0) {
      await this.#affected(
        sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(this.stateSchema)}`,
        `creating the state schema ${this.stateSchema}`,
      );
    }
    await this.#affected(
      sql`CREATE TABLE IF NOT EXISTS ${this.table('tailor_migrations')} (
        ${sql.id('version')} NUMBER(38,0) NOT NULL, ${sql.id('name')} VARCHAR NOT NULL,
        ${sql.id('applied_at')} TIMESTAMP_TZ NOT NULL)`,
      'creating the migrations table',
    );
    const applied = await this.#appliedVersion();
    for (const migration of SNOWFLAKE_MIGRATIONS) {
      if (migration.version <= applied) continue;
      for (const statement of migration.statements((name) => this.table(name))) {
        await this.#affected(statement, `state migration ${migration.version}`);
      }
      await this.#affected(
        sql`INSERT INTO ${this.table('tailor_migrations')} (${sql.id('version')}, ${sql.id('name')}, ${sql.id('applied_at')})
          SELECT ${migration.version}, ${migration.name}, CURRENT_TIMESTAMP()
          WHERE NOT EXISTS (SELECT 1 FROM ${this.table('tailor_migrations')} WHERE ${sql.id('version')} = ${migration.version})`,
        `recording state migration ${migration.version}`,
      );
      this.#options.logger.info(
        { stateSchema: this.stateSchema, version: migration.version },
        `state migration ${migration.version} (${migration.name}) applied`,
      );
    }
    this.#migrated = true;
  }

  async #appliedVersion(): Promise<number> {
    try {
      const rows = await sql<{
        version: number | null;
      }>`SELECT MAX(${sql.id('version')}) AS ${sql.id('version')} FROM ${this.table('tailor_migrations')}`.execute(
        this.#db,
      );
      return Number(rows.rows[0]?.version ?? 0);
    } catch (error) {
      // 002003: "Object does not exist or not authorized" (schema or table not created yet).
      if (
        causes(error).some(
          (e) =>
            String((e as { code?: unknown }).code) === '2003' ||
            String((e as { code?: unknown }).code) === '002003',
        )
      ) {
        return 0;
      }
      throw asWarehouseError(error, 'reading the state schema version');
    }
  }

  // --- locks --------------------------------------------------------------------------------------

  async tryLock(activationId: string): Promise<HeldLock | null> {
    const holder = randomUUID();
    const leaseSeconds = Math.ceil((this.#options.leaseMs ?? 10 * 60_000) / 1000);
    const taken = await this.#affected(
      sql`MERGE INTO ${this.table('locks')} AS t
        USING (SELECT ${activationId} AS ${sql.id('activation_id')}) AS s
        ON t.${sql.id('activation_id')} = s.${sql.id('activation_id')}
        WHEN MATCHED AND t.${sql.id('expires_at')} < CURRENT_TIMESTAMP() THEN
          UPDATE SET ${sql.id('holder')} = ${holder}, ${sql.id('acquired_at')} = CURRENT_TIMESTAMP(),
            ${sql.id('expires_at')} = DATEADD(SECOND, ${leaseSeconds}, CURRENT_TIMESTAMP())
        WHEN NOT MATCHED THEN
          INSERT (${sql.id('activation_id')}, ${sql.id('holder')}, ${sql.id('acquired_at')}, ${sql.id('expires_at')})
          VALUES (s.${sql.id('activation_id')}, ${holder}, CURRENT_TIMESTAMP(),
            DATEADD(SECOND, ${leaseSeconds}, CURRENT_TIMESTAMP()))`,
      `taking the lock of activation ${activationId}`,
    );
    if (taken !== 1) return null;
    const rows = await this.#rows(
      sql<{ holder: string }>`SELECT ${sql.id('holder')} FROM ${this.table('locks')}
        WHERE ${sql.id('activation_id')} = ${activationId}`,
      `checking the lock of activation ${activationId}`,
    );
    if (rows.length !== 1 || rows[0]?.holder !== holder) return null;
    return leasedLock({
      activationId,
      leaseSeconds,
      logger: this.#options.logger,
      renew: () =>
        this.#affected(
          sql`UPDATE ${this.table('locks')}
            SET ${sql.id('expires_at')} = DATEADD(SECOND, ${leaseSeconds}, CURRENT_TIMESTAMP())
            WHERE ${sql.id('activation_id')} = ${activationId} AND ${sql.id('holder')} = ${holder}`,
          'renewing an activation lock',
        ),
      release: () =>
        this.#affected(
          sql`DELETE FROM ${this.table('locks')}
            WHERE ${sql.id('activation_id')} = ${activationId} AND ${sql.id('holder')} = ${holder}`,
          `releasing the lock of activation ${activationId}`,
        ),
    });
  }

  // --- bindings -----------------------------------------------------------------------------------

  async getBinding(activationId: string): Promise<AudienceBinding | undefined> {
    const rows = await this.#rows(
      sql<
        BindingRow<number>
      >`SELECT ${ids('activation_id', 'destination', 'account_id', 'audience_id', 'audience_name')},
          ${epochMs('bound_at')}
        FROM ${this.table('bindings')} WHERE ${sql.id('activation_id')} = ${activationId}`,
      'reading a binding',
    );
    return rows[0] && bindingFromRow(rows[0], fromEpochMs);
  }

  async saveBinding(binding: AudienceBinding): Promise<void> {
    await this.#affected(
      sql`MERGE INTO ${this.table('bindings')} AS t
        USING (SELECT ${binding.activationId} AS ${sql.id('activation_id')}, ${binding.destination} AS ${sql.id('destination')},
          ${binding.accountId} AS ${sql.id('account_id')}, ${binding.audienceId} AS ${sql.id('audience_id')},
          ${binding.audienceName} AS ${sql.id('audience_name')}, ${ts(binding.boundAt)} AS ${sql.id('bound_at')}) AS s
        ON t.${sql.id('activation_id')} = s.${sql.id('activation_id')}
        WHEN MATCHED THEN UPDATE SET ${setFrom('destination', 'account_id', 'audience_id', 'audience_name', 'bound_at')}
        WHEN NOT MATCHED THEN INSERT (${ids('activation_id', 'destination', 'account_id', 'audience_id', 'audience_name', 'bound_at')})
          VALUES (${fromS('activation_id', 'destination', 'account_id', 'audience_id', 'audience_name', 'bound_at')})`,
      'saving a binding',
    );
  }

  async deleteBinding(activationId: string): Promise<void> {
    await this.#affected(
      sql`DELETE FROM ${this.table('bindings')} WHERE ${sql.id('activation_id')} = ${activationId}`,
      'deleting a binding',
    );
  }

  // --- member state -------------------------------------------------------------------------------

  async memberCount(activationId: string): Promise<number> {
    const rows = await this.#rows(
      sql<{ n: number }>`SELECT COUNT(*) AS ${sql.id('n')} FROM ${this.table('members')}
        WHERE ${sql.id('activation_id')} = ${activationId}`,
      'counting members',
    );
    return Number(rows[0]?.n ?? 0);
  }

  async deleteAllMembers(activationId: string): Promise<void> {
    try {
      await this.#db.transaction().execute(async (trx) => {
        await sql`DELETE FROM ${this.table('member_hashes')} WHERE ${sql.id('activation_id')} = ${activationId}`.execute(
          trx,
        );
        await sql`DELETE FROM ${this.table('members')} WHERE ${sql.id('activation_id')} = ${activationId}`.execute(
          trx,
        );
      });
    } catch (error) {
      throw asWarehouseError(error, 'forgetting members');
    }
  }

  async applyMemberChanges(
    activationId: string,
    changes: { upserts: readonly MemberUpsert[]; removals: readonly string[] },
  ): Promise<void> {
    const { upserts, removals } = changes;
    if (upserts.length === 0 && removals.length === 0) return;
    const touched = [...removals, ...upserts.map((u) => u.key)];
    const hashRows = dedupeHashes(upserts);
    const memberRows = [
      ...upserts.map(
        (u) => sql`(${u.key}, ${u.fingerprint}, ${u.lastSentAt?.toISOString() ?? null}, ${false})`,
      ),
      ...removals.map((key) => sql`(${key}, ${null}, ${null}, ${true})`),
    ];
    try {
      await this.#db.transaction().execute(async (trx) => {
        await sql`DELETE FROM ${this.table('member_hashes')}
          WHERE ${sql.id('activation_id')} = ${activationId}
            AND ${sql.id('member_key')} IN (SELECT ${sql.id('k')} FROM (VALUES ${sql.join(touched.map((k) => sql`(${k})`))}) AS v (${sql.id('k')}))`.execute(
          trx,
        );
        await sql`MERGE INTO ${this.table('members')} AS t
          USING (SELECT ${sql.id('member_key')}, ${sql.id('fingerprint')},
                   TO_TIMESTAMP_TZ(${sql.id('last_sent_at')}) AS ${sql.id('last_sent_at')}, ${sql.id('remove')}
                 FROM (VALUES ${sql.join(memberRows)})
                   AS v (${ids('member_key', 'fingerprint', 'last_sent_at', 'remove')})) AS s
          ON t.${sql.id('activation_id')} = ${activationId} AND t.${sql.id('member_key')} = s.${sql.id('member_key')}
          WHEN MATCHED AND s.${sql.id('remove')} THEN DELETE
          WHEN MATCHED THEN UPDATE SET ${sql.id('fingerprint')} = s.${sql.id('fingerprint')},
            ${sql.id('last_sent_at')} = COALESCE(s.${sql.id('last_sent_at')}, t.${sql.id('last_sent_at')}),
            ${sql.id('updated_at')} = CURRENT_TIMESTAMP()
          WHEN NOT MATCHED AND NOT s.${sql.id('remove')} THEN
            INSERT (${ids('activation_id', 'member_key', 'fingerprint', 'last_sent_at', 'updated_at')})
            VALUES (${activationId}, s.${sql.id('member_key')}, s.${sql.id('fingerprint')}, s.${sql.id('last_sent_at')},
              CURRENT_TIMESTAMP())`.execute(trx);
        if (hashRows.length > 0) {
          await sql`INSERT INTO ${this.table('member_hashes')} (${ids('activation_id', 'member_key', 'id_type', 'hash')})
            SELECT ${activationId}, ${ids('member_key', 'id_type', 'hash')}
            FROM (VALUES ${sql.join(hashRows.map((h) => sql`(${h.member_key}, ${h.id_type}, ${h.hash})`))})
              AS v (${ids('member_key', 'id_type', 'hash')})`.execute(trx);
        }
      });
    } catch (error) {
      throw asWarehouseError(error, 'committing acknowledged members');
    }
  }

  async hashesHeldByOthers(
    activationId: string,
    hashes: readonly string[],
    excludingKeys: readonly string[],
  ): Promise<string[]> {
    if (hashes.length === 0) return [];
    const excluded =
      excludingKeys.length === 0
        ? sql``
        : sql`AND ${sql.id('member_key')} NOT IN (${sql.join(excludingKeys.map((k) => sql`${k}`))})`;
    const rows = await this.#rows(
      sql<{ hash: string }>`SELECT DISTINCT ${sql.id('hash')} FROM ${this.table('member_hashes')}
        WHERE ${sql.id('activation_id')} = ${activationId}
          AND ${sql.id('hash')} IN (${sql.join(hashes.map((h) => sql`${h}`))}) ${excluded}`,
      'looking up shared identifiers',
    );
    return rows.map((row) => row.hash);
  }

  // --- the diff -----------------------------------------------------------------------------------

  async openDiff(input: WarehouseDiffInput): Promise<WarehouseDiff> {
    checkDiffToken(input.token);
    return prepareOrClose(new SnowflakeDiff(this, this.#db, input));
  }

  // --- run log and rejections ---------------------------------------------------------------------

  async insertRun(run: { id: string; activationId: string; startedAt: Date }): Promise<void> {
    this.#costs.start(run.id);
    await this.#affected(
      sql`INSERT INTO ${this.table('runs')} (${ids('run_id', 'activation_id', 'started_at', 'status', ...COUNT_COLUMNS)})
        SELECT ${run.id}, ${run.activationId}, ${ts(run.startedAt)}, 'running', 0, 0, 0, 0, 0, 0, 0, 0`,
      'recording a run',
    );
  }

  async finishRun(runId: string, result: WarehouseRunFinish): Promise<void> {
    const c = result.counts;
    const cost = this.#costs.finish(runId, result.cost);
    await this.#affected(
      sql`UPDATE ${this.table('runs')} SET ${sql.id('finished_at')} = ${ts(result.finishedAt)},
          ${sql.id('status')} = ${result.status}, ${sql.id('rows')} = ${c.rows}, ${sql.id('added')} = ${c.added},
          ${sql.id('removed')} = ${c.removed}, ${sql.id('changed')} = ${c.changed}, ${sql.id('refreshed')} = ${c.refreshed},
          ${sql.id('invalid')} = ${c.invalid}, ${sql.id('rejected')} = ${c.rejected}, ${sql.id('requests')} = ${c.requests},
          ${sql.id('error')} = ${result.error}, ${sql.id('cost')} = PARSE_JSON(${cost === null ? null : JSON.stringify(cost)})
        WHERE ${sql.id('run_id')} = ${runId}`,
      'recording the end of a run',
    );
  }

  async listRuns(options: { activationId?: string; limit: number }): Promise<RunRecord[]> {
    const limit = Math.max(0, Math.floor(options.limit));
    const where =
      options.activationId === undefined
        ? sql`TRUE`
        : sql`${sql.id('activation_id')} = ${options.activationId}`;
    const rows = await this.#rows(
      sql<
        RunRow<number, string | null>
      >`SELECT ${ids('run_id', 'activation_id')}, ${epochMs('started_at')}, ${epochMs('finished_at')},
          ${ids('status', ...COUNT_COLUMNS, 'error')}, TO_JSON(${sql.id('cost')}) AS ${sql.id('cost')}
        FROM ${this.table('runs')} WHERE ${where}
        ORDER BY ${sql.id('started_at')} DESC, ${sql.id('run_id')} DESC LIMIT ${sql.lit(limit)}`,
      'listing runs',
    );
    return rows.map((row) => runFromRow(row, { date: fromEpochMs, cost: costFromJson }));
  }

  async insertRejections(
    runId: string,
    activationId: string,
    rows: readonly RejectionRecord[],
  ): Promise<void> {
    if (rows.length === 0) return;
    await this.#affected(
      sql`INSERT INTO ${this.table('rejections')}
          (${ids('run_id', 'activation_id', 'member_key', 'identifier_type', 'reason', 'recorded_at')})
        SELECT ${runId}, ${activationId}, ${ids('member_key', 'identifier_type', 'reason')}, CURRENT_TIMESTAMP()
        FROM (VALUES ${sql.join(rows.map((r) => sql`(${r.memberKey}, ${r.identifierType}, ${r.reason})`))})
          AS v (${ids('member_key', 'identifier_type', 'reason')})`,
      'recording rejections',
    );
  }

  // --- scheduler bookkeeping ----------------------------------------------------------------------

  async getActivationStatus(activationId: string): Promise<ActivationStatus | undefined> {
    const rows = await this.#rows(
      sql<StatusRow<number>>`SELECT ${ids('activation_id', 'consecutive_failures')}, ${epochMs('paused_at')},
          ${ids('paused_reason', 'config_fingerprint')}, ${epochMs('updated_at')}
        FROM ${this.table('activation_status')} WHERE ${sql.id('activation_id')} = ${activationId}`,
      'reading activation status',
    );
    return rows[0] && statusFromRow(rows[0], fromEpochMs);
  }

  async setActivationStatus(status: ActivationStatus): Promise<void> {
    await this.#affected(
      sql`MERGE INTO ${this.table('activation_status')} AS t
        USING (SELECT ${status.activationId} AS ${sql.id('activation_id')},
          ${status.consecutiveFailures} AS ${sql.id('consecutive_failures')},
          ${ts(status.pausedAt)} AS ${sql.id('paused_at')}, ${status.pausedReason} AS ${sql.id('paused_reason')},
          ${status.configFingerprint} AS ${sql.id('config_fingerprint')}, ${ts(status.updatedAt)} AS ${sql.id('updated_at')}) AS s
        ON t.${sql.id('activation_id')} = s.${sql.id('activation_id')}
        WHEN MATCHED THEN UPDATE SET ${setFrom('consecutive_failures', 'paused_at', 'paused_reason', 'config_fingerprint', 'updated_at')}
        WHEN NOT MATCHED THEN INSERT (${ids('activation_id', 'consecutive_failures', 'paused_at', 'paused_reason', 'config_fingerprint', 'updated_at')})
          VALUES (${fromS('activation_id', 'consecutive_failures', 'paused_at', 'paused_reason', 'config_fingerprint', 'updated_at')})`,
      'saving activation status',
    );
  }

  async listActivationStatus(): Promise<ActivationStatus[]> {
    const rows = await this.#rows(
      sql<StatusRow<number>>`SELECT ${ids('activation_id', 'consecutive_failures')}, ${epochMs('paused_at')},
          ${ids('paused_reason', 'config_fingerprint')}, ${epochMs('updated_at')}
        FROM ${this.table('activation_status')} ORDER BY ${sql.id('activation_id')}`,
      'listing activation status',
    );
    return rows.map((row) => statusFromRow(row, fromEpochMs));
  }
}

/**
 * One diff in TEMPORARY tables of the session: TAILOR_SNAP_<token> (key as text, fingerprint, mapped
 * values V_0..), TAILOR_BAD_<token> (null and duplicated keys) and TAILOR_DELTA_<token> (FULL OUTER
 * JOIN against state, delta rows only), dropped by `close` (and with the session in any case).
 */
class SnowflakeDiff implements WarehouseDiff {
  counts: DiffCounts = emptyCounts();
  readonly #owner: SnowflakeWarehouseSql;
  readonly #db: Kysely<unknown>;
  readonly #input: WarehouseDiffInput;
  readonly #snap: RawBuilder<unknown>;
  readonly #bad: RawBuilder<unknown>;
  readonly #delta: RawBuilder<unknown>;
  #created: RawBuilder<unknown>[] = [];
  #closed = false;

  constructor(owner: SnowflakeWarehouseSql, db: Kysely<unknown>, input: WarehouseDiffInput) {
    this.#owner = owner;
    this.#db = db;
    this.#input = input;
    this.#snap = owner.table(`tailor_snap_${input.token}`);
    this.#bad = owner.table(`tailor_bad_${input.token}`);
    this.#delta = owner.table(`tailor_delta_${input.token}`);
  }

  async #exec(query: RawBuilder<unknown>, what: string): Promise<void> {
    await queryRows(query, this.#db, what);
  }

  /**
   * The CREATE TEMPORARY TABLE ... AS SELECT statements carry no binds: values are literals (the
   * activation id is checked, literals are escaped by the compiler).
   */
  async prepare(): Promise<void> {
    const { modelSql, modelName, primaryKey, columns, activationId } = this.#input;
    checkLiteralActivationId(activationId);
    const m = (column: string) => sql.id('m', column);
    const v = (i: number) => sql.id(`v_${i}`);
    const values = columns.map((column, i) => sql`, ${m(column)} AS ${v(i)}`);
    const fingerprint =
      columns.length === 0
        ? sql`MD5('')`
        : sql`MD5(TO_JSON(OBJECT_CONSTRUCT_KEEP_NULL(${sql.join(columns.map((c, i) => sql`${sql.lit(`v_${i}`)}, ${m(c)}`))})))`;
    this.#created.push(this.#snap);
    try {
      await sql`CREATE TEMPORARY TABLE ${this.#snap} AS
        SELECT TO_VARCHAR(${m(primaryKey)}) AS ${sql.id('member_key')}, ${fingerprint} AS ${sql.id('fingerprint')}
          ${sql.join(values, sql``)}
        FROM (${sql.raw(modelSql)}) AS m`.execute(this.#db);
    } catch (error) {
      throw modelError(error, modelName);
    }
    const t = (name: string) => this.#owner.table(name);
    const key = sql.id('member_key');
    this.#created.push(this.#bad);
    await this.#exec(
      sql`CREATE TEMPORARY TABLE ${this.#bad} AS
        SELECT ${key}, COUNT(*) AS ${sql.id('n')} FROM ${this.#snap}
        GROUP BY ${key} HAVING ${key} IS NULL OR COUNT(*) > 1`,
      'finding null and duplicated keys',
    );
    const valueRefs = columns.map((_, i) => sql`, s.${v(i)}`);
    this.#created.push(this.#delta);
    await this.#exec(
      sql`CREATE TEMPORARY TABLE ${this.#delta} AS
        SELECT CASE WHEN s.${key} IS NULL THEN 0 WHEN t.${key} IS NULL THEN 3
                    WHEN s.${sql.id('fingerprint')} <> t.${sql.id('fingerprint')} THEN 1 ELSE 2 END AS ${sql.id('change_rank')},
               COALESCE(s.${key}, t.${key}) AS ${key}, s.${sql.id('fingerprint')} ${sql.join(valueRefs, sql``)}
        FROM (SELECT * FROM ${this.#snap} AS s0 WHERE s0.${key} IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM ${this.#bad} AS b WHERE b.${key} = s0.${key})) AS s
        FULL OUTER JOIN (SELECT ${ids('member_key', 'fingerprint', 'last_sent_at')} FROM ${t('members')}
                         WHERE ${sql.id('activation_id')} = ${sql.lit(activationId)}) AS t
          ON s.${key} = t.${key}
        WHERE s.${key} IS NULL OR t.${key} IS NULL OR s.${sql.id('fingerprint')} <> t.${sql.id('fingerprint')}
           OR ${sql.lit(this.#input.fullResync)}
           OR t.${sql.id('last_sent_at')} < ${tsLiteral(this.#input.refreshBefore)}`,
      'comparing the segment with state',
    );
    const rank = (n: number) =>
      sql`(SELECT COUNT_IF(${sql.id('change_rank')} = ${sql.lit(n)}) FROM ${this.#delta})`;
    const [row] = await sql<CountRow>`SELECT
        (SELECT COUNT(*) FROM ${this.#snap}) AS ${sql.id('row_count')},
        (SELECT COALESCE(SUM(${sql.id('n')}), 0) FROM ${this.#bad}) AS ${sql.id('invalid')},
        (SELECT COUNT(*) FROM ${t('members')} WHERE ${sql.id('activation_id')} = ${activationId}) AS ${sql.id('state')},
        ${rank(0)} AS ${sql.id('removed')}, ${rank(1)} AS ${sql.id('changed')},
        ${rank(2)} AS ${sql.id('refresh')}, ${rank(3)} AS ${sql.id('added')}`
      .execute(this.#db)
      .then((r) => r.rows)
      .catch((error: unknown) => {
        throw asWarehouseError(error, 'counting the diff');
      });
    this.counts = countsFromRow(row);
  }

  async *#stream<R>(query: RawBuilder<R>, what: string, batchSize: number): AsyncGenerator<R[]> {
    if (this.#closed) throw new WarehouseError('the diff was already closed');
    // snowflake-sdk streams the result (inline rows, then result chunks) row by row; the
    // executor hands them over `batchSize` at a time.
    yield* streamRows(query, this.#db, batchSize, what);
  }

  async *invalidKeys(batchSize: number): AsyncIterable<InvalidKeyRow[]> {
    const query = sql<{
      member_key: string | null;
      n: number;
    }>`SELECT ${ids('member_key', 'n')} FROM ${this.#bad}
      ORDER BY ${sql.id('member_key')} ASC NULLS FIRST`;
    yield* rebatch(this.#stream(query, 'reading invalid keys', batchSize), batchSize, invalidKeysFromRow);
  }

  async *delta(batchSize: number): AsyncIterable<WarehouseDeltaRow[]> {
    const columns = this.#input.columns;
    const key = sql.id('member_key');
    const values = columns.map((_, i) => sql`, d.${sql.id(`v_${i}`)}`);
    // Stored hashes are aggregated per delta member first (a CTE), then joined: no GROUP BY over
    // the model's values, whatever their types. Snowflake orders strings by their UTF-8 bytes.
    const query = sql<DeltaDbRow<[string, string][] | string | null>>`WITH ${sql.id('h')} AS (
        SELECT ${key}, ARRAY_AGG(ARRAY_CONSTRUCT(${ids('id_type', 'hash')}))
          WITHIN GROUP (ORDER BY ${ids('id_type', 'hash')}) AS ${sql.id('hashes')}
        FROM ${this.#owner.table('member_hashes')}
        WHERE ${sql.id('activation_id')} = ${this.#input.activationId}
          AND ${key} IN (SELECT ${key} FROM ${this.#delta})
        GROUP BY ${key})
      SELECT d.${sql.id('change_rank')}, d.${key}, d.${sql.id('fingerprint')} ${sql.join(values, sql``)},
        h.${sql.id('hashes')} AS ${sql.id('previous_hashes')}
      FROM ${this.#delta} AS d LEFT JOIN ${sql.id('h')} AS h ON h.${key} = d.${key}
      ORDER BY d.${sql.id('change_rank')}, d.${key}`;
    yield* rebatch(this.#stream(query, 'reading the delta', batchSize), batchSize, (row) => [
      deltaFromRow(row, columns, (hashes) => {
        // The driver hands an ARRAY column over as JSON text or as parsed arrays.
        const previous = (typeof hashes === 'string' ? JSON.parse(hashes) : hashes) as
          [string, string][] | null;
        return (previous ?? []).map(([idType, hash]) => ({ idType, hash }));
      }),
    ]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const table of this.#created.reverse()) {
      await sql`DROP TABLE IF EXISTS ${table}`.execute(this.#db).catch(() => undefined);
    }
  }
}

/** The state tables, versioned; append only (a released migration is never edited). */
export interface SnowflakeMigration {
  version: number;
  name: string;
  statements(table: (name: string) => RawBuilder<unknown>): RawBuilder<unknown>[];
}

const COUNT_COLUMNS = [
  'rows',
  'added',
  'removed',
  'changed',
  'refreshed',
  'invalid',
  'rejected',
  'requests',
] as const;

/** `name TYPE` column definitions with quoted (upper-cased) names. */
function columnsDef(definitions: readonly (readonly [string, string])[]): RawBuilder<unknown> {
  return sql.join(definitions.map(([name, type]) => sql`${sql.id(name)} ${sql.raw(type)}`));
}

export const SNOWFLAKE_MIGRATIONS: readonly SnowflakeMigration[] = [
  {
    version: 1,
    name: 'initial state tables',
    statements: (t) => [
      sql`CREATE TABLE IF NOT EXISTS ${t('bindings')} (${columnsDef([
        ['activation_id', 'VARCHAR NOT NULL PRIMARY KEY'],
        ['destination', 'VARCHAR NOT NULL'],
        ['account_id', 'VARCHAR NOT NULL'],
        ['audience_id', 'VARCHAR NOT NULL'],
        ['audience_name', 'VARCHAR NOT NULL'],
        ['bound_at', 'TIMESTAMP_TZ NOT NULL'],
      ])})`,
      // Clustering keys only pay off on very large tables; Snowflake prunes micro-partitions by
      // activation_id anyway since rows of one activation are written together.
      sql`CREATE TABLE IF NOT EXISTS ${t('members')} (${columnsDef([
        ['activation_id', 'VARCHAR NOT NULL'],
        ['member_key', 'VARCHAR NOT NULL'],
        ['fingerprint', 'VARCHAR NOT NULL'],
        ['last_sent_at', 'TIMESTAMP_TZ'],
        ['updated_at', 'TIMESTAMP_TZ NOT NULL'],
      ])})`,
      sql`CREATE TABLE IF NOT EXISTS ${t('member_hashes')} (${columnsDef([
        ['activation_id', 'VARCHAR NOT NULL'],
        ['member_key', 'VARCHAR NOT NULL'],
        ['id_type', 'VARCHAR NOT NULL'],
        ['hash', 'VARCHAR NOT NULL'],
      ])})`,
      sql`CREATE TABLE IF NOT EXISTS ${t('runs')} (${columnsDef([
        ['run_id', 'VARCHAR NOT NULL PRIMARY KEY'],
        ['activation_id', 'VARCHAR NOT NULL'],
        ['started_at', 'TIMESTAMP_TZ NOT NULL'],
        ['finished_at', 'TIMESTAMP_TZ'],
        ['status', 'VARCHAR NOT NULL'],
        ...COUNT_COLUMNS.map((c) => [c, 'NUMBER(38,0) NOT NULL DEFAULT 0'] as const),
        ['error', 'VARCHAR'],
        ['cost', 'VARIANT'],
      ])})`,
      sql`CREATE TABLE IF NOT EXISTS ${t('rejections')} (${columnsDef([
        ['run_id', 'VARCHAR NOT NULL'],
        ['activation_id', 'VARCHAR NOT NULL'],
        ['member_key', 'VARCHAR'],
        ['identifier_type', 'VARCHAR'],
        ['reason', 'VARCHAR NOT NULL'],
        ['recorded_at', 'TIMESTAMP_TZ NOT NULL'],
      ])})`,
      sql`CREATE TABLE IF NOT EXISTS ${t('activation_status')} (${columnsDef([
        ['activation_id', 'VARCHAR NOT NULL PRIMARY KEY'],
        ['consecutive_failures', 'NUMBER(38,0) NOT NULL'],
        ['paused_at', 'TIMESTAMP_TZ'],
        ['paused_reason', 'VARCHAR'],
        ['config_fingerprint', 'VARCHAR'],
        ['updated_at', 'TIMESTAMP_TZ NOT NULL'],
      ])})`,
      sql`CREATE TABLE IF NOT EXISTS ${t('locks')} (${columnsDef([
        ['activation_id', 'VARCHAR NOT NULL PRIMARY KEY'],
        ['holder', 'VARCHAR NOT NULL'],
        ['acquired_at', 'TIMESTAMP_TZ NOT NULL'],
        ['expires_at', 'TIMESTAMP_TZ NOT NULL'],
      ])})`,
    ],
  },
];

/** Quoted identifiers, comma-separated. */
function ids(...names: string[]): RawBuilder<unknown> {
  return sql.join(names.map((name) => sql.id(name)));
}

/** `a = s.a, b = s.b` for MERGE ... UPDATE SET. */
function setFrom(...names: string[]): RawBuilder<unknown> {
  return sql.join(names.map((name) => sql`${sql.id(name)} = s.${sql.id(name)}`));
}

/** `s.a, s.b` for MERGE ... INSERT VALUES. */
function fromS(...names: string[]): RawBuilder<unknown> {
  return sql.join(names.map((name) => sql`s.${sql.id(name)}`));
}

/** A timestamp column as epoch milliseconds under its own name (null stays null). */
function epochMs(column: string): RawBuilder<unknown> {
  return sql`DATE_PART(EPOCH_MILLISECOND, ${sql.id(column)}) AS ${sql.id(column)}`;
}

/** A bound timestamp: ISO text converted by Snowflake, so the session's formats cannot change it. */
function ts(value: Date | null): RawBuilder<unknown> {
  return sql`TO_TIMESTAMP_TZ(${value === null ? null : value.toISOString()})`;
}

/** A timestamp literal for statements without binds. */
function tsLiteral(value: Date | null): RawBuilder<unknown> {
  return value === null
    ? sql`CAST(NULL AS TIMESTAMP_TZ)`
    : sql`TO_TIMESTAMP_TZ(${sql.lit(value.toISOString())})`;
}

/** The name Snowflake stores for an unquoted identifier (for comparisons with INFORMATION_SCHEMA). */
function snowflakeName(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_$]*$/.test(name) ? name.toUpperCase() : name;
}

export { asWarehouseError };

/**
 * A failure of the model's own SQL: Snowflake's compilation errors (SQL state 42xxx, e.g. 42000
 * syntax error, 42S02 object does not exist), unless it is permissions.
 */
export function modelError(error: unknown, modelName: string): Error {
  const found = causes(error).find((e) => typeof (e as { sqlState?: unknown }).sqlState === 'string') as
    { sqlState: string; message?: string } | undefined;
  if (!found || !found.sqlState.startsWith('42') || found.sqlState === '42501') {
    return asWarehouseError(error, `snapshotting model ${modelName}`);
  }
  return new ModelSqlError(modelName, found.message ?? errorMessage(error), {
    cause: error,
    hint: `run models/${modelName}.sql in Snowflake to see the error; Tailor runs it unchanged`,
  });
}
