import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
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
  invalidKeysFromRow,
  rebatch,
  runFromRow,
  statusFromRow,
  toDate,
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
import { bigqueryParam } from './bigquery-params.js';

export interface BigquerySqlOptions {
  /** Kysely over BigqueryDialect. */
  db: Kysely<unknown>;
  /** The state dataset. */
  dataset: string;
  /** Where the state dataset is created (the jobs' location). */
  location: string;
  logger: Logger;
  /** Rows per jobs.getQueryResults page when reading the delta. */
  pageSize?: number;
  /** How long a lock row stays valid without renewal; renewed every third of it while held. */
  leaseMs?: number;
  /** Base pause before retrying a statement BigQuery aborted for a concurrent update (500 ms). */
  retryDelayMs?: number;
  /** Cost of the jobs run since `mark` (BigqueryExecutor.summary). */
  costSince?: (mark: number) => Record<string, unknown>;
  /** The current cost mark (BigqueryExecutor.costs.length). */
  costMark?: () => number;
}

/**
 * HASH and ROWS are reserved keywords in GoogleSQL: always backtick them.
 * https://cloud.google.com/bigquery/docs/reference/standard-sql/lexical#reserved_keywords
 */
const HASH = sql.id('hash');

/** Run-scoped tables expire by themselves if a crashed run never drops them. */
const STAGING_EXPIRY_HOURS = 24;

/**
 * The WarehouseSql of BigQuery (GoogleSQL). Statements are Kysely `sql` templates compiled by
 * BigqueryQueryCompiler (backtick identifiers, typed positional parameters) and run as query jobs.
 *
 * - Run-scoped snapshot and delta tables are ordinary tables in the state dataset with an
 *   `expiration_timestamp`, not session temp tables: jobs of one run are independent, and a crashed
 *   run's tables disappear on their own. https://cloud.google.com/bigquery/docs/managing-tables#updating_a_tables_expiration_time
 * - The fingerprint is `TO_HEX(MD5(TO_JSON_STRING(STRUCT(...))))`: JSON keeps null apart from 'null'
 *   and 1 apart from '1'. https://cloud.google.com/bigquery/docs/reference/standard-sql/hash_functions#md5
 * - Acknowledged changes are applied by two MERGE statements over `UNNEST` of one typed
 *   ARRAY<STRUCT> parameter each (never a statement per member); hashes first, then members, so a
 *   failure between the two only makes the next diff re-emit those members (no transactions needed).
 * - The activation lock is a lease row taken by a conditional MERGE (BigQuery has no locks) and
 *   verified by reading it back; it is renewed while held and expires if its holder dies.
 */
export class BigqueryWarehouseSql implements WarehouseSql {
  readonly capabilities: WarehouseCapabilities = {
    lockKind: 'lease',
    lockPollMs: 2000,
    // One ARRAY<STRUCT> parameter per statement; keep requests well under the 10 MB request limit.
    maxRowsPerStatement: 5000,
    maxHashesPerLookup: 10_000,
    transactions: false,
  };
  readonly stateSchema: string;
  readonly #db: Kysely<unknown>;
  readonly #options: BigquerySqlOptions;
  readonly #costs: RunCostMarks;
  #migrated = false;

  constructor(options: BigquerySqlOptions) {
    if (!/^[A-Za-z0-9_]{1,1024}$/.test(options.dataset)) {
      throw new WarehouseError(`invalid BigQuery dataset name ${JSON.stringify(options.dataset)}`);
    }
    if (!/^[A-Za-z0-9-]+$/.test(options.location)) {
      throw new WarehouseError(`invalid BigQuery location ${JSON.stringify(options.location)}`);
    }
    this.#options = options;
    this.#costs = new RunCostMarks(options);
    this.#db = options.db;
    this.stateSchema = options.dataset;
  }

  /** `dataset`.`table` */
  table(name: string): RawBuilder<unknown> {
    return sql.id(this.stateSchema, name);
  }

  async #rows<R>(query: RawBuilder<R>, what: string): Promise<R[]> {
    return queryRows(query, this.#db, what);
  }

