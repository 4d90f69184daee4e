import { sql, type CompiledQuery, type Kysely, type RawBuilder } from 'kysely';
import type { Logger } from 'pino';
import { errorMessage, ModelSqlError, WarehouseError } from '../../errors.js';
import type { ColumnType, HeldLock, WarehouseHooks, WarehouseSession } from '../warehouse-hooks.js';
import { QUOTE_OR_BREAK, redactValues } from '../redact.js';
import { textArrayLiteral } from './pg-array.js';

/**
 * What Postgres (and PGlite, PG 18 inside: all SQL here stays within what PG 15 supports) does its
 * own way in the state layer; the statements themselves are src/diff's.
 */

/** `WarehouseSession.stream` through Kysely's own streaming (the PGlite driver's WITH HOLD cursor). */
export async function* kyselyStream<R>(db: Kysely<unknown>, query: CompiledQuery<R>, chunkSize: number) {
  for await (const chunk of db.getExecutor().stream(query, chunkSize)) yield chunk.rows as R[];
}

/**
 * Session settings that decide how values render as text (`::text`, `json_build_array`): fixed so a
 * model's keys and fingerprints do not change with the server's or the role's defaults.
 * https://www.postgresql.org/docs/current/runtime-config-client.html#RUNTIME-CONFIG-CLIENT-FORMAT
 */
export const SESSION_SETTINGS = `select set_config('TimeZone', 'UTC', false), set_config('DateStyle', 'ISO, YMD', false),
  set_config('IntervalStyle', 'postgres', false), set_config('extra_float_digits', '1', false)`;

export interface PostgresHooksOptions {
  stateSchema: string;
  /** A connection held for a diff or a lock; never one of the pool's, so they cannot starve it. */
  openSession(): Promise<WarehouseSession>;
  /** Rows per round trip when streaming (config `fetch_size`). */
  fetchSize: number;
  /**
   * `advisory`: `pg_try_advisory_lock` on a dedicated session (Postgres server). `in_process`: a mutex
   * in this process, for PGlite, where every "session" is the same backend and advisory locks would
   * be re-entrant; `scope` names the database (its data directory).
   */
  lock: { kind: 'advisory' } | { kind: 'in_process'; scope: string };
  logger: Logger;
  /**
   * Send digest columns of bulk rows as their bytes (rowsSource); default true. PGlite turns it off:
   * there a `bytea` parameter and the rows cut from it took 405-575 ms for 30,000 rows of key, type
   * and hash against 85-98 ms as three `text[]`, and a 300k first load 71.3 s against 37.4 s.
   */
  packDigests?: boolean;
  /**
   * Plan a commit that deletes removed members for a state the server keeps in memory
   * (`random_page_cost` 1.1, as for SSDs, local to the transaction). Where the planner has statistics
   * (a server, not PGlite), the default 4.0 priced the delete of 10,000 removed members by primary
   * key above a scan of the whole table: measured at 1M members (PG 15), the scan took 215-243 ms,
   * the key lookups 66-88 ms; the delete of their hash rows by the member index, a bitmap scan,
   * 94-179 ms against 73 ms. Only those commits: in the others it turned the changed members'
   * delete by (member, type, hash) into a hash join over the member index, 180-214 ms against
   * 149-202 ms for a probe of the hash index per pair (20,000 pairs).
   * https://www.postgresql.org/docs/current/runtime-config-query.html#GUC-RANDOM-PAGE-COST
   */
  cachedStatePlans?: boolean;
}

/** Mutexes of `in_process` locks, by scope, schema and activation. */
const inProcessLocks = new Set<string>();

const PG_TYPES: Record<ColumnType, string> = {
  text: 'text',
  timestamptz: 'timestamptz',
  bigint: 'bigint',
  integer: 'integer',
  jsonb: 'jsonb',
  boolean: 'boolean',
};

/**
 * A `text[]` (or other `type[]`) parameter sent as the text of one array literal, not built element
 * by element by node-postgres (see textArrayLiteral).
 */
