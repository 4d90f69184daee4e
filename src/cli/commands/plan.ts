import type { Command } from 'commander';
import { NotImplementedError } from '../../errors.js';
import { withGlobalOptions } from '../context.js';
import type { Wrap } from './index.js';

export function definePlan(program: Command, wrap: Wrap): void {
  withGlobalOptions(program.command('plan [activations...]'))
    .description('dry run: counts to add, remove, change and refresh, and invalid rows; nothing is sent')
    .action(
      wrap(async () => {
        throw new NotImplementedError('tailor plan is not available yet (issue #5)');
      }),
    );
}
