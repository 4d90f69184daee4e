import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkTargets, machineCpuLine } from '../../bench/report.js';
import { type Measurement, summarize } from '../../bench/results.js';
import {
  cpuMsBetween,
  isLocalHost,
  parseProcStat,
  readCpuTicks,
  serverCpuMeter,
} from '../../bench/server-cpu.js';

/** The machine's CPU per benchmark run: the server's, read from /proc, and how the report adds it up. */

/** A /proc/<pid>/stat line with the given comm and times (fields 14-17), the rest as Linux writes them. */
function statLine(pid: number, comm: string, times: [number, number, number, number], ppid = 1): string {
  const [utime, stime, cutime, cstime] = times;
  return (
    `${pid} (${comm}) S ${ppid} ${pid} ${pid} 0 -1 4194304 24569 11477332 0 18 ` +
    `${utime} ${stime} ${cutime} ${cstime} 20 0 1 0 3012 222445568 7404 18446744073709551615 0 0 0 0\n`
  );
}

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** A fake /proc holding the given processes (pid -> stat line), plus entries a reading must skip. */
async function fakeProc(processes: Record<number, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tailor-fake-proc-'));
  dirs.push(dir);
  await writeProc(dir, processes);
  await mkdir(join(dir, 'self'));
  await writeFile(join(dir, 'self', 'stat'), statLine(1, 'postgres', [999, 0, 0, 0]));
  await writeFile(join(dir, 'loadavg'), '0.00 0.00 0.00 1/1 1\n');
  await mkdir(join(dir, '999999')); // exited between readdir and read: no stat file
  return dir;
}

async function writeProc(dir: string, processes: Record<number, string>): Promise<void> {
  for (const [pid, line] of Object.entries(processes)) {
    await mkdir(join(dir, pid), { recursive: true });
    await writeFile(join(dir, pid, 'stat'), line);
  }
}

describe('parseProcStat', () => {
  it('reads pid, comm, ppid and utime, stime, cutime, cstime (fields 14-17)', () => {
    const line =
      '2242 (postgres) S 1 2242 2242 0 -1 4194304 24569 11477332 0 18 10 53 59812 8550 20 0 1 0 3012 222445568 7404';
    expect(parseProcStat(line)).toEqual({
      pid: 2242,
      comm: 'postgres',
      ppid: 1,
      utime: 10,
      stime: 53,
      cutime: 59812,
      cstime: 8550,
    });
  });

  it('splits after the last ")": a comm may hold spaces and parentheses', () => {
    for (const comm of ['post gres', 'a) S 1 2 3 (b', '(x))', ') 9 9 9 9 9 9 9 9 9 9 9 9 9 9 (']) {
      const stat = parseProcStat(statLine(77, comm, [1, 2, 3, 4], 5));
      expect(stat).toEqual({ pid: 77, comm, ppid: 5, utime: 1, stime: 2, cutime: 3, cstime: 4 });
    }
  });

  it('reads this process own stat line, when there is a /proc', async () => {
    let line: string;
    try {
      line = await import('node:fs/promises').then((fs) => fs.readFile('/proc/self/stat', 'utf8'));
    } catch {
      return; // not Linux
    }
    const stat = parseProcStat(line);
    expect(stat.pid).toBeGreaterThan(0);
    expect(stat.utime + stat.stime).toBeGreaterThanOrEqual(0);
  });

  it('rejects what is not a stat line', () => {
    expect(() => parseProcStat('')).toThrow(/not a \/proc stat line/);
    expect(() => parseProcStat('12 postgres S 1')).toThrow(/not a \/proc stat line/);
    expect(() => parseProcStat('12 (postgres) S 1 2 3')).toThrow(/not a \/proc stat line/);
  });
});

describe('readCpuTicks', () => {
  it('sums the four times of every process with the comm, and skips the rest', async () => {
    const proc = await fakeProc({
      10: statLine(10, 'postgres', [100, 20, 3000, 400]),
      11: statLine(11, 'postgres', [5, 1, 0, 0], 10),
      12: statLine(12, 'node', [7777, 0, 0, 0]),
      13: statLine(13, 'postgres: x', [8888, 0, 0, 0]),
    });
    expect(await readCpuTicks('postgres', proc)).toEqual(
      new Map([
        [10, 3520],
        [11, 6],
      ]),
    );
  });
});

describe('cpuMsBetween', () => {
  it('counts what every server process did between the readings, however they came and went', () => {
    // Postmaster 10 (own time 10 -> 12). Backend 11 had 50 ticks, used 20 more and exited: reaped,
    // its 70 moved into the postmaster's cutime. Backend 12 started and exited within the run (40
    // ticks, reaped too). Backend 13 started during the run and is still there (15 ticks).
    const before = new Map([
      [10, 10],
      [11, 50],
    ]);
    const after = new Map([
      [10, 12 + 70 + 40],
      [13, 15],
    ]);
    expect(cpuMsBetween(before, after, 100)).toBe((2 + 20 + 40 + 15) * 10);
    expect(cpuMsBetween(before, after, 1000)).toBe(2 + 20 + 40 + 15);
    expect(cpuMsBetween(after, after, 100)).toBe(0);
  });
});

