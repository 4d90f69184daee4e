import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { lookupInChunks } from '../../src/diff/chunked-lookup.js';

/** A lookup whose chunks stay in flight until the test settles them, one at a time. */
function heldLookup<T>() {
  const calls: { chunk: T[]; settle: (found: T[] | Error) => void }[] = [];
  let inFlight = 0;
  let most = 0;
  let started: () => void = () => undefined;
  const lookup = (chunk: T[]) =>
    new Promise<T[]>((resolve, reject) => {
      inFlight++;
      most = Math.max(most, inFlight);
      calls.push({
        chunk,
        settle: (found) => {
          inFlight--;
          if (found instanceof Error) reject(found);
          else resolve(found);
        },
      });
      started();
    });
  /** Resolves once `n` chunks have started in all. */
  const startedCount = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (calls.length >= n) resolve();
        else started = check;
      };
      check();
    });
  return { calls, lookup, startedCount, most: () => most, inFlight: () => inFlight };
}

describe('lookupInChunks', () => {
  it('asks every value once, in chunks of the given size, and returns the union of the answers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(fc.integer(), { maxLength: 60 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 4 }),
        async (values, size, concurrency) => {
          const asked: number[][] = [];
          let inFlight = 0;
          let most = 0;
          const found = await lookupInChunks(
            values,
            size,
            async (chunk) => {
              asked.push(chunk);
              inFlight++;
              most = Math.max(most, inFlight);
              await Promise.resolve();
              inFlight--;
              return chunk.filter((value) => value % 3 === 0);
            },
            concurrency,
          );
          expect(asked.flat().sort((a, b) => a - b)).toEqual([...values].sort((a, b) => a - b));
          for (const chunk of asked) expect(chunk.length).toBeLessThanOrEqual(size);
          expect(asked.length).toBe(Math.ceil(values.length / size));
          expect(most).toBeLessThanOrEqual(concurrency);
          expect([...found].sort((a, b) => a - b)).toEqual(
            values.filter((v) => v % 3 === 0).sort((a, b) => a - b),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps `concurrency` chunks in flight, no more', async () => {
    const held = heldLookup<string>();
    const values = Array.from({ length: 10 }, (_, i) => `h${i}`);
    const result = lookupInChunks(values, 2, held.lookup, 3);
    await held.startedCount(3);
    expect(held.inFlight()).toBe(3);
    // Each answer lets exactly one more chunk start.
    for (let i = 0; i < 5; i++) {
      held.calls[i]!.settle(held.calls[i]!.chunk.slice(0, 1));
      if (i + 3 < 5) await held.startedCount(i + 4);
    }
    expect(held.most()).toBe(3);
    expect([...(await result)].sort()).toEqual(['h0', 'h2', 'h4', 'h6', 'h8']);
  });

  it('starts no chunk after a failure, and throws it once the chunks in flight have ended', async () => {
    const held = heldLookup<number>();
    const values = Array.from({ length: 12 }, (_, i) => i);
    let ended = false;
    const result = lookupInChunks(values, 2, held.lookup, 2).finally(() => {
      ended = true;
    });
    result.catch(() => undefined);
    await held.startedCount(2);
    const failure = new Error('warehouse went away');
    held.calls[0]!.settle(failure);
    // Every reaction to the failure runs before the next turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
    expect(held.calls).toHaveLength(2);
    // The other chunk is still in flight: the lookup waits for it before throwing.
    expect(ended).toBe(false);
    held.calls[1]!.settle([]);
    await expect(result).rejects.toBe(failure);
    expect(held.calls).toHaveLength(2);
  });

  it('makes no call for no values, and refuses a chunk size below one', async () => {
    let calls = 0;
    const lookup = async (chunk: number[]) => {
      calls++;
      return chunk;
    };
    expect(await lookupInChunks([], 5, lookup)).toEqual(new Set());
    expect(calls).toBe(0);
    await expect(lookupInChunks([1], 0, lookup)).rejects.toThrow(RangeError);
  });
});
