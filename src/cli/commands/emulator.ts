import type { Command } from 'commander';
import { NotImplementedError } from '../../errors.js';
import { withGlobalOptions } from '../context.js';
import type { Wrap } from './index.js';

export function defineEmulator(program: Command, wrap: Wrap): void {
  withGlobalOptions(program.command('emulator'))
    .description('run the local X Ads API emulator')
    .action(
      wrap(async () => {
        throw new NotImplementedError('tailor emulator is not available yet (issue #3)');
      }),
    );
}
