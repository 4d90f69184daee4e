import { CommanderError } from 'commander';
import { isTailorError } from '../errors.js';

/** Exit codes of every command: the one place where errors become codes. */
export const EXIT = {
  ok: 0,
  /** Anything else: a warehouse, destination, lock or safety failure, or a bug. */
  failure: 1,
  /** The configuration, the models or the command line is wrong: a user must edit something. */
  config: 2,
} as const;

export function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) {
    if (
      error.code === 'commander.helpDisplayed' ||
      error.code === 'commander.version' ||
      error.code === 'commander.help'
    ) {
      return EXIT.ok;
    }
    return EXIT.config;
  }
  if (isTailorError(error) && error.kind === 'config') return EXIT.config;
  return EXIT.failure;
}
