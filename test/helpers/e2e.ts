import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import pg from 'pg';
import type { XIdentifierType } from '../../src/destinations/x-ads/identifier-types.js';
import { hashMember } from '../../src/destinations/x-ads/identifiers.js';
import { OAuthSigner } from '../../src/destinations/x-ads/oauth.js';
import {
  DEMO_ACCOUNT_ID,
  DEMO_CREDENTIALS,
  type RunningEmulator,
  startEmulator,
} from '../../src/emulator/index.js';
import { CLI, type CliResult, REPO_ROOT, runCli } from './cli.js';
import type { SyncOptions } from '../../src/sync/types.js';
import { makeProject } from './project.js';
import { TEST_POSTGRES_URL, uniqueName } from './warehouse.js';

/**
 * End-to-end fixtures: a project directory whose warehouse is a schema of its own on the test Postgres
 * server and whose destination is a real emulator over HTTP, and the CLI run as a subprocess against it.
 */

export { DEMO_ACCOUNT_ID };

/** A plain `tailor sync` (no resync, no force, no plan), for engines driven in process. */
export const RUN: SyncOptions = {
  fullResync: false,
  recreate: false,
  force: false,
  dryRun: false,
  waitForLock: false,
};

/** Deletes an audience at the emulator with a signed DELETE, as someone deleting it in X's UI would. */
export async function deleteAudienceAtX(emulator: RunningEmulator, audienceId: string): Promise<void> {
  const baseUrl = `${emulator.url}/12/accounts/${DEMO_ACCOUNT_ID}/custom_audiences/${audienceId}`;
  const signed = new OAuthSigner(DEMO_CREDENTIALS).sign({
    method: 'DELETE',
    baseUrl,
    query: {},
    timestamp: Math.floor(Date.now() / 1000),
  });
  const response = await fetch(signed.url, {
    method: 'DELETE',
    headers: { authorization: signed.authorization },
  });
  if (response.status !== 200) throw new Error(`deleting audience ${audienceId}: HTTP ${response.status}`);
}

export interface E2eOptions {
  /** The `activations:` block of tailor.yml (indented two spaces under it). `{schema}` is replaced. */
  activations: string;
  /** models/<name>.sql and .yml contents; `{schema}` in SQL is replaced by the test's schema. */
  models: Record<string, { sql: string; yml: string }>;
  /** Statements creating and filling the test's tables; `{schema}` is replaced. */
  setup: string[];
  /** `limits:` of the destination, over short test defaults (3 s request timeout, 4 s retry deadline). */
  limits?: Record<string, number>;
  /** Top-level tailor.yml text placed before `activations:` (e.g. a `suppression:` block); `{schema}` is replaced. */
  extraYaml?: string;
}

export interface E2eProject {
  dir: string;
  schema: string;
  stateSchema: string;
  emulator: RunningEmulator;
  /** Every stdout and stderr of every CLI run of this project (for the "no raw identifier" scans). */
  outputs: string[];
  sql<T extends pg.QueryResultRow = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  cli(
    args: readonly string[],
    options?: { timeoutMs?: number; env?: Record<string, string> },
  ): Promise<CliResult>;
  /** `tailor <command> --json` parsed; fails the test with the output when stdout is not JSON. */
  json<T = JsonReport>(args: readonly string[]): Promise<{ result: CliResult; body: T }>;
  /** Identifiers the emulator holds for an audience, by key. */
  held(audienceId: string): Record<string, string[]>;
  /**
   * Identifiers the audience must hold: the hashes of the model's current valid rows (rows with a null
   * or duplicated key left out), computed here with the same normalization rules.
   */
  expected(
    model: string,
    mappings: Record<string, XIdentifierType>,
    region?: string,
  ): Promise<Record<string, string[]>>;
  /** Every row of every table of the state schema, as text. */
  dumpState(): Promise<string>;
  cleanup(): Promise<void>;
}

export interface JsonActivation {
  activation: string;
  status: string;
  run_id: string | null;
  audience_id: string | null;
  rows: number;
  added: number;
  removed: number;
  changed: number;
  refreshed: number;
  invalid: number;
  invalid_by_reason: Record<string, number>;
  rejected: number;
  suppressed: number;
  requests: number;
  warnings: string[];
  error: string | null;
}

export interface JsonReport {
  ok: boolean;
  activations: JsonActivation[];
}

/** The test's own emulator, no rate limits (they have their own tests); close it in afterAll. */
export function startTestEmulator(): Promise<RunningEmulator> {
  return startEmulator({ port: 0, rateLimits: false });
}

function tailorYml(
  apiUrl: string,
  stateSchema: string,
  activations: string,
  limits: Record<string, number> | undefined,
  extraYaml = '',
): string {
  const allLimits = { request_timeout_ms: 3000, retry_deadline_ms: 4000, ...limits };
  const limitsYaml = Object.entries(allLimits)
    .map(([key, value]) => `${key}: ${value}`)
    .join(', ');
  return `# An end-to-end test project.
warehouse:
  type: postgres
  url: ${TEST_POSTGRES_URL}
  pool_size: 3
state_schema: ${stateSchema}

destinations:
  x:
    type: x_ads
    account_id: ${DEMO_ACCOUNT_ID}
    api_url: ${apiUrl}
    credentials:
      consumer_key: ${DEMO_CREDENTIALS.consumerKey}
      consumer_secret: ${DEMO_CREDENTIALS.consumerSecret}
      access_token: ${DEMO_CREDENTIALS.accessToken}
      access_token_secret: ${DEMO_CREDENTIALS.accessTokenSecret}
    defaults:
      audience_name: 'Tailor: {model}'
      audience_description: '{description}'
      schedule: every 6 hours
      phone_default_region: US
      mappings:
        email: email
        phone: phone_number
        handle: handle
    limits: { ${limitsYaml} }
${extraYaml}
activations:
${activations}`;
}

