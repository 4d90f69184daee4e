import type { Command } from 'commander';
import { NotImplementedError } from '../../errors.js';
import { withGlobalOptions } from '../context.js';
import type { Wrap } from './index.js';

export function defineState(program: Command, wrap: Wrap): void {
  const state = program.command('state').description("manage an activation's state in the warehouse");
  withGlobalOptions(state.command('reset <activation>'))
    .description('forget the state of an activation (its next run is a full sync)')
    .action(
      wrap(async () => {
        throw new NotImplementedError('tailor state reset is not available yet (issue #5)');
      }),
    );
}
