import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { distinctRows, hashesFromRows, rowsFromHashes, wholeIntents } from '../../src/diff/diff-run.js';
import type { MemberAck } from '../../src/diff/types.js';
import { X_IDENTIFIER_TYPES } from '../../src/destinations/x-ads/identifier-types.js';
import { PACKED_INTENT, packIntentHashes, unpackIntentHashes } from '../../src/diff/state-sql.js';

const hex = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 4, maxLength: 8 });

describe('member hashes as state rows', () => {
  it('round-trips, dropping duplicates and sorting values', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom(...X_IDENTIFIER_TYPES), fc.array(hex, { maxLength: 4 })),
        (hashes) => {
          const rows = rowsFromHashes(hashes);
          expect(new Set(rows.map((r) => `${r.idType}:${r.hash}`)).size).toBe(rows.length);
          const back = hashesFromRows(rows);
          const expected = Object.fromEntries(
            Object.entries(hashes)
              .filter(([, values]) => values.length > 0)
              .map(([type, values]) => [type, [...new Set(values)].sort()]),
          );
          expect(back).toEqual(expected);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('treats a removed member (null hashes) as holding nothing', () => {
    expect(rowsFromHashes(null)).toEqual([]);
    expect(hashesFromRows([])).toEqual({});
    expect(rowsFromHashes({ email: ['b', 'a', 'b'] })).toEqual([
      { idType: 'email', hash: 'b' },
      { idType: 'email', hash: 'a' },
    ]);
  });
});

describe('distinctRows', () => {
  it('keeps each (type, hash) once, in first-seen order, pairwise or past 32 rows by a set (property)', () => {
    const row = fc.record({
      idType: fc.constantFrom('email', 'phone_number'),
      hash: fc.constantFrom('a', 'b', 'c'),
    });
    const many = fc.array(fc.record({ idType: fc.constantFrom('email', 'device_id'), hash: hex }), {
      minLength: 30,
      maxLength: 80,
    });
    fc.assert(
      fc.property(fc.oneof(fc.array(row, { maxLength: 8 }), many), (rows) => {
        const seen = new Map(rows.map((r) => [`${r.idType}:${r.hash}`, r]));
        const expected = rows.filter(
          (r, i) => rows.findIndex((o) => o.idType === r.idType && o.hash === r.hash) === i,
        );
        const out = distinctRows(rows);
        expect(out).toEqual(expected);
        expect(out.length).toBe(seen.size);
        // A handful with nothing repeated: the same array back, nothing copied.
        if (rows.length <= 32 && expected.length === rows.length) expect(out).toBe(rows);
      }),
      { numRuns: 300 },
    );
  });
});

describe('packed intent rows', () => {
  const value = fc.oneof(
    hex,
    // partner_user_id goes as the partner knows it: any text, the separators and escapes included.
    fc.string({ unit: fc.constantFrom('%', ';', ':', '2', '5', '3', 'B', 'a', ' ', 'é', '\n') }),
    fc.string({ unit: 'grapheme' }),
  );
  const row = fc.record({ idType: fc.constantFrom(...X_IDENTIFIER_TYPES), hash: value });

  it('round-trips any member hashes through one packed row, in order (property)', () => {
    fc.assert(
      fc.property(fc.array(row, { minLength: 1, maxLength: 6 }), (rows) => {
        const packed = packIntentHashes(rows);
        expect(unpackIntentHashes([{ idType: PACKED_INTENT, hash: packed }])).toEqual(rows);
      }),
      { numRuns: 500 },
    );
  });

  it('reads rows of the old form (one hash each) as they are, beside packed ones', () => {
    const old = { idType: 'email', hash: 'a;b%3B:c' };
    const packed = { idType: PACKED_INTENT, hash: packIntentHashes([{ idType: 'handle', hash: 'd' }]) };
    expect(unpackIntentHashes([old, packed])).toEqual([old, { idType: 'handle', hash: 'd' }]);
  });

  it('writes hex digests as they are', () => {
    const a = 'a'.repeat(64);
    const b = 'b'.repeat(64);
    expect(
      packIntentHashes([
        { idType: 'email', hash: a },
        { idType: 'phone_number', hash: b },
      ]),
    ).toBe(`email:${a};phone_number:${b}`);
  });

  it('refuses a packed row it cannot read, saying what to do', () => {
    expect(() => unpackIntentHashes([{ idType: PACKED_INTENT, hash: 'no type here' }])).toThrow(
      /not in its packed form/,
    );
  });
});

describe('wholeIntents', () => {
  const ack = (key: string, intentId: string | null): [string, MemberAck] => [
    key,
    { key, change: 'added', fingerprint: 'f', hashes: {}, sentAt: null, intentId },
  ];

  it('names an intent whole only when every member it recorded is acknowledged for it, in one chunk', () => {
    const recorded = () =>
      new Map<string, readonly string[]>([
        ['r:1', ['a', 'b']],
        ['r:2', ['c', 'd']],
      ]);
    const acks = new Map([ack('a', 'r:1'), ack('b', 'r:1'), ack('c', 'r:2'), ack('x', 'r:2')]);
    const map = recorded();
    expect(wholeIntents(map, acks, true)).toEqual(new Set(['r:1']));
    // Both named intents are forgotten, whole or not.
    expect(map.size).toBe(0);
    // Several chunks: none is whole.
    expect(wholeIntents(recorded(), acks, false)).toEqual(new Set());
    // A member acknowledged under another intent does not count for this one.
    expect(wholeIntents(recorded(), new Map([ack('a', 'r:1'), ack('b', 'r:2')]), true)).toEqual(new Set());
    // An intent this run never recorded (or already forgot) is not whole.
    expect(wholeIntents(new Map(), acks, true)).toEqual(new Set());
    // An intent the acks do not name stays recorded.
    const kept = recorded();
    wholeIntents(kept, new Map([ack('a', 'r:1'), ack('b', 'r:1')]), true);
    expect([...kept.keys()]).toEqual(['r:2']);
  });
});
