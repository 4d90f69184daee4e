import type { Command } from 'commander';
import { NotImplementedError } from '../../errors.js';
import { withGlobalOptions } from '../context.js';
import type { Wrap } from './index.js';

export function defineAudiences(program: Command, wrap: Wrap): void {
  withGlobalOptions(program.command('audiences'))
    .description("list the X account's custom audiences")
    .action(
      wrap(async () => {
        throw new NotImplementedError('tailor audiences is not available yet (issue #5)');
      }),
    );
}
