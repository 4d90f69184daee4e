import type { CompiledQuery, DatabaseConnection, QueryResult } from 'kysely';
import { WarehouseError } from '../../errors.js';
import { PartsDialect, PoollessDriver, queryResult, WarehouseAdapter } from '../kysely-driver-base.js';
import type { BigqueryRunner as BigqueryExecutor } from './bigquery-executor.js';
import { BigqueryQueryCompiler } from './bigquery-query-compiler.js';

/**
 * Kysely 0.28 has no BigQuery dialect; this is a small one over @google-cloud/bigquery. BigQuery has
 * no connections: every statement is a query job. A "connection" only matters inside a transaction,
 * where it carries the BigQuery session the transaction lives in.
 * https://cloud.google.com/bigquery/docs/transactions
 */
export class BigqueryDialect extends PartsDialect {
  constructor(executor: BigqueryExecutor) {
    super({
      adapter: () => new BigqueryAdapter(),
      driver: () => new BigqueryDriver(executor),
      compiler: () => new BigqueryQueryCompiler(),
    });
  }
}

// BigQuery has no locks. Tailor's migrations are idempotent (CREATE ... IF NOT EXISTS, a version
// row inserted only when absent: src/diff/state-sql.ts), so Kysely's migration lock is a no-op here.
export class BigqueryAdapter extends WarehouseAdapter {}

class BigqueryDriver extends PoollessDriver {
  readonly #executor: BigqueryExecutor;

  constructor(executor: BigqueryExecutor) {
    super();
    this.#executor = executor;
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    return new BigqueryConnection(this.#executor);
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as BigqueryConnection).begin();
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as BigqueryConnection).end('COMMIT TRANSACTION');
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    await (connection as BigqueryConnection).end('ROLLBACK TRANSACTION');
  }
}

export class BigqueryConnection implements DatabaseConnection {
  readonly #executor: BigqueryExecutor;
  #sessionId: string | undefined;

  constructor(executor: BigqueryExecutor) {
    this.#executor = executor;
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    return queryResult(
      await this.#executor.all(compiledQuery.sql, compiledQuery.parameters, this.#session()),
    );
  }

  async *streamQuery<R>(
    compiledQuery: CompiledQuery,
    chunkSize = 10_000,
  ): AsyncIterableIterator<QueryResult<R>> {
    const statement = await this.#executor.run(compiledQuery.sql, compiledQuery.parameters, {
      ...this.#session(),
      pageSize: chunkSize,
    });
    if (statement.rows.length > 0) yield { rows: statement.rows as R[] };
    for await (const page of statement.pages()) if (page.length > 0) yield { rows: page as R[] };
  }

  /** Multi-statement transactions need a session; its id rides on every later job of this connection. */
  async begin(): Promise<void> {
    if (this.#sessionId)
      throw new WarehouseError('a BigQuery transaction is already open on this connection');
    const statement = await this.#executor.run('BEGIN TRANSACTION', [], { createSession: true });
    if (!statement.sessionId)
      throw new WarehouseError('BigQuery did not return a session for the transaction');
    this.#sessionId = statement.sessionId;
  }

  async end(sql: 'COMMIT TRANSACTION' | 'ROLLBACK TRANSACTION'): Promise<void> {
    const sessionId = this.#sessionId;
    if (!sessionId) return;
    try {
      await this.#executor.run(sql, [], { sessionId });
    } finally {
      this.#sessionId = undefined;
      // Sessions otherwise live 24 hours; end ours now. https://cloud.google.com/bigquery/docs/sessions-terminating
      await this.#executor.run('CALL BQ.ABORT_SESSION()', [], { sessionId }).catch(() => undefined);
    }
  }

  #session(): { sessionId?: string } {
    return this.#sessionId ? { sessionId: this.#sessionId } : {};
  }
}
