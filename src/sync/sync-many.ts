import { errorMessage, isTailorError } from '../errors.js';
import { emptyCounts } from './counts.js';
import type { SyncEngine, SyncOptions, SyncReport } from './types.js';

/** Activations synced at once by `sync --all`: they share one warehouse and one rate limit per account. */
export const DEFAULT_CONCURRENCY = 3;

/**
 * Runs several activations with at most `concurrency` at a time and returns their reports in the order
 * of `ids`. Unlike `engine.sync`, it never throws: a configuration error of one activation becomes a
 * failed report (with `errorKind: 'config'`) and the others still run.
 */
export async function syncMany(
  engine: SyncEngine,
  ids: readonly string[],
  options: SyncOptions,
  concurrency: number = DEFAULT_CONCURRENCY,
): Promise<SyncReport[]> {
  const reports: SyncReport[] = new Array(ids.length);
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const index = next++;
      const id = ids[index]!;
      const started = Date.now();
      if (options.signal?.aborted) {
        // Interrupted: start no further run (it would only record one more interrupted run).
        reports[index] = {
          activationId: id,
          runId: null,
          status: 'skipped',
          counts: emptyCounts(),
          audienceId: null,
          durationMs: 0,
          error: 'not started: interrupted',
          warnings: [],
        };
        continue;
      }
      try {
        reports[index] = await engine.sync(id, options);
      } catch (error) {
        reports[index] = {
          activationId: id,
          runId: null,
          status: 'failed',
          counts: emptyCounts(),
          audienceId: null,
          durationMs: Date.now() - started,
          error: errorMessage(error),
          warnings: [],
          errorKind: isTailorError(error) ? error.kind : 'internal',
        };
      }
    }
  };
  const workers = Math.max(1, Math.min(concurrency, ids.length));
  await Promise.all(Array.from({ length: workers }, worker));
  return reports;
}
