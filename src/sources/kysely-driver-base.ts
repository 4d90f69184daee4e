import {
  CompiledQuery,
  DialectAdapterBase,
  type ColumnMetadata,
  type DatabaseIntrospector,
  type DatabaseMetadata,
  type DatabaseMetadataOptions,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type Kysely,
  type MigrationLockOptions,
  type QueryCompiler,
  type QueryResult,
  type SchemaMetadata,
  type TableMetadata,
} from 'kysely';

/**
 * The scaffolding Kysely's `Dialect` interface asks for, shared by the dialects Tailor writes itself
 * (BigQuery, Snowflake: Kysely 0.28 ships neither). What differs per warehouse (query text, how a
 * transaction holds a session, what INFORMATION_SCHEMA looks like) stays in `<kind>-dialect.ts`
 * and `<kind>-query-compiler.ts`. https://kysely.dev/docs/dialects
 */

/** The parts of a dialect; Kysely calls each factory once per Kysely instance. */
export interface DialectParts {
  adapter(): DialectAdapter;
  driver(): Driver;
  compiler(): QueryCompiler;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's signature
  introspector(db: Kysely<any>): DatabaseIntrospector;
}

/** A dialect assembled from its parts. */
export class PartsDialect implements Dialect {
  readonly #parts: DialectParts;

  constructor(parts: DialectParts) {
    this.#parts = parts;
  }

  createAdapter(): DialectAdapter {
    return this.#parts.adapter();
  }

  createDriver(): Driver {
    return this.#parts.driver();
  }

  createQueryCompiler(): QueryCompiler {
    return this.#parts.compiler();
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's signature
  createIntrospector(db: Kysely<any>): DatabaseIntrospector {
    return this.#parts.introspector(db);
  }
}

/**
 * An adapter for a cloud warehouse: CREATE ... IF NOT EXISTS, no transactional DDL, no RETURNING,
 * and no lock for Kysely's migrator to take (Tailor's migrations are idempotent, see
 * src/diff/state-sql.ts), so the migration lock is a no-op.
 */
export class WarehouseAdapter extends DialectAdapterBase {
  override get supportsCreateIfNotExists(): boolean {
    return true;
  }

  override get supportsTransactionalDdl(): boolean {
    return false;
  }

  override get supportsReturning(): boolean {
    return false;
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's signature
  override async acquireMigrationLock(_db: Kysely<any>, _options: MigrationLockOptions): Promise<void> {}

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's signature
  override async releaseMigrationLock(_db: Kysely<any>, _options: MigrationLockOptions): Promise<void> {}
}

/**
 * A driver over a client that keeps no pool: nothing to set up, release or tear down here (the
 * source closes its client). Subclasses hand out connections and run transactions.
 */
export abstract class PoollessDriver implements Driver {
  async init(): Promise<void> {}

  abstract acquireConnection(): ReturnType<Driver['acquireConnection']>;
  abstract beginTransaction(...args: Parameters<Driver['beginTransaction']>): Promise<void>;
  abstract commitTransaction(...args: Parameters<Driver['commitTransaction']>): Promise<void>;
  abstract rollbackTransaction(...args: Parameters<Driver['rollbackTransaction']>): Promise<void>;

  async releaseConnection(): Promise<void> {}

  async destroy(): Promise<void> {}
}

/** An executor's result as Kysely's QueryResult (numAffectedRows only when the warehouse said). */
export function queryResult<R>(result: {
  rows: unknown[];
  numAffectedRows?: bigint | undefined;
}): QueryResult<R> {
  return {
    rows: result.rows as R[],
    ...(result.numAffectedRows === undefined ? {} : { numAffectedRows: result.numAffectedRows }),
  };
}

/** One column as read from INFORMATION_SCHEMA, with the table it belongs to. */
export interface InformationSchemaColumn {
  schema: string;
  table: string;
  isView: boolean;
  column: ColumnMetadata;
}

/**
 * An introspector over INFORMATION_SCHEMA: schemas from one query, tables from the subclass (each
 * warehouse scopes INFORMATION_SCHEMA differently), columns grouped into tables here.
 */
export abstract class InformationSchemaIntrospector implements DatabaseIntrospector {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's signature
  readonly #db: Kysely<any>;
  readonly #schemasSql: string;

  /** `schemasSql` returns one `schema_name` column. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- Kysely's signature
  constructor(db: Kysely<any>, schemasSql: string) {
    this.#db = db;
    this.#schemasSql = schemasSql;
  }

  protected async query<R>(text: string): Promise<R[]> {
    return (await this.#db.executeQuery<R>(CompiledQuery.raw(text))).rows;
  }

  async getSchemas(): Promise<SchemaMetadata[]> {
    const rows = await this.query<{ schema_name: string }>(this.#schemasSql);
    return rows.map((row) => ({ name: row.schema_name }));
  }

  abstract getTables(options?: DatabaseMetadataOptions): Promise<TableMetadata[]>;

  async getMetadata(options?: DatabaseMetadataOptions): Promise<DatabaseMetadata> {
    return { tables: await this.getTables(options) };
  }
}

/** Columns grouped into their tables, tables and columns in the order first read. */
export function tablesOf(columns: Iterable<InformationSchemaColumn>): TableMetadata[] {
  const tables = new Map<string, TableMetadata & { columns: ColumnMetadata[] }>();
  for (const { schema, table: name, isView, column } of columns) {
    const id = `${schema}.${name}`;
    let table = tables.get(id);
    if (!table) {
      table = { name, schema, isView, columns: [] };
      tables.set(id, table);
    }
    table.columns.push(column);
  }
  return [...tables.values()];
}
