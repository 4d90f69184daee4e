/**
 * Ctrl-C (SIGINT) and SIGTERM while a command runs. Without a handler Node dies on the spot: a sync
 * left its run `running` in the run log forever and the terminal's cursor hidden (the progress bars
 * hide it). With one, the first signal aborts the command's AbortSignal: runs stop sending, let the
 * requests in flight end (or abort them), commit what X acknowledged and record themselves as
 * `interrupted`; the progress view restores the terminal; the command exits 130. A second signal
 * exits at once: state stays repairable (intent is recorded before each send), and the next run of
 * the activation closes the run as `abandoned`.
 */

import { EXIT } from './exit-codes.js';

export const INTERRUPTED_EXIT = EXIT.interrupted;

/** Shows the terminal's cursor again (cli-progress hides it while bars are drawn). */
const SHOW_CURSOR = '\u001b[?25h';

export interface InterruptGuard extends Disposable {
  /** The signal that stopped the command, once one arrived. */
  readonly received: NodeJS.Signals | undefined;
}

/**
 * Aborts `controller` on the first SIGINT or SIGTERM and exits 130 on the second. Dispose it when the
 * command ends, to remove the handlers.
 */
export function guardInterrupts(controller: AbortController, stderr: NodeJS.WritableStream): InterruptGuard {
  let received: NodeJS.Signals | undefined;
  const terminal = (stderr as { isTTY?: boolean }).isTTY === true;
  const onSignal = (signal: NodeJS.Signals) => {
    if (received !== undefined) {
      stderr.write(
        `${terminal ? SHOW_CURSOR : ''}\n${signal} again: exiting now; the next run repairs what this one left\n`,
      );
      process.exit(INTERRUPTED_EXIT);
    }
    received = signal;
    stderr.write(
      `\n${signal}: stopping; letting requests in flight end and committing what X acknowledged (again to exit now)\n`,
    );
    controller.abort(new Error(`interrupted by ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    get received() {
      return received;
    },
    [Symbol.dispose]() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** Resolves on SIGINT/SIGTERM or when the CLI's stop signal fires, then removes its listeners. */
export function untilStopped(signal: AbortSignal): Promise<NodeJS.Signals | 'abort'> {
  return new Promise((done) => {
    if (signal.aborted) {
      done('abort');
      return;
    }
    const finish = (reason: NodeJS.Signals | 'abort') => {
      signal.removeEventListener('abort', onAbort);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      done(reason);
    };
    const onAbort = () => finish('abort');
    const onInt = () => finish('SIGINT');
    const onTerm = () => finish('SIGTERM');
    signal.addEventListener('abort', onAbort, { once: true });
    process.once('SIGINT', onInt);
    process.once('SIGTERM', onTerm);
  });
}
