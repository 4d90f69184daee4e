/**
 * `npm run bench`: Tailor against the floor (plain SQL) and the full-pull design, on PostgreSQL and
 * PGlite, with the X Ads emulator in process. Writes bench/RESULTS.md (or --out). Progress goes to
 * stderr. Nothing here is asserted: the report says which targets are met.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { BigQuery } from '@google-cloud/bigquery';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { checkBqemulatorVenv, fakeBigqueryAuth, startBqemulator } from '../test/helpers/bqemulator.js';
import { DEMO_ACCOUNT_ID, DEMO_CREDENTIALS, startEmulator } from '../src/emulator/index.js';
import type { RequestLogEntry, RunningEmulator } from '../src/emulator/types.js';
import { type BenchOptions, parseBenchArgs } from './args.js';
import { ByteProxy } from './byte-proxy.js';
import { metadataEnv, startFakeMetadata } from './fake-metadata.js';
import { resetFloorBigquery, runFloorBigquery } from './floor-bigquery.js';
import { type FloorResult, resetFloorPg, resetFloorPglite, runFloorPg, runFloorPglite } from './floor.js';
import type { FullPullConfig, FullPullResult } from './full-pull.js';
import { describeMachine, gitDescribe } from './machine.js';
import { runMeasured } from './measure-process.js';
import {
  applyEdits,
  createPeople,
  editCounts,
  PEOPLE_KEY,
  PEOPLE_MAPPINGS,
  PEOPLE_MODEL_SQL,
} from './people.js';
import {
  applyEditsBigquery,
  BQ_PEOPLE_DATASET,
  BQ_PEOPLE_MODEL_SQL,
  createPeopleBigquery,
} from './people-bigquery.js';
import { renderReport } from './report.js';
import type { BenchSystem, BenchWarehouseKind, CaseKind, Measurement } from './results.js';
import { processCpuMeter, type ServerCpuMeter, serverCpuMeter } from './server-cpu.js';
import { formatBytes, formatCount, formatDuration } from './stats.js';
import {
  BENCH_STATE_SCHEMA,
  type EmulatorTarget,
  REPO_ROOT,
  runTailorSync,
  StoppedRun,
  writeTailorProject,
} from './tailor-case.js';

const FULL_PULL_SCHEMA = 'bench_full_pull';
const FULL_PULL_AUDIENCE = 'Tailor benchmark: full pull';
/** Membership is checked member by member up to this size (the emulator's view sorts every record). */
const VERIFY_MEMBERSHIP_UP_TO = 200_000;

function progress(text: string): void {
  const time = new Date().toISOString().slice(11, 19);
  process.stderr.write(`[bench ${time}] ${text}\n`);
}

function usersRequests(log: readonly RequestLogEntry[]) {
  const users = log.filter(
    (entry) => entry.method === 'POST' && /\/custom_audiences\/[^/]+\/users$/.test(entry.path),
  );
  return {
    requests: users.length,
    userObjects: users.reduce((sum, entry) => sum + (entry.users ?? 0), 0),
    maxUsersPerRequest: users.reduce((max, entry) => Math.max(max, entry.users ?? 0), 0),
    failed: users.filter((entry) => entry.status >= 300).length,
  };
}

interface Context {
  options: BenchOptions;
  proxy: ByteProxy;
  /** Direct connection (setup, edits). */
  setup: pg.Client;
  /** Through the proxy (the floor, so its bytes are counted like the others'). */
  floor: pg.Client;
  dbUrl: string;
  /** CPU of the PostgreSQL server's processes; null when it cannot be read from here (a note says why). */
  serverCpu: ServerCpuMeter | null;
  /** CPU of the bqemulator process, while the BigQuery case runs. */
  bigqueryCpu: ServerCpuMeter | null;
  measurements: Measurement[];
  notes: string[];
  tempDirs: string[];
  /** Aborted by SIGINT/SIGTERM: the case under way stops and the report is written with what was measured. */
  stop: AbortSignal;
  /** performance.now() after which no new repetition or case starts (--max-minutes). */
  deadline: number;
  stoppedForTime: boolean;
}

/** Thrown to leave a size's rounds when --max-minutes has passed (the note is already written). */
class OutOfTime extends Error {}

