import type { PGlite } from '@electric-sql/pglite';
import {
  type CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryCompiler,
  type QueryResult,
  type TransactionSettings,
} from 'kysely';

/**
 * A Kysely dialect for PGlite (Kysely 0.28 ships none). PGlite is one Postgres backend in this
 * process, so every Kysely "connection" shares it: PGlite serializes single statements itself, and
 * this driver adds the one thing it cannot know, that a Kysely transaction owns the backend from
 * BEGIN to COMMIT (statements of other connections, of any Kysely over the same PGlite instance,
 * wait meanwhile, so they never land inside it).
 *
 * SQL is Postgres': the query compiler, adapter and introspector are Kysely's own Postgres ones.
 */
export class PgliteDialect implements Dialect {
  readonly #db: PGlite;

  constructor(db: PGlite) {
    this.#db = db;
  }

  createDriver(): Driver {
    return new PgliteDriver(this.#db);
  }

  createQueryCompiler(): QueryCompiler {
    return new PostgresQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new PostgresAdapter();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new PostgresIntrospector(db);
  }
}

/** Which connection's transaction owns a PGlite backend. Shared by every Kysely over that instance. */
interface Ownership {
  owner: object | null;
  done: Promise<void>;
  release: () => void;
  cursorSeq: number;
}

const ownerships = new WeakMap<PGlite, Ownership>();

function ownershipOf(db: PGlite): Ownership {
  let own = ownerships.get(db);
  if (!own) {
    own = { owner: null, done: Promise.resolve(), release: () => {}, cursorSeq: 0 };
    ownerships.set(db, own);
  }
  return own;
}

/**
 * Runs `read` on the backend inside a read-only transaction (rolled back after) that owns the backend
 * as a Kysely transaction would: statements of every Kysely over `db` wait meanwhile, so none lands
 * inside it. For what needs PGlite's own results (a row description's type oids), not Kysely's.
 */
export async function readOnlyOnBackend<T>(db: PGlite, read: (db: PGlite) => Promise<T>): Promise<T> {
  const own = ownershipOf(db);
  while (own.owner !== null) await own.done;
  own.owner = {};
  own.done = new Promise((resolve) => (own.release = resolve));
  try {
    await db.query('begin transaction read only');
    try {
      return await read(db);
    } finally {
      await db.query('rollback');
    }
  } finally {
    own.owner = null;
    own.release();
  }
}

class PgliteDriver implements Driver {
  readonly #db: PGlite;
  readonly #own: Ownership;

  constructor(db: PGlite) {
    this.#db = db;
    this.#own = ownershipOf(db);
  }

  async init(): Promise<void> {
    await this.#db.waitReady;
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new PgliteConnection(this);
  }

  async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    const conn = connection as PgliteConnection;
    const own = this.#own;
    while (own.owner !== null) await own.done;
    own.owner = conn;
    own.done = new Promise((resolve) => (own.release = resolve));
    let sql = 'begin';
    if (settings.isolationLevel) sql += ` isolation level ${settings.isolationLevel}`;
    if (settings.accessMode) sql += ` ${settings.accessMode}`;
    try {
      await this.run(conn, sql, []);
    } catch (error) {
      this.#endTransaction();
      throw error;
    }
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await this.run(connection as PgliteConnection, 'commit', []);
    } finally {
      this.#endTransaction();
    }
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await this.run(connection as PgliteConnection, 'rollback', []);
    } finally {
      this.#endTransaction();
    }
  }

  async releaseConnection(): Promise<void> {}

  async destroy(): Promise<void> {
    // The PGlite instance belongs to the source that created it; the source closes it.
  }

  #endTransaction(): void {
    this.#own.owner = null;
    this.#own.release();
  }

  /** Runs one statement for `conn`, waiting while another connection's transaction owns the backend. */
  async run(
    conn: PgliteConnection,
    sql: string,
    parameters: readonly unknown[],
  ): Promise<{ rows: unknown[]; affectedRows?: number }> {
    while (this.#own.owner !== null && this.#own.owner !== conn) await this.#own.done;
    return this.#db.query(sql, parameters as unknown[]);
  }

  nextCursorName(): string {
    this.#own.cursorSeq += 1;
    return `kysely_pglite_cursor_${this.#own.cursorSeq}`;
  }
}

const AFFECTING = /^\s*(insert|update|delete|merge)\b/i;

class PgliteConnection implements DatabaseConnection {
  readonly #driver: PgliteDriver;

  constructor(driver: PgliteDriver) {
    this.#driver = driver;
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const result = await this.#driver.run(this, compiledQuery.sql, compiledQuery.parameters);
    return {
      rows: result.rows as R[],
      ...(AFFECTING.test(compiledQuery.sql) && result.affectedRows !== undefined
        ? { numAffectedRows: BigInt(result.affectedRows) }
        : {}),
    };
  }

  /**
   * Streams with a server-side cursor. PGlite has no protocol-level portals to read from piecemeal,
   * so this declares a `WITH HOLD` cursor (it outlives the implicit transaction, and the backend
   * keeps its rows in a tuplestore that spills to disk, not in Node) and FETCHes `chunkSize` rows at
   * a time; other statements may run between fetches.
   * https://www.postgresql.org/docs/current/sql-declare.html
   */
  async *streamQuery<R>(
    compiledQuery: CompiledQuery,
    chunkSize = 1000,
  ): AsyncIterableIterator<QueryResult<R>> {
    if (!Number.isInteger(chunkSize) || chunkSize <= 0)
      throw new Error('chunkSize must be a positive integer');
    const name = this.#driver.nextCursorName();
    await this.#driver.run(
      this,
      `declare ${name} no scroll cursor with hold for ${compiledQuery.sql}`,
      compiledQuery.parameters,
    );
    try {
      while (true) {
        const { rows } = await this.#driver.run(this, `fetch forward ${chunkSize} from ${name}`, []);
        if (rows.length === 0) break;
        yield { rows: rows as R[] };
        if (rows.length < chunkSize) break;
      }
    } finally {
      await this.#driver.run(this, `close ${name}`, []);
    }
  }
}
