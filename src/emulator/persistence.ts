/**
 * Optional persistence of the emulator's state in one JSON file, so the demo keeps its audiences between
 * runs. Writes are debounced and atomic (temp file + rename), so a crash never leaves half a file.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { SerializedState } from './store.js';

export async function loadState(path: string): Promise<SerializedState | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return JSON.parse(text) as SerializedState;
}

export class StatePersister {
  readonly #path: string;
  readonly #snapshot: () => SerializedState;
  readonly #logger: Logger;
  readonly #debounceMs: number;
  #timer: NodeJS.Timeout | undefined;
  #dirty = false;
  #writing: Promise<void> = Promise.resolve();
  #sequence = 0;

  constructor(path: string, snapshot: () => SerializedState, logger: Logger, debounceMs = 50) {
    this.#path = path;
    this.#snapshot = snapshot;
    this.#logger = logger;
    this.#debounceMs = debounceMs;
  }

  /** Notes a mutation; the file is written shortly after. */
  changed(): void {
    this.#dirty = true;
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.flush().catch((error: unknown) =>
        this.#logger.error({ err: error }, 'emulator: could not write the state file'),
      );
    }, this.#debounceMs);
    this.#timer.unref();
  }

  /** Writes now if anything changed since the last write; waits for any write in progress. */
  flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#writing = this.#writing
      .catch(() => undefined)
      .then(async () => {
        if (!this.#dirty) return;
        this.#dirty = false;
        const text = JSON.stringify(this.#snapshot());
        const temp = `${this.#path}.${process.pid}.${++this.#sequence}.tmp`;
        await mkdir(dirname(this.#path), { recursive: true });
        await writeFile(temp, text, 'utf8');
        await rename(temp, this.#path);
      });
    return this.#writing;
  }
}
