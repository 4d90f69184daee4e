import type { Command } from 'commander';
import type { CommandHandler } from '../context.js';

// Each command's handler has its own argument list.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Wrap = (handler: CommandHandler<any[]>) => (...args: any[]) => Promise<void>;

type Define = (program: Command, wrap: Wrap) => void;

/**
 * Every command of the README's command table, one thin file each, in the order `--help` lists them.
 * Each is imported only when needed: the commands pull in warehouse drivers, the X client, the
 * scheduler or the emulator, and loading all of them on every start cost seconds per invocation.
 */
const COMMANDS: ReadonlyArray<readonly [string, () => Promise<Define>]> = [
  ['init', async () => (await import('./init.js')).defineInit],
  ['connect', async () => (await import('./connect.js')).defineConnect],
  ['check', async () => (await import('./check.js')).defineCheck],
  ['plan', async () => (await import('./plan.js')).definePlan],
  ['sync', async () => (await import('./sync.js')).defineSync],
  ['activate', async () => (await import('./activate.js')).defineActivate],
  ['schedule', async () => (await import('./schedule.js')).defineSchedule],
  ['status', async () => (await import('./status.js')).defineStatus],
  ['history', async () => (await import('./history.js')).defineHistory],
  ['audiences', async () => (await import('./audiences.js')).defineAudiences],
  ['state', async () => (await import('./state.js')).defineState],
  ['emulator', async () => (await import('./emulator.js')).defineEmulator],
  ['ui', async () => (await import('./ui.js')).defineUi],
];

/**
 * Registers the command named on the command line, or every command when none is named (top-level
 * help, `help <command>`, or an unknown name, which commander then reports with suggestions).
 */
export async function registerCommands(program: Command, wrap: Wrap, argv: readonly string[]): Promise<void> {
  const named = argv.find((arg) => !arg.startsWith('-'));
  const only = COMMANDS.find(([name]) => name === named);
  const chosen = only ? [only] : COMMANDS;
  const defines = await Promise.all(chosen.map(([, load]) => load()));
  for (const define of defines) define(program, wrap);
}