describe('serverCpuMeter', () => {
  it('measures only a server on this machine', () => {
    for (const host of ['127.0.0.1', 'localhost', 'LOCALHOST', '::1', '[::1]'])
      expect(isLocalHost(host)).toBe(true);
    for (const host of ['db.example.com', '10.0.0.5', '127.0.0.2', '']) expect(isLocalHost(host)).toBe(false);
    expect(new URL('postgres://postgres@[::1]:5432/db').hostname).toBe('[::1]');
  });

  it('says why when it cannot measure: a remote server, no /proc, no postgres process', async () => {
    const remote = await serverCpuMeter('postgres://u@db.example.com:5432/x');
    expect(remote.meter).toBeNull();
    expect(remote.note).toMatch(/not measured.*db\.example\.com.*not on this machine/);
    const noProc = await serverCpuMeter('postgres://u@127.0.0.1:5432/x', join(tmpdir(), 'no-such-proc-dir'));
    expect(noProc.meter).toBeNull();
    expect(noProc.note).toMatch(/cannot be read/);
    const noServer = await serverCpuMeter(
      'postgres://u@localhost/x',
      await fakeProc({ 5: statLine(5, 'node', [1, 1, 1, 1]) }),
    );
    expect(noServer.meter).toBeNull();
    expect(noServer.note).toMatch(/no `postgres` process/);
  });

  it('reads the server before and after, in milliseconds', async () => {
    const proc = await fakeProc({
      10: statLine(10, 'postgres', [10, 0, 0, 0]),
      11: statLine(11, 'postgres', [50, 0, 0, 0], 10),
    });
    const { meter } = await serverCpuMeter('postgres://u@127.0.0.1:5432/x', proc);
    expect(meter).not.toBeNull();
    const before = await meter!.read();
    await rm(join(proc, '11'), { recursive: true });
    await writeProc(proc, {
      10: statLine(10, 'postgres', [11, 1, 70, 0]),
      13: statLine(13, 'postgres', [10, 5, 0, 0], 10),
    });
    // Clock ticks are 100 a second on Linux (getconf CLK_TCK): (2 + 20 + 15) ticks.
    expect(await meter!.msSince(before)).toBe(370);
    expect(await meter!.msSince(null)).toBeNull();
    // A server that restarted (the total went down) gives no figure rather than a negative one.
    await writeProc(proc, { 10: statLine(10, 'postgres', [1, 0, 0, 0]) });
    expect(await meter!.msSince(before)).toBeNull();
  });
});

describe('machine CPU in the report', () => {
  const tailor = (partial: Partial<Measurement>): Measurement => ({
    warehouse: 'postgres',
    size: 1_000_000,
    kind: 'incremental',
    system: 'tailor',
    run: 1,
    wallMs: 14_000,
    engineMs: 13_000,
    rowsRead: 30_000,
    wireBytes: null,
    valueBytes: null,
    added: 10_000,
    removed: 10_000,
    changed: 10_000,
    userObjects: null,
    requests: null,
    maxUsersPerRequest: null,
    peakRssBytes: null,
    cpuMs: 5000,
    serverCpuMs: 8000,
    benchCpuMs: 1000,
    ...partial,
  });
  const floor = (partial: Partial<Measurement>): Measurement =>
    tailor({ system: 'floor', cpuMs: null, benchCpuMs: null, wallMs: 7000, ...partial });

  it('adds the medians of tailor, server and emulator and divides by the cores', () => {
    const [summary] = summarize([
      tailor({ run: 1 }),
      tailor({ run: 2, cpuMs: 6000, serverCpuMs: 9000, benchCpuMs: 3000 }),
      tailor({ run: 3, cpuMs: 7000, serverCpuMs: 10_000, benchCpuMs: 2000 }),
    ]);
    expect(summary).toMatchObject({ cpuMs: 6000, serverCpuMs: 9000, benchCpuMs: 2000 });
    expect(machineCpuLine(summary!, 2)).toBe(
      'machine CPU: tailor 6.00 s + server 9.00 s + emulator 2.00 s = 17.0 s; on 2 cores at least 8.50 s of wall time',
    );
    // No server figure (remote server): no line rather than a total that leaves it out.
    expect(machineCpuLine(summarize([tailor({ serverCpuMs: null })])[0]!, 2)).toBe('');
    // Measurements from before these fields existed.
    const old = tailor({});
    delete old.serverCpuMs;
    delete old.benchCpuMs;
    expect(summarize([old])[0]).toMatchObject({ serverCpuMs: null, benchCpuMs: null });
    // PGlite: the database is inside the tailor process.
    expect(machineCpuLine(summarize([tailor({ warehouse: 'pglite', serverCpuMs: null })])[0]!, 2)).toBe(
      'machine CPU: tailor 5.00 s (PGlite inside it) + emulator 1.00 s = 6.00 s; on 2 cores at least 3.00 s of wall time',
    );
  });

  it('adds "machine-bound" to P1 and P3 when they are not met, and only then', () => {
    const run = (incrementalFloorMs: number, initialFloorMs: number) =>
      checkTargets(
        summarize([
          tailor({}),
          floor({ wallMs: incrementalFloorMs }),
          tailor({ kind: 'initial', wallMs: 60_000, cpuMs: 40_000, serverCpuMs: 30_000, benchCpuMs: 10_000 }),
          floor({ kind: 'initial', wallMs: initialFloorMs }),
        ]),
        [1_000_000],
        2,
      );
    const notMet = run(7000, 10_000);
    expect(notMet[0]!.status).toBe('not met');
    expect(notMet[0]!.evidence).toMatch(
      /; machine-bound: \(tailor \+ server \+ emulator CPU\)\/cores = 7\.00 s$/,
    );
    const p3 = notMet.find((c) => c.target.startsWith('P3: first load'))!;
    expect(p3.status).toBe('not met');
    expect(p3.evidence).toMatch(/; machine-bound: \(tailor \+ server \+ emulator CPU\)\/cores = 40\.0 s$/);
    const met = run(10_000, 30_000);
    expect(met.map((c) => c.evidence).join('\n')).not.toContain('machine-bound');
    // Without the cores (or a CPU figure), nothing is added.
    const noCores = checkTargets(summarize([tailor({}), floor({})]), [1_000_000]);
    expect(noCores[0]!.evidence).not.toContain('machine-bound');
  });
});
