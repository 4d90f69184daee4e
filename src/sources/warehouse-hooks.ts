import type { CompiledQuery, CreateTableBuilder, Kysely, QueryResult, RawBuilder } from 'kysely';

/**
 * What a warehouse supplies to the state layer, modelled on dbt's adapters: the state and diff
 * statements are written once in `src/diff/` (state-sql.ts, diff-sql.ts), and each warehouse
 * overrides only what genuinely differs through a small hooks object
 * (`<kind>/<kind>-hooks.ts`): the key cast, the fingerprint, scratch tables, aggregating a member's
 * hashes, bulk row input, typed values, the lock, upserts, and error classification.
 *
 * Nothing here knows the diff: `src/diff/` imports these types, never the other way round.
 * Hooks receive keys, fingerprints and hashes, never raw identifiers, except for the mapped column
 * values the snapshot reads from the model, which they must never log.
 */

/** The state schema of one warehouse: where it lives, the connection for short statements, the hooks. */
export interface StateBackend {
  /** The state schema (BigQuery: dataset). */
  readonly stateSchema: string;
  /** Short statements (a pool on Postgres; the SDK's jobs or session elsewhere). */
  readonly db: Kysely<unknown>;
  readonly hooks: WarehouseHooks;
}

/** Column types of the state schema, Postgres-flavoured; each query compiler maps them to its own. */
export type ColumnType = 'text' | 'timestamptz' | 'bigint' | 'integer' | 'jsonb' | 'boolean';

/** One identifier hash of a member, as stored in state (`member_hashes`). */
export interface MemberHashRow {
  /** The destination's identifier type, e.g. `email`. */
  idType: string;
  hash: string;
}

/** A held activation lock. `release` is idempotent. */
export interface HeldLock {
  release(): Promise<void>;
}

/** A connection held for one diff: its scratch tables and the delta's cursor live on it. */
export interface WarehouseSession {
  readonly db: Kysely<unknown>;
  /** Streams a query's rows over this session, `chunkSize` rows per round trip. */
  stream<R>(query: CompiledQuery<R>, chunkSize: number): AsyncIterable<R[]>;
  /** Releases the session (and, where they are temporary tables, the scratch tables with it). */
  close(): Promise<void>;
}

/** How the delta read gathers each member's stored hashes (see WarehouseHooks.deltaHashes). */
export interface DeltaHashesSql {
  /** A common table expression, `name AS (...)`, placed in a WITH before the delta's SELECT. */
  with?: RawBuilder<unknown>;
  /** The select-list expression (it may refer to the delta as `d`), read back as `previous_hashes`. */
  column: RawBuilder<unknown>;
  /** Joined after `FROM <delta> AS d`. */
  join?: RawBuilder<unknown>;
  /**
   * Sort the delta in a subquery and evaluate `column` over its sorted rows, so a cursor's first rows
   * wait only for their own lookups. Without it, a planner planning for the whole result (Postgres
   * under pg-cursor's portal) evaluates a correlated `column` for every row before the sort.
   */
  sortDeltaFirst?: boolean;
}

export interface WarehouseHooks {
  // --- limits ------------------------------------------------------------------------------------
  /** How often the store retries `tryLock` while waiting for a lock. */
  readonly lockPollMs: number;
  /** Most members per commit statement and rows per rejection insert. */
  readonly maxRowsPerStatement: number;
  /** Most hashes (and excluded keys) per shared-identifier lookup. */
  readonly maxHashesPerLookup: number;
  /** Rows per round trip when reading the delta and the invalid keys. */
  readonly fetchSize: number;

