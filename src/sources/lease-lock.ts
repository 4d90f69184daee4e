import { randomUUID } from 'node:crypto';
import { sql, type CompiledQuery, type Kysely, type RawBuilder } from 'kysely';
import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import type { HeldLock, WarehouseHooks } from './warehouse-hooks.js';

/**
 * The activation lock of warehouses with no session-level locks (BigQuery, Snowflake): a lease row
 * in `locks`, taken by a conditional MERGE (a row that is absent or expired becomes ours), checked
 * by its affected row count and read back, renewed every third of the lease while held (a missed
 * renewal is logged; the lease lapses on its own if the process died), deleted on release.
 */

interface LockTables {
  locks: { activation_id: string; holder: string; acquired_at: unknown; expires_at: unknown };
}

export interface LeaseLockOptions {
  db: Kysely<unknown>;
  stateSchema: string;
  leaseSeconds: number;
  /** `now + seconds` in the warehouse's SQL. */
  expiry: (seconds: number) => RawBuilder<unknown>;
  run: WarehouseHooks['run'];
  logger: Logger;
}

/** The lock table, created by the lease warehouses' first migration. */
export function createLocksTable(db: Kysely<unknown>, stateSchema: string): CompiledQuery {
  return db.schema
    .withSchema(stateSchema)
    .createTable('locks')
    .ifNotExists()
    .addColumn('activation_id', 'text', (c) => c.notNull())
    .addColumn('holder', 'text', (c) => c.notNull())
    .addColumn('acquired_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .compile();
}

/** Tries once to take the lease row of `activationId`: the held lock, or null when it is held. */
export async function tryLeaseLock(
  options: LeaseLockOptions,
  activationId: string,
): Promise<HeldLock | null> {
  const { leaseSeconds, run } = options;
  const db = (options.db as unknown as Kysely<LockTables>).withSchema(options.stateSchema);
  const holder = randomUUID();
  const now = sql<unknown>`current_timestamp`;
  const expires = options.expiry(leaseSeconds);
  const what = `taking the lock of activation ${activationId}`;
  const taken = await run(
    what,
    () =>
      db
        .mergeInto('locks as t')
        .using(
          db.selectNoFrom(sql<string>`${activationId}`.as('activation_id')).as('s'),
          't.activation_id',
          's.activation_id',
        )
        .whenMatchedAnd('t.expires_at', '<', now)
        .thenUpdateSet({ holder, acquired_at: now, expires_at: expires })
        .whenNotMatched()
        .thenInsertValues({
          activation_id: sql.ref('s.activation_id'),
          holder,
          acquired_at: now,
          expires_at: expires,
        })
        .executeTakeFirst(),
    { mutates: false },
  );
  if (Number(taken.numChangedRows ?? 0n) !== 1) return null;
  // Read back: the lock is ours only if the single row for the activation names us.
  const rows = await run(`checking the lock of activation ${activationId}`, () =>
    db.selectFrom('locks').select('holder').where('activation_id', '=', activationId).execute(),
  );
  if (rows.length !== 1 || rows[0]?.holder !== holder) return null;
  return leasedLock({
    activationId,
    leaseSeconds,
    logger: options.logger,
    renew: async () =>
      Number(
        (
          await run(
            'renewing an activation lock',
            () =>
              db
                .updateTable('locks')
                .set({ expires_at: expires })
                .where('activation_id', '=', activationId)
                .where('holder', '=', holder)
                .executeTakeFirst(),
            { mutates: true },
          )
        ).numUpdatedRows,
      ),
    release: () =>
      run(
        `releasing the lock of activation ${activationId}`,
        () =>
          db
            .deleteFrom('locks')
            .where('activation_id', '=', activationId)
            .where('holder', '=', holder)
            .executeTakeFirst(),
        { mutates: true },
      ),
  });
}

/** A held lease: renewed in the background, deleted on release. */
function leasedLock(options: {
  activationId: string;
  leaseSeconds: number;
  logger: Logger;
  /** Extends the lease of our row; resolves to the rows updated (0: the lease was lost). */
  renew: () => Promise<number>;
  /** Deletes our row. */
  release: () => Promise<unknown>;
}): HeldLock {
  const { activationId, leaseSeconds, logger } = options;
  let held = true;
  const renew = setInterval(
    () => {
      void options.renew().then(
        (n) => {
          if (n === 0 && held) logger.warn({ activation: activationId }, 'activation lock lease was lost');
        },
        (error: unknown) =>
          logger.warn({ activation: activationId, err: errorMessage(error) }, 'lock renewal failed'),
      );
    },
    Math.max(1000, (leaseSeconds * 1000) / 3),
  );
  renew.unref();
  return {
    release: async () => {
      if (!held) return;
      held = false;
      clearInterval(renew);
      await options.release();
    },
  };
}
