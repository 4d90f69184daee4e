import {
  CompiledQuery,
  type DatabaseConnection,
  type Kysely,
  type QueryResult,
  type TableMetadata,
} from 'kysely';
import {
  InformationSchemaIntrospector,
  PartsDialect,
  PoollessDriver,
  queryResult,
  tablesOf,
  WarehouseAdapter,
} from '../kysely-driver-base.js';
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
      introspector: (db) => new SnowflakeIntrospector(db),
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

/** Schemas and tables of the current database, from INFORMATION_SCHEMA. */
class SnowflakeIntrospector extends InformationSchemaIntrospector {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's signature
  constructor(db: Kysely<any>) {
    super(db, 'SELECT SCHEMA_NAME FROM INFORMATION_SCHEMA.SCHEMATA ORDER BY SCHEMA_NAME');
  }

  async getTables(): Promise<TableMetadata[]> {
    const rows = await this.query<{
      table_schema: string;
      table_name: string;
      table_type: string;
      column_name: string;
      data_type: string;
      is_nullable: string;
      column_default: string | null;
    }>(
      `SELECT c.TABLE_SCHEMA, c.TABLE_NAME, t.TABLE_TYPE, c.COLUMN_NAME, c.DATA_TYPE, c.IS_NULLABLE, c.COLUMN_DEFAULT
         FROM INFORMATION_SCHEMA.COLUMNS AS c
         JOIN INFORMATION_SCHEMA.TABLES AS t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
         WHERE c.TABLE_SCHEMA <> 'INFORMATION_SCHEMA'
         ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION`,
    );
    return tablesOf(
      rows.map((row) => ({
        schema: row.table_schema,
        table: row.table_name,
        isView: row.table_type === 'VIEW',
        column: {
          name: row.column_name,
          dataType: row.data_type,
          isNullable: row.is_nullable === 'YES',
          isAutoIncrementing: false,
          hasDefaultValue: row.column_default !== null,
        },
      })),
    );
  }
}
