import type { Command } from 'commander';
import { NotImplementedError } from '../../errors.js';
import { withGlobalOptions } from '../context.js';
import type { Wrap } from './index.js';

export function defineActivate(program: Command, wrap: Wrap): void {
  withGlobalOptions(program.command('activate <model>'))
    .description("one-click activation of a model from the destination's default settings")
    .action(
      wrap(async () => {
        throw new NotImplementedError('tailor activate is not available yet (issue #5)');
      }),
    );
}