  // --- statements --------------------------------------------------------------------------------
  /**
   * Runs one statement (or a transaction) and names a failure after `what`, as the warehouse's
   * errors are classified (WarehouseError with a hint; AuthError; RetryableError), never quoting
   * values. `mutates`: a statement that changes state, which BigQuery retries when it aborted it for
   * a concurrent update.
   */
  run<T>(what: string, attempt: () => Promise<T>, options?: { mutates?: boolean }): Promise<T>;
  /** A failure of the model's own SQL as ModelSqlError, unless the warehouse is to blame. */
  modelError(error: unknown, modelName: string): Error;
  /** Whether the statements of one commit run in one transaction (BigQuery: no; order makes it safe). */
  readonly transactions: boolean;
  /**
   * Run first in a commit's transaction (with `transactions`) that deletes removed members: settings
   * local to that transaction.
   */
  readonly removalSetup?: RawBuilder<unknown>;
  /** Upserts as INSERT ... ON CONFLICT (Postgres) or MERGE (BigQuery, Snowflake). */
  readonly upsert: 'on_conflict' | 'merge';
  /**
   * Whether `error` is a unique violation (a key inserted twice). Where given, with `on_conflict` and
   * transactions, a commit inserts new members with a plain INSERT under a savepoint, and only when
   * that meets a key already there (the same commit run before) goes back and upserts.
   */
  duplicateKey?(error: unknown): boolean;
  /**
   * A unique index on a scratch table's column, which fails (`duplicateKey`) when two rows share a
   * value: where given, a diff by key hash looks for a duplicated key hash by building one before
   * it groups the snapshot (Postgres: cheaper than the grouping, and nearly always enough).
   */
  uniqueIndex?(table: RawBuilder<unknown>, column: string): RawBuilder<unknown>;
  /**
   * Whether a read of state may run beside the diff's statements for nothing but CPU, so one the
   * run will probably need is started before it is known to be needed (the held-hash count of the
   * safety rule). A PostgreSQL server: another backend. Not PGlite (one backend in the process: the
   * read would wait for the diff, then delay it), nor BigQuery and Snowflake, which bill the scan.
   */
  readonly speculativeReads?: boolean;
  /**
   * Whether state reads the members whose key digest falls in a range through an index (the B-tree by
   * member), so a share of them costs its share of a scan: the safety rule's lower bound of the
   * held-hash count (`DiffSpec.heldSample`). PostgreSQL and PGlite. BigQuery and Snowflake read (and
   * bill) the whole column whatever the range, so they count exactly at once.
   */
  readonly memberKeyRanges?: boolean;

  // --- values --------------------------------------------------------------------------------------
  /**
   * A bound value of a state column's type, so that nulls are typed and timestamps and JSON arrive
   * as the column needs them (`jsonb`: JSON text or null).
   */
  value<T>(value: T, type: ColumnType): RawBuilder<T>;
  /** A literal for statements that carry no parameters (the diff's CREATE TABLE ... AS). */
  literal(
    value: string | boolean | Date | null,
    type: 'text' | 'boolean' | 'timestamptz',
  ): RawBuilder<unknown>;
  /** A timestamp column as read back (read with `toDate`): the value, or epoch milliseconds. */
  readTimestamp(column: string): RawBuilder<unknown>;
  /** A JSON column as JSON text. */
  readJson(column: string): RawBuilder<unknown>;
  /**
   * Rows bound in one parameter (or one list) as a FROM item with the given alias and column names:
   * `unnest` of arrays (Postgres), `UNNEST` of an ARRAY<STRUCT> (BigQuery), a VALUES list (Snowflake).
   */
  rows(
    alias: string,
    columns: readonly (readonly [name: string, type: ColumnType])[],
    rows: readonly (readonly unknown[])[],
  ): RawBuilder<unknown>;
  /** `expr IN (values)`, or `NOT IN` when `negate`; an empty list is false (true when negated). */
  inList(expr: RawBuilder<unknown>, values: readonly string[], negate?: boolean): RawBuilder<unknown>;

  // --- the state schema ------------------------------------------------------------------------------
  /** Whether `error`, reading the migrations table, says it (`table`) or its schema (`schema`) is missing. */
  missingState(error: unknown): 'schema' | 'table' | undefined;
  /** Runs the migrations, serialized across processes where the warehouse can (Postgres). */
  migrationScope<T>(db: Kysely<unknown>, migrate: (db: Kysely<unknown>) => Promise<T>): Promise<T>;
  /** Creates the state schema; `missing` says whether reading the version found it missing. */
  createSchema(db: Kysely<unknown>, missing: boolean): Promise<void>;
  /** A state table's constraints and options: primary keys where they exist, clustering. */
  table(
    builder: CreateTableBuilder<string, string>,
    table: string,
    primaryKey: readonly string[] | undefined,
  ): CreateTableBuilder<string, string>;
  /**
   * Statements of migration `version` that only this warehouse runs (Postgres' indexes, the lease
   * warehouses' lock table), compiled for `db`; each must be idempotent (IF NOT EXISTS).
   */
  migrationExtras(version: number, db: Kysely<unknown>): CompiledQuery[];