function arrayParam(values: readonly (string | null)[], type: string): RawBuilder<unknown> {
  return sql`cast(${textArrayLiteral(values)} as ${sql.raw(type)}[])`;
}

/**
 * The bytes of a column whose every value is a SHA-256 digest as state stores keys and hashes (64
 * lowercase hex characters), for one `bytea` parameter; undefined when any value is not (null, a
 * partner id, uppercase hex), or there are none. Checked over the joined text, not value by value
 * (a RegExp per value cost 4.1 s of a 1M-member first load): Node's hex decoding stops at the first
 * character that is not hex, so every value is hex when the bytes come out whole.
 */
export function packedDigests(values: readonly unknown[]): Buffer | undefined {
  if (values.length === 0) return undefined;
  for (const value of values) if (typeof value !== 'string' || value.length !== 64) return undefined;
  const text = (values as readonly string[]).join('');
  if (UPPERCASE_HEX.test(text)) return undefined;
  const bytes = Buffer.from(text, 'hex');
  return bytes.length === values.length * 32 ? bytes : undefined;
}

const UPPERCASE_HEX = /[A-F]/;

/**
 * Rows for a statement's FROM: `unnest` of one array parameter per column, except that a text
 * column of digests (member keys, identifier hashes) is one `bytea` parameter of their bytes, cut
 * back into lowercase hex by row number (`encode` gives back exactly the text it was given, as the
 * column is only packed when every value is lowercase hex). Parsing a `text[]` of quoted 64-character
 * values is what costs: measured (PG 15) over 30,000 rows of key, type and hash, 63.5 ms as three
 * arrays against 10.1 ms with the key and the hash packed, 2.9 ms of it Node's to pack them. Any other
 * text column goes as one text of its values joined by line breaks where it can (joinedLines).
 * https://www.postgresql.org/docs/current/functions-binarystring.html
 */
export function rowsSource(
  alias: string,
  columns: readonly (readonly [name: string, type: ColumnType])[],
  rows: readonly (readonly unknown[])[],
  packDigests = true,
): RawBuilder<unknown> {
  const values = columns.map((_, i) => rows.map((row) => row[i]));
  const packed = columns.map(([, type], i) =>
    packDigests && type === 'text' ? packedDigests(values[i]!) : undefined,
  );
  // A column of one value (a batch's commit time, or null) is one parameter, not an array of copies:
  // a 1M first load wrote 1M timestamps as ISO text (0.8 s of Node's CPU) for the server to parse.
  const constant = columns.map(([, type], i) =>
    type !== 'text' && !packed[i] ? sameValue(values[i]!) : undefined,
  );
  const names = sql.join(columns.map(([name]) => sql.id(name)));
  const array = (i: number) => {
    const type = columns[i]![1];
    const joined = type === 'text' ? joinedLines(values[i]!) : undefined;
    return joined === undefined ? arrayParam(values[i]!.map(arrayText), PG_TYPES[type]) : splitLines(joined);
  };
  if (packed.every((bytes) => bytes === undefined) && constant.every((one) => one === undefined)) {
    return sql`unnest(${sql.join(columns.map((_, i) => array(i)))}) as ${sql.id(alias)}(${names})`;
  }
  const source = `${alias}_packed`;
  const column = (i: number) => sql.ref(`${source}.c${i}`);
  const ord = sql.ref(`${source}.ord`);
  const unpacked = columns.flatMap((_, i) => (packed[i] || constant[i] ? [] : [i]));
  const from =
    unpacked.length > 0
      ? sql`unnest(${sql.join(unpacked.map(array))}) with ordinality as ${sql.id(source)}(${sql.join([
          ...unpacked.map((i) => sql.id(`c${i}`)),
          sql.id('ord'),
        ])})`
      : sql`generate_series(1, ${sql.lit(rows.length)}) as ${sql.id(source)}(${sql.id('ord')})`;
  const select = columns.map(([, type], i) => {
    const bytes = packed[i];
    const one = constant[i];
    if (bytes) {
      return sql`encode(substring(cast(${bytes} as bytea) from 32 * (cast(${ord} as integer) - 1) + 1 for 32), 'hex')`;
    }
    return one ? sql`cast(${one.value} as ${sql.raw(PG_TYPES[type])})` : column(i);
  });
  return sql`(select ${sql.join(select)} from ${from}) as ${sql.id(alias)}(${names})`;
}

