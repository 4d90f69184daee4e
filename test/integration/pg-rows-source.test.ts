import { PGlite } from '@electric-sql/pglite';
import fc from 'fast-check';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PgliteDialect } from '../../src/sources/pglite/pglite-dialect.js';
import { createPostgresHooks, packedDigests, rowsSource } from '../../src/sources/postgres/postgres-hooks.js';
import { silentLogger } from '../helpers/warehouse.js';
import type { ColumnType } from '../../src/sources/warehouse-hooks.js';
import { TEST_POSTGRES_URL } from '../helpers/warehouse.js';

/**
 * The rows a statement reads from its parameters (the Postgres hooks' `rows`): the same values in
 * the same order, whether a column went as a `text[]` or, all digests, as the bytes of them.
 */

type Row = [string | null, string | null, Date | null];
const COLUMNS: readonly (readonly [string, ColumnType])[] = [
  ['member_key', 'text'],
  ['hash', 'text'],
  ['at', 'timestamptz'],
];

const digest = fc.stringMatching(/^[0-9a-f]{64}$/);
// Near misses: uppercase hex, one character short or long, a partner id, text the array syntax quotes,
// and what a column joined by line breaks cannot carry (a line break, an empty value).
const other = fc.oneof(
  digest.map((d) => d.toUpperCase().replace(/^[0-9]*/, 'A')),
  digest.map((d) => d.slice(1)),
  digest.map((d) => `${d}0`),
  digest.chain((d) => fc.nat(63).map((i) => `${d.slice(0, i)}${'gé-'[i % 3]}${d.slice(i + 1)}`)),
  fc.constantFrom('partner-123', '"', 'a,b', 'NULL', '', 'a\nb', '\n', 'a\r\n'),
);
const column = fc.oneof(
  fc.constant('digests' as const),
  fc.constant('mixed' as const),
  fc.constant('with null' as const),
);

function values(kind: 'digests' | 'mixed' | 'with null', n: number): fc.Arbitrary<(string | null)[]> {
  if (kind === 'digests') return fc.array(digest, { minLength: n, maxLength: n });
  if (kind === 'mixed') return fc.array(fc.oneof(digest, other), { minLength: n, maxLength: n });
  return fc.array(fc.option(digest, { nil: null }), { minLength: n, maxLength: n });
}

const rowSets = fc
  .tuple(fc.integer({ min: 1, max: 40 }), column, column, fc.boolean())
  .chain(([n, keys, hashes, dated]) =>
    fc.tuple(
      values(keys, n),
      values(hashes, n),
      dated
        ? fc.array(
            fc.option(
              fc.date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }),
            ),
            { minLength: n, maxLength: n },
          )
        : fc.constant(Array.from({ length: n }, () => null)),
    ),
  )
  .map(([keys, hashes, dates]) => keys.map((key, i): Row => [key, hashes[i]!, dates[i] ?? null]));

/** An array literal for the test's own candidate values (any text but NUL, which text cannot hold). */
function textArrayLiteralOf(values: readonly string[]) {
  return sql.lit(`{${values.map((value) => `"${value.replace(/["\\]/g, '\\$&')}"`).join(',')}}`);
}

async function readBack(db: Kysely<unknown>, rows: readonly Row[]): Promise<Row[]> {
  const result = await sql<{ member_key: string | null; hash: string | null; at: Date | null }>`
    select * from ${rowsSource('u', COLUMNS, rows)}`.execute(db);
  return result.rows.map((row) => [row.member_key, row.hash, row.at === null ? null : new Date(row.at)]);
}

describe('packedDigests', () => {
  it('packs only columns whose every value is 64 lowercase hex characters', () => {
    const a = 'ab'.repeat(32);
    expect(packedDigests([a, a])).toEqual(Buffer.from(a + a, 'hex'));
    expect(packedDigests([])).toBeUndefined();
    expect(packedDigests([a, null])).toBeUndefined();
    expect(packedDigests([a, a.toUpperCase()])).toBeUndefined();
    expect(packedDigests([a, `${a}0`])).toBeUndefined();
    expect(packedDigests([a, 7])).toBeUndefined();
    // 64 characters, one of them not hex: in the middle, at the end, or not ASCII.
    expect(packedDigests([a, `${a.slice(0, 30)}g${a.slice(31)}`])).toBeUndefined();
    expect(packedDigests([a, `${a.slice(0, 63)}G`])).toBeUndefined();
    expect(packedDigests([`${a.slice(0, 63)}é`, a])).toBeUndefined();
  });
});

