import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import { errorMessage, ModelSqlError, WarehouseError } from '../../errors.js';
import { createLocksTable, tryLeaseLock } from '../lease-lock.js';
import { RunCostMarks } from '../run-cost.js';
import { asWarehouseError, causes } from '../warehouse-errors.js';
import type { ColumnType, WarehouseHooks } from '../warehouse-hooks.js';
import { bigqueryParam, type BigqueryType } from './bigquery-params.js';

/**
 * What BigQuery (GoogleSQL) does its own way in the state layer; the statements themselves are
 * src/diff's, compiled by BigqueryQueryCompiler (backtick identifiers, typed positional
 * parameters) and run as query jobs.
 *
 * - Scratch tables are ordinary tables in the state dataset with an `expiration_timestamp`, not
 *   session temp tables: jobs of one run are independent, and a crashed run's tables disappear on
 *   their own. https://cloud.google.com/bigquery/docs/managing-tables#updating_a_tables_expiration_time
 * - The fingerprint is `TO_HEX(MD5(TO_JSON_STRING(STRUCT(...))))`: JSON keeps null apart from 'null'
 *   and 1 apart from '1'. https://cloud.google.com/bigquery/docs/reference/standard-sql/hash_functions#md5
 * - Bulk rows are `UNNEST` of one typed ARRAY<STRUCT> parameter; a commit's statements run without a
 *   transaction, hashes first, members last, so a failure in between only makes the next diff
 *   re-emit those members.
 * - The activation lock is a lease row (BigQuery has no locks).
 */
export interface BigqueryHooksOptions {
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
  /** A dry run's statement type (BigqueryExecutor.dryRun), checked before the snapshot runs. */
  dryRun?: (sql: string) => Promise<{ statementType: string | undefined }>;
}

/**
 * BigQuery runs a query job whose SQL holds several statements as a script, each statement in turn,
 * so a model that closes Tailor's wrapping subquery (`... ) AS m; DROP TABLE t; SELECT * FROM (...`)
 * would run statements of its own. Two guards, before anything runs:
 *
 * 1. A statement that reads a model may hold no `;` at all (the model's trailing one is removed
 *    first, src/sources/model-sql.ts). GoogleSQL separates a script's statements with `;` and has no
 *    other use for it outside literals and comments, and Tailor's own SQL has none, so without one
 *    the job is a single statement, whatever the SQL says. This refuses a model with a `;` in a
 *    string or a comment too (write `CODE_POINTS_TO_STRING([59])`), which no lexer can then misread.
 * 2. A dry run of the statement must report the expected `statementType`
 *    (`CREATE_TABLE_AS_SELECT` for the snapshot, `SELECT` for describeModel), never `SCRIPT`.
 *    Documented: a dry run validates the query and returns statistics without running it
 *    (https://cloud.google.com/bigquery/docs/running-queries#dry-run), and
 *    `statistics.query.statementType` names the type of the statement, `SCRIPT` for a multi-statement
 *    query (https://cloud.google.com/bigquery/docs/reference/rest/v2/Job#JobStatistics2). Not
 *    documented: that the dry run of a script reports `SCRIPT` rather than failing; either way it is
 *    refused. bqemulator (the tests' engine) executes a script even in a dry run, so guard 1 is the
 *    one its tests can show; guard 2 holds on BigQuery itself.
 */
export async function assertSingleStatement(
  statementSql: string,
  expected: 'SELECT' | 'CREATE_TABLE_AS_SELECT',
  dryRun: ((sql: string) => Promise<{ statementType: string | undefined }>) | undefined,
): Promise<void> {
  if (statementSql.includes(';')) {
    throw invalidQuery(
      "the model holds a ';' (BigQuery would run it as a script of several statements); remove it, also from comments and strings",
    );
  }
  if (!dryRun) return;
  const { statementType } = await dryRun(statementSql);
  if (statementType !== expected) {
    throw invalidQuery(
      `the model is not a single query: BigQuery takes it for a ${statementType ?? 'statement of unknown type'}`,
    );
  }
}

/** An error shaped as BigQuery's own for an invalid query (HTTP 400, reason `invalidQuery`). */
function invalidQuery(message: string): Error {
  return Object.assign(new Error(message), { code: 400, errors: [{ reason: 'invalidQuery', message }] });
}