  // --- the diff ----------------------------------------------------------------------------------
  /** A connection for one diff (Postgres: a dedicated one; elsewhere the shared one). */
  openSession(): Promise<WarehouseSession>;
  /** The name of a run-scoped table (a temp table, or a table in the state schema). */
  scratchTable(name: string): RawBuilder<unknown>;
  /**
   * Statements that create the scratch `table` from `select`. With `countRows`, the last one's
   * affected rows are the table's row count when `rowsCounted` (an INSERT reports them; a CREATE
   * TABLE ... AS does not on BigQuery or Snowflake, where the count is read instead).
   */
  createScratch(
    table: RawBuilder<unknown>,
    select: RawBuilder<unknown>,
    options?: { countRows?: boolean },
  ): { statements: RawBuilder<unknown>[]; rowsCounted: boolean };
  /**
   * Runs the statement that reads the model (the last of the snapshot's `createScratch` statements)
   * so that it can read and write nothing but that scratch table: in a read-only transaction where
   * the warehouse has them (Postgres allows INSERT into a temporary table in one), after making sure
   * it is one statement where a query job could run a script (BigQuery). Every warehouse also runs
   * statements one at a time (Postgres' extended protocol, Snowflake's MULTI_STATEMENT_COUNT = 1).
   */
  readModel(db: Kysely<unknown>, statement: RawBuilder<unknown>): Promise<QueryResult<unknown>>;
  /** The primary key as text (then digested: `keyDigest`). */
  keyText(expr: RawBuilder<unknown>): RawBuilder<unknown>;
  /**
   * The member's key in state: the lowercase hex SHA-256 of the key's text (UTF-8), so state never
   * holds a raw key (a key may be an email) and a key of any length fits an index. Null stays null.
   */
  keyDigest(text: RawBuilder<unknown>): RawBuilder<unknown>;
  /**
   * A 64-bit integer hash of the key's text (UTF-8), much cheaper than its digest: what the diff
   * compares the segment with state by, once every member has one (docs/state.md, "Key hashes").
   * Two keys may share one; the diff finds out and never lets that mix two members up. Null stays
   * null.
   */
  keyHash(text: RawBuilder<unknown>): RawBuilder<unknown>;
  /** A null-safe, order-defined fingerprint of the mapped values (named `v_<i>`). */
  fingerprint(values: readonly RawBuilder<unknown>[]): RawBuilder<unknown>;
  /**
   * A stored hash (64 lowercase hex characters, or a partner_user_id as sent) as the value the
   * held-hash count groups by, cheaper to group than the text (Postgres: a 64-bit hash of it). It may
   * map two hashes to one value only where that is as unlikely as a 64-bit collision: the count may
   * then come out lower, never higher. Absent: the hash as it is.
   */
  hashToCount?(hash: RawBuilder<unknown>): RawBuilder<unknown>;
  /** A key expression as ordered for reading: by code point everywhere (Postgres: COLLATE "C"). */
  keyOrder(expr: RawBuilder<unknown>): RawBuilder<unknown>;
  /** How the delta read carries each non-added member's stored hashes. */
  deltaHashes(input: {
    hashes: RawBuilder<unknown>;
    delta: RawBuilder<unknown>;
    activationId: string;
    /** A name of its own for what the read adds (a CTE's, an alias), unique within the read. */
    name: string;
    /** Added members (rank 3) have no rows here: the read may skip looking (Postgres does). */
    skipAdded: boolean;
  }): DeltaHashesSql;
  /** `previous_hashes` as read back, as rows (ordered by type, then hash). */
  parseHashes(value: unknown): MemberHashRow[];

  // --- locks and the run log -----------------------------------------------------------------------
  /** Tries once to take the activation's lock: the held lock, or null when another run holds it. */
  tryLock(activationId: string): Promise<HeldLock | null>;
  /** Warehouse cost figures of a run (BigQuery bytes, Snowflake query ids), written to `runs.cost`. */
  readonly runCost?: {
    start(runId: string): void;
    finish(runId: string): Record<string, unknown> | null;
  };
}

/** A driver's Date, epoch milliseconds (as a number or numeric text), or ISO text. */
export function toDate(value: unknown): Date {
  if (value instanceof Date) return value;
  if (typeof value === 'number' || (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value))) {
    return new Date(Number(value));
  }
  return new Date(String(value));
}
