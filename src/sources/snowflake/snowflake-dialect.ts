import { CompiledQuery, type DatabaseConnection, type QueryResult } from 'kysely';
import { PartsDialect, PoollessDriver, queryResult, WarehouseAdapter } from '../kysely-driver-base.js';
import type { SnowflakeRunner as SnowflakeExecutor } from './snowflake-executor.js';
import { SnowflakeQueryCompiler } from './snowflake-query-compiler.js';

/**
 * Kysely 0.28 has no Snowflake dialect; this is a small one over snowflake-sdk. Everything runs on
 * one Snowflake session (temporary tables and transactions are per session), so a transaction takes
 * the session for itself: other work waits until it commits or rolls back. Streams do not hold the
 * session (Snowflake results are fetched after the statement completes), so committing while a
 * delta is being read works.
 */
export class SnowflakeDialect extends PartsDialect {
  constructor(executor: SnowflakeExecutor) {
    super({
      adapter: () => new SnowflakeAdapter(),
      driver: () => new SnowflakeDriver(executor),
      compiler: () => new SnowflakeQueryCompiler(),
    });
  }
}

// DDL commits the open transaction in Snowflake, hence no transactional DDL.
// https://docs.snowflake.com/en/sql-reference/transactions#ddl
// Tailor's migrations are idempotent (CREATE ... IF NOT EXISTS, a version row inserted only when absent).
export class SnowflakeAdapter extends WarehouseAdapter {}

class SnowflakeDriver extends PoollessDriver {
  readonly #executor: SnowflakeExecutor;
  /** Settles when the open transaction (if any) ends. */
  #transaction: Promise<void> = Promise.resolve();
  #endTransaction: (() => void) | undefined;

  constructor(executor: SnowflakeExecutor) {
    super();
    this.#executor = executor;
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    // Wait while another connection holds the session in a transaction.
    for (;;) {
      const pending = this.#transaction;
      await pending;
      if (pending === this.#transaction) break;
    }
    return new SnowflakeConnection(this.#executor);
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    this.#transaction = new Promise<void>((resolve) => {
      this.#endTransaction = resolve;
    });
    try {
      await connection.executeQuery(CompiledQuery.raw('BEGIN TRANSACTION'));
    } catch (error) {
      this.#release();
      throw error;
    }
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await connection.executeQuery(CompiledQuery.raw('COMMIT'));
    } finally {
      this.#release();
    }
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await connection.executeQuery(CompiledQuery.raw('ROLLBACK'));
    } finally {
      this.#release();
    }
  }

  #release(): void {
    const end = this.#endTransaction;
    this.#endTransaction = undefined;
    end?.();
  }
}

class SnowflakeConnection implements DatabaseConnection {
  readonly #executor: SnowflakeExecutor;

  constructor(executor: SnowflakeExecutor) {
    this.#executor = executor;
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    return queryResult(await this.#executor.all(compiledQuery.sql, compiledQuery.parameters));
  }

  async *streamQuery<R>(
    compiledQuery: CompiledQuery,
    chunkSize = 10_000,
  ): AsyncIterableIterator<QueryResult<R>> {
    for await (const rows of this.#executor.stream(compiledQuery.sql, compiledQuery.parameters, chunkSize)) {
      yield { rows: rows as R[] };
    }
  }
}
