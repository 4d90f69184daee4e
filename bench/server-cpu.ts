import { execFileSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * CPU time of the PostgreSQL server over one measured run, read from `/proc`: the tailor process
 * is only one of three parties burning CPU on the machine (the server's backends and the benchmark
 * process, which hosts the emulator and the byte-counting proxy, are the other two).
 *
 * A reading sums utime + stime + cutime + cstime of every process whose comm is `postgres`. A
 * backend that exits during the run is reaped by the postmaster, so its whole time moves into the
 * postmaster's cutime/cstime; a backend that starts during the run is new in the second reading.
 * The difference of the two sums therefore counts what every server process did between them: a
 * process only in the second reading counts from 0, and one only in the first is subtracted from
 * its parent's cutime, which now holds it.
 */

/** The fields of `/proc/<pid>/stat` a reading needs (times in clock ticks). */
export interface ProcStat {
  pid: number;
  comm: string;
  ppid: number;
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
}

/**
 * Parses one `/proc/<pid>/stat` line. The comm (field 2) is in parentheses and may itself hold
 * spaces and parentheses, so the fields after it are split after the LAST `)`.
 */
export function parseProcStat(line: string): ProcStat {
  const open = line.indexOf('(');
  const close = line.lastIndexOf(')');
  if (open < 0 || close < open)
    throw new Error(`not a /proc stat line: ${JSON.stringify(line.slice(0, 80))}`);
  const pid = Number(line.slice(0, open).trim());
  const comm = line.slice(open + 1, close);
  // Field 3 (state) is rest[0]; fields 14-17 (utime, stime, cutime, cstime) are rest[11..14].
  const rest = line
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const field = (n: number) => Number(rest[n - 3]);
  const stat = {
    pid,
    comm,
    ppid: field(4),
    utime: field(14),
    stime: field(15),
    cutime: field(16),
    cstime: field(17),
  };
  for (const [name, value] of Object.entries(stat)) {
    if (typeof value === 'number' && !Number.isInteger(value))
      throw new Error(`not a /proc stat line (${name}): ${JSON.stringify(line.slice(0, 80))}`);
  }
  return stat;
}

/** Clock ticks of each process, by pid: utime + stime + cutime + cstime. */
export type CpuReading = ReadonlyMap<number, number>;

/** Reads the ticks of every process whose comm is `comm`. Processes that exit while it reads are skipped. */
export async function readCpuTicks(comm: string, procDir = '/proc'): Promise<CpuReading> {
  const pids = (await readdir(procDir)).filter((name) => /^\d+$/.test(name));
  const reading = new Map<number, number>();
  await Promise.all(
    pids.map(async (pid) => {
      let stat: ProcStat;
      try {
        stat = parseProcStat(await readFile(join(procDir, pid, 'stat'), 'utf8'));
      } catch {
        return; // exited between readdir and read
      }
      if (stat.comm === comm) reading.set(stat.pid, stat.utime + stat.stime + stat.cutime + stat.cstime);
    }),
  );
  return reading;
}

const sum = (reading: CpuReading) => [...reading.values()].reduce((total, ticks) => total + ticks, 0);

/**
 * Milliseconds of CPU between two readings: the difference of their sums (see the module comment
 * for processes that appear or disappear in between).
 */
export function cpuMsBetween(before: CpuReading, after: CpuReading, ticksPerSecond: number): number {
  return ((sum(after) - sum(before)) * 1000) / ticksPerSecond;
}

/** `getconf CLK_TCK` (the unit of the /proc times), or 100, its value on every common Linux. */
export function clockTicksPerSecond(): number {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', stdio: 'pipe' }).trim());
    return Number.isInteger(value) && value > 0 ? value : 100;
  } catch {
    return 100;
  }
}

/** Hosts whose server runs on this machine (its processes are in this machine's /proc). */
export function isLocalHost(hostname: string): boolean {
  return ['127.0.0.1', 'localhost', '::1', '[::1]'].includes(hostname.toLowerCase());
}

export interface ServerCpuMeter {
  /** A reading to pass to msSince, or null when /proc could not be read. */
  read(): Promise<CpuReading | null>;
  /** CPU ms of the server since `before`; null when either reading failed or the server restarted. */
  msSince(before: CpuReading | null): Promise<number | null>;
}

/**
 * A meter for the server at `pgUrl`, or null with the reason (for the report's notes) when it
 * cannot be measured from here: not on this machine, no /proc, or no `postgres` process in it.
 */
export async function serverCpuMeter(
  pgUrl: string,
  procDir = '/proc',
): Promise<{ meter: ServerCpuMeter; note: null } | { meter: null; note: string }> {
  const host = new URL(pgUrl).hostname;
  const prefix = 'CPU (server) is not measured';
  if (!isLocalHost(host))
    return { meter: null, note: `${prefix}: the PostgreSQL server (${host}) is not on this machine.` };
  let first: CpuReading;
  try {
    first = await readCpuTicks('postgres', procDir);
  } catch {
    return { meter: null, note: `${prefix}: ${procDir} cannot be read (not Linux?).` };
  }
  if (first.size === 0) {
    return {
      meter: null,
      note: `${prefix}: no \`postgres\` process in ${procDir} (the server runs in another container or VM?).`,
    };
  }
  return { note: null, meter: cpuMeter(() => readCpuTicks('postgres', procDir)) };
}

/**
 * A meter over readings of CPU ticks by pid: a failed reading is null, and so is a total that went
 * down (a process left without a parent to reap it: a restart).
 */
function cpuMeter(readTicks: () => Promise<CpuReading>): ServerCpuMeter {
  const ticks = clockTicksPerSecond();
  const read = async () => {
    try {
      return await readTicks();
    } catch {
      return null;
    }
  };
  return {
    read,
    async msSince(before) {
      const after = await read();
      if (!before || !after) return null;
      const ms = cpuMsBetween(before, after, ticks);
      return ms >= 0 ? ms : null;
    },
  };
}

/**
 * A meter for one process and the children it reaped (`/proc/<pid>/stat`: utime, stime, cutime,
 * cstime), threads included: the BigQuery case's bqemulator (its REST layer and DuckDB run in the
 * launcher's process).
 */
export function processCpuMeter(pid: number, procDir = '/proc'): ServerCpuMeter {
  return cpuMeter(async () => {
    const stat = parseProcStat(await readFile(join(procDir, String(pid), 'stat'), 'utf8'));
    return new Map([[pid, stat.utime + stat.stime + stat.cutime + stat.cstime]]);
  });
}
