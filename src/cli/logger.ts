import { createRequire } from 'node:module';
import { type Logger, pino } from 'pino';
import type PinoPretty from 'pino-pretty';
import { PROJECT_SECRET_PATHS } from '../config/load-project.js';
import { redactionPaths } from '../config/secret.js';
import { type Scrubber, scrubbingStream } from './output.js';

export type { Logger };

/**
 * How log lines look on stderr: `json` (pino's JSON lines, for machines: `--json`, `--debug` into a
 * file, or a daemon whose log is its output), or `pretty` (one readable line each, for people, so
 * that warnings sit beside a command's own lines in the same voice), coloured only when `color`.
 */
export type LogFormat = 'json' | 'pretty';

/** pino-pretty, read only for a pretty log: `--json` and a daemon's JSON log never load it. */
const load = createRequire(import.meta.url);

/**
 * The one root logger, built here in the CLI. Secrets are redacted by path (derived from the
 * schema's secret marks) and, as a second line of defence, scrubbed by value from every line.
 * Identifiers and query parameters are never logged by the code below.
 */
export function createLogger(options: {
  debug: boolean;
  format: LogFormat;
  color: boolean;
  stderr: NodeJS.WritableStream;
  scrubber: Scrubber;
  level?: string;
}): Logger {
  const target = scrubbingStream(options.stderr, options.scrubber);
  const stream =
    options.format === 'pretty'
      ? (load('pino-pretty') as typeof PinoPretty)({
          destination: target,
          colorize: options.color,
          sync: true,
          singleLine: true,
          translateTime: 'SYS:HH:MM:ss',
          ignore: 'pid,hostname',
        })
      : target;
  return pino(
    {
      level: options.level ?? (options.debug ? 'debug' : 'info'),
      base: undefined,
      redact: { paths: redactionPaths(PROJECT_SECRET_PATHS), censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    stream,
  );
}
