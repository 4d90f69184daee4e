import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stripTrailingSemicolon, wrapModelSql } from '../../src/sources/model-sql.js';

describe('wrapping a model', () => {
  it('ends a trailing line comment before the closing parenthesis', () => {
    expect(wrapModelSql('select 1 -- all')).toBe('(select 1 -- all\n)');
  });

  it('removes a trailing semicolon, keeping what follows it', () => {
    expect(stripTrailingSemicolon('select 1;')).toBe('select 1');
    expect(stripTrailingSemicolon('select 1 ;  \n')).toBe('select 1   \n');
    expect(stripTrailingSemicolon('select 1; -- done\n/* really */\n')).toBe(
      'select 1 -- done\n/* really */\n',
    );
    expect(stripTrailingSemicolon('select 1 -- done;')).toBe('select 1 -- done');
  });

  it('leaves a semicolon that a quote may hold, or that more SQL follows', () => {
    for (const sql of [
      "select ';'",
      "select 'a; -- b'",
      'select "a;" from t',
      'select $$;$$',
      'select 1; select 2',
      'select 1; /* open',
      'select 1; */ x',
      'select 1; # bigquery comment',
      'select 1 /* ; */',
    ]) {
      expect(stripTrailingSemicolon(sql)).toBe(sql);
    }
  });

  it('only ever removes one semicolon, never anything else', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(';', ' ', '\n', '-', '/', '*', "'", '"', '$', 'a', '1') }),
        (sql) => {
          const out = stripTrailingSemicolon(sql);
          if (out !== sql) {
            expect(out.length).toBe(sql.length - 1);
            const at = sql.lastIndexOf(';');
            expect(sql.slice(0, at) + sql.slice(at + 1)).toBe(out);
            expect(/['"`$]/.test(sql.slice(at + 1))).toBe(false);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('takes linear time on long tails (no backtracking)', () => {
    const tail = `${' \n'.repeat(50_000)}${'-- x '.repeat(10_000)}\n${'/* */ '.repeat(10_000)}`;
    const started = performance.now();
    // More SQL after it: kept; only comments after it: removed.
    expect(stripTrailingSemicolon(`select 1;${tail}y`) === `select 1;${tail}y`).toBe(true);
    expect(stripTrailingSemicolon(`select 1;${tail}`) === `select 1${tail}`).toBe(true);
    // A generous bound: a backtracking regex would take minutes here.
    expect(performance.now() - started).toBeLessThan(2000);
  });
});