/** False (and a note, once) when --max-minutes has passed: the caller skips what it was about to start. */
function haveTime(ctx: Context, what: string): boolean {
  if (ctx.stop.aborted) throw new Error('stopped by a signal');
  if (performance.now() <= ctx.deadline) return true;
  if (!ctx.stoppedForTime) {
    ctx.stoppedForTime = true;
    const note = `--max-minutes ${ctx.options.maxMinutes} reached: ${what} and everything after it were not run.`;
    ctx.notes.push(note);
    progress(note);
  }
  return false;
}

function emulatorTarget(emulator: RunningEmulator): EmulatorTarget {
  return { url: emulator.url, accountId: DEMO_ACCOUNT_ID, credentials: { ...DEMO_CREDENTIALS } };
}

interface CaseInfo {
  warehouse: BenchWarehouseKind;
  size: number;
  kind: CaseKind;
  run: number;
  /** Members the segment holds after the edits of this case (for the membership check). */
  segmentRows: number;
  expected: { added: number; removed: number; changed: number };
}

function checkCounts(
  ctx: Context,
  info: CaseInfo,
  system: BenchSystem,
  got: { added: number; removed: number; changed: number },
) {
  const { expected } = info;
  if (got.added !== expected.added || got.removed !== expected.removed || got.changed !== expected.changed) {
    const note =
      `${system} ${info.warehouse} ${formatCount(info.size)} ${info.kind} run ${info.run}: counted ` +
      `+${got.added} -${got.removed} ~${got.changed}, expected +${expected.added} -${expected.removed} ~${expected.changed}`;
    ctx.notes.push(note);
    progress(`WARNING ${note}`);
  }
}

function verifyMembership(
  ctx: Context,
  emulator: RunningEmulator,
  audienceId: string | null,
  info: CaseInfo,
  system: BenchSystem,
) {
  if (info.segmentRows > VERIFY_MEMBERSHIP_UP_TO || !audienceId) return;
  const records = emulator.admin.membership(DEMO_ACCOUNT_ID, audienceId).records.length;
  if (records !== info.segmentRows) {
    const note = `${system} ${info.warehouse} ${formatCount(info.size)} ${info.kind} run ${info.run}: the audience holds ${records} members, the segment ${info.segmentRows}`;
    ctx.notes.push(note);
    progress(`WARNING ${note}`);
  }
}

interface CpuUsed {
  /** The PostgreSQL server's processes; null on PGlite, or when the server cannot be measured. */
  serverCpuMs: number | null;
  /** The benchmark process (emulator and proxy worker). */
  benchCpuMs: number;
}

/**
 * Starts counting the CPU of the server and of the benchmark process; the function returned stops.
 * The benchmark's clock starts after the server reading and stops before the second one, so reading
 * /proc is not counted as the emulator's or the proxy's.
 */
async function startCpuMeters(ctx: Context, warehouse: BenchWarehouseKind): Promise<() => Promise<CpuUsed>> {
  const server = warehouse === 'postgres' ? ctx.serverCpu : warehouse === 'bigquery' ? ctx.bigqueryCpu : null;
  const serverBefore = server ? await server.read() : null;
  const benchBefore = process.cpuUsage();
  return async () => {
    const bench = process.cpuUsage(benchBefore);
    return {
      benchCpuMs: (bench.user + bench.system) / 1000,
      serverCpuMs: server ? await server.msSince(serverBefore) : null,
    };
  };
}

/**
 * Before each measured run: vacuum and analyze the whole database (the segment and every system's
 * own state), then checkpoint. Without the vacuum, a run after a load paid for the load's leftovers:
 * setting hint bits on 3M fresh `member_hashes` rows, and autovacuum starting mid-run (a 1M
 * incremental took 16-21 s instead of ~8 s). A system that has run for a while sees vacuumed tables.
 */
async function settle(ctx: Context, warehouse: BenchWarehouseKind): Promise<void> {
  if (warehouse !== 'postgres') return;
  await ctx.setup.query('vacuum analyze');
  await ctx.setup.query('checkpoint');
}