/** The one value of a column of at least two rows that all hold it (Dates by their time), else undefined. */
function sameValue(values: readonly unknown[]): { value: unknown } | undefined {
  if (values.length < 2) return undefined;
  const first = values[0];
  const time = first instanceof Date ? first.getTime() : undefined;
  for (let i = 1; i < values.length; i++) {
    const value = values[i];
    if (time === undefined ? value !== first : !(value instanceof Date) || value.getTime() !== time)
      return undefined;
  }
  return { value: first ?? null };
}

/**
 * The values of a text column joined by line breaks, for `string_to_array(…, chr(10))`, when every
 * value is a non-empty string without one; otherwise undefined (the column goes as a `text[]`). The
 * server splits that text far faster than it parses an array literal of long values: measured (PG 15)
 * on 10,000 packed intents of about 215 characters, 6.7 ms against 24.8 ms for the statement, of which
 * 4.8 ms is sending the text; on PGlite 11.0 ms against 18.3 ms. (An empty value is left to the array:
 * a lone '' would split to no row.)
 * https://www.postgresql.org/docs/current/functions-array.html
 */
function joinedLines(values: readonly unknown[]): string | undefined {
  if (values.length === 0) return undefined;
  for (const value of values) {
    if (typeof value !== 'string' || value === '' || value.includes('\n')) return undefined;
  }
  return (values as readonly string[]).join('\n');
}

/** The `text[]` of values joined by joinedLines. */
function splitLines(joined: string): RawBuilder<unknown> {
  return sql`string_to_array(cast(${joined} as text), chr(10))`;
}

function arrayText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return value.toISOString();
  return String(value);
}

