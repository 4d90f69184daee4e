/**
 * Snowflake stores unquoted identifiers upper-cased and matches quoted ones exactly:
 * https://docs.snowflake.com/en/sql-reference/identifiers-syntax
 *
 * Tailor's names (state tables and columns, `primary_key`, mapped columns) are written in snake_case
 * the way an analyst writes unquoted SQL, and a model's `SELECT email ...` returns a column named
 * EMAIL. So every identifier that would be valid unquoted is sent quoted in its stored, upper-case
 * form (`email` -> "EMAIL": the same object the analyst's unquoted name refers to, and safe even for
 * reserved words such as ROWS), and anything else (mixed punctuation, spaces) is quoted verbatim.
 * Result columns come back as stored (EMAIL) and are folded back to lower case for Tailor.
 */
const UNQUOTED = /^[A-Za-z_][A-Za-z0-9_$]*$/;

/** The name Snowflake stores for `name` written unquoted, or `name` itself when it needs quotes. */
export function snowflakeStoredName(name: string): string {
  return UNQUOTED.test(name) ? name.toUpperCase() : name;
}

/** `name` as a quoted Snowflake identifier for the object the unquoted spelling refers to. */
export function quoteSnowflakeIdentifier(name: string): string {
  return `"${snowflakeStoredName(name).replace(/"/g, '""')}"`;
}

/** A result column name as Tailor spells it: EMAIL -> email; "Mixed Case" stays as it is. */
export function tailorColumnName(stored: string): string {
  return UNQUOTED.test(stored) && stored === stored.toUpperCase() ? stored.toLowerCase() : stored;
}
