import type { Logger } from 'pino';
import type snowflake from 'snowflake-sdk';
import { AuthError, RetryableError, WarehouseError } from '../../errors.js';
import { QUOTE_OR_BREAK, redactValues } from '../redact.js';
import { tailorColumnName } from './snowflake-identifiers.js';

/** Query ids over a set of statements, as stored in the run log (`RunRecord.cost`). */
export interface SnowflakeCostSummary {
  warehouse: 'snowflake';
  queries: number;
  query_ids: string[];
}

/** What the Kysely driver needs from an executor (the SQL compile tests pass a recording one). */
export interface SnowflakeRunner {
  all(sql: string, binds?: readonly unknown[]): Promise<SnowflakeResult>;
  stream(sql: string, binds: readonly unknown[], chunkSize: number): AsyncIterable<Record<string, unknown>[]>;
}

export interface SnowflakeResult {
  queryId: string;
  rows: Record<string, unknown>[];
  numAffectedRows: bigint | undefined;
}

/**
 * Runs statements on one snowflake-sdk connection (one Snowflake session: temporary tables and
 * transactions are session-scoped) and keeps the query id of each, so a run can report the queries
 * it cost (look them up in QUERY_HISTORY for credits). Result columns are folded back to Tailor's
 * lower-case names (see snowflake-identifiers.ts).
 * https://docs.snowflake.com/en/developer-guide/node-js/nodejs-driver-execute
 */
export class SnowflakeExecutor implements SnowflakeRunner {
  readonly #connection: snowflake.Connection;
  readonly #ready: () => Promise<void>;
  readonly #queryIds: string[] = [];

  readonly #logger: Logger | undefined;

  /**
   * `ready` resolves once the session is logged in (connecting lazily, on the first statement);
   * `logger` gets one debug line per statement: its query id, time and the start of its SQL (never binds).
   */
  constructor(
    connection: snowflake.Connection,
    ready: () => Promise<void> = async () => {},
    logger?: Logger,
  ) {
    this.#connection = connection;
    this.#ready = ready;
    this.#logger = logger;
  }

  #record(queryId: string | undefined, sql: string, started: number): void {
    if (queryId) this.#queryIds.push(queryId);
    this.#logger?.debug(
      { queryId, ms: Date.now() - started },
      `snowflake query: ${sql.replace(/\s+/g, ' ').slice(0, 160)}`,
    );
  }

  get queryIds(): readonly string[] {
    return this.#queryIds;
  }

  summary(since = 0): SnowflakeCostSummary {
    const ids = this.#queryIds.slice(since);
    return { warehouse: 'snowflake', queries: ids.length, query_ids: ids };
  }

  async all(sql: string, binds: readonly unknown[] = []): Promise<SnowflakeResult> {
    await this.#ready();
    const started = Date.now();
    return new Promise((resolve, reject) => {
      this.#connection.execute({
        sqlText: sql,
        binds: toBinds(binds),
        parameters: { ...SINGLE_STATEMENT },
        rowMode: 'array',
        complete: (error, statement, rows) => {
          const queryId = statement?.getQueryId?.();
          this.#record(queryId, sql, started);
          if (error) {
            reject(toWarehouseError(error, 'Snowflake query failed'));
            return;
          }
          const names = columnNames(statement);
          const updated = statement.getNumUpdatedRows();
          resolve({
            queryId: queryId ?? '',
            rows: ((rows ?? []) as unknown[][]).map((row) => toObject(names, row)),
            numAffectedRows: updated === undefined || updated < 0 ? undefined : BigInt(updated),
          });
        },
      });
    });
  }

  /** Streams a result in chunks of at most `chunkSize` rows; memory stays bounded by the chunk. */
  async *stream(
    sql: string,
    binds: readonly unknown[],
    chunkSize: number,
  ): AsyncGenerator<Record<string, unknown>[]> {
    await this.#ready();
    const started = Date.now();
    const statement = await new Promise<snowflake.RowStatement>((resolve, reject) => {
      this.#connection.execute({
        sqlText: sql,
        binds: toBinds(binds),
        parameters: { ...SINGLE_STATEMENT },
        rowMode: 'array',
        streamResult: true,
        complete: (error, stmt) => {
          this.#record(stmt?.getQueryId?.(), sql, started);
          if (error) reject(toWarehouseError(error, 'Snowflake query failed'));
          else resolve(stmt);
        },
      });
    });
    const names = columnNames(statement);
    let batch: Record<string, unknown>[] = [];
    try {
      for await (const row of statement.streamRows()) {
        batch.push(toObject(names, row as unknown[]));
        if (batch.length >= chunkSize) {
          yield batch;
          batch = [];
        }
      }
    } catch (error) {
      throw toWarehouseError(error, 'reading a Snowflake result failed');
    }
    if (batch.length > 0) yield batch;
  }
}