export function createPostgresHooks(options: PostgresHooksOptions): WarehouseHooks {
  const { stateSchema, logger } = options;
  const openSession = async () => {
    try {
      return await options.openSession();
    } catch (error) {
      throw warehouseError(error, 'opening a warehouse session');
    }
  };
  return {
    lockPollMs: 250,
    // unnest() of array parameters: one statement whatever the row count; bound the batch anyway.
    maxRowsPerStatement: 10_000,
    maxHashesPerLookup: 10_000,
    fetchSize: options.fetchSize,
    transactions: true,
    ...(options.cachedStatePlans ? { removalSetup: sql`set local random_page_cost = 1.1` } : {}),
    upsert: 'on_conflict',
    // A server gives each connection its own backend (advisory locks); PGlite (in_process) has one.
    speculativeReads: options.lock.kind === 'advisory',
    memberKeyRanges: true,

    async run(what, attempt) {
      try {
        return await attempt();
      } catch (error) {
        throw warehouseError(error, what);
      }
    },
    modelError,

    value: (value, type) => sql`cast(${value ?? null} as ${sql.raw(PG_TYPES[type])})`,
    literal: (value, type) =>
      value === null
        ? sql`cast(null as ${sql.raw(type)})`
        : type === 'timestamptz'
          ? sql`cast(${sql.lit((value as Date).toISOString())} as timestamptz)`
          : sql.lit(value),
    readTimestamp: (column) => sql.ref(column),
    readJson: (column) => sql`cast(${sql.ref(column)} as text)`,
    // Array parameters with unnest(): one statement per table whatever the batch size; digests as
    // their bytes (rowsSource). https://www.postgresql.org/docs/current/functions-array.html
    rows: (alias, columns, rows) => rowsSource(alias, columns, rows, options.packDigests ?? true),
    // `not in (select unnest(...))` is a hashed subplan; `<> all(array)` compared every matching
    // row with every excluded key (10,000 x 10,000 comparisons: 300 ms of a 1M-member run).
    // `= any(array)` for the positive list (bench/RESULTS.md: `in (select unnest(...))` was tried for
    // the commit's deletes by key and rejected, PGlite's planner has no statistics to choose it well).
    // The list as one text joined by line breaks where it can be (joinedLines): string_to_array is
    // immutable, so the planner folds it into a constant array as it did the array literal, and the
    // lookups by key and by hash keep their index scans.
    inList: (expr, values, negate = false) => {
      const joined = joinedLines(values);
      const list = joined === undefined ? arrayParam(values, 'text') : splitLines(joined);
      return negate ? sql`${expr} not in (select unnest(${list}))` : sql`${expr} = any(${list})`;
    },

    // unique_violation. https://www.postgresql.org/docs/current/errcodes-appendix.html
    duplicateKey: (error) => sqlState(error) === '23505',
    // Measured on a 1M-row snapshot (PG 15, the diff session's 64 MB work_mem, default
    // maintenance_work_mem): the unique index 0.36-0.48 s, the grouping by key hash 0.70-0.73 s.
    uniqueIndex: (table, column) => sql`create unique index on ${table} (${sql.id(column)})`,

    missingState(error) {
      const code = sqlState(error);
      // invalid_schema_name, undefined_table
      return code === '3F000' ? 'schema' : code === '42P01' ? 'table' : undefined;
    },
    async migrationScope(db, migrate) {
      return db.transaction().execute(async (trx) => {
        // Serializes concurrent migrations across processes: CREATE SCHEMA IF NOT EXISTS alone races.
        // https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADVISORY-LOCKS
        await sql`select pg_advisory_xact_lock(hashtext(${`tailor_migrate:${stateSchema}`}))`.execute(trx);
        return migrate(trx);
      });
    },
    async createSchema(db) {
      await sql`create schema if not exists ${sql.id(stateSchema)}`.execute(db);
    },
    table: (builder, table, primaryKey) =>
      primaryKey ? builder.addPrimaryKeyConstraint(`${table}_pkey`, [...primaryKey]) : builder,
    migrationExtras(version, db) {
      const t = (table: string) => sql.id(stateSchema, table);
      if (version === 1) {
        // A narrow index by member serves the commit's deletes and the previous hashes; no unique
        // index over member_hashes (measured: a primary key over all four columns made inserting
        // 5,000 hashes into 1M take 145 ms instead of 80 ms).
        return [
          sql`create index if not exists ${sql.id('member_hashes_by_member')} on ${t('member_hashes')} (activation_id, member_key)`,
          sql`create index if not exists ${sql.id('member_hashes_by_hash')} on ${t('member_hashes')} (activation_id, hash)`,
          sql`create index if not exists ${sql.id('runs_by_activation')} on ${t('runs')} (activation_id, started_at desc)`,
          sql`create index if not exists ${sql.id('runs_by_start')} on ${t('runs')} (started_at desc)`,
          sql`create index if not exists ${sql.id('rejections_by_run')} on ${t('rejections')} (run_id)`,
        ].map((statement) => statement.compile(db));
      }
      if (version === 2) {
        // Lookups by hash are equality only (hashesHeldByOthers), and SHA-256 hex values arrive in
        // random order: a btree over 64-character text spreads its inserts over an index larger than
        // shared buffers. A hash index stores a 4-byte hash code per row. Measured at 1M members (3M
        // hash rows, PG 15, default settings): inserting 90,000 hash rows took 4.4 s with the btree,
        // 1.4 s with the hash index (81 MB); looking up 10,000 hashes 249 ms vs 59 ms.
        // https://www.postgresql.org/docs/current/hash-index.html
        return [
          sql`drop index if exists ${sql.id(stateSchema, 'member_hashes_by_hash')}`,
          sql`create index if not exists ${sql.id('member_hashes_by_hash_value')} on ${t('member_hashes')} using hash (hash)`,
        ].map((statement) => statement.compile(db));
      }
      if (version === 8) {
        // Whether some member of the activation lacks a key hash, asked before every diff: one
        // probe of an index that holds only such members, empty once every member has one.
        return [
          sql`create index if not exists ${sql.id('members_without_key_hash')} on ${t('members')} (activation_id) where key_hash is null`,
        ].map((statement) => statement.compile(db));
      }
      if (version === 5) {
        // Each batch's commit clears the intents its acknowledgement answers, by intent id. Without
        // an index that delete scans member_intents whole, and during a load the table only grows:
        // every batch inserts and deletes its rows, but the delta's cursor holds a snapshot open for
        // the whole run, so neither pruning nor vacuum may reclaim them. The scan then grew with
        // every batch (quadratic in the load). Measured (PG 15), after 40 batches of 30k intent
        // rows under an open snapshot (a 230 MB heap): 359 ms per clear without the index, 75 ms
        // with it, and flat from there. Ids repeat within a batch; btree deduplication stores each once.
        // https://www.postgresql.org/docs/current/btree-implementation.html#BTREE-DEDUPLICATION
        return [
          sql`create index if not exists ${sql.id('member_intents_by_intent')} on ${t('member_intents')} (intent_id)`,
        ].map((statement) => statement.compile(db));
      }
      return [];
    },

    openSession,
    scratchTable: (name) => sql.id(name),
    createScratch: (table, select, { countRows = false } = {}) =>
      countRows
        ? {
            // Created empty, then filled by an INSERT: an INSERT reports its row count, which spares
            // a count(*) over the whole snapshot (a full scan: 0.1 s per 1M rows here).
            statements: [
              sql`create temp table ${table} as ${select} with no data`,
              sql`insert into ${table} ${select}`,
            ],
            rowsCounted: true,
          }
        : { statements: [sql`create temp table ${table} as ${select}`], rowsCounted: false },
    // The INSERT that fills the snapshot in a read-only transaction: the model may call functions,
    // and none of them may write (a temporary table excepted), whatever the role may do. CREATE is
    // refused in a read-only transaction, so the table is created empty before it.
    // https://www.postgresql.org/docs/current/sql-set-transaction.html
    readModel: (db, statement) =>
      db
        .transaction()
        .setAccessMode('read only')
        .execute((trx) => statement.execute(trx)),
    keyText: (expr) => sql`cast(${expr} as text)`,
    // sha256() is built in since PG 11. The snapshot's largest per-row cost, paid on one core (an
    // INSERT runs no parallel plan): 1M keys, PG 15, parallel query off, every value computed, 2.12 s
    // against 0.20 s for the bare text cast (docs/state.md).
    // https://www.postgresql.org/docs/current/functions-binarystring.html
    keyDigest: (text) => sql`encode(sha256(convert_to(${text}, 'UTF8')), 'hex')`,
    // The hash of hash partitioning, stable across versions (pg_upgrade keeps partitions valid):
    // by hand at 1M rows, parallel query off, the whole snapshot INSERT took 2.53-2.55 s with it and
    // 4.66-4.73 s with the digest, all else the same (bench/RESULTS.md). Strict: null for a null key.
    keyHash: (text) => sql`hashtextextended(${text}, 0)`,
    // A 64-bit hash of a JSON array of the mapped values in order. JSON keeps nulls apart from the
    // text 'null' and each value's type apart (1 vs '1'); the same values of the same types always
    // render the same text. hashtextextended (the hash of hash partitioning, stable across versions)
    // rather than md5: measured on 1M rows, md5 added 0.9 s to the snapshot, hashtextextended
    // 0.08 s. A fingerprint is only ever compared with the same member's previous one, so 64 bits
    // make a missed change a 2^-64 event. https://www.postgresql.org/docs/current/functions-string.html
    fingerprint: (values) =>
      sql`to_hex(hashtextextended(cast(json_build_array(${sql.join(values)}) as text), 0))`,
    // Grouping 64-bit integers instead of text. Not decode(hash, 'hex'), used before: a
    // partner_user_id is stored as the partner knows it, not as hex digits, and decode() failed the
    // count ("invalid hexadecimal digit"). Measured over 3M hash rows (1M members, PG 15): 2.11-2.13
    // s, against 2.66-2.91 s for decode() and 2.46-2.57 s for the text itself. Two distinct hashes
    // share a 64-bit value with probability 2^-64 per pair, and then count once: the count can only
    // come out lower, which makes the safety rule hold a run sooner, never later.
    hashToCount: (hash) => sql`hashtextextended(${hash}, 0)`,
    keyOrder: (expr) => sql`${expr} collate "C"`,
    // A correlated subquery per non-added member over the member index: the delta streams through a
    // cursor, so rows come as they are read.
    deltaHashes: ({ hashes, delta, activationId, name, skipAdded }) => {
      const agg = (h: string) =>
        sql`json_agg(json_build_array(${sql.ref(`${h}.id_type`)}, ${sql.ref(`${h}.hash`)}) order by ${sql.ref(`${h}.id_type`)}, ${sql.ref(`${h}.hash`)})`;
      if (skipAdded) {
        // Stored hashes: a correlated lookup per non-added member, through the member index, made
        // over the sorted delta as the cursor reads it. Planned for the whole result, Postgres ran
        // every lookup before its sort, and the first batch waited for all of them: at 1M rows with
        // a 30,000-member delta, the first 10,000 rows took 290 ms instead of 140 ms.
        return {
          column: sql`case when ${sql.ref('d.change_rank')} <> 3 then coalesce(
            (select ${agg('h')} from ${hashes} as h
             where h.activation_id = ${activationId} and h.member_key = ${sql.ref('d.member_key')}),
            '[]'::json) end`,
          sortDeltaFirst: true,
        };
      }
      // Intents (a small table, no index by member): grouped once and joined.
      return {
        with: sql`${sql.id(name)} as (select ${sql.ref('i.member_key')}, ${agg('i')} as hashes from ${hashes} as i
          where ${sql.ref('i.activation_id')} = ${activationId}
            and ${sql.ref('i.member_key')} in (select ${sql.id('member_key')} from ${delta})
          group by ${sql.ref('i.member_key')})`,
        column: sql`coalesce(${sql.ref(`${name}.hashes`)}, '[]'::json)`,
        join: sql`left join ${sql.id(name)} on ${sql.ref(`${name}.member_key`)} = ${sql.ref('d.member_key')}`,
      };
    },
    parseHashes: (value) =>
      (typeof value === 'string'
        ? (JSON.parse(value) as [string, string][])
        : ((value ?? []) as [string, string][])
      ).map(([idType, hash]) => ({ idType, hash })),

    async tryLock(activationId) {
      const lock = options.lock;
      if (lock.kind === 'in_process') {
        const name = `${lock.scope}\u0000${stateSchema}\u0000${activationId}`;
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
      return advisoryLock(await openSession(), stateSchema, activationId, logger);
    },
  };
}

/**
 * A session-level advisory lock on a dedicated connection: it lasts until released or until the
 * connection ends, so a killed process never leaves it behind.
 * https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS
 */
async function advisoryLock(
  session: WarehouseSession,
  stateSchema: string,
  activationId: string,
  logger: Logger,
): Promise<HeldLock | null> {
  const keys = sql`hashtext(${`tailor:${stateSchema}`}), hashtext(${activationId})`;
  let acquired = false;
  try {
    const rows = await sql<{ locked: boolean }>`select pg_try_advisory_lock(${keys}) as locked`.execute(
      session.db,
    );
    acquired = rows.rows[0]?.locked === true;
  } catch (error) {
    throw warehouseError(error, `taking the lock of activation ${activationId}`);
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
        logger.warn({ err: errorMessage(error) }, 'advisory unlock failed; closing its session');
      } finally {
        await session.close();
      }
    },
  };
}

