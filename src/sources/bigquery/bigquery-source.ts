import { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { ModelSqlError, WarehouseError } from '../../errors.js';
import { wrapModelSql } from '../model-sql.js';
import type { ColumnInfo, Source } from '../source.js';
import type { StateBackend } from '../warehouse-hooks.js';
import { createBigqueryClient, type BigqueryClientOptions } from './bigquery-client.js';
import type { BigqueryConfig } from './bigquery-config.js';
import { BigqueryDialect } from './bigquery-dialect.js';
import { BigqueryExecutor, type BigqueryCostSummary } from './bigquery-executor.js';
import { assertSingleStatement, createBigqueryHooks, modelError } from './bigquery-hooks.js';

export interface BigquerySourceOptions {
  projectDir: string;
  logger: Logger;
  /** Test seam: an auth client holding a token (see BigqueryClientOptions). */
  authClient?: BigqueryClientOptions['authClient'];
}

/** A BigQuery source that also reports what its jobs cost. */
export interface BigquerySource extends Source {
  readonly kind: 'bigquery';
  /** Bytes processed and billed, and job ids, of every job since `mark` (0: since opening). */
  cost(mark?: number): BigqueryCostSummary;
  /** The current position in the job log, for `cost(mark)`. */
  costMark(): number;
}

/**
 * Opens BigQuery: the SDK client (no connection is made until the first job), a Kysely instance over
 * BigqueryDialect, and the state dataset (`state_dataset`, else `state_schema`).
 */
export async function openBigquerySource(
  config: BigqueryConfig,
  options: BigquerySourceOptions,
): Promise<BigquerySource> {
  const client = createBigqueryClient(config, {
    projectDir: options.projectDir,
    ...(options.authClient ? { authClient: options.authClient } : {}),
  });
  const logger = options.logger.child({ warehouse: 'bigquery' });
  return new BigquerySourceImpl(config, new BigqueryExecutor(client, config.location, logger), logger);
}

class BigquerySourceImpl implements BigquerySource {
  readonly kind = 'bigquery' as const;
  readonly #config: BigqueryConfig;
  readonly #executor: BigqueryExecutor;
  readonly #logger: Logger;
  readonly #db: Kysely<unknown>;
  #closed = false;

  constructor(config: BigqueryConfig, executor: BigqueryExecutor, logger: Logger) {
    this.#config = config;
    this.#executor = executor;
    this.#logger = logger;
    this.#db = new Kysely<unknown>({ dialect: new BigqueryDialect(executor) });
  }

  async check(): Promise<void> {
    try {
      await this.#executor.all('SELECT 1 AS ok');
    } catch (error) {
      if (error instanceof WarehouseError) {
        throw new WarehouseError(`BigQuery project ${this.#config.project_id}: ${error.message}`, {
          cause: error,
          hint: error.hint ?? 'check project_id, location and the credentials (docs/warehouses.md)',
        });
      }
      throw error;
    }
  }

  async describeModel(modelName: string, sql: string): Promise<ColumnInfo[]> {
    let fields;
    const describe = `SELECT * FROM ${wrapModelSql(sql)} AS m LIMIT 0`;
    try {
      // Checked before the dry run: bqemulator runs a script's statements even in a dry run.
      await assertSingleStatement(describe, 'SELECT', undefined);
      let statementType: string | undefined;
      ({ fields, statementType } = await this.#executor.dryRun(describe));
      await assertSingleStatement(describe, 'SELECT', async () => ({ statementType }));
    } catch (error) {
      const mapped = modelError(error, modelName);
      throw mapped instanceof ModelSqlError ? mapped : error;
    }
    return fields.map((field) => ({
      name: field.name ?? '',
      type: field.mode === 'REPEATED' ? `ARRAY<${field.type ?? 'STRING'}>` : (field.type ?? 'STRING'),
    }));
  }

  stateBackend(stateSchema: string): StateBackend {
    const dataset = this.#config.state_dataset ?? stateSchema;
    return {
      stateSchema: dataset,
      db: this.#db,
      hooks: createBigqueryHooks({
        db: this.#db,
        dataset,
        location: this.#config.location,
        logger: this.#logger,
        costMark: () => this.#executor.costs.length,
        costSince: (mark) => ({ ...this.#executor.summary(mark) }),
        dryRun: (statement) => this.#executor.dryRun(statement),
      }),
    };
  }

  cost(mark = 0): BigqueryCostSummary {
    return this.#executor.summary(mark);
  }

  costMark(): number {
    return this.#executor.costs.length;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // The SDK holds no connections; Kysely's driver has nothing to release either.
    await this.#db.destroy();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
