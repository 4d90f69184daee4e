import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import type { HeldLock } from './warehouse-sql.js';

/**
 * A lock row with a lease, for warehouses with no session-level locks (BigQuery, Snowflake): once the
 * row is ours, renew its lease every third of it in the background (a missed renewal is logged, the
 * lease then lapses on its own if the process died) and delete it on release. The statements that
 * renew and delete the row are each warehouse's own (`<kind>-sql.ts`).
 */
export function leasedLock(options: {
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
