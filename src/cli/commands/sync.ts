import type { Command } from 'commander';
import { NotImplementedError } from '../../errors.js';
import { withGlobalOptions } from '../context.js';
import type { Wrap } from './index.js';

export function defineSync(program: Command, wrap: Wrap): void {
  withGlobalOptions(program.command('sync [activations...]'))
    .description(
      'run activations now: diff in the warehouse, send the delta to X, commit what X acknowledged',
    )
    .option('--all', 'every enabled activation', false)
    .option('--full-resync', 're-send the whole segment (and delete what state holds beyond it)', false)
    .option(
      '--recreate',
      'with --full-resync: create a new audience when the bound one was deleted at X',
      false,
    )
    .option('--force', 'run even when a safety rule would hold the run', false)
    .action(
      wrap(async () => {
        throw new NotImplementedError('tailor sync is not available yet (issue #5)');
      }),
    );
}