async function measureTailor(
  ctx: Context,
  emulator: RunningEmulator,
  projectDir: string,
  info: CaseInfo,
  env: Record<string, string> = {},
): Promise<Measurement> {
  await settle(ctx, info.warehouse);
  emulator.admin.clearRequestLog();
  const before = ctx.proxy.read();
  const stopCpu = await startCpuMeters(ctx, info.warehouse);
  let run: Awaited<ReturnType<typeof runTailorSync>>;
  try {
    run = await runTailorSync(projectDir, ctx.options.cpuProfDir, ctx.stop, env);
  } catch (error) {
    const cpu = await stopCpu();
    if (error instanceof StoppedRun) {
      // Keep what the stopped run did: members X acknowledged so far, its memory so far.
      const sent = usersRequests(emulator.admin.requestLog());
      const proc = error.process;
      const m: Measurement = {
        warehouse: info.warehouse,
        size: info.size,
        kind: info.kind,
        system: 'tailor',
        run: info.run,
        wallMs: proc.wallMs,
        engineMs: Number.NaN,
        rowsRead: Number.NaN,
        wireBytes: info.warehouse === 'postgres' ? ctx.proxy.since(before).fromWarehouse : null,
        valueBytes: null,
        added: info.kind === 'initial' ? sent.userObjects : 0,
        removed: 0,
        changed: 0,
        userObjects: sent.userObjects,
        requests: sent.requests,
        maxUsersPerRequest: sent.maxUsersPerRequest,
        peakRssBytes: Number.isFinite(proc.peakRssBytes) ? proc.peakRssBytes : null,
        cpuMs: Number.isFinite(proc.cpuMs) ? proc.cpuMs : null,
        ...cpu,
        partial: true,
      };
      ctx.measurements.push(m);
      progress(`stopped: ${describe(m)}`);
    }
    throw error;
  }
  const cpu = await stopCpu();
  const { process: proc, report, diffSteps } = run;
  const wire = info.warehouse === 'postgres' ? ctx.proxy.since(before).fromWarehouse : null;
  const sent = usersRequests(emulator.admin.requestLog());
  const counts = report;
  checkCounts(ctx, info, 'tailor', counts);
  verifyMembership(ctx, emulator, report.audienceId, info, 'tailor');
  if (report.warnings.length > 0)
    ctx.notes.push(`tailor ${info.kind} run ${info.run} warnings: ${report.warnings.join('; ')}`);
  return {
    warehouse: info.warehouse,
    size: info.size,
    kind: info.kind,
    system: 'tailor',
    run: info.run,
    wallMs: proc.wallMs,
    engineMs: report.durationMs,
    rowsRead: counts.added + counts.removed + counts.changed + counts.refreshed,
    wireBytes: wire,
    valueBytes: null,
    added: counts.added,
    removed: counts.removed,
    changed: counts.changed,
    userObjects: sent.userObjects,
    requests: sent.requests,
    maxUsersPerRequest: sent.maxUsersPerRequest,
    peakRssBytes: Number.isFinite(proc.peakRssBytes) ? proc.peakRssBytes : null,
    cpuMs: Number.isFinite(proc.cpuMs) ? proc.cpuMs : null,
    ...cpu,
    detail: {
      diffSteps,
      diffMs: Object.values(diffSteps).reduce((sum, ms) => sum + ms, 0),
      batchSteps: run.batchSteps,
      commitSteps: run.commitSteps,
      reportedRequests: counts.requests,
      invalid: counts.invalid,
      rejected: counts.rejected,
      failedRequests: sent.failed,
    },
  };
}

/**
 * A floor run as a measurement (any warehouse): its time, its delta, and a note when the delta is not
 * the one the edits make.
 */
function floorMeasurement(
  ctx: Context,
  info: CaseInfo,
  result: FloorResult,
  cpu: { wireBytes: number | null; serverCpuMs: number | null },
): Measurement {
  const expected = info.expected;
  if (result.deltaRows !== expected.added + expected.removed + expected.changed) {
    ctx.notes.push(
      `floor ${info.warehouse} ${formatCount(info.size)} ${info.kind} run ${info.run}: delta ${result.deltaRows} rows`,
    );
  }
  return {
    warehouse: info.warehouse,
    size: info.size,
    kind: info.kind,
    system: 'floor',
    run: info.run,
    wallMs: result.ms,
    engineMs: result.ms,
    rowsRead: result.deltaRows,
    wireBytes: cpu.wireBytes,
    valueBytes: result.deltaValueBytes,
    ...expected,
    userObjects: null,
    requests: null,
    maxUsersPerRequest: null,
    peakRssBytes: null,
    cpuMs: null,
    serverCpuMs: cpu.serverCpuMs,
    // The floor's client runs in the benchmark process, but it is not a party to the other systems' runs.
    benchCpuMs: null,
    detail: { diffAndStreamMs: result.diffMs, mergeMs: result.mergeMs },
  };
}

