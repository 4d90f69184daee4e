/**
 * The text of a PostgreSQL array of text values (`{"a","b",NULL}`), for a `$n::text[]` (or other
 * `::type[]`) parameter. node-postgres builds the same text from a JS array, but element by element
 * with two regular-expression replaces each. Values without `"` or `\` (hashes, types, most keys) are
 * quoted as they are and joined at once; any other value is escaped as the array syntax requires.
 * Measured on a 100k-member initial load (CPU profile of the commits' arrays): 754 ms the node-postgres
 * way, 471 ms this way.
 * https://www.postgresql.org/docs/current/arrays.html#ARRAYS-IO
 */
export function textArrayLiteral(values: readonly (string | null)[]): string {
  if (values.length === 0) return '{}';
  let plain = true;
  for (const value of values) {
    if (value === null || value.includes('"') || value.includes('\\')) {
      plain = false;
      break;
    }
  }
  // Inside double quotes every character but `"` and `\` stands for itself: commas, braces, spaces,
  // and the word NULL (only an unquoted NULL is a null).
  if (plain) return `{"${values.join('","')}"}`;
  const parts = values.map((value) => (value === null ? 'NULL' : `"${value.replace(/["\\]/g, '\\$&')}"`));
  return `{${parts.join(',')}}`;
}