/** Postgres SQLSTATE classes that mean the warehouse, not the model, failed. */
const WAREHOUSE_STATE = /^(08|28|3D|53|54|57|58|XX)/;

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** The fields of a Postgres error (node-postgres' and PGlite's DatabaseError) that redaction reads. */
interface PgErrorFields {
  message?: unknown;
  code?: unknown;
  position?: unknown;
  internalQuery?: unknown;
  where?: unknown;
  routine?: unknown;
  file?: unknown;
}

/** SQLSTATE classes no value of a row can reach: connection, credentials, catalog, resources, shutdown. */
const VALUE_FREE_STATE = /^(08|28|3D|53|57)/;
/** Where PL/pgSQL's RAISE and ASSERT, and the other procedural languages, report an error. */
const RAISE_ROUTINE = /^exec_stmt_(raise|assert)$/;
const PL_FILE = /^(pl_|plpy|plperl|pltcl)/;
/** Where a value may start in a message: a quote of any kind (Postgres quotes values), a colon, a line break. */
const VALUE_START = new RegExp(`${QUOTE_OR_BREAK.source}|:`);

/**
 * A Postgres error message with every value taken out, by a rule no value can escape by what it
 * holds (a value may hold quotes, backslashes, line breaks, `…`):
 *
 * - A message of the model's own function (PL/pgSQL `RAISE`/`ASSERT`, any SQLSTATE it chose, or
 *   another procedural language) is the function's text, possibly a value itself: not shown at all.
 * - A parse-time error of the statement's own text (class 42 with a `position` into it, not from
 *   dynamic SQL) names only what the SQL says (`column "emial" does not exist`): kept whole.
 * - Connection, credential, catalog and resource errors (08, 28, 3D, 53, 57) carry no row's value:
 *   kept whole.
 * - Every other message is cut at the first character where a value could start (a quote of any
 *   kind, a colon, a line break) and the rest replaced by `…` (src/sources/redact.ts):
 *   `invalid input syntax for type integer: "ja"ne@example.com"` becomes `invalid input syntax for
 *   type integer: …`. Postgres' messages put values after such a character (its style guide quotes
 *   them), and a value's own quotes cannot move the cut, which comes before the value.
 *
 * The SQLSTATE itself never says whether a value is in the message: a RAISE chooses its own, and a
 * data value cast to `regclass` fails as 42P01 (`relation "jane@example.com" does not exist`).
 * https://www.postgresql.org/docs/current/protocol-error-fields.html
 * https://www.postgresql.org/docs/current/error-style-guide.html
 */
