import { errorMessage, ModelSqlError, WarehouseError } from '../errors.js';

/** An error and the first few of its `cause`s, outermost first (driver errors often come wrapped). */
export function causes(error: unknown): unknown[] {
  const chain: unknown[] = [];
  let current: unknown = error;
  while (current && chain.length < 5) {
    chain.push(current);
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}

/**
 * A warehouse failure named after what Tailor was doing, for the sources whose drivers keep values
 * out of their messages (BigQuery, Snowflake); Postgres redacts its own (postgres-hooks.ts).
 */
export function asWarehouseError(error: unknown, what: string): Error {
  if (error instanceof ModelSqlError) return error;
  if (error instanceof WarehouseError) {
    return new WarehouseError(`${what}: ${error.message}`, { cause: error.cause ?? error, hint: error.hint });
  }
  if (error instanceof Error && 'kind' in error) return error; // AuthError, RetryableError
  return new WarehouseError(`${what} failed: ${errorMessage(error)}`, { cause: error });
}
