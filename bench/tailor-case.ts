import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { runMeasured, type MeasuredProcess } from './measure-process.js';
import { PEOPLE_KEY, PEOPLE_MAPPINGS, PEOPLE_MODEL_SQL } from './people.js';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const TAILOR_BIN = join(REPO_ROOT, 'bin', 'tailor.js');

export const BENCH_ACTIVATION = 'bench_people_x';
export const BENCH_STATE_SCHEMA = 'tailor_bench_state';

export interface EmulatorTarget {
  url: string;
  accountId: string;
  credentials: {
    consumerKey: string;
    consumerSecret: string;
    accessToken: string;
    accessTokenSecret: string;
  };
}

export type BenchWarehouse =
  | { type: 'postgres'; url: string }
  | { type: 'pglite'; dataDir: string }
  /** No key: application default credentials, which the bench serves from bench/fake-metadata.ts. */
  | { type: 'bigquery'; projectId: string; apiEndpoint: string; location: string };

function warehouseConfig(warehouse: BenchWarehouse): Record<string, string> {
  switch (warehouse.type) {
    case 'postgres':
      return { type: 'postgres', url: warehouse.url };
    case 'pglite':
      return { type: 'pglite', url: warehouse.dataDir };
    case 'bigquery':
      return {
        type: 'bigquery',
        project_id: warehouse.projectId,
        api_endpoint: warehouse.apiEndpoint,
        location: warehouse.location,
      };
  }
}

/**
 * Writes a Tailor project for the benchmark segment into `dir`: the `people` model (`modelSql`, by
 * default bench/people.ts's), and one activation of it to the emulator, mapped as an analyst would
 * map those columns.
 */
export async function writeTailorProject(
  dir: string,
  warehouse: BenchWarehouse,
  x: EmulatorTarget,
  modelSql: string = PEOPLE_MODEL_SQL,
): Promise<void> {
  await mkdir(join(dir, 'models'), { recursive: true });
  const config = {
    warehouse: warehouseConfig(warehouse),
    state_schema: BENCH_STATE_SCHEMA,
    destinations: {
      x: {
        type: 'x_ads',
        account_id: x.accountId,
        api_url: x.url,
        credentials: {
          consumer_key: x.credentials.consumerKey,
          consumer_secret: x.credentials.consumerSecret,
          access_token: x.credentials.accessToken,
          access_token_secret: x.credentials.accessTokenSecret,
        },
        defaults: { phone_default_region: 'US' },
      },
    },
    activations: {
      [BENCH_ACTIVATION]: {
        model: 'people',
        destination: 'x',
        audience: { name: 'Tailor benchmark: people' },
        mappings: { ...PEOPLE_MAPPINGS },
        schedule: 'manual',
        mode: 'mirror',
      },
    },
  };
  await writeFile(join(dir, 'tailor.yml'), stringify(config));
  await writeFile(join(dir, 'models', 'people.sql'), `${modelSql}\n`);
  await writeFile(
    join(dir, 'models', 'people.yml'),
    stringify({
      name: 'people',
      description: 'Everyone in the people table (benchmark)',
      primary_key: PEOPLE_KEY,
    }),
  );
}

/** What the benchmark reads from one activation's entry in `tailor sync --json`. */
export interface TailorSyncResult {
  status: string;
  audienceId: string | null;
  rows: number;
  added: number;
  removed: number;
  changed: number;
  refreshed: number;
  invalid: number;
  rejected: number;
  requests: number;
  durationMs: number;
  warnings: string[];
  error: string | null;
}

type Json = Record<string, unknown>;
const num = (value: unknown) => (typeof value === 'number' ? value : Number.NaN);

/**
 * Finds the activation's entry in `sync --json` output, whatever it is wrapped in. The CLI prints
 * snake_case (`{ activations: [{ activation, added, duration_ms, ... }] }`); the camelCase
 * SyncReport shape (`activationId`, `counts`) is read too.
 */
export function findSyncResult(value: unknown, activationId: string): TailorSyncResult | undefined {
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = findSyncResult(item, activationId);
      if (found) return found;
    }
    return undefined;
  }
  if (value === null || typeof value !== 'object') return undefined;
  const record = value as Json;
  if (record.activation === activationId || record.activationId === activationId) {
    const counts = (
      typeof record.counts === 'object' && record.counts !== null ? record.counts : record
    ) as Json;
    return {
      status: String(record.status),
      audienceId: (record.audience_id ?? record.audienceId ?? null) as string | null,
      rows: num(counts.rows),
      added: num(counts.added),
      removed: num(counts.removed),
      changed: num(counts.changed),
      refreshed: num(counts.refreshed),
      invalid: num(counts.invalid),
      rejected: num(counts.rejected),
      requests: num(counts.requests),
      durationMs: num(record.duration_ms ?? record.durationMs),
      warnings: Array.isArray(record.warnings) ? record.warnings.map(String) : [],
      error: typeof record.error === 'string' ? record.error : null,
    };
  }
  for (const item of Object.values(record)) {
    const found = findSyncResult(item, activationId);
    if (found) return found;
  }
  return undefined;
}

