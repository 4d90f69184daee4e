import { Command, CommanderError } from 'commander';
import { ConfigError, errorMessage, isTailorError } from '../errors.js';
import { registerCommands } from './commands/index.js';
import { type CommandHandler, CommandContext, type GlobalOptions } from './context.js';
import { COMMAND_LINE, EXIT, exitCodeFor } from './exit-codes.js';
import { guardInterrupts, INTERRUPTED_EXIT, type InterruptGuard } from './interrupt.js';
import type { CliIo } from './output.js';

export const VERSION = '0.1.0';

/** Commands whose log is their output (a daemon's record of its runs): JSON lines off a terminal. */
const LOG_IS_OUTPUT: ReadonlySet<string> = new Set(['schedule']);

/**
 * Commands that talk to X (or create its client): for them `api_url: embedded` starts the local
 * emulator in process. `check --offline` connects to nothing, so it starts nothing.
 */
const TALKS_TO_X: ReadonlySet<string> = new Set([
  'check',
  'plan',
  'sync',
  'activate',
  'schedule',
  'status',
  'audiences',
  'ui',
]);

/** Commands that open the warehouse (`check` unless --offline): `sample: demo` seeds it first. */
const USES_WAREHOUSE: ReadonlySet<string> = new Set([
  'check',
  'plan',
  'sync',
  'activate',
  'schedule',
  'status',
  'history',
  'reset',
  'ui',
]);

/** Commands that handle SIGINT and SIGTERM themselves (a daemon drains its runs; a server stops). */
const OWN_SIGNALS: ReadonlySet<string> = new Set(['schedule', 'emulator', 'ui']);

function reportError(
  ctx: CommandContext | undefined,
  io: CliIo,
  error: unknown,
  json: boolean,
  debug: boolean,
): void {
  const write = (text: string) => {
    const scrubbed = ctx ? ctx.scrubber.scrub(text) : text;
    (json ? io.stdout : io.stderr).write(scrubbed.endsWith('\n') ? scrubbed : `${scrubbed}\n`);
  };
  if (json) {
    const issues = error instanceof ConfigError ? error.issues : undefined;
    write(
      JSON.stringify(
        {
          ok: false,
          error: {
            kind: isTailorError(error) ? error.kind : 'internal',
            message: errorMessage(error),
            ...(isTailorError(error) && error.hint ? { hint: error.hint } : {}),
            ...(issues ? { issues } : {}),
          },
        },
        null,
        2,
      ),
    );
    return;
  }
  if (error instanceof ConfigError && error.issues.every((issue) => issue.file === COMMAND_LINE)) {
    // An option or argument is wrong: nothing in the project is to blame.
    for (const issue of error.issues) write(`error: ${issue.path ? `${issue.path}: ` : ''}${issue.message}`);
  } else if (error instanceof ConfigError) {
    write(`${error.issues.length} problem${error.issues.length === 1 ? '' : 's'} in the project:`);
    for (const line of error.message.split('\n')) write(`  ${line}`);
  } else if (isTailorError(error)) {
    write(`error: ${error.message}`);
  } else {
    write(`error: ${errorMessage(error)}`);
  }
  if (isTailorError(error) && error.hint) write(`hint: ${error.hint}`);
  let cause = error instanceof Error ? error.cause : undefined;
  for (let depth = 0; cause !== undefined && depth < 5; depth++) {
    write(`  caused by: ${errorMessage(cause)}`);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  if (debug && error instanceof Error && !isTailorError(error) && error.stack) write(error.stack);
}

/**
 * Runs the CLI with the given arguments and returns the exit code. Never throws; never prints a
 * stack trace unless `--debug` is given and the error is a bug rather than a known failure.
 */
export async function main(
  argv: readonly string[],
  io?: Partial<CliIo>,
  signal?: AbortSignal,
): Promise<number> {
  const fullIo: CliIo = {
    stdout: io?.stdout ?? process.stdout,
    stderr: io?.stderr ?? process.stderr,
    env: io?.env ?? process.env,
    cwd: io?.cwd ?? process.cwd(),
    stdin: io?.stdin ?? process.stdin,
  };
  let ctx: CommandContext | undefined;
  let exitCode: number = EXIT.ok;
  let guard: InterruptGuard | undefined;
  const controller = new AbortController();
  const stopSignal = signal ?? controller.signal;
  const program = new Command('tailor')
    .description('Keep X Ads custom audiences in step with SQL segments in your warehouse')
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (text) => fullIo.stdout.write(text),
      writeErr: (text) => fullIo.stderr.write(text),
    });
  const wrap = (handler: CommandHandler<unknown[]>) => {
    return async (...args: unknown[]) => {
      const command = args[args.length - 1] as Command;
      const globals = command.optsWithGlobals() as GlobalOptions;
      const offline = (globals as { offline?: boolean }).offline === true;
      ctx = new CommandContext(fullIo, globals, stopSignal, {
        logIsOutput: LOG_IS_OUTPUT.has(command.name()),
        embeddedX: TALKS_TO_X.has(command.name()) && !offline,
        usesWarehouse: USES_WAREHOUSE.has(command.name()) && !offline,
      });
      // A caller that passes its own stop signal owns stopping (tests, embedding).
      if (signal === undefined && !OWN_SIGNALS.has(command.name()))
        guard = guardInterrupts(controller, fullIo.stderr);
      exitCode = await handler(ctx, ...args.slice(0, -1));
    };
  };
  const wantsJson = argv.includes('--json');
  const wantsDebug = argv.includes('--debug');
  try {
    await registerCommands(program, wrap, argv);
    await program.parseAsync([...argv], { from: 'user' });
    // Stopped by a signal and not finished: 130, whatever the runs' reports said of it.
    return guard?.received !== undefined && exitCode !== EXIT.ok ? INTERRUPTED_EXIT : exitCode;
  } catch (error) {
    if (error instanceof CommanderError) return exitCodeFor(error);
    if (guard?.received !== undefined) {
      (wantsJson ? fullIo.stdout : fullIo.stderr).write(
        wantsJson
          ? `${JSON.stringify({ ok: false, error: { kind: 'interrupted', message: `interrupted by ${guard.received}` } }, null, 2)}\n`
          : `interrupted by ${guard.received}\n`,
      );
      return INTERRUPTED_EXIT;
    }
    reportError(ctx, fullIo, error, wantsJson, wantsDebug);
    return exitCodeFor(error);
  } finally {
    guard?.[Symbol.dispose]();
    // The embedded emulator's state is written on close; a failure there must not hide the result.
    await ctx
      ?.close()
      .catch((error: unknown) =>
        fullIo.stderr.write(`warning: stopping the embedded X emulator: ${errorMessage(error)}\n`),
      );
  }
}