async function measureFloorPg(ctx: Context, info: CaseInfo): Promise<Measurement> {
  await settle(ctx, 'postgres');
  const before = ctx.proxy.read();
  const stopCpu = await startCpuMeters(ctx, 'postgres');
  const result = await runFloorPg(ctx.floor);
  const { serverCpuMs } = await stopCpu();
  return floorMeasurement(ctx, info, result, {
    wireBytes: ctx.proxy.since(before).fromWarehouse,
    serverCpuMs,
  });
}

async function measureFullPull(
  ctx: Context,
  emulator: RunningEmulator,
  info: CaseInfo,
): Promise<Measurement> {
  await settle(ctx, 'postgres');
  emulator.admin.clearRequestLog();
  const config: FullPullConfig = {
    pgUrl: ctx.proxy.wrap(ctx.dbUrl),
    modelSql: PEOPLE_MODEL_SQL,
    primaryKey: PEOPLE_KEY,
    mappings: { ...PEOPLE_MAPPINGS },
    phoneDefaultRegion: 'US',
    schema: FULL_PULL_SCHEMA,
    apiUrl: emulator.url,
    accountId: DEMO_ACCOUNT_ID,
    credentials: { ...DEMO_CREDENTIALS },
    audienceName: FULL_PULL_AUDIENCE,
  };
  const before = ctx.proxy.read();
  const stopCpu = await startCpuMeters(ctx, 'postgres');
  const proc = await runMeasured(
    process.execPath,
    ['--import', 'tsx', join(REPO_ROOT, 'bench', 'full-pull.ts'), JSON.stringify(config)],
    { cwd: REPO_ROOT, signal: ctx.stop },
  );
  const cpu = await stopCpu();
  const wire = ctx.proxy.since(before).fromWarehouse;
  if (proc.code !== 0)
    throw new Error(
      `full pull failed (exit ${proc.code ?? proc.signal}):\n${proc.stderr.trim().split('\n').slice(-15).join('\n')}`,
    );
  const result = JSON.parse(proc.stdout.trim().split('\n').pop()!) as FullPullResult;
  const sent = usersRequests(emulator.admin.requestLog());
  checkCounts(ctx, info, 'full_pull', result);
  const audience = emulator.admin
    .audiences(DEMO_ACCOUNT_ID)
    .find((a) => a.name === FULL_PULL_AUDIENCE && !a.deleted);
  verifyMembership(ctx, emulator, audience?.id ?? null, info, 'full_pull');
  return {
    warehouse: 'postgres',
    size: info.size,
    kind: info.kind,
    system: 'full_pull',
    run: info.run,
    wallMs: proc.wallMs,
    engineMs: result.ms,
    rowsRead: result.rowsRead,
    wireBytes: wire,
    valueBytes: result.bytesRead,
    added: result.added,
    removed: result.removed,
    changed: result.changed,
    userObjects: sent.userObjects,
    requests: sent.requests,
    maxUsersPerRequest: sent.maxUsersPerRequest,
    peakRssBytes: Number.isFinite(proc.peakRssBytes) ? proc.peakRssBytes : null,
    cpuMs: Number.isFinite(proc.cpuMs) ? proc.cpuMs : null,
    ...cpu,
    detail: { phases: result.phases },
  };
}

function describe(m: Measurement): string {
  const parts = [`${m.system} ${formatDuration(m.wallMs)}`];
  if (m.system === 'tailor') parts.push(`(run ${formatDuration(m.engineMs)})`);
  parts.push(`+${formatCount(m.added)} -${formatCount(m.removed)} ~${formatCount(m.changed)}`);
  if (m.requests !== null) parts.push(`${formatCount(m.requests)} requests`);
  if (m.wireBytes !== null) parts.push(`${formatBytes(m.wireBytes)} read`);
  if (m.peakRssBytes !== null) parts.push(`RSS ${formatBytes(m.peakRssBytes)}`);
  if (m.cpuMs !== null) parts.push(`CPU ${formatDuration(m.cpuMs)}`);
  if (m.serverCpuMs != null) parts.push(`server CPU ${formatDuration(m.serverCpuMs)}`);
  if (m.benchCpuMs != null) parts.push(`emulator + proxy CPU ${formatDuration(m.benchCpuMs)}`);
  return parts.join(' ');
}

/** Resets the three systems' state, so the next run is an initial sync for each. */
async function resetState(ctx: Context): Promise<void> {
  await ctx.setup.query(`drop schema if exists ${BENCH_STATE_SCHEMA} cascade`);
  await ctx.setup.query(`drop schema if exists ${FULL_PULL_SCHEMA} cascade`);
  await resetFloorPg(ctx.setup);
}

