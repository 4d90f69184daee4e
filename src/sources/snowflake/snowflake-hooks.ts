import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import { errorMessage, ModelSqlError } from '../../errors.js';
import { createLocksTable, tryLeaseLock } from '../lease-lock.js';
import { RunCostMarks } from '../run-cost.js';
import { asWarehouseError, causes } from '../warehouse-errors.js';
import type { WarehouseHooks } from '../warehouse-hooks.js';
import { snowflakeStoredName } from './snowflake-identifiers.js';

/**
 * What Snowflake does its own way in the state layer; the statements themselves are src/diff's,
 * compiled by SnowflakeQueryCompiler: identifiers are sent quoted in their stored upper-case form,
 * because Snowflake upper-cases unquoted names (`tailor.members` is TAILOR.MEMBERS, and a model's
 * `select email` returns EMAIL): https://docs.snowflake.com/en/sql-reference/identifiers-syntax
 *
 * - Scratch tables are TEMPORARY tables of the session (dropped with it).
 *   https://docs.snowflake.com/en/user-guide/tables-temp-transient
 * - The fingerprint is `MD5(TO_JSON(OBJECT_CONSTRUCT_KEEP_NULL(...)))`: JSON keeps null apart from
 *   'null' and 1 apart from '1'. https://docs.snowflake.com/en/sql-reference/functions/md5
 * - Bulk rows are bound `VALUES` lists (Snowflake allows up to 16,384 rows in one VALUES clause).
 *   https://docs.snowflake.com/en/sql-reference/constructs/values
 * - The activation lock is a lease row (Snowflake has no advisory locks; DML on one table is
 *   serialized by its table lock).
 * - Timestamps are bound as ISO text through TO_TIMESTAMP_TZ and read back as epoch milliseconds,
 *   so no session time zone or output format can change them.
 */