/** The benchmark was stopped while this process ran; its figures so far come with it. */
export class StoppedRun extends Error {
  readonly process: MeasuredProcess;
  constructor(process: MeasuredProcess) {
    super('stopped while tailor sync ran');
    this.process = process;
  }
}

export interface TailorRun {
  process: MeasuredProcess;
  report: TailorSyncResult;
  /** Milliseconds per step of the in-warehouse diff, from Tailor's `diff step` debug lines. */
  diffSteps: Record<string, number>;
  /** Milliseconds per stage of the delta batches, summed over batches (`batch committed` lines). */
  batchSteps: Record<string, number>;
  /** Milliseconds per statement of the batches' commits, summed over batches (`commit step` lines). */
  commitSteps: Record<string, number>;
}

const BATCH_STAGES = ['read', 'hash', 'wait', 'intent', 'lookup', 'send', 'commit'] as const;

/**
 * Reads Tailor's debug lines (pino JSON on stderr) once: the `diff step` lines summed by step, the
 * `batch committed` lines summed by stage (stages of different batches overlap: they are pipelined),
 * and the `commit step` lines summed by statement (commits of different batches overlap too).
 */
export function stepsFromLog(stderr: string): Pick<TailorRun, 'diffSteps' | 'batchSteps' | 'commitSteps'> {
  const diffSteps: Record<string, number> = {};
  const batchSteps: Record<string, number> = {};
  const commitSteps: Record<string, number> = {};
  const add = (into: Record<string, number>, step: string, ms: unknown) => {
    if (typeof ms === 'number') into[step] = (into[step] ?? 0) + ms;
  };
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // not a log line
    }
    if (entry.msg === 'diff step' && typeof entry.step === 'string') add(diffSteps, entry.step, entry.ms);
    else if (entry.msg === 'commit step' && typeof entry.step === 'string')
      add(commitSteps, entry.step, entry.ms);
    else if (entry.msg === 'batch committed') {
      for (const stage of BATCH_STAGES) add(batchSteps, stage, entry[`${stage}Ms`]);
    }
  }
  return { diffSteps, batchSteps, commitSteps };
}

let syncRuns = 0;

/**
 * Runs `tailor sync <activation> --json` as users do, measuring the process from the outside. `env`
 * adds to its environment (PATH, HOME and TZ only otherwise).
 */
export async function runTailorSync(
  projectDir: string,
  cpuProfDir: string | null = null,
  signal?: AbortSignal,
  env: Record<string, string> = {},
): Promise<TailorRun> {
  const measured = await runMeasured(
    process.execPath,
    [
      ...(cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : []),
      TAILOR_BIN,
      'sync',
      BENCH_ACTIVATION,
      '--project',
      projectDir,
      '--json',
      // A handful of debug lines (the steps of the in-warehouse diff) and one per batch.
      '--debug',
    ],
    { cwd: REPO_ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, TZ: 'UTC', ...env }, signal },
  );
  // Kept for inspection with the project (`--keep`): the debug lines give every batch's stages.
  await writeFile(join(projectDir, `sync-${++syncRuns}.log`), measured.stderr);
  if (measured.stopped) throw new StoppedRun(measured);
  let parsed: unknown;
  try {
    parsed = JSON.parse(measured.stdout);
  } catch {
    parsed = undefined;
  }
  const report = findSyncResult(parsed, BENCH_ACTIVATION);
  if (measured.code !== 0 || !report || report.status !== 'succeeded') {
    const tail = (text: string) => text.trim().split('\n').slice(-15).join('\n');
    throw new Error(
      `tailor sync failed (exit ${measured.code ?? measured.signal}, status ${report?.status ?? 'no report'}` +
        `${report?.error ? `: ${report.error}` : ''})\nstdout:\n${tail(measured.stdout)}\nstderr:\n${tail(measured.stderr)}`,
    );
  }
  return {
    process: measured,
    report,
    ...stepsFromLog(measured.stderr),
  };
}