  /**
   * Runs a DML or DDL statement. BigQuery aborts a mutating statement that conflicts with another
   * one on the same table ("Could not serialize access to table ... due to concurrent update"); an
   * aborted statement changed nothing, so it is retried a few times with a growing pause.
   * https://cloud.google.com/bigquery/docs/data-manipulation-language#dml_statement_conflicts
   */
  async #affected(query: RawBuilder<unknown>, what: string): Promise<number> {
    const delay = this.#options.retryDelayMs ?? 500;
    for (let attempt = 1; ; attempt++) {
      try {
        return Number((await query.execute(this.#db)).numAffectedRows ?? 0n);
      } catch (error) {
        if (attempt < 4 && isConcurrentUpdate(error)) {
          await sleep(delay * attempt + Math.floor(Math.random() * delay));
          continue;
        }
        throw asWarehouseError(error, what);
      }
    }
  }

  // --- migrations ---------------------------------------------------------------------------------

  async migrate(): Promise<void> {
    if (this.#migrated) return;
    const latest = BIGQUERY_MIGRATIONS.at(-1)!.version;
    const current = await this.#appliedVersion();
    if (current.version >= latest) {
      this.#migrated = true;
      return;
    }
    // Every statement is idempotent (IF NOT EXISTS, a version row inserted only when absent), so
    // concurrent first runs converge without a lock, which BigQuery does not have. The dataset is
    // created only when missing, so a pre-created dataset needs no project-level create permission.
    if (current.datasetMissing) {
      await this.#affected(
        sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(this.stateSchema)} OPTIONS (location = ${sql.lit(this.#options.location)})`,
        `creating the state dataset ${this.stateSchema}`,
      );
    }
    await this.#affected(
      sql`CREATE TABLE IF NOT EXISTS ${this.table('tailor_migrations')} (
        version INT64 NOT NULL, name STRING NOT NULL, applied_at TIMESTAMP NOT NULL)`,
      'creating the migrations table',
    );
    const applied = (await this.#appliedVersion()).version;
    for (const migration of BIGQUERY_MIGRATIONS) {
      if (migration.version <= applied) continue;
      for (const statement of migration.statements((name) => this.table(name))) {
        await this.#affected(statement, `state migration ${migration.version}`);
      }
      await this.#affected(
        sql`INSERT INTO ${this.table('tailor_migrations')} (version, name, applied_at)
          SELECT ${migration.version}, ${migration.name}, CURRENT_TIMESTAMP()
          FROM UNNEST([1]) WHERE NOT EXISTS (
            SELECT 1 FROM ${this.table('tailor_migrations')} WHERE version = ${migration.version})`,
        `recording state migration ${migration.version}`,
      );
      this.#options.logger.info(
        { stateSchema: this.stateSchema, version: migration.version },
        `state migration ${migration.version} (${migration.name}) applied`,
      );
    }
    this.#migrated = true;
  }

  async #appliedVersion(): Promise<{ version: number; datasetMissing: boolean }> {
    try {
      const rows = await sql<{
        version: number | null;
      }>`SELECT MAX(version) AS version FROM ${this.table('tailor_migrations')}`.execute(this.#db);
      return { version: rows.rows[0]?.version ?? 0, datasetMissing: false };
    } catch (error) {
      // "Not found: Dataset p:d" or "Not found: Table p:d.tailor_migrations"
      if (isNotFound(error)) return { version: 0, datasetMissing: /Dataset/i.test(errorMessage(error)) };
      throw asWarehouseError(error, 'reading the state schema version');
    }
  }

  // --- locks --------------------------------------------------------------------------------------

  async tryLock(activationId: string): Promise<HeldLock | null> {
    const holder = randomUUID();
    const leaseSeconds = Math.ceil((this.#options.leaseMs ?? 10 * 60_000) / 1000);
    let taken: number;
    try {
      taken = Number(
        (
          await sql`MERGE ${this.table('locks')} AS t
          USING (SELECT ${activationId} AS activation_id) AS s
          ON t.activation_id = s.activation_id
          WHEN MATCHED AND t.expires_at < CURRENT_TIMESTAMP() THEN
            UPDATE SET holder = ${holder}, acquired_at = CURRENT_TIMESTAMP(),
              expires_at = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL ${leaseSeconds} SECOND)
          WHEN NOT MATCHED THEN
            INSERT (activation_id, holder, acquired_at, expires_at)
            VALUES (s.activation_id, ${holder}, CURRENT_TIMESTAMP(),
              TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL ${leaseSeconds} SECOND))`.execute(this.#db)
        ).numAffectedRows ?? 0n,
      );
    } catch (error) {
      // Two MERGEs on one table at once: BigQuery aborts one ("concurrent update"); that one lost.
      if (isConcurrentUpdate(error)) return null;
      throw asWarehouseError(error, `taking the lock of activation ${activationId}`);
    }
    if (taken !== 1) return null;
    // Read back: the lock is ours only if the single row for the activation names us.
    const rows = await this.#rows(
      sql<{
        holder: string;
      }>`SELECT holder FROM ${this.table('locks')} WHERE activation_id = ${activationId}`,
      `checking the lock of activation ${activationId}`,
    );
    if (rows.length !== 1 || rows[0]?.holder !== holder) return null;
    return this.#heldLock(activationId, holder, leaseSeconds);
  }

  #heldLock(activationId: string, holder: string, leaseSeconds: number): HeldLock {
    return leasedLock({
      activationId,
      leaseSeconds,
      logger: this.#options.logger,
      renew: () =>
        this.#affected(
          sql`UPDATE ${this.table('locks')}
            SET expires_at = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL ${leaseSeconds} SECOND)
            WHERE activation_id = ${activationId} AND holder = ${holder}`,
          'renewing an activation lock',
        ),
      release: () =>
        this.#affected(
          sql`DELETE FROM ${this.table('locks')} WHERE activation_id = ${activationId} AND holder = ${holder}`,
          `releasing the lock of activation ${activationId}`,
        ),
    });
  }

  // --- bindings -----------------------------------------------------------------------------------

  async getBinding(activationId: string): Promise<AudienceBinding | undefined> {
    const rows = await this.#rows(
      sql<
        BindingRow<Date | string>
      >`SELECT activation_id, destination, account_id, audience_id, audience_name, bound_at
        FROM ${this.table('bindings')} WHERE activation_id = ${activationId}`,
      'reading a binding',
    );
    return rows[0] && bindingFromRow(rows[0], toDate);
  }

