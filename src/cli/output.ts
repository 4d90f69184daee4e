import { Writable } from 'node:stream';

/**
 * Replaces every known secret value with a marker. Every byte the CLI writes (results, errors and
 * logs) goes through this, so a secret from tailor.yml cannot reach output even in a stack trace.
 */
export class Scrubber {
  #secrets: string[] = [];

  setSecrets(values: readonly string[]): void {
    // Longest first, so a secret containing another is replaced whole. Very short values would
    // blot out ordinary text and cannot be meaningful credentials.
    this.#secrets = [...new Set(values)]
      .filter((value) => value.length >= 4)
      .sort((a, b) => b.length - a.length);
  }

  scrub(text: string): string {
    let out = text;
    for (const value of this.#secrets) {
      if (out.includes(value)) out = out.split(value).join('[REDACTED]');
      const encoded = encodeURIComponent(value);
      if (encoded !== value && out.includes(encoded)) out = out.split(encoded).join('[REDACTED]');
    }
    return out;
  }
}

/** A writable stream that scrubs what passes through it before handing it on. */
export function scrubbingStream(target: NodeJS.WritableStream, scrubber: Scrubber): Writable {
  return new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      target.write(scrubber.scrub(typeof chunk === 'string' ? chunk : chunk.toString('utf8')));
      callback();
    },
  });
}

/** Where a command writes: results to stdout, logs and diagnostics to stderr. */
export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Where prompts read (`tailor connect`: a PIN, a secret, the account picker). */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (mode: boolean) => unknown };
}

/**
 * Whether a stream may receive colour: a terminal, and the user has not asked for none (`NO_COLOR`
 * set to anything but the empty string, https://no-color.org, or a `dumb` terminal). Every coloured
 * line the CLI writes asks this first.
 */
export function colorEnabled(
  stream: { isTTY?: boolean },
  env: Readonly<Record<string, string | undefined>>,
): boolean {
  if (stream.isTTY !== true) return false;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return env.TERM !== 'dumb';
}

/** Whether a stream is a terminal that can redraw lines (progress bars), rather than a pipe or a log. */
export function interactive(
  stream: { isTTY?: boolean },
  env: Readonly<Record<string, string | undefined>>,
): boolean {
  return stream.isTTY === true && env.TERM !== 'dumb';
}

export { formatCount, formatDuration, formatInstant } from '../format.js';

/** Left-aligned plain-text table (no colour, safe to pipe). */
export function formatTable(
  headers: readonly string[],
  rows: readonly (readonly (string | number)[])[],
): string {
  const cells = [headers, ...rows].map((row) => row.map(String));
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => row[i]?.length ?? 0)));
  const line = (row: readonly string[]) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(cells[0]!), line(widths.map((w) => '-'.repeat(w))), ...cells.slice(1).map(line)].join('\n');
}