export function redactPostgresMessage(error: PgErrorFields): string {
  const message = typeof error.message === 'string' ? error.message : String(error.message ?? '');
  const code = typeof error.code === 'string' ? error.code : '';
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  if (RAISE_ROUTINE.test(str(error.routine)) || PL_FILE.test(str(error.file)) || code.startsWith('P0')) {
    return `a function the model calls raised an error (SQLSTATE ${code || 'unknown'}); its message is not shown, as it may hold values`;
  }
  const fromSqlText =
    code.startsWith('42') &&
    error.position !== undefined &&
    error.internalQuery === undefined &&
    error.where === undefined;
  if (fromSqlText || VALUE_FREE_STATE.test(code)) return message;
  return redactValues(message, VALUE_START);
}

/**
 * The driver's error, reduced to what may be shown: the redacted message and the SQLSTATE. PGlite's
 * errors carry the statement's `params` (keys, hashes) and Postgres' a `detail` (and `where`,
 * `internalQuery`, `table`, `column`, ...) that may quote values; none of them may reach a log.
 * Errors without a SQLSTATE are the driver's or the network's (no row's value), kept as they are.
 * https://www.postgresql.org/docs/current/errcodes-appendix.html
 */
export function safeDriverError(error: unknown): Error {
  const code = sqlState(error);
  const message = code === undefined ? errorMessage(error) : redactPostgresMessage(error as PgErrorFields);
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
