import { CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { EXIT, exitCodeFor, exitCodeForReports } from '../../src/cli/exit-codes.js';
import { ConfigError, ModelSqlError, WarehouseError } from '../../src/errors.js';

describe('exit codes', () => {
  it('gives 2 for what a user fixes in the project or the command line, 1 for the rest', () => {
    expect(exitCodeFor(new ConfigError('bad'))).toBe(EXIT.config);
    expect(exitCodeFor(new ModelSqlError('vip', 'relation "x" does not exist'))).toBe(EXIT.config);
    expect(exitCodeFor(new WarehouseError('connection refused'))).toBe(EXIT.failure);
    expect(exitCodeFor(new Error('bug'))).toBe(EXIT.failure);
  });

  it('gives 0 for help and version, 2 for every usage error commander reports', () => {
    expect(exitCodeFor(new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'))).toBe(0);
    expect(exitCodeFor(new CommanderError(0, 'commander.help', '(outputHelp)'))).toBe(0);
    expect(exitCodeFor(new CommanderError(1, 'commander.help', '(outputHelp)'))).toBe(2);
    expect(exitCodeFor(new CommanderError(1, 'commander.unknownCommand', 'x'))).toBe(2);
  });

  it('maps run reports through the same kinds', () => {
    const failed = (errorKind: string) => ({ status: 'failed', errorKind });
    expect(exitCodeForReports([{ status: 'succeeded' }], ['succeeded'])).toBe(0);
    expect(exitCodeForReports([failed('model_sql')], ['succeeded'])).toBe(2);
    expect(exitCodeForReports([failed('config'), failed('model_sql')], ['succeeded'])).toBe(2);
    expect(exitCodeForReports([failed('model_sql'), failed('warehouse')], ['succeeded'])).toBe(1);
    expect(exitCodeForReports([{ status: 'held' }], ['succeeded', 'held'])).toBe(0);
    // Ctrl-C or SIGTERM: 130, as a shell reports an interrupted command, whatever else failed.
    expect(exitCodeForReports([failed('config'), { status: 'interrupted' }], ['succeeded'])).toBe(130);
  });
});