export async function createE2eProject(emulator: RunningEmulator, options: E2eOptions): Promise<E2eProject> {
  const schema = uniqueName('e2e');
  const stateSchema = `${schema}_state`;
  const fill = (text: string) => text.replaceAll('{schema}', schema);
  const files: Record<string, string> = {
    'tailor.yml': tailorYml(
      emulator.url,
      stateSchema,
      fill(options.activations),
      options.limits,
      fill(options.extraYaml ?? ''),
    ),
  };
  for (const [name, model] of Object.entries(options.models)) {
    files[`models/${name}.sql`] = fill(model.sql);
    files[`models/${name}.yml`] = model.yml;
  }
  const dir = await makeProject(files);
  const pool = new pg.Pool({ connectionString: TEST_POSTGRES_URL, max: 2 });
  await pool.query(`create schema ${schema}`);
  for (const statement of options.setup) await pool.query(fill(statement));
  const outputs: string[] = [];
  const sql = async <T extends pg.QueryResultRow>(text: string, params?: unknown[]) =>
    (await pool.query<T>(fill(text), params)).rows;
  const cli = async (
    args: readonly string[],
    opts: { timeoutMs?: number; env?: Record<string, string> } = {},
  ) => {
    const result = await runCli([...args, '--project', dir], {
      cwd: dir,
      timeoutMs: opts.timeoutMs ?? 60_000,
      env: opts.env,
    });
    outputs.push(result.stdout, result.stderr);
    return result;
  };
  return {
    dir,
    schema,
    stateSchema,
    emulator,
    outputs,
    sql,
    cli,
    async json<T>(args: readonly string[]) {
      const result = await cli([...args, '--json']);
      let body: T;
      try {
        body = JSON.parse(result.stdout) as T;
      } catch {
        throw new Error(`not JSON (exit ${result.code}):\n${result.stdout}\n${result.stderr}`);
      }
      return { result, body };
    },
    held(audienceId) {
      return emulator.admin.membership(DEMO_ACCOUNT_ID, audienceId).identifiers;
    },
    async expected(model, mappings, region = 'US') {
      const text = fill((options.models[model] ?? { sql: '' }).sql).replace(/;\s*$/, '');
      const yml = options.models[model]!.yml;
      const key = /primary_key:\s*(\S+)/.exec(yml)![1]!;
      const rows = await sql<Record<string, unknown>>(`select * from (${text}) m`);
      const byKey = new Map<string, Record<string, unknown>[]>();
      for (const row of rows) {
        if (row[key] === null || row[key] === undefined) continue;
        const k = String(row[key]);
        byKey.set(k, [...(byKey.get(k) ?? []), row]);
      }
      const out: Record<string, Set<string>> = {};
      for (const group of byKey.values()) {
        if (group.length > 1) continue; // duplicated keys are left out of the segment
        const { hashes } = hashMember(group[0]!, mappings, { defaultRegion: region });
        for (const [type, values] of Object.entries(hashes)) {
          for (const value of values ?? []) (out[type] ??= new Set()).add(value);
        }
      }
      return Object.fromEntries(
        Object.entries(out)
          .map(([type, values]) => [type, [...values].sort()] as const)
          .sort(([a], [b]) => (a < b ? -1 : 1)),
      );
    },
    async dumpState() {
      const tables = await sql<{ table_name: string }>(
        `select table_name from information_schema.tables where table_schema = $1 order by 1`,
        [stateSchema],
      );
      const parts: string[] = [];
      for (const { table_name } of tables) {
        const rows = await sql<{ row: string }>(
          `select t::text as row from "${stateSchema}"."${table_name}" t`,
        );
        parts.push(`${table_name}:`, ...rows.map((r) => r.row));
      }
      return parts.join('\n');
    },
    async cleanup() {
      await pool.query(`drop schema if exists ${schema} cascade`);
      await pool.query(`drop schema if exists ${stateSchema} cascade`);
      await pool.end();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Sorted identifiers by key, empty keys dropped: the shape both `held` and `expected` return. */
export function normalizeHeld(identifiers: Record<string, string[]>): Record<string, string[]> {
  return Object.fromEntries(
    Object.entries(identifiers)
      .filter(([, values]) => values.length > 0)
      .map(([type, values]) => [type, [...values].sort()] as const)
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  );
}

/** Spawns `tailor <args>` without waiting, for tests that signal or race it. */
export function spawnCli(args: readonly string[], cwd: string) {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TZ: 'UTC' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

/** Polls `check` every 50 ms until it holds (or fails the test after `timeoutMs`). */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export { REPO_ROOT };
