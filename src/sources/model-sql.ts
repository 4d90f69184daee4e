/**
 * How an analyst's model SQL is placed inside Tailor's statements: as a subquery, `(<sql>\n)`, the
 * one way every statement that reads a model wraps it (the diff's snapshot, every `describeModel`).
 * The SQL is otherwise never parsed or rewritten, with one exception, below.
 *
 * - The newline before the closing parenthesis ends a trailing `-- comment`, which would otherwise
 *   swallow the parenthesis ("syntax error at end of input").
 * - A trailing `;` (a statement terminator is not allowed inside parentheses) is removed, with the
 *   whitespace and comments after it kept: the last `;` is removed when everything after it is
 *   whitespace, `-- …` line comments and `/* … *\/` block comments, and holds none of the quote
 *   characters `'`, `"`, `` ` `` and `$`. Why that is safe without lexing the rest: if that `;`
 *   ends the statement, removing it is the point; if it lies inside a comment, removing a character
 *   of a comment changes nothing; and it cannot lie inside a string, quoted identifier or dollar
 *   quote that the SQL closes, because the closing quote would come after it, and nothing after it
 *   is a quote character. (If the literal is never closed the SQL was invalid and stays invalid.)
 *   Only `--` and `/* *\/` count as comments: they mean the same on every warehouse, whereas `#` is
 *   a comment on BigQuery but an operator on Postgres.
 *
 * A model that is several statements is not made one by this: it stays invalid inside the
 * parentheses, or, if it closes them itself, each warehouse refuses it (see docs/warehouses.md).
 */
export function wrapModelSql(modelSql: string): string {
  return `(${stripTrailingSemicolon(modelSql)}\n)`;
}

/** Whitespace, line comments and block comments (not nested), and nothing else. */
// Unambiguous (one way to match any text), so it cannot backtrack: one whitespace character at a
// time, a line comment only up to its line's end, a block comment only up to its first `*/`.
const TRAILER = /^(?:\s|--[^\n\r]*(?=[\n\r]|$)|\/\*(?:[^*]|\*(?!\/))*\*\/)*$/;
const QUOTES = /['"`$]/;

/** `sql` less its last `;` when only whitespace and comments follow it (see wrapModelSql). */
export function stripTrailingSemicolon(modelSql: string): string {
  const at = modelSql.lastIndexOf(';');
  if (at < 0) return modelSql;
  const after = modelSql.slice(at + 1);
  if (QUOTES.test(after) || !TRAILER.test(after)) return modelSql;
  return modelSql.slice(0, at) + after;
}
