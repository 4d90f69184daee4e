import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { waitsForOldest } from '../../src/sync/pipeline.js';

/** Admits batches of the given operation counts as deliverDelta does; returns the largest flights. */
function admit(batches: readonly number[], batchSize: number) {
  const inFlight: number[] = [];
  let mostBatches = 0;
  let mostChanges = 0;
  for (const changes of batches) {
    while (waitsForOldest(inFlight, changes, batchSize)) inFlight.shift();
    inFlight.push(changes);
    mostBatches = Math.max(mostBatches, inFlight.length);
    mostChanges = Math.max(mostChanges, inFlight.length > 1 ? inFlight.reduce((a, b) => a + b, 0) : 0);
  }
  return { mostBatches, mostChanges };
}

describe('batches in flight (deliverDelta)', () => {
  const size = 10_000;

  it('never waits with nothing in flight, however large the batch', () => {
    expect(waitsForOldest([], 5 * size, size)).toBe(false);
  });

  it('lets three batches of added or removed members (one operation each) be in flight', () => {
    expect(admit([size, size, size, size, size], size).mostBatches).toBe(3);
    expect(waitsForOldest([size, size], size, size)).toBe(false);
    expect(waitsForOldest([size, size, size], 0, size)).toBe(true);
  });

  it('lets two batches of changed members (a Delete and an Update each) be in flight', () => {
    expect(admit([2 * size, 2 * size, 2 * size, 2 * size], size).mostBatches).toBe(2);
    expect(waitsForOldest([2 * size], 2 * size, size)).toBe(false);
    expect(waitsForOldest([2 * size, 2 * size], 2 * size, size)).toBe(true);
    // Removed members then changed ones, as the delta orders them.
    expect(waitsForOldest([size, size], 2 * size, size)).toBe(false);
    expect(waitsForOldest([size, 2 * size], 2 * size, size)).toBe(true);
  });

  it('bounds every flight to three batches and four batches of operations (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 * size }), { maxLength: 40 }), (batches) => {
        const { mostBatches, mostChanges } = admit(batches, size);
        expect(mostBatches).toBeLessThanOrEqual(3);
        expect(mostChanges).toBeLessThanOrEqual(4 * size);
      }),
    );
  });
});