async function benchPostgresSize(ctx: Context, size: number): Promise<void> {
  const { options } = ctx;
  if (!haveTime(ctx, `the ${formatCount(size)}-row case`)) return;
  progress(`${formatCount(size)} rows: generating the people table`);
  let started = performance.now();
  await createPeople((sql) => ctx.setup.query(sql), size);
  progress(`${formatCount(size)} rows: generated in ${formatDuration(performance.now() - started)}`);
  // --quick loads once (its 2 minutes go to the incremental case); 1M and more: --large-initial-runs.
  const initialRuns = size >= 1_000_000 || options.quick ? options.largeInitialRuns : options.runs;
  if (initialRuns < options.runs) {
    ctx.notes.push(
      `${formatCount(size)} rows: the initial load ran ${initialRuns} time(s) (${options.quick ? '--quick' : '--large-initial-runs'}), the incremental case ${options.runs} times.`,
    );
  }
  const fullPull = !options.skipFullPull && size <= options.fullPullMaxRows;
  if (!options.skipFullPull && !fullPull) {
    ctx.notes.push(
      `${formatCount(size)} rows: the full pull was not run at this size (--full-pull-max-rows), for time.`,
    );
  }
  const projectDir = await mkdtemp(join(tmpdir(), 'tailor-bench-project-'));
  ctx.tempDirs.push(projectDir);
  let incrementalRun = 0;
  try {
    await benchRounds();
  } catch (error) {
    if (!(error instanceof OutOfTime)) throw error;
    return;
  }
  // Free the space before the next size. After the last one the whole database is dropped, or kept
  // as it is with --keep (segment and state, for inspection).
  if (size !== options.sizes.at(-1)) {
    await ctx.setup.query('drop table if exists people');
    await resetState(ctx);
  }

  async function benchRounds(): Promise<void> {
    for (let round = 0; round < initialRuns; round++) {
      if (round > 0 && !haveTime(ctx, `initial run ${round + 1} at ${formatCount(size)} rows`)) break;
      const emulator = await startEmulator({ rateLimits: false });
      try {
        await resetState(ctx);
        await writeTailorProject(
          projectDir,
          { type: 'postgres', url: ctx.proxy.wrap(ctx.dbUrl) },
          emulatorTarget(emulator),
        );
        // Rotate the order so no system always goes first (cold caches) or last.
        const order: BenchSystem[] = (['tailor', 'floor', 'full_pull'] as const).filter(
          (s) => s !== 'full_pull' || fullPull,
        );
        for (let i = 0; i < round % order.length; i++) order.push(order.shift()!);
        const measure = async (system: BenchSystem, info: CaseInfo) => {
          const what = `${system} ${info.kind} run ${info.run} at ${formatCount(size)} rows`;
          if (!haveTime(ctx, what)) throw new OutOfTime();
          const m =
            system === 'tailor'
              ? await measureTailor(ctx, emulator, projectDir, info)
              : system === 'floor'
                ? await measureFloorPg(ctx, info)
                : await measureFullPull(ctx, emulator, info);
          ctx.measurements.push(m);
          progress(`${formatCount(size)} rows · ${info.kind} ${info.run} · ${describe(m)}`);
        };
        const initial: CaseInfo = {
          warehouse: 'postgres',
          size,
          kind: 'initial',
          run: round + 1,
          segmentRows: size,
          expected: { added: size, removed: 0, changed: 0 },
        };
        for (const system of order) await measure(system, initial);

        // Incremental runs: one per round, and the rest after the last initial load, alternating the
        // edits forward and back (each direction is the same 1% / 1% / 1% change).
        const incrementals = round < initialRuns - 1 ? 1 : options.runs - incrementalRun;
        let forward = true;
        for (let j = 0; j < incrementals; j++) {
          if (j > 0 && !haveTime(ctx, `incremental run ${incrementalRun + 1} at ${formatCount(size)} rows`))
            break;
          started = performance.now();
          await applyEdits((sql) => ctx.setup.query(sql), size, forward ? 'forward' : 'back');
          await ctx.setup.query('vacuum analyze people');
          progress(
            `${formatCount(size)} rows: edits ${forward ? 'applied' : 'undone'} in ${formatDuration(performance.now() - started)}`,
          );
          incrementalRun++;
          const info: CaseInfo = {
            warehouse: 'postgres',
            size,
            kind: 'incremental',
            run: incrementalRun,
            segmentRows: size,
            expected: expectedEdits(size, forward),
          };
          for (const system of order) await measure(system, info);
          order.push(order.shift()!);
          forward = !forward;
        }
        if (!forward) {
          await applyEdits((sql) => ctx.setup.query(sql), size, 'back');
          await ctx.setup.query('vacuum analyze people');
        }
      } finally {
        await emulator.close();
      }
    }
  }
}