/**
 * Statement parameters of every statement Tailor runs: exactly one statement per request. Snowflake
 * runs a request of several `;`-separated statements when MULTI_STATEMENT_COUNT allows it (0: any
 * number), and an account or user may set that default; set on the statement, 1 wins, so a model that
 * closes Tailor's wrapping subquery cannot add statements ("Actual statement count 3 did not match
 * the desired statement count 1").
 * https://docs.snowflake.com/en/sql-reference/parameters#multi-statement-count
 * https://docs.snowflake.com/en/developer-guide/node-js/nodejs-driver-execute#executing-a-batch-of-sql-statements-multi-statement-support
 */
export const SINGLE_STATEMENT = Object.freeze({ MULTI_STATEMENT_COUNT: 1 });

function toBinds(binds: readonly unknown[]): snowflake.Binds {
  // snowflake-sdk binds strings, numbers, booleans and null as themselves and a Date as its ISO
  // text; bigint has no bind type, so it goes as decimal text (Snowflake converts on use).
  return binds.map((value) => (typeof value === 'bigint' ? value.toString() : value)) as snowflake.Binds;
}

function columnNames(statement: snowflake.RowStatement): string[] {
  return (statement.getColumns() ?? []).map((column) => tailorColumnName(column.getName()));
}

function toObject(names: readonly string[], row: readonly unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  names.forEach((name, i) => {
    out[name] = row[i];
  });
  return out;
}

interface SnowflakeErrorLike {
  code?: unknown;
  sqlState?: unknown;
  message?: string;
}

/**
 * Snowflake's message with data values taken out: data exceptions quote the offending value
 * (`Numeric value 'jane@example.com' is not recognized`), so the message is cut at its first quote
 * or line break and the rest replaced, whatever the value holds (src/sources/redact.ts).
 * Compilation errors (SQL state 42xxx) name the SQL's identifiers and
 * keep their quotes, which help the analyst; a function's own error (P0xxx, JavaScript) is not shown.
 * https://docs.snowflake.com/en/developer-guide/node-js/nodejs-driver-errors
 */
export function redactSnowflakeMessage(message: string, sqlState: string): string {
  // A Snowflake Scripting RAISE or a JavaScript UDF's throw (P0xxx) is the function's own text.
  if (sqlState.startsWith('P0') || /^JavaScript (execution|compilation) error/i.test(message)) {
    return `a function the model calls raised an error (SQL state ${sqlState || 'unknown'}); its message is not shown, as it may hold values`;
  }
  // Compilation errors name what the SQL text says: a SELECT cannot build SQL from its rows on
  // Snowflake (no dynamic SQL outside procedures), and a RAISE cannot choose a 42 state.
  if (sqlState.startsWith('42')) return message;
  return redactValues(message, QUOTE_OR_BREAK);
}

/**
 * Maps snowflake-sdk errors to the taxonomy, keeping as the cause only a redacted message, the error
 * code and the SQL state (the SDK's error may carry the statement's binds). Codes 390100/390144 and
 * friends are authentication, 390114 an expired session; 08xxx SQL states are connection failures.
 */
export function toWarehouseError(error: unknown, context: string): Error {
  if (error instanceof WarehouseError || error instanceof AuthError || error instanceof RetryableError)
    return error;
  const e = (error ?? {}) as SnowflakeErrorLike;
  const code = String(e.code ?? '');
  const state = String(e.sqlState ?? '');
  const detail = redactSnowflakeMessage(e.message ?? String(error), state);
  const message = `${context}: ${detail}`;
  const cause = Object.assign(new Error(detail), {
    code: e.code,
    ...(state ? { sqlState: state } : {}),
  });
  if (/^3901(00|01|02|44|86|89|90)$/.test(code) || state === '28000') {
    return new AuthError(message, {
      cause,
      hint: 'check warehouse.username and the private key (or password) in tailor.yml',
    });
  }
  if (
    code === '390114' ||
    state.startsWith('08') ||
    /ECONNRESET|ETIMEDOUT|ENOTFOUND|socket hang up/i.test(message)
  ) {
    return new RetryableError(message, { cause });
  }
  if (code === '003001' || state === '42501') {
    return new WarehouseError(message, { cause, hint: 'grant the privileges listed in docs/warehouses.md' });
  }
  return new WarehouseError(message, { cause });
}
