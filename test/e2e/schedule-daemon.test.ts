import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/destinations/x-ads/identifiers.js';
import {
  DEMO_ACCOUNT_ID,
  DEMO_CREDENTIALS,
  type RunningEmulator,
  startEmulator,
} from '../../src/emulator/index.js';
import { CLI, runCli } from '../helpers/cli.js';

/**
 * `tailor schedule` as users run it: a subprocess against a Postgres server (its own schemas) and
 * the emulator over HTTP, driven by signals. Schedules use the cron seconds field.
 */

const POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';
const suffix = randomBytes(4).toString('hex');
const DATA = `sched_e2e_data_${suffix}`;
const STATE = `sched_e2e_state_${suffix}`;

let admin: pg.Client;
let emulator: RunningEmulator;
const dirs: string[] = [];

beforeAll(async () => {
  admin = new pg.Client(POSTGRES_URL);
  await admin.connect();
  await admin.query(`create schema ${DATA}`);
  await admin.query(`create table ${DATA}.customers (customer_id int primary key, email text)`);
  await admin.query(
    `insert into ${DATA}.customers select i, 'Member' || i || '@Example.org' from generate_series(1, 300) i`,
  );
  emulator = await startEmulator({ rateLimits: false });
});

afterAll(async () => {
  await emulator?.close();
  await admin?.query(`drop schema if exists ${DATA} cascade`);
  await admin?.query(`drop schema if exists ${STATE} cascade`);
  await admin?.end();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function tailorYml(activations: Record<string, { where: string; schedule: string }>): string {
  const lines = [
    'warehouse:',
    '  type: postgres',
    `  url: ${POSTGRES_URL}`,
    `state_schema: ${STATE}`,
    'destinations:',
    '  x:',
    '    type: x_ads',
    `    account_id: ${DEMO_ACCOUNT_ID}`,
    `    api_url: ${emulator.url}`,
    '    credentials:',
    `      consumer_key: ${DEMO_CREDENTIALS.consumerKey}`,
    `      consumer_secret: ${DEMO_CREDENTIALS.consumerSecret}`,
    `      access_token: ${DEMO_CREDENTIALS.accessToken}`,
    `      access_token_secret: ${DEMO_CREDENTIALS.accessTokenSecret}`,
    'activations:',
  ];
  for (const [id, spec] of Object.entries(activations)) {
    lines.push(
      `  ${id}:`,
      `    model: ${id}_model`,
      '    destination: x',
      `    audience: { name: "e2e ${suffix} ${id}" }`,
      '    mappings: { email: email }',
      `    schedule: "${spec.schedule}"`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function makeProjectDir(
  activations: Record<string, { where: string; schedule: string }>,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tailor-sched-e2e-'));
  dirs.push(dir);
  await mkdir(join(dir, 'models'));
  await writeFile(join(dir, 'tailor.yml'), tailorYml(activations));
  for (const [id, spec] of Object.entries(activations)) {
    await writeFile(
      join(dir, 'models', `${id}_model.sql`),
      `select customer_id, email from ${DATA}.customers where ${spec.where}`,
    );
    await writeFile(join(dir, 'models', `${id}_model.yml`), `name: ${id}_model\nprimary_key: customer_id\n`);
  }
  return dir;
}

interface LogLine {
  msg: string;
  level: number;
  activation?: string;
  listen?: string;
  trigger?: string;
  [key: string]: unknown;
}

/** A running `tailor schedule`, its JSON log lines parsed as they arrive. */
class Daemon {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [CLI, 'schedule', ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TZ: 'UTC' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let partial = '';
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      partial += chunk;
      const complete = partial.split('\n');
      partial = complete.pop()!;
      for (const line of complete) {
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          // Not a log line (none expected); kept in `stderr` for the failure message.
        }
      }
    });
    this.child.stdout!.resume();
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 90_000);
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        clearTimeout(killer);
        resolve({ code, signal });
      });
    });
  }

  count(predicate: (line: LogLine) => boolean): number {
    return this.lines.filter(predicate).length;
  }

  async waitFor(predicate: (line: LogLine) => boolean, times = 1, timeoutMs = 30_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.filter(predicate);
      if (found.length >= times) return found[times - 1]!;
      if (Date.now() > deadline || this.child.exitCode !== null)
        throw new Error(`log line not seen; stderr so far:\n${this.stderr.slice(-4000)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

const message = (text: string) => (line: LogLine) => line.msg.startsWith(text);
const succeededRun = (activation: string) => (line: LogLine) =>
  line.msg === 'run succeeded' && line.activation === activation;

/** Waits until `count` runs of an activation started after `since` (epoch ms) have finished. */
async function waitForRuns(activation: string, since: number, count: number, timeoutMs = 40_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await admin.query<{ n: string }>(
      `select count(*) as n from ${STATE}.runs
        where activation_id = $1 and started_at > $2 and finished_at is not null`,
      [activation, new Date(since)],
    );
    if (Number(result.rows[0]!.n) >= count) return;
    if (Date.now() > deadline) throw new Error(`${count} runs of ${activation} not seen in time`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function emailHashes(where: string): Promise<string[]> {
  const rows = await admin.query<{ email: string }>(`select email from ${DATA}.customers where ${where}`);
  return rows.rows.map((row) => sha256Hex(row.email.trim().toLowerCase())).sort();
}

async function members(activation: string): Promise<string[]> {
  const bound = await admin.query<{ audience_id: string }>(
    `select audience_id from ${STATE}.bindings where activation_id = $1`,
    [activation],
  );
  const audienceId = bound.rows[0]?.audience_id;
  if (!audienceId) return [];
  return emulator.admin.membership(DEMO_ACCOUNT_ID, audienceId).identifiers.email ?? [];
}

describe('tailor schedule (CLI subprocess)', () => {
  it('serves health and metrics, keeps its schedule through a bad reload (--watch, SIGHUP), applies a good one, exits 0', async () => {
    const dir = await makeProjectDir({ evens: { where: 'customer_id % 2 = 0', schedule: '* * * * * *' } });
    const daemon = new Daemon(['--project', dir, '--port', '0', '--watch']);
    try {
      const ready = await daemon.waitFor(message('scheduler running'));
      const url = ready.listen!;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      await daemon.waitFor(succeededRun('evens'));

      const health = await fetch(`${url}/healthz`);
      expect(health.status).toBe(200);
      const body = (await health.json()) as {
        status: string;
        activations: { id: string; schedule: string }[];
      };
      expect(body.status).toBe('ok');
      expect(body.activations).toEqual([expect.objectContaining({ id: 'evens', schedule: '* * * * * *' })]);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/tailor_runs_total\{activation="evens",status="succeeded"\} [1-9]/);
      expect(metrics).toMatch(/tailor_members_total\{activation="evens",change="added"\} 150/);
      expect(metrics).toMatch(
        /tailor_destination_requests_total\{destination="x",endpoint="[^"]+",status="200"\}/,
      );
      expect(metrics).toContain('tailor_next_run_timestamp_seconds{activation="evens"}');

      // An invalid tailor.yml (seen by --watch, then by SIGHUP): each reload is rejected with the
      // problem, and the old schedule keeps going.
      await writeFile(
        join(dir, 'tailor.yml'),
        tailorYml({ evens: { where: '', schedule: 'every fortnight' } }),
      );
      const rejected = await daemon.waitFor(message('configuration reload rejected'));
      expect(rejected.msg).toContain('activations.evens.schedule');
      daemon.child.kill('SIGHUP');
      await daemon.waitFor((line) => line.msg === 'reloading the configuration' && line.trigger === 'SIGHUP');
      await daemon.waitFor(message('configuration reload rejected'), 2);
      const before = daemon.count(succeededRun('evens'));
      await daemon.waitFor(succeededRun('evens'), before + 2);

      // A valid one (a second activation, its model written first), seen by --watch, replaces it.
      await writeFile(
        join(dir, 'models', 'odds_model.sql'),
        `select customer_id, email from ${DATA}.customers where customer_id % 2 = 1`,
      );
      await writeFile(join(dir, 'models', 'odds_model.yml'), 'name: odds_model\nprimary_key: customer_id\n');
      await writeFile(
        join(dir, 'tailor.yml'),
        tailorYml({
          evens: { where: 'customer_id % 2 = 0', schedule: '* * * * * *' },
          odds: { where: 'customer_id % 2 = 1', schedule: '*/2 * * * * *' },
        }),
      );
      await daemon.waitFor(message('configuration reloaded'));
      await daemon.waitFor(succeededRun('odds'));
    } finally {
      daemon.child.kill('SIGTERM');
    }
    const exit = await daemon.exited;
    expect(exit, daemon.stderr.slice(-2000)).toEqual({ code: 0, signal: null });
    expect(daemon.count(message('scheduler stopped'))).toBe(1);
    expect(await members('evens')).toEqual(await emailHashes('customer_id % 2 = 0'));
    expect(await members('odds')).toEqual(await emailHashes('customer_id % 2 = 1'));
    // Logs are JSON and never carry a raw identifier.
    expect(daemon.stderr).not.toMatch(/Member\d+@/i);
  });

  it('on SIGTERM during a slow delivery, aborts at the deadline, exits 0, and the next run converges', async () => {
    const dir = await makeProjectDir({ tens: { where: 'customer_id % 10 = 0', schedule: '* * * * * *' } });
    // Users requests are held for 6 s: the run cannot finish inside the 1 s shutdown deadline.
    emulator.admin.injectFaults([{ kind: 'latency', latencyMs: 6_000, times: 5, match: 'users' }]);
    const daemon = new Daemon(['--project', dir, '--port', '0', '--shutdown-timeout', '1']);
    try {
      await daemon.waitFor((line) => line.msg === 'run starting' && line.activation === 'tens');
    } finally {
      daemon.child.kill('SIGTERM');
    }
    const exit = await daemon.exited;
    emulator.admin.clearFaults();
    expect(exit, daemon.stderr.slice(-2000)).toEqual({ code: 0, signal: null });
    expect(daemon.count(message('shutdown deadline passed'))).toBe(1);
    expect(daemon.count(message('run stopped by shutdown'))).toBe(1);
    expect(daemon.count(message('scheduler stopped'))).toBe(1);

    // What X did not acknowledge is re-sent by the next run: the audience ends up exactly the segment.
    const sync = await runCli(['sync', 'tens', '--project', dir, '--json']);
    expect(sync.code, sync.stderr).toBe(0);
    expect(await members('tens')).toEqual(await emailHashes('customer_id % 10 = 0'));
  });

  it('two worker processes against one warehouse run each tick of an activation once', async () => {
    const dir = await makeProjectDir({ threes: { where: 'customer_id % 3 = 0', schedule: '*/2 * * * * *' } });
    const workers = [
      new Daemon(['--project', dir, '--port', '0']),
      new Daemon(['--project', dir, '--port', '0']),
    ];
    let since = 0;
    try {
      await Promise.all(workers.map((worker) => worker.waitFor(message('scheduler running'))));
      since = Date.now();
      // Three ticks once both are up.
      await waitForRuns('threes', since, 3);
    } finally {
      for (const worker of workers) worker.child.kill('SIGTERM');
    }
    const exits = await Promise.all(workers.map((worker) => worker.exited));
    expect(exits).toEqual([
      { code: 0, signal: null },
      { code: 0, signal: null },
    ]);
    const runs = await admin.query<{ started_at: Date; status: string }>(
      `select started_at, status from ${STATE}.runs where activation_id = 'threes' order by started_at`,
    );
    const ticks = runs.rows.map((run) => Math.floor(run.started_at.getTime() / 2000));
    expect(new Set(ticks).size).toBe(runs.rows.length);
    expect(runs.rows.every((run) => run.status === 'succeeded')).toBe(true);
    // Every tick after both were up, one of them stood aside.
    const skips = workers.flatMap((worker) =>
      worker.lines.filter(
        (line) => line.msg.startsWith('skipped this tick') && Date.parse(String(line.time)) > since,
      ),
    );
    expect(skips.length).toBeGreaterThanOrEqual(2);
    expect(await members('threes')).toEqual(await emailHashes('customer_id % 3 = 0'));
  });
});
