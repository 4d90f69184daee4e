/**
 * `api_url: embedded`: the local X Ads API emulator as a first-class default, as PGlite is for the
 * warehouse. A command that talks to X starts it in its own process for its duration (the scheduler
 * once, for its whole life), keeps its state in `.tailor/emulator.json`, and talks to it with the demo
 * account's credentials. The X client never knows: the CLI replaces `embedded` by the emulator's URL
 * before any destination is created (the emulator never shares code with the client it judges).
 *
 * One project, several processes: only one process may own `.tailor/emulator.json` (the emulator
 * rewrites the whole file after each change, so two owners would lose each other's audiences). The
 * owner holds `.tailor/emulator.lock` (its pid and URL); another command of the same project, say
 * `tailor status` while `tailor schedule` runs, talks to the owner's emulator over HTTP instead of
 * starting its own, and says so. A lock whose process is gone, or whose URL no longer answers, is
 * taken over.
 */
import { mkdir, open, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Project } from '../config/load-project.js';
import { EMBEDDED_API_URL } from '../destinations/x-ads/x-ads-config.js';
import { type RunningEmulator, DEMO_CREDENTIALS, startEmulator } from '../emulator/index.js';
import { processAlive } from '../sources/pglite/pglite-data-dir.js';
import type { Logger } from './logger.js';

export interface EmbeddedEmulator {
  /** Where the embedded emulator listens (this process's, or the owner's). */
  readonly url: string;
  /** The process that owns the emulator's state, when it is another one. */
  readonly sharedWith: number | undefined;
  close(): Promise<void>;
}

interface LockInfo {
  pid: number;
  url?: string;
}

/** Whether the project has a destination with `api_url: embedded`. */
export function usesEmbeddedEmulator(project: Project): boolean {
  return Object.values(project.config.destinations).some((d) => d.api_url === EMBEDDED_API_URL);
}

/** The project with `embedded` replaced by the emulator's URL, and the demo credentials it accepts. */
export function withEmbeddedUrl(project: Project, url: string): Project {
  const destinations = Object.fromEntries(
    Object.entries(project.config.destinations).map(([name, destination]) => [
      name,
      destination.api_url === EMBEDDED_API_URL
        ? {
            ...destination,
            api_url: url,
            credentials: {
              consumer_key: DEMO_CREDENTIALS.consumerKey,
              consumer_secret: DEMO_CREDENTIALS.consumerSecret,
              access_token: DEMO_CREDENTIALS.accessToken,
              access_token_secret: DEMO_CREDENTIALS.accessTokenSecret,
            },
          }
        : destination,
    ]),
  );
  return { ...project, config: { ...project.config, destinations } };
}

/** Whether anything answers HTTP at `url` (the emulator answers every path, 404 included). */
async function answers(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(2000) });
    return true;
  } catch {
    return false;
  }
}

async function readLock(path: string): Promise<LockInfo | undefined> {
  try {
    const info = JSON.parse(await readFile(path, 'utf8')) as Partial<LockInfo>;
    return typeof info.pid === 'number' ? (info as LockInfo) : undefined;
  } catch {
    return undefined; // gone, or being written
  }
}

/** Writes the lock's content through a temporary file, so a reader never sees half of it. */
async function writeLock(path: string, info: LockInfo): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, JSON.stringify(info));
  await rename(temp, path);
}

/**
 * Starts the project's embedded emulator, or joins the one another process of the project runs.
 * Close it when the command ends: an owner stops the emulator (its state written) and frees the lock.
 */
export async function startEmbeddedEmulator(projectDir: string, logger: Logger): Promise<EmbeddedEmulator> {
  const dir = join(projectDir, '.tailor');
  const statePath = join(dir, 'emulator.json');
  const lockPath = join(dir, 'emulator.lock');
  await mkdir(dir, { recursive: true });
  const deadline = Date.now() + 15_000;
  let unreadable = 0;
  for (;;) {
    try {
      const handle = await open(lockPath, 'wx');
      await handle.writeFile(JSON.stringify({ pid: process.pid } satisfies LockInfo));
      await handle.close();
      break; // this process owns the emulator's state
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const info = await readLock(lockPath);
    if (info && processAlive(info.pid)) {
      if (info.url !== undefined && (await answers(info.url))) {
        return { url: info.url, sharedWith: info.pid, close: async () => undefined };
      }
      if (info.url === undefined && Date.now() < deadline) {
        // Its owner is starting it: wait for the URL.
        await sleep(50);
        continue;
      }
    } else if (!info && unreadable++ < 20) {
      // Just created and not written yet, or just removed: look again.
      await sleep(50);
      continue;
    }
    // Stale: its process is gone, or it no longer answers. Take it over.
    logger.debug({ lock: lockPath, pid: info?.pid }, 'taking over a stale embedded emulator lock');
    await unlink(lockPath).catch(() => undefined);
  }
  let emulator: RunningEmulator;
  try {
    emulator = await startEmulator({ port: 0, host: '127.0.0.1', statePath, logger });
    await writeLock(lockPath, { pid: process.pid, url: emulator.url });
  } catch (error) {
    await unlink(lockPath).catch(() => undefined);
    throw error;
  }
  let closed = false;
  return {
    url: emulator.url,
    sharedWith: undefined,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await emulator.close();
      } finally {
        const info = await readLock(lockPath);
        if (info?.pid === process.pid) await unlink(lockPath).catch(() => undefined);
      }
    },
  };
}
