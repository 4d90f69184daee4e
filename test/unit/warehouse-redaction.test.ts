import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { redactBigqueryMessage } from '../../src/sources/bigquery/bigquery-executor.js';
import { redactPostgresMessage, safeDriverError } from '../../src/sources/postgres/postgres-hooks.js';
import { redactSnowflakeMessage } from '../../src/sources/snowflake/snowflake-executor.js';

/**
 * Warehouse errors quote values (a row's email, a function's RAISE): whatever a value holds (quotes
 * of every kind, backslashes, line breaks, `…`), the redacted message must not depend on it. For
 * each warehouse's message templates, the redaction of the message carrying any value `v` equals
 * that of the message carrying a plain one, so no part of `v` can get through.
 */

/** Values an adversary would pick: every quote and escape, line breaks, the redaction mark itself. */
const hostile = fc.string({
  unit: fc.oneof(
    fc.constantFrom(
      '"',
      "'",
      '`',
      '\\',
      '\n',
      '\r',
      '…',
      '“',
      '”',
      '‘',
      '’',
      '«',
      '»',
      ':',
      ';',
      ' ',
      '$',
      'value: ',
    ),
    fc.string({ minLength: 1, maxLength: 1 }),
    fc.constantFrom('jane@example.com', '"" ', "'' "),
  ),
  maxLength: 40,
});

function independentOfValue(template: (v: string) => string, redact: (message: string) => string): void {
  const plain = redact(template('x'));
  fc.assert(
    fc.property(hostile, (v) => {
      expect(redact(template(v))).toBe(plain);
      const marked = `${v}QZX7jane@example.com${v}`;
      expect(redact(template(marked))).not.toContain('QZX7');
    }),
    { numRuns: 300 },
  );
}

describe('Postgres error redaction', () => {
  const data = (code: string) => (message: string) =>
    redactPostgresMessage({ message, code, routine: 'pg_strtoint32_safe', file: 'numutils.c' });
  const templates: [string, (v: string) => string][] = [
    ['22P02', (v) => `invalid input syntax for type integer: "${v}"`],
    ['22003', (v) => `value "${v}" is out of range for type integer`],
    ['22P02', (v) => `invalid input value for enum mood: "${v}"`],
    ['22008', (v) => `date/time field value out of range: "${v}"`],
    ['22007', (v) => `invalid value "${v}" for "MM"`],
    ['42P01', (v) => `relation "${v}" does not exist`], // `email::regclass`: no position
    ['42704', (v) => `unrecognized configuration parameter "${v}"`],
    ['XX000', (v) => `cache lookup failed for "${v}"`],
  ];
  for (const [code, template] of templates) {
    it(`never lets a value through: ${code} ${template('v')}`, () => {
      independentOfValue(template, data(code));
    });
  }

  it('shows nothing of a RAISE or ASSERT, whatever SQLSTATE the function chose', () => {
    for (const fields of [
      {
        code: 'P0001',
        routine: 'exec_stmt_raise',
        file: 'pl_exec.c',
        where: 'PL/pgSQL function f(text) line 1 at RAISE',
      },
      {
        code: '42P01',
        routine: 'exec_stmt_raise',
        file: 'pl_exec.c',
        where: 'PL/pgSQL function f(text) line 1 at RAISE',
      },
      { code: '08006', routine: 'exec_stmt_raise', file: 'pl_exec.c' },
      { code: 'P0004', routine: 'exec_stmt_assert', file: 'pl_exec.c' },
      { code: 'P0001' }, // PGlite or a driver that does not pass the routine on
    ]) {
      independentOfValue(
        (v) => v,
        (message) => redactPostgresMessage({ message, ...fields }),
      );
    }
  });

  it("keeps a parse-time error of the SQL's own text whole, and the warehouse's own failures", () => {
    expect(
      redactPostgresMessage({ message: 'column "emial" does not exist', code: '42703', position: '8' }),
    ).toBe('column "emial" does not exist');
    expect(
      redactPostgresMessage({ message: 'syntax error at or near ")"', code: '42601', position: '20' }),
    ).toBe('syntax error at or near ")"');
    // Dynamic SQL in a function: the identifier may be a value.
    expect(
      redactPostgresMessage({
        message: 'column "jane@example.com" does not exist',
        code: '42703',
        position: '8',
        where: 'PL/pgSQL function f() line 3 at EXECUTE',
      }),
    ).toBe('column…');
    expect(
      redactPostgresMessage({ message: 'password authentication failed for user "tailor"', code: '28P01' }),
    ).toBe('password authentication failed for user "tailor"');
  });

  it('reduces a driver error to the redacted message and the SQLSTATE, nothing else', () => {
    const raw = Object.assign(new Error('invalid input syntax for type integer: "ja"ne@example.com"'), {
      code: '22P02',
      detail: 'jane',
      params: ['jane'],
    });
    const safe = safeDriverError(raw);
    expect(safe.message).toBe('invalid input syntax for type integer: …');
    expect(JSON.stringify(safe)).toBe('{"name":"Error","code":"22P02"}');
    // A network error has no SQLSTATE and no value: kept.
    expect(safeDriverError(new Error('connect ECONNREFUSED 127.0.0.1:5432')).message).toBe(
      'connect ECONNREFUSED 127.0.0.1:5432',
    );
  });
});

describe('BigQuery error redaction', () => {
  const templates: ((v: string) => string)[] = [
    (v) => `Bad int64 value: ${v}`,
    (v) => `Bad double value: ${v}; error in writing field: x`,
    (v) => `Invalid timestamp: '${v}'`,
    (v) => `Could not cast literal "${v}" to type INT64 at [1:8]`,
    (v) => `Conversion Error: Could not convert string '${v}' to INT32`, // DuckDB, under bqemulator
  ];
  for (const template of templates) {
    it(`never lets a value through: ${template('v')}`, () => {
      independentOfValue(template, redactBigqueryMessage);
    });
  }

  it("keeps the SQL's own names", () => {
    expect(redactBigqueryMessage('Unrecognized name: emial at [1:8]; table `shop`.`customers`')).toBe(
      'Unrecognized name: emial at [1:8]; table `shop`.`customers`',
    );
    expect(redactBigqueryMessage('Bad int64 value: jane@example.com')).toBe('Bad int64 value: …');
  });
});

describe('Snowflake error redaction', () => {
  const templates: [string, (v: string) => string][] = [
    ['22018', (v) => `Numeric value '${v}' is not recognized`],
    ['22007', (v) => `Timestamp '${v}' is not recognized`],
    ['22018', (v) => `Boolean value '${v}' is not recognized`],
    ['22000', (v) => `String '${v}' is too long and would be truncated`],
    ['P0001', (v) => v], // Snowflake Scripting RAISE of a user exception
    ['P0000', (v) => `Uncaught exception of type 'STATEMENT_ERROR' on line 3: ${v}`],
    ['10000', (v) => `JavaScript execution error: Uncaught ${v} in F at 'throw x' position 4`],
  ];
  for (const [state, template] of templates) {
    it(`never lets a value through: ${state} ${template('v')}`, () => {
      independentOfValue(template, (message) => redactSnowflakeMessage(message, state));
    });
  }

  it('keeps compilation errors, which name what the SQL says', () => {
    expect(redactSnowflakeMessage("SQL compilation error:\ninvalid identifier 'EMIAL'", '42000')).toBe(
      "SQL compilation error:\ninvalid identifier 'EMIAL'",
    );
  });
});
