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