  async saveBinding(binding: AudienceBinding): Promise<void> {
    await this.#affected(
      sql`MERGE ${this.table('bindings')} AS t
        USING (SELECT ${binding.activationId} AS activation_id, ${binding.destination} AS destination,
          ${binding.accountId} AS account_id, ${binding.audienceId} AS audience_id,
          ${binding.audienceName} AS audience_name, ${binding.boundAt} AS bound_at) AS s
        ON t.activation_id = s.activation_id
        WHEN MATCHED THEN UPDATE SET destination = s.destination, account_id = s.account_id,
          audience_id = s.audience_id, audience_name = s.audience_name, bound_at = s.bound_at
        WHEN NOT MATCHED THEN INSERT (activation_id, destination, account_id, audience_id, audience_name, bound_at)
          VALUES (s.activation_id, s.destination, s.account_id, s.audience_id, s.audience_name, s.bound_at)`,
      'saving a binding',
    );
  }

  async deleteBinding(activationId: string): Promise<void> {
    await this.#affected(
      sql`DELETE FROM ${this.table('bindings')} WHERE activation_id = ${activationId}`,
      'deleting a binding',
    );
  }

  // --- member state -------------------------------------------------------------------------------

  async memberCount(activationId: string): Promise<number> {
    const rows = await this.#rows(
      sql<{
        n: number;
      }>`SELECT COUNT(*) AS n FROM ${this.table('members')} WHERE activation_id = ${activationId}`,
      'counting members',
    );
    return Number(rows[0]?.n ?? 0);
  }

  async deleteAllMembers(activationId: string): Promise<void> {
    // Hashes first: a failure in between leaves members whose next diff re-emits them.
    await this.#affected(
      sql`DELETE FROM ${this.table('member_hashes')} WHERE activation_id = ${activationId}`,
      'forgetting member hashes',
    );
    await this.#affected(
      sql`DELETE FROM ${this.table('members')} WHERE activation_id = ${activationId}`,
      'forgetting members',
    );
  }

  async applyMemberChanges(
    activationId: string,
    changes: { upserts: readonly MemberUpsert[]; removals: readonly string[] },
  ): Promise<void> {
    const { upserts, removals } = changes;
    if (upserts.length === 0 && removals.length === 0) return;
    const touched = [...removals, ...upserts.map((u) => u.key)];
    const hashRows = dedupeHashes(upserts);
    // 1. Hashes: insert the acknowledged ones, delete every other hash of the touched members.
    await this.#affected(
      sql`MERGE ${this.table('member_hashes')} AS t
        USING (SELECT h.member_key, h.id_type, h.${HASH} FROM UNNEST(${bigqueryParam(hashRows, [HASH_ROW_TYPE])}) AS h) AS s
        ON t.activation_id = ${activationId} AND t.member_key = s.member_key
          AND t.id_type = s.id_type AND t.${HASH} = s.${HASH}
        WHEN NOT MATCHED BY TARGET THEN
          INSERT (activation_id, member_key, id_type, ${HASH}) VALUES (${activationId}, s.member_key, s.id_type, s.${HASH})
        WHEN NOT MATCHED BY SOURCE AND t.activation_id = ${activationId}
          AND t.member_key IN UNNEST(${bigqueryParam(touched, ['STRING'])}) THEN DELETE`,
      'committing acknowledged member hashes',
    );
    // 2. Members: upsert fingerprints (keeping last_sent_at when none is given), delete removals.
    const memberRows = [
      ...upserts.map((u) => ({
        member_key: u.key,
        fingerprint: u.fingerprint,
        last_sent_at: u.lastSentAt,
        remove: false,
      })),
      ...removals.map((key) => ({ member_key: key, fingerprint: null, last_sent_at: null, remove: true })),
    ];
    await this.#affected(
      sql`MERGE ${this.table('members')} AS t
        USING (SELECT u.member_key, u.fingerprint, u.last_sent_at, u.remove
               FROM UNNEST(${bigqueryParam(memberRows, [MEMBER_ROW_TYPE])}) AS u) AS s
        ON t.activation_id = ${activationId} AND t.member_key = s.member_key
        WHEN MATCHED AND s.remove THEN DELETE
        WHEN MATCHED THEN UPDATE SET fingerprint = s.fingerprint,
          last_sent_at = COALESCE(s.last_sent_at, t.last_sent_at), updated_at = CURRENT_TIMESTAMP()
        WHEN NOT MATCHED BY TARGET AND NOT s.remove THEN
          INSERT (activation_id, member_key, fingerprint, last_sent_at, updated_at)
          VALUES (${activationId}, s.member_key, s.fingerprint, s.last_sent_at, CURRENT_TIMESTAMP())`,
      'committing acknowledged members',
    );
  }

  async hashesHeldByOthers(
    activationId: string,
    hashes: readonly string[],
    excludingKeys: readonly string[],
  ): Promise<string[]> {
    if (hashes.length === 0) return [];
    const rows = await this.#rows(
      sql<{ hash: string }>`SELECT DISTINCT ${HASH} FROM ${this.table('member_hashes')}
        WHERE activation_id = ${activationId} AND ${HASH} IN UNNEST(${bigqueryParam([...hashes], ['STRING'])})
          AND member_key NOT IN UNNEST(${bigqueryParam([...excludingKeys], ['STRING'])})`,
      'looking up shared identifiers',
    );
    return rows.map((row) => row.hash);
  }

  // --- the diff -----------------------------------------------------------------------------------

  async openDiff(input: WarehouseDiffInput): Promise<WarehouseDiff> {
    checkDiffToken(input.token);
    return prepareOrClose(new BigqueryDiff(this, this.#db, input, this.#options.pageSize ?? 10_000));
  }

  // --- run log and rejections ---------------------------------------------------------------------

  async insertRun(run: { id: string; activationId: string; startedAt: Date }): Promise<void> {
    this.#costs.start(run.id);
    await this.#affected(
      sql`INSERT INTO ${this.table('runs')} (run_id, activation_id, started_at, status,
          ${sql.id('rows')}, added, removed, changed, refreshed, invalid, rejected, requests)
        VALUES (${run.id}, ${run.activationId}, ${run.startedAt}, 'running', 0, 0, 0, 0, 0, 0, 0, 0)`,
      'recording a run',
    );
  }

  async finishRun(runId: string, result: WarehouseRunFinish): Promise<void> {
    const c = result.counts;
    // The cost always carries BigQuery's figures (bytes processed and billed, job ids).
    const cost = this.#costs.finish(runId, result.cost);
    await this.#affected(
      sql`UPDATE ${this.table('runs')} SET finished_at = ${result.finishedAt}, status = ${result.status},
          ${sql.id('rows')} = ${c.rows}, added = ${c.added}, removed = ${c.removed}, changed = ${c.changed},
          refreshed = ${c.refreshed}, invalid = ${c.invalid}, rejected = ${c.rejected}, requests = ${c.requests},
          error = ${bigqueryParam(result.error, 'STRING')},
          cost = PARSE_JSON(${bigqueryParam(cost === null ? null : JSON.stringify(cost), 'STRING')})
        WHERE run_id = ${runId}`,
      'recording the end of a run',
    );
  }

  async listRuns(options: { activationId?: string; limit: number }): Promise<RunRecord[]> {
    const limit = Math.max(0, Math.floor(options.limit));
    const where =
      options.activationId === undefined ? sql`TRUE` : sql`activation_id = ${options.activationId}`;
    const rows = await this.#rows(
      sql<
        RunRow<Date | string, string | null>
      >`SELECT run_id, activation_id, started_at, finished_at, status, ${sql.id('rows')}, added, removed,
          changed, refreshed, invalid, rejected, requests, error, TO_JSON_STRING(cost) AS cost
        FROM ${this.table('runs')} WHERE ${where}
        ORDER BY started_at DESC, run_id DESC LIMIT ${sql.lit(limit)}`,
      'listing runs',
    );
    return rows.map((row) => runFromRow(row, { date: toDate, cost: costFromJson }));
  }

  async insertRejections(
    runId: string,
    activationId: string,
    rows: readonly RejectionRecord[],
  ): Promise<void> {
    if (rows.length === 0) return;
    const values = rows.map((r) => ({
      member_key: r.memberKey,
      identifier_type: r.identifierType,
      reason: r.reason,
    }));
    await this.#affected(
      sql`INSERT INTO ${this.table('rejections')} (run_id, activation_id, member_key, identifier_type, reason, recorded_at)
        SELECT ${runId}, ${activationId}, r.member_key, r.identifier_type, r.reason, CURRENT_TIMESTAMP()
        FROM UNNEST(${bigqueryParam(values, [REJECTION_ROW_TYPE])}) AS r`,
      'recording rejections',
    );
  }

  // --- scheduler bookkeeping ----------------------------------------------------------------------

  async getActivationStatus(activationId: string): Promise<ActivationStatus | undefined> {
    const rows = await this.#rows(
      sql<
        StatusRow<Date | string>
      >`SELECT activation_id, consecutive_failures, paused_at, paused_reason, config_fingerprint, updated_at
        FROM ${this.table('activation_status')} WHERE activation_id = ${activationId}`,
      'reading activation status',
    );
    return rows[0] && statusFromRow(rows[0], toDate);
  }

  async setActivationStatus(status: ActivationStatus): Promise<void> {
    await this.#affected(
      sql`MERGE ${this.table('activation_status')} AS t
        USING (SELECT ${status.activationId} AS activation_id, ${status.consecutiveFailures} AS consecutive_failures,
          ${bigqueryParam(status.pausedAt, 'TIMESTAMP')} AS paused_at,
          ${bigqueryParam(status.pausedReason, 'STRING')} AS paused_reason,
          ${bigqueryParam(status.configFingerprint, 'STRING')} AS config_fingerprint,
          ${status.updatedAt} AS updated_at) AS s
        ON t.activation_id = s.activation_id
        WHEN MATCHED THEN UPDATE SET consecutive_failures = s.consecutive_failures, paused_at = s.paused_at,
          paused_reason = s.paused_reason, config_fingerprint = s.config_fingerprint, updated_at = s.updated_at
        WHEN NOT MATCHED THEN INSERT (activation_id, consecutive_failures, paused_at, paused_reason,
          config_fingerprint, updated_at)
          VALUES (s.activation_id, s.consecutive_failures, s.paused_at, s.paused_reason, s.config_fingerprint,
            s.updated_at)`,
      'saving activation status',
    );
  }

  async listActivationStatus(): Promise<ActivationStatus[]> {
    const rows = await this.#rows(
      sql<
        StatusRow<Date | string>
      >`SELECT activation_id, consecutive_failures, paused_at, paused_reason, config_fingerprint, updated_at
        FROM ${this.table('activation_status')} ORDER BY activation_id`,
      'listing activation status',
    );
    return rows.map((row) => statusFromRow(row, toDate));
  }
}

