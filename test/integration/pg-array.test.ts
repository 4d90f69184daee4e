import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { textArrayLiteral } from '../../src/sources/postgres/pg-array.js';
import { TEST_POSTGRES_URL } from '../helpers/warehouse.js';

let client: pg.Client;

beforeAll(async () => {
  client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
  await client.connect();
});

afterAll(async () => {
  await client?.end();
});

async function roundTrip(values: readonly (string | null)[]): Promise<(string | null)[]> {
  const result = await client.query<{ a: (string | null)[] }>('select $1::text[] as a', [
    textArrayLiteral(values),
  ]);
  return result.rows[0]!.a;
}

describe('textArrayLiteral (against PostgreSQL)', () => {
  it('reads back exactly the values it was given', async () => {
    // Characters the array syntax treats specially, and text that looks like a null.
    const tricky = fc.constantFrom('"', '\\', ',', '{', '}', ' ', 'NULL', 'null', "'", '\n', 'é', '😀', '');
    const value = fc.oneof(
      fc.string(),
      fc.array(tricky, { maxLength: 6 }).map((parts) => parts.join('')),
      fc.stringMatching(/^[0-9a-f]{64}$/),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(fc.option(value, { nil: null }), { maxLength: 20 }), async (values) => {
        // PostgreSQL text cannot hold NUL.
        const storable = values.map((v) => (v === null ? null : v.replaceAll('\u0000', '')));
        expect(await roundTrip(storable)).toEqual(storable);
      }),
      { numRuns: 300 },
    );
  });

  it('writes plain values joined, as node-postgres would read them', async () => {
    expect(textArrayLiteral([])).toBe('{}');
    expect(textArrayLiteral(['a', 'b c', 'NULL'])).toBe('{"a","b c","NULL"}');
    expect(textArrayLiteral(['a"b', null, 'c\\d'])).toBe('{"a\\"b",NULL,"c\\\\d"}');
    expect(await roundTrip(['a', 'b c', 'NULL', ''])).toEqual(['a', 'b c', 'NULL', '']);
  });
});
