import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { availableParallelism, cpus, totalmem, release, platform } from 'node:os';
import type pg from 'pg';

/** What the numbers were measured on, printed at the top of RESULTS.md. */
export interface MachineInfo {
  cpuModel: string;
  /** CPUs this process may run on (`os.availableParallelism()`): what the machine's CPU time is divided by. */
  cores: number;
  ramBytes: number;
  os: string;
  node: string;
  postgres: string;
  /** The server settings that shape these numbers, as `name value`, each changed one marked. */
  postgresSettings: string;
  pglite: string;
  /** 1-minute load average when the run started (other work on a shared machine shows here). */
  loadAverageAtStart: number;
}

async function pgliteVersion(): Promise<string> {
  try {
    const url = new URL('../node_modules/@electric-sql/pglite/package.json', import.meta.url);
    const pkg = JSON.parse(await readFile(url, 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function loadAverage(): Promise<number> {
  try {
    return Number((await readFile('/proc/loadavg', 'utf8')).split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}

/**
 * The server settings a run's figures depend on most: memory for pages and sorts, how often WAL
 * forces a checkpoint (each one makes the next write of every page a full-page image), and what a
 * commit waits for. Tailor and the floor run on the same server, but not with the same work: its
 * commits write into indexes that outgrow 128 MB of shared buffers at a few million members.
 */
const REPORTED_SETTINGS = [
  'shared_buffers',
  'work_mem',
  'maintenance_work_mem',
  'max_wal_size',
  'checkpoint_timeout',
  'wal_compression',
  'synchronous_commit',
];

/** `name value` per setting, with `(changed)` where it differs from the server's built-in default. */
async function postgresSettings(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ name: string; value: string; changed: boolean }>(
    `select name, current_setting(name) as value, setting is distinct from boot_val as changed
       from pg_settings where name = any($1) order by name`,
    [REPORTED_SETTINGS],
  );
  const changed = rows.filter((row) => row.changed).length;
  const list = rows.map((row) => `${row.name} ${row.value}${row.changed ? ' (changed)' : ''}`).join(', ');
  return `${list}${changed === 0 ? '; all built-in defaults' : ''}`;
}

export async function describeMachine(client: pg.Client): Promise<MachineInfo> {
  const { rows } = await client.query<{ server_version: string }>('show server_version');
  const info = cpus();
  return {
    cpuModel: info[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    ramBytes: totalmem(),
    os: `${platform()} ${release()}`,
    node: process.version,
    postgres: rows[0]?.server_version ?? 'unknown',
    postgresSettings: await postgresSettings(client),
    pglite: await pgliteVersion(),
    loadAverageAtStart: await loadAverage(),
  };
}

/** `git describe --always --dirty` of the repository the benchmark runs from, or null outside one. */
export function gitDescribe(dir: string): string | null {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], {
      cwd: dir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return null;
  }
}
