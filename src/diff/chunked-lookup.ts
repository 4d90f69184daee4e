/**
 * Lookups of many values (hashes) that a warehouse takes a bounded number at a time
 * (`hooks.maxHashesPerLookup`) run this many chunks at once. One after another, a batch's 30,000
 * hashes were three round trips on PostgreSQL, and on BigQuery (10,000 per query) or Snowflake (1,000
 * per statement) three or thirty queries whose latency, not their work, is what a batch waited for.
 * Two leaves the rest of a PostgreSQL pool (four connections by default, one held by the diff) to the
 * commits that run beside the lookups.
 */
export const LOOKUP_CONCURRENCY = 2;

/**
 * What `lookup` finds over `values` cut into chunks of `size`, with at most `concurrency` chunks in
 * flight; the union of their answers. When a chunk fails, no further chunk starts, and the failure is
 * thrown once the chunks already in flight have ended: none is left running on a connection its
 * caller may be about to close.
 */
export async function lookupInChunks<T, R>(
  values: readonly T[],
  size: number,
  lookup: (chunk: T[]) => Promise<Iterable<R>>,
  concurrency: number = LOOKUP_CONCURRENCY,
): Promise<Set<R>> {
  if (!Number.isInteger(size) || size < 1)
    throw new RangeError(`chunk size must be a positive integer: ${size}`);
  const found = new Set<R>();
  const chunks = Math.ceil(values.length / size);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    while (next < chunks && failure === undefined) {
      const start = next++ * size;
      try {
        for (const value of await lookup(values.slice(start, start + size))) found.add(value);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, chunks)) }, worker));
  if (failure) throw failure.error;
  return found;
}
