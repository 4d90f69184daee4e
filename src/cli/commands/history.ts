import type { Command } from 'commander';
import { NotImplementedError } from '../../errors.js';
import { withGlobalOptions } from '../context.js';
import type { Wrap } from './index.js';

export function defineHistory(program: Command, wrap: Wrap): void {
  withGlobalOptions(program.command('history [activation]'))
    .description('past runs with their counts')
    .action(
      wrap(async () => {
        throw new NotImplementedError('tailor history is not available yet (issue #5)');
      }),
    );
}
