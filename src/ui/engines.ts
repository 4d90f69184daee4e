import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Project } from '../config/load-project.js';
import { errorMessage } from '../errors.js';
import type { SyncEngine } from '../sync/types.js';

interface Generation {
  stamp: string;
  engine: Promise<SyncEngine>;
  users: number;
  retired: boolean;
  idle?: NodeJS.Timeout | undefined;
}

/**
 * How long an unused engine stays open. An embedded PGlite warehouse takes one process at a time, so
 * an engine the UI kept open for its whole life would lock `tailor sync` or `npm start` out of it
 * while a browser tab merely sits there; closed when idle, it lets them in between page loads.
 */
const IDLE_CLOSE_MS = 5_000;

/**
 * The UI's sync engine, opened from the project as it is on disk. When tailor.yml or models/ change
 * (the UI wrote them, or someone edited them), the next request opens a new engine from the new
 * project; the old one closes once the runs using it end, as the scheduler's reload does.
 */
export class EngineHolder {
  readonly #dir: string;
  readonly #load: () => Promise<Project>;
  readonly #open: (project: Project) => Promise<SyncEngine>;
  readonly #logger: Logger;
  #current: Generation | undefined;
  #opening: Promise<Generation> | undefined;
  /** An idle engine being closed: a new one opens only after it (PGlite: one instance per directory). */
  #idleClosing: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(options: {
    dir: string;
    load: () => Promise<Project>;
    open: (project: Project) => Promise<SyncEngine>;
    logger: Logger;
  }) {
    this.#dir = options.dir;
    this.#load = options.load;
    this.#open = options.open;
    this.#logger = options.logger;
  }

  /** When tailor.yml and the models last changed: a new stamp means a new project. */
  async #stamp(): Promise<string> {
    const parts = [String((await stat(join(this.#dir, 'tailor.yml'))).mtimeMs)];
    const models = join(this.#dir, 'models');
    const names = await readdir(models).catch(() => [] as string[]);
    for (const name of names.sort()) {
      const info = await stat(join(models, name)).catch(() => undefined);
      parts.push(`${name}:${info?.mtimeMs ?? 0}`);
    }
    return parts.join('|');
  }

  async #generation(): Promise<Generation> {
    if (this.#closed) throw new Error('the UI is stopping');
    const stamp = await this.#stamp();
    if (this.#current && this.#current.stamp === stamp) {
      clearTimeout(this.#current.idle);
      return this.#current;
    }
    this.#opening ??= (async () => {
      try {
        const project = await this.#load();
        await this.#idleClosing;
        const engine = this.#open(project);
        await engine;
        const previous = this.#current;
        this.#current = { stamp, engine, users: 0, retired: false };
        if (previous) this.#retire(previous);
        return this.#current;
      } finally {
        this.#opening = undefined;
      }
    })();
    return this.#opening;
  }

  #retire(generation: Generation): void {
    clearTimeout(generation.idle);
    generation.retired = true;
    if (generation.users === 0) void this.#close(generation);
  }

  async #close(generation: Generation): Promise<void> {
    try {
      await (await generation.engine).close();
    } catch (error) {
      this.#logger.warn({ err: { message: errorMessage(error) } }, 'closing a sync engine failed');
    }
  }

  /** The project changed on disk (the UI wrote it): the next use opens a new engine. */
  invalidate(): void {
    if (this.#current) this.#current.stamp = 'stale';
  }

  /** Runs `fn` with the engine of the project as it is now on disk. */
  async use<T>(fn: (engine: SyncEngine) => Promise<T>): Promise<T> {
    const generation = await this.#generation();
    clearTimeout(generation.idle);
    generation.users += 1;
    try {
      return await fn(await generation.engine);
    } finally {
      generation.users -= 1;
      if (generation.users === 0) {
        if (generation.retired) void this.#close(generation);
        else {
          generation.idle = setTimeout(() => {
            if (generation.users > 0 || this.#current !== generation) return;
            this.#current = undefined;
            this.#idleClosing = this.#close(generation);
          }, IDLE_CLOSE_MS);
          generation.idle.unref();
        }
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const current = this.#current;
    this.#current = undefined;
    clearTimeout(current?.idle);
    if (current) await this.#close(current);
    await this.#idleClosing;
  }
}
