import { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type snowflake from 'snowflake-sdk';
import { ModelSqlError, WarehouseError } from '../../errors.js';
import { wrapModelSql } from '../model-sql.js';
import type { ColumnInfo, Source } from '../source.js';
import type { StateBackend } from '../warehouse-hooks.js';
import { createSnowflakeConnection } from './snowflake-client.js';
import type { SnowflakeConfig } from './snowflake-config.js';
import { SnowflakeDialect } from './snowflake-dialect.js';
import {
  SINGLE_STATEMENT,
  SnowflakeExecutor,
  toWarehouseError,
  type SnowflakeCostSummary,
} from './snowflake-executor.js';
import { tailorColumnName } from './snowflake-identifiers.js';
import { createSnowflakeHooks, modelError } from './snowflake-hooks.js';

/**
 * Session parameters that shape how keys and fingerprints render as text (TO_VARCHAR of a timestamp
 * key, timestamps inside the fingerprint's JSON) and how quoted names resolve: fixed here, so an
 * account or user default changing between runs cannot churn every member.
 * https://docs.snowflake.com/en/sql-reference/parameters
 */
export const SESSION_SETTINGS = [
  'ALTER SESSION SET',
  "TIMEZONE = 'UTC'",
  `TIMESTAMP_OUTPUT_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.FF9TZH:TZM'`,
  `TIMESTAMP_TZ_OUTPUT_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.FF9TZH:TZM'`,
  `TIMESTAMP_LTZ_OUTPUT_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.FF9TZH:TZM'`,
  `TIMESTAMP_NTZ_OUTPUT_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SS.FF9'`,
  "DATE_OUTPUT_FORMAT = 'YYYY-MM-DD'",
  "TIME_OUTPUT_FORMAT = 'HH24:MI:SS.FF9'",
  "BINARY_OUTPUT_FORMAT = 'HEX'",
  "TIMESTAMP_INPUT_FORMAT = 'AUTO'",
  'QUOTED_IDENTIFIERS_IGNORE_CASE = FALSE',
].join(' ');

/** A Snowflake source that also reports the queries it ran. */
export interface SnowflakeSource extends Source {
  readonly kind: 'snowflake';
  /** Query ids of every statement since `mark` (0: since opening). */
  cost(mark?: number): SnowflakeCostSummary;
  /** The current position in the query log, for `cost(mark)`. */
  costMark(): number;
}

/**
 * Opens Snowflake: one snowflake-sdk connection (one session, logged in on the first statement),
 * a Kysely instance over SnowflakeDialect, and the state schema's hooks.
 */
export async function openSnowflakeSource(
  config: SnowflakeConfig,
  options: { projectDir: string; logger: Logger },
): Promise<SnowflakeSource> {
  const connection = createSnowflakeConnection(config, { projectDir: options.projectDir });
  return new SnowflakeSourceImpl(config, connection, options.logger);
}

class SnowflakeSourceImpl implements SnowflakeSource {
  readonly kind = 'snowflake' as const;
  readonly #config: SnowflakeConfig;
  readonly #connection: snowflake.Connection;
  readonly #executor: SnowflakeExecutor;
  readonly #logger: Logger;
  readonly #db: Kysely<unknown>;
  #connecting: Promise<void> | undefined;
  #closed = false;

  constructor(config: SnowflakeConfig, connection: snowflake.Connection, logger: Logger) {
    this.#config = config;
    this.#connection = connection;
    this.#logger = logger.child({ warehouse: 'snowflake' });
    this.#executor = new SnowflakeExecutor(connection, () => this.#connect(), this.#logger);
    this.#db = new Kysely<unknown>({ dialect: new SnowflakeDialect(this.#executor) });
  }

  #connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new WarehouseError('the Snowflake source is closed'));
    // connect(callback): the callback is where snowflake-sdk 3 reports a refused login.
    this.#connecting ??= new Promise<void>((resolve, reject) => {
      this.#connection.connect((error) => (error ? reject(error) : resolve()));
    })
      .then(
        () =>
          new Promise<void>((resolve, reject) => {
            this.#connection.execute({
              sqlText: SESSION_SETTINGS,
              parameters: { ...SINGLE_STATEMENT },
              complete: (error) => (error ? reject(error) : resolve()),
            });
          }),
      )
      .catch((error: unknown) => {
        this.#connecting = undefined;
        throw toWarehouseError(error, `connecting to Snowflake account ${this.#config.account}`);
      });
    return this.#connecting;
  }

  async check(): Promise<void> {
    await this.#executor.all('SELECT 1 AS ok');
  }

  async describeModel(modelName: string, sql: string): Promise<ColumnInfo[]> {
    // DESCRIBE RESULT would need the query to run; a LIMIT 0 wrapper compiles the model and
    // returns its columns without reading a row.
    await this.#connect();
    return new Promise((resolve, reject) => {
      this.#connection.execute({
        sqlText: `SELECT * FROM ${wrapModelSql(sql)} AS m LIMIT 0`,
        parameters: { ...SINGLE_STATEMENT },
        complete: (error, statement) => {
          if (error) {
            const mapped = modelError(toWarehouseError(error, 'Snowflake query failed'), modelName);
            reject(mapped instanceof ModelSqlError ? mapped : mapped);
            return;
          }
          resolve(
            (statement.getColumns() ?? []).map((column) => ({
              name: tailorColumnName(column.getName()),
              type: column.getType(),
            })),
          );
        },
      });
    });
  }

  stateBackend(stateSchema: string): StateBackend {
    return {
      stateSchema,
      db: this.#db,
      hooks: createSnowflakeHooks({
        db: this.#db,
        schema: stateSchema,
        logger: this.#logger,
        costMark: () => this.#executor.queryIds.length,
        costSince: (mark) => ({ ...this.#executor.summary(mark) }),
      }),
    };
  }

  cost(mark = 0): SnowflakeCostSummary {
    return this.#executor.summary(mark);
  }

  costMark(): number {
    return this.#executor.queryIds.length;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#db.destroy();
    if (this.#connecting === undefined) return;
    await this.#connecting.catch(() => undefined);
    if (!this.#connection.isUp()) return;
    // Logs the session out (POST /session?delete=true), which also drops its temporary tables.
    await new Promise<void>((resolve) => {
      this.#connection.destroy((error) => {
        if (error) this.#logger.warn({ err: error.message }, 'Snowflake logout failed');
        resolve();
      });
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
