import {
  CompiledQuery,
  DialectAdapterBase,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type DatabaseMetadata,
  type Dialect,
  type Driver,
  type Kysely,
  type MigrationLockOptions,
  type QueryCompiler,
  type QueryResult,
  type SchemaMetadata,
  type TableMetadata,
} from 'kysely';
import type { SnowflakeRunner as SnowflakeExecutor } from './snowflake-executor.js';
import { SnowflakeQueryCompiler } from './snowflake-query-compiler.js';

/**
 * Kysely 0.28 has no Snowflake dialect; this is a small one over snowflake-sdk. Everything runs on
 * one Snowflake session (temporary tables and transactions are per session), so a transaction takes
 * the session for itself: other work waits until it commits or rolls back. Streams do not hold the
 * session (Snowflake results are fetched after the statement completes), so committing while a
 * delta is being read works.
 */
export class SnowflakeDialect implements Dialect {
  readonly #executor: SnowflakeExecutor;

  constructor(executor: SnowflakeExecutor) {
    this.#executor = executor;
  }

  createAdapter(): SnowflakeAdapter {
    return new SnowflakeAdapter();
  }

  createDriver(): Driver {
    return new SnowflakeDriver(this.#executor);
  }

  createQueryCompiler(): QueryCompiler {
    return new SnowflakeQueryCompiler();
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's signature
  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return new SnowflakeIntrospector(db);
  }
}

export class SnowflakeAdapter extends DialectAdapterBase {
  override get supportsCreateIfNotExists(): boolean {
    return true;
  }

  // DDL commits the open transaction in Snowflake.
  // https://docs.snowflake.com/en/sql-reference/transactions#ddl
  override get supportsTransactionalDdl(): boolean {
    return false;
  }

  override get supportsReturning(): boolean {
    return false;
  }

  // Tailor's migrations are idempotent (CREATE ... IF NOT EXISTS, MERGE of the version row).
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's signature
  override async acquireMigrationLock(_db: Kysely<any>, _options: MigrationLockOptions): Promise<void> {}

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's signature
  override async releaseMigrationLock(_db: Kysely<any>, _options: MigrationLockOptions): Promise<void> {}
}

class SnowflakeDriver implements Driver {
  readonly #executor: SnowflakeExecutor;
  /** Settles when the open transaction (if any) ends. */
  #transaction: Promise<void> = Promise.resolve();
  #endTransaction: (() => void) | undefined;

  constructor(executor: SnowflakeExecutor) {
    this.#executor = executor;
  }

  async init(): Promise<void> {}

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

  async releaseConnection(): Promise<void> {}

  async destroy(): Promise<void> {}

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
    const result = await this.#executor.all(compiledQuery.sql, compiledQuery.parameters);
    return {
      rows: result.rows as R[],
      ...(result.numAffectedRows === undefined ? {} : { numAffectedRows: result.numAffectedRows }),
    };
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
class SnowflakeIntrospector implements DatabaseIntrospector {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's signature
  readonly #db: Kysely<any>;

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's signature
  constructor(db: Kysely<any>) {
    this.#db = db;
  }

  async getSchemas(): Promise<SchemaMetadata[]> {
    const result = await this.#db.executeQuery<{ schema_name: string }>(
      CompiledQuery.raw('SELECT SCHEMA_NAME FROM INFORMATION_SCHEMA.SCHEMATA ORDER BY SCHEMA_NAME'),
    );
    return result.rows.map((row) => ({ name: row.schema_name }));
  }

  async getTables(): Promise<TableMetadata[]> {
    const result = await this.#db.executeQuery<{
      table_schema: string;
      table_name: string;
      table_type: string;
      column_name: string;
      data_type: string;
      is_nullable: string;
      column_default: string | null;
    }>(
      CompiledQuery.raw(
        `SELECT c.TABLE_SCHEMA, c.TABLE_NAME, t.TABLE_TYPE, c.COLUMN_NAME, c.DATA_TYPE, c.IS_NULLABLE, c.COLUMN_DEFAULT
         FROM INFORMATION_SCHEMA.COLUMNS AS c
         JOIN INFORMATION_SCHEMA.TABLES AS t ON t.TABLE_SCHEMA = c.TABLE_SCHEMA AND t.TABLE_NAME = c.TABLE_NAME
         WHERE c.TABLE_SCHEMA <> 'INFORMATION_SCHEMA'
         ORDER BY c.TABLE_SCHEMA, c.TABLE_NAME, c.ORDINAL_POSITION`,
      ),
    );
    const tables = new Map<string, TableMetadata & { columns: TableMetadata['columns'][number][] }>();
    for (const row of result.rows) {
      const id = `${row.table_schema}.${row.table_name}`;
      let table = tables.get(id);
      if (!table) {
        table = {
          name: row.table_name,
          schema: row.table_schema,
          isView: row.table_type === 'VIEW',
          columns: [],
        };
        tables.set(id, table);
      }
      table.columns.push({
        name: row.column_name,
        dataType: row.data_type,
        isNullable: row.is_nullable === 'YES',
        isAutoIncrementing: false,
        hasDefaultValue: row.column_default !== null,
      });
    }
    return [...tables.values()];
  }

  async getMetadata(): Promise<DatabaseMetadata> {
    return { tables: await this.getTables() };
  }
}