/**
 * One diff: `tailor_snap_<token>` (key as text, fingerprint, mapped values v_0..), `tailor_bad_<token>`
 * (null and duplicated keys) and `tailor_delta_<token>` (FULL OUTER JOIN against state, delta rows
 * only), all in the state dataset with an expiration, dropped by `close`.
 */
class BigqueryDiff implements WarehouseDiff {
  counts: DiffCounts = emptyCounts();
  readonly #owner: BigqueryWarehouseSql;
  readonly #db: Kysely<unknown>;
  readonly #input: WarehouseDiffInput;
  readonly #pageSize: number;
  readonly #snap: RawBuilder<unknown>;
  readonly #bad: RawBuilder<unknown>;
  readonly #delta: RawBuilder<unknown>;
  #created: RawBuilder<unknown>[] = [];
  #closed = false;

  constructor(owner: BigqueryWarehouseSql, db: Kysely<unknown>, input: WarehouseDiffInput, pageSize: number) {
    this.#owner = owner;
    this.#db = db;
    this.#input = input;
    this.#pageSize = pageSize;
    this.#snap = owner.table(`tailor_snap_${input.token}`);
    this.#bad = owner.table(`tailor_bad_${input.token}`);
    this.#delta = owner.table(`tailor_delta_${input.token}`);
  }

