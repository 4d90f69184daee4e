import { type Logger, pino } from 'pino';
import pinoPretty from 'pino-pretty';
import { PROJECT_SECRET_PATHS } from '../config/load-project.js';
import { redactionPaths } from '../config/secret.js';
import { type Scrubber, scrubbingStream } from './output.js';

export type { Logger };

/**
 * The one root logger, built here in the CLI. JSON lines on stderr, pretty when stderr is a TTY.
 * Secrets are redacted by path (derived from the schema's secret marks) and, as a second line of
 * defence, scrubbed by value from every line. Identifiers and query parameters are never logged by
 * the code below (see CONVENTIONS.md).
 */
export function createLogger(options: {
  debug: boolean;
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  scrubber: Scrubber;
  level?: string;
}): Logger {
  const target = scrubbingStream(options.stderr, options.scrubber);
  const stream = options.stderr.isTTY
    ? pinoPretty({
        destination: target,
        colorize: true,
        sync: true,
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
