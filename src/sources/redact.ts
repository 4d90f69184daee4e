/**
 * Takes the values out of a warehouse's error message by a rule no value can escape by what it holds
 * (quotes of any kind, backslashes, line breaks, `…`): the message is kept up to the first position
 * where a value may start (`valueStart`: any quote character, a line break, and per warehouse a
 * colon or what follows `value:`), and everything from there to the end is replaced by `…`. A
 * value's own quotes cannot move the cut, which comes before the value; nothing after the cut is
 * kept, so the result never depends on the value (tested as a property per warehouse).
 *
 * Deliberately no attempt to keep the template's text after a quoted value (` is not recognized`):
 * which quote closes the value cannot be told from the text when the value holds quotes too.
 */
export function redactValues(message: string, valueStart: RegExp): string {
  const match = valueStart.exec(message);
  if (!match) return message;
  // A colon that marks where the value starts stays, to read `...: …` (not one the value begins with).
  const prefix = message.slice(0, match[0] === ':' ? match.index + 1 : match.index).trimEnd();
  return prefix.endsWith(':') ? `${prefix} …` : `${prefix}…`;
}

/** Any quote character, ASCII or typographic, and a line break: where a value may start in any message. */
export const QUOTE_OR_BREAK = /["'`\n\r\u2018\u2019\u201c\u201d\u00ab\u00bb]/;
