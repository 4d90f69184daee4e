import type { Kysely, RawBuilder } from 'kysely';
import { WarehouseError } from '../errors.js';
import { asWarehouseError } from './warehouse-errors.js';
import type { WarehouseDiff } from './warehouse-sql.js';

/** A diff token becomes part of table names (`tailor_snap_<token>`), so it must be plain. */
export function checkDiffToken(token: string): void {
  if (!/^[a-z0-9_]{1,32}$/.test(token)) throw new WarehouseError(`invalid diff token ${token}`);
}

/**
 * An activation id the diff writes as an SQL literal (DDL that carries no parameters) must be
 * plain too; the compiler escapes literals, this keeps them unremarkable.
 */
export function checkLiteralActivationId(activationId: string): void {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(activationId)) {
    throw new WarehouseError(`invalid activation id ${JSON.stringify(activationId)}`);
  }
}

/** Prepares a diff; if that fails, closes it (dropping what it made) before rethrowing. */
export async function prepareOrClose<D extends WarehouseDiff & { prepare(): Promise<void> }>(
  diff: D,
): Promise<D> {
  try {
    await diff.prepare();
    return diff;
  } catch (error) {
    await diff.close();
    throw error;
  }
}

/** A query's rows; a failure becomes a WarehouseError named after `what` (BigQuery, Snowflake). */
export async function queryRows<R>(query: RawBuilder<R>, db: Kysely<unknown>, what: string): Promise<R[]> {
  try {
    return (await query.execute(db)).rows;
  } catch (error) {
    throw asWarehouseError(error, what);
  }
}

/**
 * A query's rows as the dialect's executor streams them, `chunkSize` at a time; a failure becomes a
 * WarehouseError named after `what` (BigQuery, Snowflake).
 */
export async function* streamRows<R>(
  query: RawBuilder<R>,
  db: Kysely<unknown>,
  chunkSize: number,
  what: string,
): AsyncGenerator<R[]> {
  try {
    for await (const chunk of db.getExecutor().stream(query.compile(db), chunkSize)) {
      yield chunk.rows as R[];
    }
  } catch (error) {
    throw asWarehouseError(error, what);
  }
}
