import { resolve } from 'node:path';
import type { Command } from 'commander';
import { loadProject, type Project } from '../config/load-project.js';
import { createLogger, type Logger } from './logger.js';
import { type CliIo, colorEnabled, Scrubber } from './output.js';

export interface GlobalOptions {
  project: string;
  json: boolean;
  debug: boolean;
}

/** What every command gets: where to write, the logger, the project, and a stop signal. */
export class CommandContext {
  readonly io: CliIo;
  readonly globals: GlobalOptions;
  readonly scrubber = new Scrubber();
  readonly logger: Logger;
  readonly signal: AbortSignal;
  #project: Project | undefined;

  /**
   * `logIsOutput`: the command's log is what it prints (the scheduler daemon), so off a terminal it
   * stays JSON lines for a log collector. Other commands print their own lines for people, and their
   * log lines read like them unless `--json` (or `--debug` off a terminal) asks for JSON.
   */
  constructor(
    io: CliIo,
    globals: GlobalOptions,
    signal: AbortSignal,
    options: { logIsOutput?: boolean } = {},
  ) {
    this.io = io;
    this.globals = globals;
    this.signal = signal;
    const terminal = io.stderr.isTTY === true;
    const json = globals.json || (!terminal && (globals.debug || options.logIsOutput === true));
    this.logger = createLogger({
      debug: globals.debug,
      format: json ? 'json' : 'pretty',
      color: colorEnabled(io.stderr, io.env),
      stderr: io.stderr,
      scrubber: this.scrubber,
    });
  }

  get projectDir(): string {
    return resolve(this.io.cwd, this.globals.project);
  }

  /** Loads tailor.yml and the models once; from then on its secrets are scrubbed from all output. */
  async project(): Promise<Project> {
    if (!this.#project) {
      this.#project = await loadProject(this.projectDir, this.io.env, {
        onSecrets: (values) => this.scrubber.setSecrets(values),
      });
      this.scrubber.setSecrets(this.#project.secrets);
    }
    return this.#project;
  }

  /** Forgets the loaded project (the scheduler's reload). */
  async reloadProject(): Promise<Project> {
    const previous = this.#project?.secrets ?? [];
    const project = await loadProject(this.projectDir, this.io.env, {
      onSecrets: (values) => this.scrubber.setSecrets([...values, ...previous]),
    });
    this.scrubber.setSecrets([...project.secrets, ...previous]);
    this.#project = project;
    return project;
  }

  print(text: string): void {
    this.io.stdout.write(this.scrubber.scrub(text.endsWith('\n') ? text : `${text}\n`));
  }

  printJson(value: unknown): void {
    this.print(JSON.stringify(value, null, 2));
  }

  /** Diagnostics for a human on stderr (warnings, progress lines); never results. */
  note(text: string): void {
    this.io.stderr.write(this.scrubber.scrub(text.endsWith('\n') ? text : `${text}\n`));
  }
}

/** Adds the options every command takes. */
export function withGlobalOptions(command: Command): Command {
  return command
    .option('--project <dir>', 'the project directory (holding tailor.yml and models/)', '.')
    .option('--json', 'print a machine-readable result on stdout', false)
    .option('--debug', 'log at debug level (secrets and identifiers are still never printed)', false);
}

export type CommandHandler<A extends unknown[] = unknown[]> = (
  ctx: CommandContext,
  ...args: A
) => Promise<number>;