export interface SnowflakeHooksOptions {
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

export function createSnowflakeHooks(options: SnowflakeHooksOptions): WarehouseHooks {
  const { db, schema, logger } = options;
  const costs = new RunCostMarks(options);
  const run: WarehouseHooks['run'] = async (what, attempt) => {
    try {
      return await attempt();
    } catch (error) {
      throw asWarehouseError(error, what);
    }
  };
  const lease = {
    db,
    stateSchema: schema,
    leaseSeconds: Math.ceil((options.leaseMs ?? 10 * 60_000) / 1000),
    expiry: (seconds: number) => sql`DATEADD(SECOND, ${sql.lit(seconds)}, CURRENT_TIMESTAMP())`,
    run,
    logger,
  };
  const iso = (value: unknown) => (value instanceof Date ? value.toISOString() : (value ?? null));

  return {
    lockPollMs: 2000,
    maxRowsPerStatement: 1000,
    maxHashesPerLookup: 1000,
    fetchSize: 10_000,
    transactions: true,
    upsert: 'merge',

    run,
    modelError,

    value: (value, type) =>
      type === 'timestamptz'
        ? sql`TO_TIMESTAMP_TZ(${iso(value)})`
        : type === 'jsonb'
          ? sql`PARSE_JSON(${value ?? null})`
          : sql`${value ?? null}`,
    literal: (value, type) =>
      value === null
        ? sql`CAST(NULL AS ${sql.raw(type === 'timestamptz' ? 'TIMESTAMP_TZ' : type === 'boolean' ? 'BOOLEAN' : 'VARCHAR')})`
        : type === 'timestamptz'
          ? sql`TO_TIMESTAMP_TZ(${sql.lit((value as Date).toISOString())})`
          : sql.lit(value),
    readTimestamp: (column) => sql`DATE_PART(EPOCH_MILLISECOND, ${sql.ref(column)})`,
    readJson: (column) => sql`TO_JSON(${sql.ref(column)})`,
    // VALUES take binds, not functions of them: timestamps arrive as text and are converted above.
    rows: (alias, columns, rows) =>
      sql`(SELECT ${sql.join(
        columns.map(([name, type]) =>
          type === 'timestamptz' ? sql`TO_TIMESTAMP_TZ(${sql.id(name)}) AS ${sql.id(name)}` : sql.id(name),
        ),
      )} FROM (VALUES ${sql.join(rows.map((row) => sql`(${sql.join(row.map((v) => sql`${iso(v)}`))})`))})
        AS v (${sql.join(columns.map(([name]) => sql.id(name)))})) AS ${sql.id(alias)}`,
    inList: (expr, values, negate = false) =>
      values.length === 0
        ? sql.lit(negate)
        : sql`${expr} ${sql.raw(negate ? 'NOT IN' : 'IN')} (${sql.join(values.map((v) => sql`${v}`))})`,

    missingState(error) {
      // 002003: "Object does not exist or not authorized" (schema or table not created yet).
      const missing = causes(error).some((e) =>
        ['2003', '002003'].includes(String((e as { code?: unknown }).code)),
      );
      return missing ? 'table' : undefined;
    },
    // Idempotent statements (IF NOT EXISTS, a version row inserted only when absent), so concurrent
    // first runs converge.
    migrationScope: (scope, migrate) => migrate(scope),
    async createSchema(scope) {
      // Only when missing: a pre-created schema needs no CREATE SCHEMA privilege on the database.
      const rows = await run('looking for the state schema', () =>
        sql<{ n: number }>`SELECT COUNT(*) AS n FROM INFORMATION_SCHEMA.SCHEMATA
          WHERE SCHEMA_NAME = ${snowflakeStoredName(schema)}`.execute(scope),
      );
      if (Number(rows.rows[0]?.n ?? 0) > 0) return;
      await run(`creating the state schema ${schema}`, () =>
        sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(schema)}`.execute(scope),
      );
    },
    table: (builder, table, primaryKey) =>
      primaryKey ? builder.addPrimaryKeyConstraint(`${table}_pkey`, [...primaryKey]) : builder,
    migrationExtras: (version, scope) => (version === 1 ? [createLocksTable(scope, schema)] : []),

    // One Session: snowflake-sdk streams the result (inline rows, then result chunks) row by row;
    // the executor hands them over `chunkSize` at a time.
    openSession: async () => ({
      db,
      async *stream(query, chunkSize) {
        for await (const chunk of db.getExecutor().stream(query, chunkSize)) yield chunk.rows;
      },
      close: async () => {},
    }),
    scratchTable: (name) => sql.id(schema, name),
    createScratch: (table, select) => ({
      statements: [sql`CREATE TEMPORARY TABLE ${table} AS ${select}`],
      rowsCounted: false,
    }),
    // Snowflake has no read-only transactions; the executor runs each statement with
    // MULTI_STATEMENT_COUNT = 1, so the model cannot add statements (snowflake-executor.ts).
    readModel: (scope, statement) => statement.execute(scope),
    keyText: (expr) => sql`TO_VARCHAR(${expr})`,
    // SHA2(text, 256) is the lowercase hex SHA-256 of the UTF-8 bytes.
    // https://docs.snowflake.com/en/sql-reference/functions/sha2
    keyDigest: (text) => sql`SHA2(${text}, 256)`,
    // The lower 64 bits of the MD5 of the UTF-8 bytes, unsigned (NUMBER(38,0) holds it); null for
    // null. Not HASH: key hashes are stored, and Snowflake does not promise that HASH's proprietary
    // algorithm stays the same across releases, while MD5 is fixed.
    // https://docs.snowflake.com/en/sql-reference/functions/md5_number_lower64
    keyHash: (text) => sql`MD5_NUMBER_LOWER64(${text})`,
    fingerprint: (values) =>
      values.length === 0
        ? sql`MD5('')`
        : sql`MD5(TO_JSON(OBJECT_CONSTRUCT_KEEP_NULL(${sql.join(values.map((v, i) => sql`${sql.lit(`v_${i}`)}, ${v}`))})))`,
    // Snowflake orders strings by their UTF-8 bytes, as Postgres' COLLATE "C".
    keyOrder: (expr) => expr,
    // Stored hashes are aggregated per delta member first (a CTE), then joined: no GROUP BY over
    // the model's values, whatever their types.
    deltaHashes: ({ hashes, delta, activationId, name }) => ({
      with: sql`${sql.id(name)} AS (
        SELECT ${sql.id('member_key')}, ARRAY_AGG(ARRAY_CONSTRUCT(${sql.id('id_type')}, ${sql.id('hash')}))
          WITHIN GROUP (ORDER BY ${sql.id('id_type')}, ${sql.id('hash')}) AS ${sql.id('hashes')}
        FROM ${hashes}
        WHERE ${sql.id('activation_id')} = ${activationId}
          AND ${sql.id('member_key')} IN (SELECT ${sql.id('member_key')} FROM ${delta})
        GROUP BY ${sql.id('member_key')})`,
      column: sql.ref(`${name}.hashes`),
      join: sql`LEFT JOIN ${sql.id(name)} AS ${sql.id(name)} ON ${sql.ref(`${name}.member_key`)} = ${sql.ref('d.member_key')}`,
    }),
    // The driver hands an ARRAY column over as JSON text or as parsed arrays.
    parseHashes: (value) =>
      (((typeof value === 'string' ? JSON.parse(value) : value) ?? []) as [string, string][]).map(
        ([idType, hash]) => ({ idType, hash }),
      ),

    tryLock: (activationId) => tryLeaseLock(lease, activationId),
    runCost: costs,
  };
}

/**
 * A failure of the model's own SQL: Snowflake's compilation errors (SQL state 42xxx, e.g. 42000
 * syntax error, 42S02 object does not exist), unless it is permissions; data exceptions (22xxx, a
 * value the model cannot convert); and error 000008, a request of more statements than
 * MULTI_STATEMENT_COUNT allows (a model that closes Tailor's wrapping subquery).
 * https://docs.snowflake.com/en/developer-guide/node-js/nodejs-driver-errors
 */
export function modelError(error: unknown, modelName: string): Error {
  const found = causes(error).find((e) => typeof (e as { sqlState?: unknown }).sqlState === 'string') as
    { sqlState: string; message?: string; code?: unknown } | undefined;
  const model =
    found !== undefined &&
    ((found.sqlState.startsWith('42') && found.sqlState !== '42501') ||
      found.sqlState.startsWith('22') ||
      String(found.code) === '000008' ||
      String(found.code) === '8');
  if (!found || !model) {
    return asWarehouseError(error, `snapshotting model ${modelName}`);
  }
  return new ModelSqlError(modelName, found.message ?? errorMessage(error), {
    cause: error,
    hint: `run models/${modelName}.sql in Snowflake to see the error; Tailor runs it unchanged`,
  });
}
