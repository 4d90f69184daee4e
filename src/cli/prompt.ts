/**
 * Questions asked on a terminal (`tailor connect`): a line, a secret (not echoed), a choice from a list.
 * Off a terminal only `readLine` is used (a PIN piped in); the others need a TTY and the caller checks.
 */
import { createInterface } from 'node:readline';
import { AuthError } from '../errors.js';
import type { CliIo } from './output.js';

type Stdin = NonNullable<CliIo['stdin']>;

/**
 * Holds the process open while a question waits (ref), and lets it end once answered (unref): a pipe
 * the caller never closes would otherwise keep it alive after the command is done.
 */
function hold(stdin: Stdin, on: boolean): void {
  const handle = stdin as { ref?: () => void; unref?: () => void };
  if (on) handle.ref?.();
  else handle.unref?.();
}

/** One line from stdin (after writing `question` to stderr); rejects on timeout, abort or end of input. */
export function readLine(
  stdin: Stdin,
  stderr: NodeJS.WritableStream,
  question: string,
  options: { timeoutMs?: number; signal?: AbortSignal; what: string },
): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    hold(stdin, true);
    const rl = createInterface({ input: stdin, terminal: false });
    let done = false;
    const finish = (error: Error | undefined, value?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      rl.close();
      hold(stdin, false);
      if (error) reject(error);
      else resolve(value!);
    };
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(
            () =>
              finish(
                new AuthError(
                  `no ${options.what} was entered within ${Math.round(options.timeoutMs! / 1000)} s`,
                  {
                    hint: 'run `tailor connect` again (--timeout to wait longer)',
                  },
                ),
              ),
            options.timeoutMs,
          );
    const onAbort = () =>
      finish(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted'));
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    rl.once('line', (text) => finish(undefined, text.trim()));
    rl.once('close', () =>
      finish(
        new AuthError(`stdin ended before a ${options.what} was entered`, {
          hint: 'run `tailor connect` on a terminal, or pipe the value in',
        }),
      ),
    );
    stderr.write(question);
  });
}

/** A secret typed on a terminal, not echoed. */
export function readSecret(stdin: Stdin, stderr: NodeJS.WritableStream, question: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    stderr.write(question);
    let value = '';
    hold(stdin, true);
    const raw = typeof stdin.setRawMode === 'function';
    if (raw) stdin.setRawMode!(true);
    const stop = () => {
      stdin.removeListener('data', onData);
      if (raw) stdin.setRawMode!(false);
      stdin.pause();
      hold(stdin, false);
      stderr.write('\n');
    };
    const onData = (chunk: Buffer | string) => {
      for (const char of chunk.toString()) {
        if (char === '\r' || char === '\n') {
          stop();
          return resolve(value);
        }
        if (char === '\u0003') {
          stop();
          return reject(new Error('interrupted'));
        }
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1);
        else value += char;
      }
    };
    stdin.on('data', onData);
    stdin.resume();
  });
}

/**
 * A numbered list on stderr, then the number typed; asked again until it is one of them and `refuse`
 * (when given) has no reason against it.
 */
export async function choose<T>(
  stdin: Stdin,
  stderr: NodeJS.WritableStream,
  title: string,
  items: readonly T[],
  label: (item: T) => string,
  options: { signal?: AbortSignal; refuse?: (item: T) => string | undefined } = {},
): Promise<T> {
  const { signal, refuse } = options;
  stderr.write(`${title}\n`);
  items.forEach((item, index) => stderr.write(`  ${index + 1}) ${label(item)}\n`));
  for (;;) {
    const answer = await readLine(stdin, stderr, `choose 1-${items.length}: `, {
      what: 'choice',
      ...(signal ? { signal } : {}),
    });
    const index = Number(answer);
    if (!(Number.isInteger(index) && index >= 1 && index <= items.length)) {
      stderr.write(`  not one of 1-${items.length}\n`);
      continue;
    }
    const item = items[index - 1]!;
    const reason = refuse?.(item);
    if (reason === undefined) return item;
    stderr.write(`  ${reason}; choose another\n`);
  }
}
