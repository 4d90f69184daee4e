import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { SyncReport } from '../src/sync/types.js';
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

export type BenchWarehouse = { type: 'postgres'; url: string } | { type: 'pglite'; dataDir: string };

/**
 * Writes a Tailor project for the benchmark segment into `dir`: the `people` model, and one
 * activation of it to the emulator, mapped as an analyst would map those columns.
 */
export async function writeTailorProject(
  dir: string,
  warehouse: BenchWarehouse,
  x: EmulatorTarget,
): Promise<void> {
  await mkdir(join(dir, 'models'), { recursive: true });
  const config = {
    warehouse:
      warehouse.type === 'postgres'
        ? { type: 'postgres', url: warehouse.url }
        : { type: 'pglite', url: warehouse.dataDir },
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
  await writeFile(join(dir, 'models', 'people.sql'), `${PEOPLE_MODEL_SQL}\n`);
  await writeFile(
    join(dir, 'models', 'people.yml'),
    stringify({
      name: 'people',
      description: 'Everyone in the people table (benchmark)',
      primary_key: PEOPLE_KEY,
    }),
  );
}

/** Finds the activation's report in `sync --json` output, whatever object it is wrapped in. */
export function findSyncReport(value: unknown, activationId: string): SyncReport | undefined {
  if (Array.isArray(value)) {
    for (const item of value) {
      const found = findSyncReport(item, activationId);
      if (found) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    const record = value as Record<string, unknown>;
    if (record.activationId === activationId && typeof record.counts === 'object')
      return record as unknown as SyncReport;
    for (const item of Object.values(record)) {
      const found = findSyncReport(item, activationId);
      if (found) return found;
    }
  }
  return undefined;
}

export interface TailorRun {
  process: MeasuredProcess;
  report: SyncReport;
}

/** Runs `tailor sync <activation> --json` as users do, measuring the process from the outside. */
export async function runTailorSync(projectDir: string): Promise<TailorRun> {
  const measured = await runMeasured(
    process.execPath,
    [TAILOR_BIN, 'sync', BENCH_ACTIVATION, '--project', projectDir, '--json'],
    { cwd: REPO_ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, TZ: 'UTC' } },
  );
  let parsed: unknown;
  try {
    parsed = JSON.parse(measured.stdout);
  } catch {
    parsed = undefined;
  }
  const report = findSyncReport(parsed, BENCH_ACTIVATION);
  if (measured.code !== 0 || !report || report.status !== 'succeeded') {
    const tail = (text: string) => text.trim().split('\n').slice(-15).join('\n');
    throw new Error(
      `tailor sync failed (exit ${measured.code ?? measured.signal}, status ${report?.status ?? 'no report'}` +
        `${report?.error ? `: ${report.error}` : ''})\nstdout:\n${tail(measured.stdout)}\nstderr:\n${tail(measured.stderr)}`,
    );
  }
  return { process: measured, report };
}