describe.each([
  [
    'PostgreSQL',
    () =>
      new Kysely<unknown>({
        dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: TEST_POSTGRES_URL, max: 1 }) }),
      }),
  ],
  ['PGlite', async () => new Kysely<unknown>({ dialect: new PgliteDialect(await PGlite.create()) })],
] as const)('rowsSource on %s', (_name, open) => {
  let db: Kysely<unknown>;
  beforeAll(async () => {
    db = await open();
  });
  afterAll(async () => {
    await db?.destroy();
  });

  it('matches exactly the listed values with inList, joined by line breaks or as an array (property)', async () => {
    const hooks = createPostgresHooks({
      stateSchema: 'unused',
      openSession: () => Promise.reject(new Error('not used')),
      fetchSize: 1,
      lock: { kind: 'in_process', scope: 'in-list-test' },
      logger: silentLogger,
    });
    const text = fc.oneof(digest, other, fc.string());
    await fc.assert(
      fc.asyncProperty(
        fc.array(text, { minLength: 1, maxLength: 8 }),
        fc.array(text, { maxLength: 8 }),
        async (listed, probes) => {
          const candidates = [...new Set([...listed, ...probes])].filter((v) => !v.includes('\u0000'));
          const list = listed.filter((v) => !v.includes('\u0000'));
          if (list.length === 0 || candidates.length === 0) return;
          const v = sql.ref('c.v');
          const from = sql`unnest(${textArrayLiteralOf(candidates)}::text[]) as c(v)`;
          const inside = await sql<{
            v: string;
          }>`select c.v from ${from} where ${hooks.inList(v, list)}`.execute(db);
          const outside = await sql<{
            v: string;
          }>`select c.v from ${from} where ${hooks.inList(v, list, true)}`.execute(db);
          expect(inside.rows.map((r) => r.v).sort()).toEqual(
            candidates.filter((c) => list.includes(c)).sort(),
          );
          expect(outside.rows.map((r) => r.v).sort()).toEqual(
            candidates.filter((c) => !list.includes(c)).sort(),
          );
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reads back every row as given, in order, packed or not (property)', async () => {
    await fc.assert(
      fc.asyncProperty(rowSets, async (rows) => {
        expect(await readBack(db, rows)).toEqual(rows);
      }),
      { numRuns: 60 },
    );
  });

  it('sends a column of digests as one bytea parameter, other text joined by line breaks, the rest as arrays', async () => {
    const key = (i: number) => i.toString(16).padStart(64, '0');
    const rows: Row[] = [
      [key(1), 'partner-1', null],
      [key(2), 'partner-2', new Date('2026-12-05T00:00:00Z')],
    ];
    const compiled = sql`select * from ${rowsSource('u', COLUMNS, rows)}`.compile(db);
    expect(compiled.parameters[0]).toBeInstanceOf(Buffer);
    expect(compiled.parameters.slice(1)).toEqual([
      'partner-1\npartner-2',
      '{NULL,"2026-12-05T00:00:00.000Z"}',
    ]);
    expect(compiled.sql).toContain('string_to_array(cast($2 as text), chr(10))');
    expect(await readBack(db, rows)).toEqual(rows);
    // A text column with a line break, an empty value or a null goes as an array.
    for (const odd of ['a\nb', '', null]) {
      const oddRows: Row[] = [
        [key(1), 'partner-1', new Date('2026-12-05T00:00:00Z')],
        [key(2), odd, null],
      ];
      const oddCompiled = sql`select * from ${rowsSource('u', COLUMNS, oddRows)}`.compile(db);
      expect(oddCompiled.sql).toContain('unnest(cast($2 as text[]), cast($3 as timestamptz[]))');
      expect(await readBack(db, oddRows)).toEqual(oddRows);
    }
    // A column of one value (one Date, or null) is one parameter, whatever the other columns are.
    for (const at of [new Date('2026-12-05T01:02:03.004Z'), null]) {
      for (const hash of ['partner-1', key(9)]) {
        const same: Row[] = [
          [key(1), hash, at],
          [key(2), hash, at === null ? null : new Date(at.getTime())],
        ];
        const sameCompiled = sql`select * from ${rowsSource('u', COLUMNS, same)}`.compile(db);
        expect(sameCompiled.sql).toMatch(/cast\(\$\d as timestamptz\) from/);
        expect(sameCompiled.sql).not.toContain('timestamptz[]');
        expect(sameCompiled.parameters).toContainEqual(at);
        expect(await readBack(db, same)).toEqual(same);
      }
    }
    // Every column packed: the rows are numbered by generate_series.
    const keysOnly = sql`select * from ${rowsSource('u', [['member_key', 'text']], [[key(3)], [key(4)]])}`;
    expect(keysOnly.compile(db).sql).toContain('generate_series(1, 2)');
    expect((await keysOnly.execute(db)).rows).toEqual([{ member_key: key(3) }, { member_key: key(4) }]);
    // Digests not packed (PGlite's hooks): no bytes; text columns joined by line breaks, the same rows.
    const unpacked = sql`select * from ${rowsSource('u', COLUMNS, rows, false)}`.compile(db);
    expect(unpacked.parameters.some((p) => p instanceof Buffer)).toBe(false);
    expect(unpacked.sql).toContain('unnest(string_to_array(cast($1 as text), chr(10))');
  });
});