/** The edits' expected delta: forward as editCounts says, back its mirror image. */
function expectedEdits(size: number, forward: boolean): CaseInfo['expected'] {
  const edits = editCounts(size);
  return forward ? edits : { added: edits.removed, removed: edits.added, changed: edits.changed };
}

/**
 * The cases of a warehouse measured against Tailor and the floor only (PGlite, BigQuery): the initial
 * load, then `--runs` incremental runs alternating the edits forward and back, Tailor first in each.
 */
async function runTailorAndFloor(
  ctx: Context,
  c: {
    warehouse: BenchWarehouseKind;
    label: string;
    size: number;
    tailor: (info: CaseInfo) => Promise<Measurement>;
    floor: (info: CaseInfo) => Promise<Measurement>;
    edit: (direction: 'forward' | 'back') => Promise<void>;
  },
): Promise<void> {
  const measure = async (info: CaseInfo) => {
    for (const run of [c.tailor, c.floor]) {
      const m = await run(info);
      ctx.measurements.push(m);
      progress(`${c.label} ${formatCount(c.size)} rows · ${info.kind} ${info.run} · ${describe(m)}`);
    }
  };
  const at = { warehouse: c.warehouse, size: c.size, segmentRows: c.size };
  await measure({ ...at, kind: 'initial', run: 1, expected: { added: c.size, removed: 0, changed: 0 } });
  let forward = true;
  for (let run = 1; run <= ctx.options.runs; run++) {
    if (run > 1 && !haveTime(ctx, `${c.label} incremental run ${run}`)) break;
    const started = performance.now();
    await c.edit(forward ? 'forward' : 'back');
    progress(
      `${c.label} ${formatCount(c.size)} rows: edits ${forward ? 'applied' : 'undone'} in ${formatDuration(performance.now() - started)}`,
    );
    await measure({ ...at, kind: 'incremental', run, expected: expectedEdits(c.size, forward) });
    forward = !forward;
  }
}

