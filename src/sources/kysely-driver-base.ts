import {
  DialectAdapterBase,
  type DatabaseIntrospector,
  type DatabaseMetadata,
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
 * transaction holds a session) stays in `<kind>-dialect.ts`
 * and `<kind>-query-compiler.ts`. https://kysely.dev/docs/dialects
 */

/** The parts of a dialect; Kysely calls each factory once per Kysely instance. */
export interface DialectParts {
  adapter(): DialectAdapter;
  driver(): Driver;
  compiler(): QueryCompiler;
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

  createIntrospector(): DatabaseIntrospector {
    return new NoIntrospector();
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

/**
 * Kysely's Dialect asks for an introspector; Tailor never introspects (its state tables come from
 * its own migrations, a model's columns from the warehouse's describe), so none is written.
 */
class NoIntrospector implements DatabaseIntrospector {
  async getSchemas(): Promise<SchemaMetadata[]> {
    throw unsupported();
  }

  async getTables(): Promise<TableMetadata[]> {
    throw unsupported();
  }

  async getMetadata(): Promise<DatabaseMetadata> {
    throw unsupported();
  }
}

function unsupported(): Error {
  return new Error('Kysely introspection is not supported by this dialect');
}
