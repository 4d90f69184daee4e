import { type Command, InvalidArgumentError } from 'commander';
import { errorMessage } from '../../errors.js';
import { openSyncEngine } from '../../sync/engine.js';
import type { UiServer } from '../../ui/server.js';
import { type CommandContext, withExamples, withGlobalOptions } from '../context.js';
import { commandLineError, EXIT } from '../exit-codes.js';
import { untilStopped } from '../interrupt.js';
import type { Wrap } from './index.js';
import { engineLogger } from './sync.js';

/** The default port of the web UI (documented in docs/ui.md). */
export const DEFAULT_UI_PORT = 4141;

export const uiPort = (value: string) => {
  const n = Number(value);
  if (!/^\d{1,5}$/.test(value) || n > 65_535)
    throw new InvalidArgumentError('must be a port from 0 to 65535');
  return n;
};

/**
 * Starts the web UI for the command's project: the CLI's loader (environment, secrets scrubbed,
 * the embedded X emulator) and engines. Shared by `tailor ui` and `tailor schedule --ui`.
 */
export async function startUi(
  ctx: CommandContext,
  options: {
    host: string;
    port: number;
    onConfigWritten?: () => void;
    /** How the command names its port and address options, for errors. */
    optionNames?: { port: string; host: string };
  },
): Promise<UiServer> {
  const { startUiServer } = await import('../../ui/server.js');
  const token = ctx.io.env['TAILOR_UI_TOKEN'] || undefined;
  if (token) ctx.scrubber.setSecrets([...(await ctx.project()).secrets, token]);
  const logger = ctx.logger.child({ component: 'ui' });
  const names = options.optionNames ?? { port: '--port', host: '--host' };
  try {
    return await startUiServer({
      host: options.host,
      port: options.port,
      token,
      projectDir: ctx.projectDir,
      // Read on each Connect X form: reloadProject reads .env again after a connection wrote it.
      env: () => ctx.env,
      load: async () => {
        const project = await ctx.reloadProject();
        if (token) ctx.scrubber.setSecrets([...project.secrets, token]);
        return project;
      },
      openEngine: (project) => openSyncEngine(project, { logger: engineLogger(ctx) }),
      logger,
      scrub: (text) => ctx.scrubber.scrub(text),
      ...(options.onConfigWritten ? { onConfigWritten: options.onConfigWritten } : {}),
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const address = `${options.host}:${options.port}`;
    if (code === 'EADDRINUSE')
      throw commandLineError(`cannot listen on ${address}: another process already listens there`, {
        option: names.port,
        hint: 'choose another port (0 picks a free one), or stop the other process',
      });
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
      throw commandLineError(`cannot listen on ${address}: no such address on this machine`, {
        option: names.host,
      });
    throw error instanceof Error && code === undefined
      ? error
      : new Error(`cannot start the web UI: ${errorMessage(error)}`, { cause: error });
  }
}

export function defineUi(program: Command, wrap: Wrap): void {
  withExamples(withGlobalOptions(program.command('ui')), [
    'tailor ui                              # http://127.0.0.1:4141',
    'TAILOR_UI_TOKEN=... tailor ui --host 0.0.0.0   # off loopback a token is required',
  ])
    .description(
      'the web UI: every activation at a glance, one-click activation, runs, plan, run now, pause/resume (loopback by default)',
    )
    .option('--port <port>', 'port to listen on (0 picks a free one)', uiPort, DEFAULT_UI_PORT)
    .option('--host <address>', 'address to listen on (any but loopback needs TAILOR_UI_TOKEN)', '127.0.0.1')
    .action(
      wrap(async (ctx, options: { port: number; host: string }) => {
        await ctx.project();
        const server = await startUi(ctx, options);
        if (ctx.globals.json) ctx.print(JSON.stringify({ url: server.url, port: server.port }));
        else {
          ctx.print(`Tailor UI: ${server.url}`);
          ctx.note(
            ctx.io.env['TAILOR_UI_TOKEN']
              ? 'open it with ?token=<the value of TAILOR_UI_TOKEN> once; Ctrl-C stops it'
              : 'Ctrl-C stops it (runs in progress record themselves as interrupted)',
          );
        }
        const reason = await untilStopped(ctx.signal);
        ctx.logger.info({ reason }, 'stopping the web UI');
        await server.close({ abort: true });
        return EXIT.ok;
      }),
    );
}