async function withPglite<T>(dataDir: string, fn: (db: PGlite) => Promise<T>): Promise<T> {
  const db = new PGlite(dataDir);
  await db.waitReady;
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

async function benchPglite(ctx: Context): Promise<void> {
  const { options } = ctx;
  const size = options.pgliteRows;
  if (!haveTime(ctx, `the PGlite case`)) return;
  const projectDir = await mkdtemp(join(tmpdir(), 'tailor-bench-pglite-'));
  ctx.tempDirs.push(projectDir);
  const dataDir = join(projectDir, 'warehouse');
  progress(`PGlite ${formatCount(size)} rows: generating the data directory`);
  const started = performance.now();
  await withPglite(dataDir, async (db) => {
    await createPeople((sql) => db.exec(sql), size);
    await resetFloorPglite(db);
  });
  progress(`PGlite ${formatCount(size)} rows: generated in ${formatDuration(performance.now() - started)}`);
  const emulator = await startEmulator({ rateLimits: false });
  try {
    await writeTailorProject(projectDir, { type: 'pglite', dataDir: 'warehouse' }, emulatorTarget(emulator));
    await runTailorAndFloor(ctx, {
      warehouse: 'pglite',
      label: 'PGlite',
      size,
      tailor: (info) => measureTailor(ctx, emulator, projectDir, info),
      // PGlite runs in the process that reads it: here the benchmark's own, for the floor.
      floor: async (info) =>
        floorMeasurement(ctx, info, await withPglite(dataDir, (db) => runFloorPglite(db)), {
          wireBytes: null,
          serverCpuMs: null,
        }),
      edit: (direction) =>
        withPglite(dataDir, async (db) => {
          await applyEdits((sql) => db.exec(sql), size, direction);
          // The whole database, state included (see settle()).
          await db.exec('vacuum analyze');
        }),
    });
  } finally {
    await emulator.close();
  }
}

const BQ_LOCATION = 'US';

/**
 * The BigQuery case on the local engine, reported without a target: bqemulator (a BigQuery REST
 * layer in Python over DuckDB) holds the segment, generated and edited in GoogleSQL
 * (bench/people-bigquery.ts), and `tailor sync` reaches it as users run it, with `api_endpoint` and
 * application default credentials, whose token comes from bench/fake-metadata.ts. The floor runs
 * in GoogleSQL on the same emulator (bench/floor-bigquery.ts), after Tailor, as on PGlite; no full
 * pull. The figures describe DuckDB behind a REST layer, not BigQuery.
 */
async function benchBigquery(ctx: Context): Promise<void> {
  const { options } = ctx;
  const size = options.bigqueryRows;
  if (!haveTime(ctx, 'the BigQuery case')) return;
  const projectDir = await mkdtemp(join(tmpdir(), 'tailor-bench-bigquery-'));
  ctx.tempDirs.push(projectDir);
  const gcloudDir = join(projectDir, 'gcloud-empty');
  await mkdir(gcloudDir);
  progress(`BigQuery ${formatCount(size)} rows: starting bqemulator`);
  const pins = readFileSync(join(REPO_ROOT, 'scripts', 'bqemulator-requirements.txt'), 'utf8')
    .split('\n')
    .filter((line) => /^(bqemulator|duckdb|sqlglot)==/i.test(line));
  ctx.notes.push(
    `BigQuery case: ${pins.join(', ')} (scripts/bqemulator-requirements.txt); reported only, no full pull.`,
  );
  const bqemulator = await startBqemulator();
  const metadata = await startFakeMetadata();
  const emulator = await startEmulator({ rateLimits: false });
  ctx.bigqueryCpu = processCpuMeter(bqemulator.pid);
  try {
    // The bench's own jobs (generation, edits) go through the SDK with a token in hand.
    const bq = new BigQuery({
      projectId: bqemulator.project,
      apiEndpoint: bqemulator.url,
      authClient: fakeBigqueryAuth(),
      location: BQ_LOCATION,
    });
    const exec = async (sql: string) =>
      (await bq.query({ query: sql, location: BQ_LOCATION }))[0] as Record<string, unknown>[];
    progress(`BigQuery ${formatCount(size)} rows: generating the people table`);
    const started = performance.now();
    await createPeopleBigquery(exec, size, BQ_LOCATION);
    await resetFloorBigquery(exec, BQ_LOCATION);
    progress(
      `BigQuery ${formatCount(size)} rows: generated in ${formatDuration(performance.now() - started)}`,
    );
    await writeTailorProject(
      projectDir,
      { type: 'bigquery', projectId: bqemulator.project, apiEndpoint: bqemulator.url, location: BQ_LOCATION },
      emulatorTarget(emulator),
      BQ_PEOPLE_MODEL_SQL,
    );
    const env = metadataEnv(metadata, gcloudDir);
    await runTailorAndFloor(ctx, {
      warehouse: 'bigquery',
      label: 'BigQuery',
      size,
      tailor: (info) => measureTailor(ctx, emulator, projectDir, info, env),
      floor: async (info) => {
        const stopCpu = await startCpuMeters(ctx, 'bigquery');
        const result = await runFloorBigquery(exec);
        const { serverCpuMs } = await stopCpu();
        return floorMeasurement(ctx, info, result, { wireBytes: null, serverCpuMs });
      },
      edit: (direction) => applyEditsBigquery(exec, size, direction),
    });
    const unknown = metadata.unknownRequests();
    if (unknown.length > 0) {
      ctx.notes.push(
        `BigQuery: the fake metadata server answered 404 to ${unknown.length} request(s): ${[...new Set(unknown)].join(', ')}.`,
      );
    }
    progress(
      `BigQuery: ${metadata.tokenRequests()} token request(s) to the fake metadata server; dataset ${BQ_PEOPLE_DATASET}`,
    );
  } finally {
    ctx.bigqueryCpu = null;
    await emulator.close();
    await metadata.close();
    await bqemulator.stop();
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const options = parseBenchArgs(argv);
  // The BigQuery case runs last: without its engine's venv, say so now rather than after the rest.
  if (options.bigqueryRows > 0) checkBqemulatorVenv();
  const startedAt = new Date();
  const server = new URL(options.pgUrl);
  const dbUrlObject = new URL(options.pgUrl);
  dbUrlObject.pathname = `/${options.database}`;
  const dbUrl = dbUrlObject.toString();

  progress(
    `sizes ${options.sizes.map(formatCount).join(', ')}; ${options.runs} runs; database ${options.database}; out ${options.out}`,
  );
  // Measure the CLI as `npm ci` installs it: transpiled dist/, not src/ through tsx's loader (which
  // bin/tailor.js falls back to when dist/ is older than src/, at ~1.6 s and ~190 MB of start-up).
  execFileSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build.mjs')], { stdio: 'inherit' });
  const admin = new pg.Client(options.pgUrl);
  await admin.connect();
  await admin.query(`drop database if exists ${options.database} with (force)`);
  await admin.query(`create database ${options.database}`);
  const machine = await describeMachine(admin);
  await admin.end();
  const serverCpu = await serverCpuMeter(options.pgUrl);
  if (serverCpu.note) progress(serverCpu.note);

  const proxy = await ByteProxy.start(server.hostname, Number(server.port || 5432));
  const setup = new pg.Client(dbUrl);
  const floor = new pg.Client(proxy.wrap(dbUrl));
  await Promise.all([setup.connect(), floor.connect()]);
  const stopper = new AbortController();
  for (const name of ['SIGINT', 'SIGTERM'] as const) {
    process.once(name, () => {
      progress(`${name}: stopping the case under way, then writing the report`);
      stopper.abort();
    });
  }
  if (options.stopAfterMinutes !== null) {
    setTimeout(() => {
      progress(`--stop-after-minutes ${options.stopAfterMinutes} reached: stopping the case under way`);
      ctx.notes.push(
        `--stop-after-minutes ${options.stopAfterMinutes} reached: the case under way was stopped (see "Stopped runs").`,
      );
      stopper.abort();
    }, options.stopAfterMinutes * 60_000).unref();
  }
  const ctx: Context = {
    options,
    proxy,
    setup,
    floor,
    dbUrl,
    serverCpu: serverCpu.meter,
    bigqueryCpu: null,
    measurements: [],
    notes: serverCpu.note ? [serverCpu.note] : [],
    tempDirs: [],
    stop: stopper.signal,
    deadline:
      options.maxMinutes === null
        ? Number.POSITIVE_INFINITY
        : performance.now() + options.maxMinutes * 60_000,
    stoppedForTime: false,
  };
  let failure: unknown;
  try {
    const largest = options.sizes[options.sizes.length - 1]!;
    for (const size of options.sizes) {
      if (size === largest && options.pgliteBeforeLargest && !options.skipPglite) await benchPglite(ctx);
      await benchPostgresSize(ctx, size);
    }
    if (!options.pgliteBeforeLargest && !options.skipPglite) await benchPglite(ctx);
    if (options.bigqueryRows > 0) await benchBigquery(ctx);
  } catch (error) {
    failure = error;
    ctx.notes.push(
      `The run stopped early: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
    );
    progress(`FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  } finally {
    await Promise.allSettled([setup.end(), floor.end()]);
    await proxy.close();
    if (!options.keep) {
      for (const dir of ctx.tempDirs) await rm(dir, { recursive: true, force: true });
      const cleanup = new pg.Client(options.pgUrl);
      await cleanup.connect();
      await cleanup.query(`drop database if exists ${options.database} with (force)`);
      await cleanup.end();
    }
  }
  if (options.skipFullPull) ctx.notes.push('The full-pull baseline was skipped (--skip-full-pull).');
  if (options.skipPglite) {
    ctx.notes.push(
      `The PGlite case was skipped (${options.quick ? '--quick; add --pglite-rows 100k to include it' : '--skip-pglite'}).`,
    );
  }
  if (options.bigqueryRows === 0) {
    ctx.notes.push(
      `The BigQuery case was skipped (${options.quick && !argv.some((a) => a.startsWith('--bigquery-rows') || a === '--skip-bigquery') ? '--quick; add --bigquery-rows 20k to include it' : '--skip-bigquery or --bigquery-rows 0'}).`,
    );
  }
  const out = resolve(options.out);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(
    out,
    renderReport({
      options,
      argv,
      machine,
      startedAt,
      finishedAt: new Date(),
      loadAverageAtEnd: loadavg()[0]!,
      measurements: ctx.measurements,
      notes: ctx.notes,
      commit: options.commit ?? gitDescribe(REPO_ROOT),
    }),
  );
  progress(`wrote ${out}`);
  if (failure) process.exitCode = 1;
}

await main();
