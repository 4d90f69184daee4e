import { open, readFile, rm } from 'node:fs/promises';
import type { PGlite } from '@electric-sql/pglite';
import { WarehouseError } from '../../errors.js';

/** A share of one open PGlite data directory; the instance closes when the last share is released. */
export interface DataDirLease {
  readonly db: PGlite;
  release(): Promise<void>;
}

interface Entry {
  db: Promise<PGlite>;
  refs: number;
}

/**
 * Open data directories of this process. PGlite is one Postgres backend with no shared memory, so two
 * instances on one directory would corrupt it: within a process the instance is shared (refcounted),
 * and across processes a lock file beside the directory (`<dir>.lock`, holding the pid) refuses a
 * second opener with a clear message. A lock file whose process is gone is taken over.
 */
const entries = new Map<string, Entry>();

export async function acquireDataDir(dataDir: string, create: () => Promise<PGlite>): Promise<DataDirLease> {
  let entry = entries.get(dataDir);
  if (!entry) {
    const db = (async () => {
      await takeLockFile(dataDir);
      try {
        return await create();
      } catch (error) {
        await rm(lockFile(dataDir), { force: true });
        throw error;
      }
    })();
    entry = { db, refs: 0 };
    entries.set(dataDir, entry);
    db.catch(() => entries.delete(dataDir));
  }
  entry.refs += 1;
  const current = entry;
  let db: PGlite;
  try {
    db = await current.db;
  } catch (error) {
    current.refs -= 1;
    throw error;
  }
  let released = false;
  return {
    db,
    release: async () => {
      if (released) return;
      released = true;
      current.refs -= 1;
      if (current.refs > 0) return;
      entries.delete(dataDir);
      try {
        await db.close();
      } finally {
        await rm(lockFile(dataDir), { force: true });
      }
    },
  };
}

function lockFile(dataDir: string): string {
  return `${dataDir}.lock`;
}

/** Whether a process with this pid runs (one we may not signal still runs). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function takeLockFile(dataDir: string): Promise<void> {
  const path = lockFile(dataDir);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(path, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new WarehouseError(`cannot create ${path}`, {
          cause: error,
          hint: 'check the directory permissions',
        });
      }
    }
    const pid = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
    if (Number.isInteger(pid) && pid !== process.pid && processAlive(pid)) {
      throw new WarehouseError(
        `the PGlite data directory ${dataDir} is open in another process (pid ${pid})`,
        {
          hint: 'PGlite serves one process at a time: stop the other tailor process, or use a Postgres server',
        },
      );
    }
    // Stale: its process is gone (or it is ours, left by an instance that was never released).
    await rm(path, { force: true });
  }
  throw new WarehouseError(`cannot take the lock file ${path}`, {
    hint: 'remove it if no tailor process runs',
  });
}
