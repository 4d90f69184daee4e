import type { Command } from 'commander';
import { NotImplementedError } from '../../errors.js';
import { withGlobalOptions } from '../context.js';
import type { Wrap } from './index.js';

export function defineStatus(program: Command, wrap: Wrap): void {
  withGlobalOptions(program.command('status'))
    .description("last run of each activation, with X's audience size and targetability")
    .action(
      wrap(async () => {
        throw new NotImplementedError('tailor status is not available yet (issue #5)');
      }),
    );
}