  #expiring(table: RawBuilder<unknown>): RawBuilder<unknown> {
    return sql`CREATE TABLE ${table}
      OPTIONS (expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL ${sql.lit(STAGING_EXPIRY_HOURS)} HOUR))`;
  }

  async #exec(query: RawBuilder<unknown>, what: string): Promise<void> {
    await queryRows(query, this.#db, what);
  }

  /**
   * The CREATE TABLE ... AS SELECT statements carry no query parameters: values are written as
   * literals (the activation id is checked, literals are escaped by the compiler), which keeps the
   * DDL jobs free of parameter restrictions.
   */
  async prepare(): Promise<void> {
    const { modelSql, modelName, primaryKey, columns, activationId } = this.#input;
    checkLiteralActivationId(activationId);
    const m = (column: string) => sql.id('m', column);
    const values = columns.map((column, i) => sql`, ${m(column)} AS ${sql.id(`v_${i}`)}`);
    // Null-safe and order-defined: a STRUCT of the mapped values in `columns` order, as JSON text.
    const fingerprint =
      columns.length === 0
        ? sql`TO_HEX(MD5(''))`
        : sql`TO_HEX(MD5(TO_JSON_STRING(STRUCT(${sql.join(columns.map((c, i) => sql`${m(c)} AS ${sql.id(`v_${i}`)}`))}))))`;
    this.#created.push(this.#snap);
    try {
      await sql`${this.#expiring(this.#snap)} AS
        SELECT CAST(${m(primaryKey)} AS STRING) AS member_key, ${fingerprint} AS fingerprint ${sql.join(values, sql``)}
        FROM (${sql.raw(modelSql)}) AS m`.execute(this.#db);
    } catch (error) {
      throw modelError(error, modelName);
    }
    const t = (name: string) => this.#owner.table(name);
    this.#created.push(this.#bad);
    await this.#exec(
      sql`${this.#expiring(this.#bad)} AS
        SELECT member_key, COUNT(*) AS n FROM ${this.#snap}
        GROUP BY member_key HAVING member_key IS NULL OR COUNT(*) > 1`,
      'finding null and duplicated keys',
    );
    const valueRefs = columns.map((_, i) => sql`, s.${sql.id(`v_${i}`)}`);
    this.#created.push(this.#delta);
    await this.#exec(
      sql`${this.#expiring(this.#delta)} AS
        SELECT CASE WHEN s.member_key IS NULL THEN 0 WHEN t.member_key IS NULL THEN 3
                    WHEN s.fingerprint <> t.fingerprint THEN 1 ELSE 2 END AS change_rank,
               COALESCE(s.member_key, t.member_key) AS member_key, s.fingerprint ${sql.join(valueRefs, sql``)}
        FROM (SELECT * FROM ${this.#snap} AS s0 WHERE s0.member_key IS NOT NULL
                AND s0.member_key NOT IN (SELECT b.member_key FROM ${this.#bad} AS b WHERE b.member_key IS NOT NULL)) AS s
        FULL OUTER JOIN (SELECT member_key, fingerprint, last_sent_at FROM ${t('members')}
                         WHERE activation_id = ${sql.lit(activationId)}) AS t
          ON s.member_key = t.member_key
        WHERE s.member_key IS NULL OR t.member_key IS NULL OR s.fingerprint <> t.fingerprint
           OR ${sql.lit(this.#input.fullResync)}
           OR t.last_sent_at < ${timestampLiteral(this.#input.refreshBefore)}`,
      'comparing the segment with state',
    );
    const rows = await sql<CountRow>`SELECT
        (SELECT COUNT(*) FROM ${this.#snap}) AS row_count,
        (SELECT COALESCE(SUM(n), 0) FROM ${this.#bad}) AS invalid,
        (SELECT COUNT(*) FROM ${t('members')} WHERE activation_id = ${activationId}) AS state,
        (SELECT COUNTIF(change_rank = 0) FROM ${this.#delta}) AS removed,
        (SELECT COUNTIF(change_rank = 1) FROM ${this.#delta}) AS changed,
        (SELECT COUNTIF(change_rank = 2) FROM ${this.#delta}) AS refresh,
        (SELECT COUNTIF(change_rank = 3) FROM ${this.#delta}) AS added`
      .execute(this.#db)
      .catch((error: unknown) => {
        throw asWarehouseError(error, 'counting the diff');
      });
    this.counts = countsFromRow(rows.rows[0]);
  }

  async *#stream<R>(query: RawBuilder<R>, what: string, pageSize: number): AsyncGenerator<R[]> {
    if (this.#closed) throw new WarehouseError('the diff was already closed');
    // Pages of jobs.getQueryResults (`maxResults` rows, then `pageToken`): never the whole result.
    yield* streamRows(query, this.#db, pageSize, what);
  }

  async *invalidKeys(batchSize: number): AsyncIterable<InvalidKeyRow[]> {
    const query = sql<{ member_key: string | null; n: number }>`SELECT member_key, n FROM ${this.#bad}
      ORDER BY member_key ASC NULLS FIRST`;
    const pages = this.#stream(query, 'reading invalid keys', Math.min(batchSize, this.#pageSize));
    yield* rebatch(pages, batchSize, invalidKeysFromRow);
  }

  async *delta(batchSize: number): AsyncIterable<WarehouseDeltaRow[]> {
    const columns = this.#input.columns;
    const values = columns.map((_, i) => sql`, d.${sql.id(`v_${i}`)}`);
    // A correlated ARRAY subquery carries each member's stored hashes; BigQuery orders strings by
    // code point, so key order matches Postgres' COLLATE "C".
    const query = sql<
      DeltaDbRow<{ id_type: string; hash: string }[] | null>
    >`SELECT d.change_rank, d.member_key, d.fingerprint ${sql.join(values, sql``)},
        ARRAY(SELECT AS STRUCT h.id_type, h.${HASH} FROM ${this.#owner.table('member_hashes')} AS h
              WHERE h.activation_id = ${this.#input.activationId} AND h.member_key = d.member_key
              ORDER BY h.id_type, h.${HASH}) AS previous_hashes
      FROM ${this.#delta} AS d ORDER BY d.change_rank, d.member_key`;
    const pages = this.#stream(query, 'reading the delta', Math.min(batchSize, this.#pageSize));
    yield* rebatch(pages, batchSize, (row) => [
      deltaFromRow(row, columns, (hashes) =>
        (hashes ?? []).map((h) => ({ idType: h.id_type, hash: h.hash })),
      ),
    ]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // One DROP per table (BigQuery drops one table per statement); expiration covers any failure.
    for (const table of this.#created.reverse()) {
      await sql`DROP TABLE IF EXISTS ${table}`.execute(this.#db).catch(() => undefined);
    }
  }
}

/** The state tables, versioned; append only (a released migration is never edited). */
export interface BigqueryMigration {
  version: number;
  name: string;
  statements(table: (name: string) => RawBuilder<unknown>): RawBuilder<unknown>[];
}

export const BIGQUERY_MIGRATIONS: readonly BigqueryMigration[] = [
  {
    version: 1,
    name: 'initial state tables',
    statements: (t) => [
      sql`CREATE TABLE IF NOT EXISTS ${t('bindings')} (
        activation_id STRING NOT NULL, destination STRING NOT NULL, account_id STRING NOT NULL,
        audience_id STRING NOT NULL, audience_name STRING NOT NULL, bound_at TIMESTAMP NOT NULL)`,
      // Clustered by the columns every statement filters and joins on.
      sql`CREATE TABLE IF NOT EXISTS ${t('members')} (
        activation_id STRING NOT NULL, member_key STRING NOT NULL, fingerprint STRING NOT NULL,
        last_sent_at TIMESTAMP, updated_at TIMESTAMP NOT NULL)
        CLUSTER BY activation_id, member_key`,
      sql`CREATE TABLE IF NOT EXISTS ${t('member_hashes')} (
        activation_id STRING NOT NULL, member_key STRING NOT NULL, id_type STRING NOT NULL, ${HASH} STRING NOT NULL)
        CLUSTER BY activation_id, ${HASH}`,
      sql`CREATE TABLE IF NOT EXISTS ${t('runs')} (
        run_id STRING NOT NULL, activation_id STRING NOT NULL, started_at TIMESTAMP NOT NULL,
        finished_at TIMESTAMP, status STRING NOT NULL, ${sql.id('rows')} INT64 NOT NULL, added INT64 NOT NULL,
        removed INT64 NOT NULL, changed INT64 NOT NULL, refreshed INT64 NOT NULL, invalid INT64 NOT NULL,
        rejected INT64 NOT NULL, requests INT64 NOT NULL, error STRING, cost JSON)
        CLUSTER BY activation_id`,
      sql`CREATE TABLE IF NOT EXISTS ${t('rejections')} (
        run_id STRING NOT NULL, activation_id STRING NOT NULL, member_key STRING, identifier_type STRING,
        reason STRING NOT NULL, recorded_at TIMESTAMP NOT NULL)
        CLUSTER BY run_id`,
      sql`CREATE TABLE IF NOT EXISTS ${t('activation_status')} (
        activation_id STRING NOT NULL, consecutive_failures INT64 NOT NULL, paused_at TIMESTAMP,
        paused_reason STRING, config_fingerprint STRING, updated_at TIMESTAMP NOT NULL)`,
      // The activation locks: one lease row per held lock.
      sql`CREATE TABLE IF NOT EXISTS ${t('locks')} (
        activation_id STRING NOT NULL, holder STRING NOT NULL, acquired_at TIMESTAMP NOT NULL,
        expires_at TIMESTAMP NOT NULL)`,
    ],
  },
];

const HASH_ROW_TYPE = { member_key: 'STRING', id_type: 'STRING', hash: 'STRING' } as const;
const MEMBER_ROW_TYPE = {
  member_key: 'STRING',
  fingerprint: 'STRING',
  last_sent_at: 'TIMESTAMP',
  remove: 'BOOL',
} as const;
const REJECTION_ROW_TYPE = { member_key: 'STRING', identifier_type: 'STRING', reason: 'STRING' } as const;

/** A TIMESTAMP literal (or a typed NULL) for statements that take no parameters. */
function timestampLiteral(value: Date | null): RawBuilder<unknown> {
  return value === null ? sql`CAST(NULL AS TIMESTAMP)` : sql`TIMESTAMP ${sql.lit(value.toISOString())}`;
}

/** A statement BigQuery aborted because another one changed the same table at the same time. */
function isConcurrentUpdate(error: unknown): boolean {
  return causes(error).some((e) => /concurrent update|could not serialize access/i.test(errorMessage(e)));
}

/** BigQuery's 404 `notFound` (a dataset or table that does not exist yet). */
function isNotFound(error: unknown): boolean {
  return causes(error).some((e) => {
    const api = e as { code?: unknown; errors?: { reason?: string }[] };
    return Number(api.code) === 404 || api.errors?.some((x) => x.reason === 'notFound') === true;
  });
}

export { asWarehouseError };

/**
 * A failure of the model's own SQL (BigQuery's `invalidQuery`, or a 400 on the snapshot), unless it
 * is credentials, permissions or the service.
 */
export function modelError(error: unknown, modelName: string): Error {
  const invalid = causes(error).some((e) => {
    const api = e as { code?: unknown; errors?: { reason?: string }[] };
    return api.errors?.some((x) => x.reason === 'invalidQuery') === true || Number(api.code) === 400;
  });
  if (!invalid) return asWarehouseError(error, `snapshotting model ${modelName}`);
  const message = causes(error)
    .map((e) => (e as { errors?: { message?: string }[] }).errors?.[0]?.message)
    .find((m) => m !== undefined);
  return new ModelSqlError(modelName, message ?? errorMessage(error), {
    cause: error,
    hint: `run models/${modelName}.sql in BigQuery to see the error; Tailor runs it unchanged`,
  });
}
