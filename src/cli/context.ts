import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { readDotEnvSync } from '../config/dotenv.js';
import { CONFIG_FILE, findProjectDir, loadProject, type Project } from '../config/load-project.js';
import { EMBEDDED_API_URL } from '../destinations/x-ads/x-ads-config.js';
import type { EmbeddedEmulator } from './embedded-emulator.js';
import { ConfigError } from '../errors.js';
import { createLogger, type Logger } from './logger.js';
import { type CliIo, colorEnabled, Scrubber } from './output.js';

export interface GlobalOptions {
  /** `--project DIR` as given; when absent, the project is found from the current directory up. */
  project?: string;
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
  #found: string | undefined;
  #env: Readonly<Record<string, string | undefined>> | undefined;
  readonly #embeddedX: boolean;
  readonly #usesWarehouse: boolean;
  #embedded: Promise<EmbeddedEmulator> | undefined;

  /**
   * `logIsOutput`: the command's log is what it prints (the scheduler daemon), so off a terminal it
   * stays JSON lines for a log collector. Other commands print their own lines for people, and their
   * log lines read like them unless `--json` (or `--debug` off a terminal) asks for JSON.
   * `embeddedX`: the command talks to X, so a destination with `api_url: embedded` gets the local
   * emulator started in this process (embedded-emulator.ts) for the command's duration.
   * `usesWarehouse`: the command opens the warehouse, so `sample: demo` creates it first if need be.
   */
  constructor(
    io: CliIo,
    globals: GlobalOptions,
    signal: AbortSignal,
    options: { logIsOutput?: boolean; embeddedX?: boolean; usesWarehouse?: boolean } = {},
  ) {
    this.#embeddedX = options.embeddedX === true;
    this.#usesWarehouse = options.usesWarehouse === true;
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

  /** The directory `--project` names, or the current one: where `init` writes, with no search. */
  get baseDir(): string {
    return resolve(this.io.cwd, this.globals.project ?? '.');
  }

  /**
   * The project's directory: `--project` when given; otherwise the nearest directory holding
   * tailor.yml from the current one up (the current one when there is none, and `project()` says so).
   */
  get projectDir(): string {
    if (this.globals.project !== undefined) return this.baseDir;
    this.#found ??= findProjectDir(this.io.cwd) ?? this.baseDir;
    return this.#found;
  }

  /**
   * The environment tailor.yml's `${VAR}`s read: the process's, over the project's `.env` (beside
   * tailor.yml; values already in the environment win, as with docker compose and dotenv). Read once.
   */
  get env(): Readonly<Record<string, string | undefined>> {
    if (!this.#env) {
      let fromFile: Record<string, string> = {};
      try {
        fromFile = readDotEnvSync(this.projectDir);
      } catch (cause) {
        throw new ConfigError(
          [
            {
              file: '.env',
              path: '',
              message: `cannot read: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`,
            },
          ],
          { cause },
        );
      }
      // Its secrets are scrubbed from output as tailor.yml's are: through the schema's secret marks
      // once the project loads (not every value: `.env` may hold plain words like `postgres`).
      this.#env = { ...fromFile, ...this.io.env };
    }
    return this.#env;
  }

  /** Values never to print from now on (besides those tailor.yml marks secret). */
  addSecrets(values: readonly string[]): void {
    this.#extraSecrets.push(...values);
    this.scrubber.setSecrets([...this.#extraSecrets, ...(this.#project?.secrets ?? [])]);
  }

  #extraSecrets: string[] = [];

  /** Loads tailor.yml and the models once; from then on its secrets are scrubbed from all output. */
  async project(): Promise<Project> {
    if (!this.#project) {
      if (!existsSync(join(this.projectDir, CONFIG_FILE))) throw this.#noProject();
      const project = await loadProject(this.projectDir, this.env, {
        onSecrets: (values) => this.scrubber.setSecrets([...values, ...this.#extraSecrets]),
      });
      this.scrubber.setSecrets([...project.secrets, ...this.#extraSecrets]);
      await this.#seedSample(project);
      this.#project = await this.#withEmbeddedX(project);
    }
    return this.#project;
  }

  /**
   * `sample: demo` with an embedded PGlite warehouse that does not exist yet: create it with the demo
   * sample, as `npm start` does, so every command of the example project works on a fresh clone.
   */
  async #seedSample(project: Project): Promise<void> {
    const warehouse = project.config.warehouse;
    if (!this.#usesWarehouse || project.config.sample !== 'demo' || warehouse.type !== 'pglite') return;
    const { pgliteDataDir } = await import('../sources/pglite/pglite-source.js');
    const dataDir = pgliteDataDir(warehouse, project.dir);
    if (existsSync(dataDir)) return;
    const { seedSample, withPglite } = await import('../demo/demo-warehouse.js');
    const result = await withPglite(dataDir, (db) => seedSample(db));
    if (result.seeded) {
      this.note(
        `warehouse: created ${dataDir} with the demo sample (${result.customers} customers, ${result.orders} orders)`,
      );
    }
  }

  /**
   * Replaces `api_url: embedded` by the URL of the emulator this command runs (started on first
   * need, once per command: the scheduler's reloads keep it), when the command talks to X.
   */
  async #withEmbeddedX(project: Project): Promise<Project> {
    if (!this.#embeddedX) return project;
    const destinations = Object.values(project.config.destinations);
    if (!destinations.some((destination) => destination.api_url === EMBEDDED_API_URL)) return project;
    const module = await import('./embedded-emulator.js');
    this.#embedded ??= module.startEmbeddedEmulator(
      project.dir,
      this.logger.child({ component: 'emulator' }, { level: this.globals.debug ? 'debug' : 'warn' }),
    );
    const emulator = await this.#embedded;
    if (emulator.sharedWith !== undefined && !this.#sharedNoted) {
      this.#sharedNoted = true;
      this.note(
        `X: using the embedded emulator that process ${emulator.sharedWith} runs for this project (${emulator.url}); it stops when that process ends`,
      );
    }
    return module.withEmbeddedUrl(project, emulator.url);
  }

  #sharedNoted = false;

  /** Ends what the command started for itself: the embedded X emulator (its state written). */
  async close(): Promise<void> {
    const embedded = this.#embedded;
    this.#embedded = undefined;
    if (embedded) await (await embedded.catch(() => undefined))?.close();
  }

  /**
   * Forgets the loaded project (the scheduler's reload, every page of the web UI), and reads `.env`
   * again: the UI's Connect X writes new tokens into it.
   */
  async reloadProject(): Promise<Project> {
    this.#env = undefined;
    const previous = this.#project?.secrets ?? [];
    const project = await loadProject(this.projectDir, this.env, {
      onSecrets: (values) => this.scrubber.setSecrets([...values, ...previous, ...this.#extraSecrets]),
    });
    this.scrubber.setSecrets([...project.secrets, ...previous, ...this.#extraSecrets]);
    this.#project = await this.#withEmbeddedX(project);
    return this.#project;
  }

  #noProject(): ConfigError {
    const where =
      this.globals.project === undefined
        ? `in ${this.baseDir} or any directory above it`
        : `in ${this.baseDir} (--project)`;
    return new ConfigError([{ file: CONFIG_FILE, path: '', message: `file not found ${where}` }], {
      hint:
        'run tailor in a project directory (the one holding tailor.yml) or below it, or name one with ' +
        '--project DIR; `tailor init` creates a project',
    });
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

/**
 * Adds examples to a command's `--help`, after the options: one command line each, with a comment
 * saying what it does where the line alone does not.
 */
export function withExamples(command: Command, examples: readonly string[]): Command {
  return command.addHelpText('after', `\nExamples:\n${examples.map((line) => `  $ ${line}`).join('\n')}\n`);
}

/** Adds the options every command takes. */
export function withGlobalOptions(command: Command): Command {
  return command
    .option(
      '--project <dir>',
      'the project directory, holding tailor.yml and models/ (default: the current directory or the nearest one above it with a tailor.yml)',
    )
    .option('--json', 'print a machine-readable result on stdout', false)
    .option('--debug', 'log at debug level (secrets and identifiers are still never printed)', false);
}

export type CommandHandler<A extends unknown[] = unknown[]> = (
  ctx: CommandContext,
  ...args: A
) => Promise<number>;