/** Run-scoped tables expire by themselves if a crashed run never drops them. */
const STAGING_EXPIRY_HOURS = 24;

const BIGQUERY_TYPES: Record<ColumnType, string> = {
  text: 'STRING',
  timestamptz: 'TIMESTAMP',
  bigint: 'INT64',
  integer: 'INT64',
  jsonb: 'STRING',
  boolean: 'BOOL',
};

/** Clustered by the columns every statement filters and joins on. */
const CLUSTER_BY: Record<string, string[]> = {
  members: ['activation_id', 'member_key'],
  member_hashes: ['activation_id', 'hash'],
  runs: ['activation_id'],
  rejections: ['run_id'],
};

export function createBigqueryHooks(options: BigqueryHooksOptions): WarehouseHooks {
  if (!/^[A-Za-z0-9_]{1,1024}$/.test(options.dataset)) {
    throw new WarehouseError(`invalid BigQuery dataset name ${JSON.stringify(options.dataset)}`);
  }
  if (!/^[A-Za-z0-9-]+$/.test(options.location)) {
    throw new WarehouseError(`invalid BigQuery location ${JSON.stringify(options.location)}`);
  }
  const { db, dataset, logger } = options;
  const delay = options.retryDelayMs ?? 500;
  const costs = new RunCostMarks(options);

  /**
   * BigQuery aborts a mutating statement that conflicts with another one on the same table ("Could
   * not serialize access to table ... due to concurrent update"); an aborted statement changed
   * nothing, so it is retried a few times with a growing pause.
   * https://cloud.google.com/bigquery/docs/data-manipulation-language#dml_statement_conflicts
   */
  const run: WarehouseHooks['run'] = async (what, attempt, { mutates = false } = {}) => {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        if (mutates && n < 4 && isConcurrentUpdate(error)) {
          await sleep(delay * n + Math.floor(Math.random() * delay));
          continue;
        }
        throw asWarehouseError(error, what);
      }
    }
  };

  const lease = {
    db,
    stateSchema: dataset,
    leaseSeconds: Math.ceil((options.leaseMs ?? 10 * 60_000) / 1000),
    expiry: (seconds: number) => sql`TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL ${sql.lit(seconds)} SECOND)`,
    run,
    logger,
  };

  return {
    lockPollMs: 2000,
    // One ARRAY<STRUCT> parameter per statement; keep requests well under the 10 MB request limit.
    maxRowsPerStatement: 5000,
    maxHashesPerLookup: 10_000,
    fetchSize: options.pageSize ?? 10_000,
    transactions: false,
    upsert: 'merge',

    run,
    modelError,

    // Typed parameters: BigQuery refuses an untyped null ("Parameter types must be provided for null
    // values"). https://cloud.google.com/bigquery/docs/parameterized-queries
    value: (value, type) =>
      type === 'jsonb'
        ? sql`PARSE_JSON(${bigqueryParam(value ?? null, 'STRING')})`
        : sql`${bigqueryParam(value ?? null, BIGQUERY_TYPES[type])}`,
    literal: (value, type) =>
      value === null
        ? sql`CAST(NULL AS ${sql.raw(BIGQUERY_TYPES[type])})`
        : type === 'timestamptz'
          ? sql`TIMESTAMP ${sql.lit((value as Date).toISOString())}`
          : sql.lit(value),
    readTimestamp: (column) => sql.ref(column),
    readJson: (column) => sql`TO_JSON_STRING(${sql.ref(column)})`,
    rows: (alias, columns, rows) => {
      const struct: Record<string, BigqueryType> = {};
      for (const [name, type] of columns) struct[name] = BIGQUERY_TYPES[type];
      const values = rows.map((row) =>
        Object.fromEntries(columns.map(([name], i) => [name, row[i] ?? null])),
      );
      return sql`UNNEST(${bigqueryParam(values, [struct])}) AS ${sql.id(alias)}`;
    },
    inList: (expr, values, negate = false) =>
      sql`${expr} ${sql.raw(negate ? 'NOT IN' : 'IN')} UNNEST(${bigqueryParam([...values], ['STRING'])})`,

    missingState(error) {
      // "Not found: Dataset p:d" or "Not found: Table p:d.tailor_migrations"
      if (!isNotFound(error)) return undefined;
      return /Dataset/i.test(errorMessage(error)) ? 'schema' : 'table';
    },
    // Every migration statement is idempotent (IF NOT EXISTS, a version row inserted only when
    // absent), so concurrent first runs converge without a lock, which BigQuery does not have.
    migrationScope: (scope, migrate) => migrate(scope),
    async createSchema(scope, missing) {
      // Only when missing: a pre-created dataset needs no project-level create permission.
      if (!missing) return;
      await run(
        `creating the state dataset ${dataset}`,
        () =>
          sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(dataset)} OPTIONS (location = ${sql.lit(options.location)})`.execute(
            scope,
          ),
        { mutates: true },
      );
    },
    table: (builder, table) => {
      const cluster = CLUSTER_BY[table];
      return cluster
        ? builder.modifyEnd(sql`CLUSTER BY ${sql.join(cluster.map((c) => sql.id(c)))}`)
        : builder;
    },
    migrationExtras: (version, scope) => (version === 1 ? [createLocksTable(scope, dataset)] : []),

    // Jobs are independent: a diff needs no session of its own. Its reads are pages of
    // jobs.getQueryResults (`maxResults` rows, then `pageToken`): never the whole result.
    openSession: async () => ({
      db,
      async *stream(query, chunkSize) {
        for await (const chunk of db.getExecutor().stream(query, chunkSize)) yield chunk.rows;
      },
      close: async () => {},
    }),
    scratchTable: (name) => sql.id(dataset, name),
    createScratch: (table, select) => ({
      statements: [
        sql`CREATE TABLE ${table}
          OPTIONS (expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL ${sql.lit(STAGING_EXPIRY_HOURS)} HOUR))
          AS ${select}`,
      ],
      rowsCounted: false,
    }),
    readModel: async (scope, statement) => {
      await assertSingleStatement(statement.compile(scope).sql, 'CREATE_TABLE_AS_SELECT', options.dryRun);
      return statement.execute(scope);
    },
    keyText: (expr) => sql`CAST(${expr} AS STRING)`,
    // SHA256 of a STRING hashes its UTF-8 bytes.
    // https://cloud.google.com/bigquery/docs/reference/standard-sql/hash_functions#sha256
    keyDigest: (text) => sql`TO_HEX(SHA256(${text}))`,
    // FarmHash Fingerprint64 of the UTF-8 bytes, as a signed INT64; null for null.
    // https://cloud.google.com/bigquery/docs/reference/standard-sql/hash_functions#farm_fingerprint
    keyHash: (text) => sql`FARM_FINGERPRINT(${text})`,
    fingerprint: (values) =>
      values.length === 0
        ? sql`TO_HEX(MD5(''))`
        : sql`TO_HEX(MD5(TO_JSON_STRING(STRUCT(${sql.join(values.map((v, i) => sql`${v} AS ${sql.id(`v_${i}`)}`))}))))`,
    // BigQuery orders strings by code point, as Postgres' COLLATE "C".
    keyOrder: (expr) => expr,
    // A correlated ARRAY subquery carries each member's stored hashes.
    deltaHashes: ({ hashes, activationId }) => ({
      column: sql`ARRAY(SELECT AS STRUCT h.id_type, h.${sql.id('hash')} FROM ${hashes} AS h
        WHERE h.activation_id = ${activationId} AND h.member_key = ${sql.ref('d.member_key')}
        ORDER BY h.id_type, h.${sql.id('hash')})`,
    }),
    parseHashes: (value) =>
      ((value ?? []) as { id_type: string; hash: string }[]).map((h) => ({
        idType: h.id_type,
        hash: h.hash,
      })),

    async tryLock(activationId) {
      try {
        return await tryLeaseLock(lease, activationId);
      } catch (error) {
        // Two MERGEs on one table at once: BigQuery aborts one ("concurrent update"); that one lost.
        if (isConcurrentUpdate(error)) return null;
        throw error;
      }
    },
    runCost: costs,
  };
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
