import { resolve } from 'node:path';
import type { Command } from 'commander';
import { DEMO_ACCOUNT_ID, DEMO_CREDENTIALS, startEmulator } from '../../emulator/index.js';
import { withExamples, withGlobalOptions } from '../context.js';
import { commandLineError, EXIT } from '../exit-codes.js';
import { untilStopped } from '../interrupt.js';
import type { Wrap } from './index.js';

interface EmulatorCommandOptions {
  port: string;
  host: string;
  state?: string;
  rateLimit: boolean;
}

function parsePort(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 0 && port <= 65535)) {
    throw commandLineError(`not a port number: ${text}`, { option: '--port' });
  }
  return port;
}

export function defineEmulator(program: Command, wrap: Wrap): void {
  withExamples(withGlobalOptions(program.command('emulator')), [
    'tailor emulator --port 4010 --state .tailor/emulator.json',
  ])
    .description('run the local X Ads API emulator (demo account and credentials; see docs/emulator.md)')
    .option('--port <n>', 'port to listen on (0 = any free port)', '0')
    .option('--host <host>', 'interface to listen on', '127.0.0.1')
    .option('--state <file>', 'keep accounts, audiences and members in this JSON file between runs')
    .option('--no-rate-limit', 'turn the X rate limits off')
    .action(
      wrap(async (ctx, options: EmulatorCommandOptions) => {
        const port = parsePort(options.port);
        const statePath = options.state ? resolve(ctx.io.cwd, options.state) : undefined;
        const logger = ctx.logger.child({ component: 'emulator' });
        const emulator = await startEmulator({
          port,
          host: options.host,
          ...(statePath ? { statePath } : {}),
          ...(options.rateLimit ? {} : { rateLimits: false as const }),
          logger,
        });
        if (ctx.globals.json) {
          ctx.print(JSON.stringify({ url: emulator.url, port: emulator.port }));
        } else {
          ctx.print(`X Ads API emulator listening on ${emulator.url}`);
          ctx.note(
            `account ${DEMO_ACCOUNT_ID}; consumer key ${DEMO_CREDENTIALS.consumerKey}, ` +
              `access token ${DEMO_CREDENTIALS.accessToken} (secrets: see docs/emulator.md); Ctrl-C stops it`,
          );
        }
        const reason = await untilStopped(ctx.signal);
        logger.info({ reason }, 'stopping the X Ads API emulator');
        await emulator.close();
        return EXIT.ok;
      }),
    );
}
