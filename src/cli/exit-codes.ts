import { CommanderError } from 'commander';
import { ConfigError, type ConfigIssue, isTailorError } from '../errors.js';

/** Exit codes of every command: the one place where errors become codes. */
export const EXIT = {
  ok: 0,
  /** Anything else: a warehouse, destination, lock or safety failure, or a bug. */
  failure: 1,
  /**
   * The project (tailor.yml, a model's YAML or SQL) or the command line is wrong: a user must edit
   * something, and running it again unchanged fails the same way.
   */
  config: 2,
  /** Stopped by Ctrl-C or SIGTERM before it finished (128 + SIGINT, as shells report it). */
  interrupted: 130,
} as const;

/**
 * Error kinds a user fixes by editing the project or the command line. A model's SQL failing in the
 * warehouse is the analyst's to fix in models/, like a typo in tailor.yml.
 */
const PROJECT_KINDS: ReadonlySet<string> = new Set(['config', 'model_sql']);

/** The exit code for an error kind (`TailorError.kind`, or a run report's `errorKind`). */
export function exitCodeForKind(kind: string | undefined): number {
  return kind !== undefined && PROJECT_KINDS.has(kind) ? EXIT.config : EXIT.failure;
}

export function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) {
    // `--help`, `--version` and `tailor help` exit 0; commander asks for 1 on everything else it
    // rejects (an unknown command or option, a missing argument, no command at all): usage errors.
    return error.exitCode === 0 ? EXIT.ok : EXIT.config;
  }
  return exitCodeForKind(isTailorError(error) ? error.kind : undefined);
}

/**
 * The exit code of a command that ran activations: 0 when every report has one of `okStatuses`,
 * 2 when every other report failed for a reason the project must fix, 1 otherwise.
 */
export function exitCodeForReports(
  reports: readonly { status: string; errorKind?: string | undefined }[],
  okStatuses: readonly string[],
): number {
  const bad = reports.filter((report) => !okStatuses.includes(report.status));
  if (bad.length === 0) return EXIT.ok;
  if (bad.some((report) => report.status === 'interrupted')) return EXIT.interrupted;
  return bad.every((report) => exitCodeForKind(report.errorKind) === EXIT.config)
    ? EXIT.config
    : EXIT.failure;
}

/** Where a problem with the command's own arguments is reported (not tailor.yml). */
export const COMMAND_LINE = 'command line';

/**
 * A problem with the command line (an option, an argument): exit code 2 like a configuration error,
 * but reported against the command line, never against tailor.yml.
 */
export function commandLineError(
  message: string,
  options: { option?: string; hint?: string; cause?: unknown } = {},
): ConfigError {
  const issue: ConfigIssue = { file: COMMAND_LINE, path: options.option ?? '', message };
  return new ConfigError([issue], {
    ...(options.hint ? { hint: options.hint } : {}),
    ...(options.cause !== undefined ? { cause: options.cause } : {}),
  });
}
