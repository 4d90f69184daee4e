import type { Command } from 'commander';
import { NotImplementedError } from '../../errors.js';
import { withGlobalOptions } from '../context.js';
import type { Wrap } from './index.js';

export function defineSchedule(program: Command, wrap: Wrap): void {
  withGlobalOptions(program.command('schedule'))
    .description('run every enabled activation at its own frequency until stopped')
    .action(
      wrap(async () => {
        throw new NotImplementedError('tailor schedule is not available yet (issue #6)');
      }),
    );
}
