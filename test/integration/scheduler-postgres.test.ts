import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProject, type Project } from '../../src/config/load-project.js';
import { resolveActivations } from '../../src/config/resolve-activation.js';
import { sha256Hex } from '../../src/destinations/x-ads/identifiers.js';
import {
  DEMO_ACCOUNT_ID,
  DEMO_CREDENTIALS,
  type RunningEmulator,
  startEmulator,
} from '../../src/emulator/index.js';
import { SchedulerMetrics } from '../../src/scheduler/metrics.js';
import { Scheduler, type TickEvent } from '../../src/scheduler/scheduler.js';
import { describeActivations } from '../../src/scheduler/status-report.js';
import type { StateStore } from '../../src/diff/types.js';
import { openSyncEngine, type SyncEngine } from '../../src/sync/index.js';

/**
 * The scheduler with the real sync engine, a real Postgres server (its own schemas, dropped after)
 * and the real emulator over HTTP. Schedules use the cron seconds field, so each test takes seconds.
 */

const POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';
const logger = pino({ level: process.env.TAILOR_TEST_LOG ?? 'silent' });
const suffix = randomBytes(4).toString('hex');
const DATA = `sched_data_${suffix}`;
const STATE = `sched_state_${suffix}`;

let admin: pg.Client;
let emulator: RunningEmulator;
const dirs: string[] = [];

beforeAll(async () => {
  admin = new pg.Client(POSTGRES_URL);
  await admin.connect();
  await admin.query(`create schema ${DATA}`);
  await admin.query(`create table ${DATA}.customers (customer_id int primary key, email text, tier text)`);
  await admin.query(
    `insert into ${DATA}.customers
       select i, 'Person' || i || '@Example.com ', case when i % 3 = 0 then 'vip' else 'basic' end
       from generate_series(1, 150) i`,
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

interface ActivationSpec {
  model: string;
  schedule: string;
}

async function writeProject(
  dir: string,
  activations: Record<string, ActivationSpec>,
  models: Record<string, string>,
): Promise<void> {
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
      `    model: ${spec.model}`,
      '    destination: x',
      `    audience: { name: "sched ${suffix} ${id}" }`,
      '    mappings: { email: email }',
      `    schedule: "${spec.schedule}"`,
    );
  }
  await mkdir(join(dir, 'models'), { recursive: true });
  await writeFile(join(dir, 'tailor.yml'), `${lines.join('\n')}\n`);
  for (const [name, sql] of Object.entries(models)) {
    await writeFile(join(dir, 'models', `${name}.sql`), sql);
    await writeFile(join(dir, 'models', `${name}.yml`), `name: ${name}\nprimary_key: customer_id\n`);
  }
}

async function project(activations: Record<string, ActivationSpec>, models: Record<string, string>) {
  const dir = await mkdtemp(join(tmpdir(), 'tailor-sched-'));
  dirs.push(dir);
  await writeProject(dir, activations, models);
  return { dir, load: () => loadProject(dir, {}) };
}

function scheduler(options: Partial<ConstructorParameters<typeof Scheduler>[0]> = {}) {
  const events: TickEvent[] = [];
  const metrics = new SchedulerMetrics({ defaultMetrics: false });
  const instance = new Scheduler({
    logger,
    metrics,
    openEngine: (p: Project) => openSyncEngine(p, { logger, observer: metrics.observer }),
    onTick: (event) => events.push(event),
    ...options,
  });
  return { scheduler: instance, events, metrics };
}

/**
 * A worker that reads the run log a second late (a busy or distant machine): by then the other
 * worker has run the tick and released the lock, so the lock alone would let this one run it again.
 */
function lagging(engine: SyncEngine): SyncEngine {
  const state = engine.state();
  const slowState = new Proxy(state, {
    get(target, property) {
      if (property === 'listRuns')
        return async (options: Parameters<StateStore['listRuns']>[0]) => {
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          return target.listRuns(options);
        };
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return new Proxy(engine, {
    get(target, property) {
      if (property === 'state') return () => slowState;
      const value: unknown = Reflect.get(target, property);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function runsOf(activation: string) {
  const result = await admin.query<{ status: string; started_at: Date }>(
    `select status, started_at from ${STATE}.runs where activation_id = $1 order by started_at`,
    [activation],
  );
  return result.rows;
}

/** The emulator's members of an activation's audience, as email hashes. */
async function membership(activation: string, p: Project): Promise<string[]> {
  await using engine = await openSyncEngine(p, { logger });
  const binding = await engine.state().getBinding(activation);
  if (!binding) return [];
  return emulator.admin.membership(DEMO_ACCOUNT_ID, binding.audienceId).identifiers.email ?? [];
}

async function segmentHashes(where: string): Promise<string[]> {
  const result = await admin.query<{ email: string }>(`select email from ${DATA}.customers where ${where}`);
  return result.rows.map((row) => sha256Hex(row.email.trim().toLowerCase())).sort();
}

describe('scheduler with the real sync engine, Postgres and the emulator', () => {
  it('two workers against one warehouse run each activation once per tick', async () => {
    const { load } = await project(
      {
        vip_two: { model: 'vip', schedule: '*/2 * * * * *' },
        all_two: { model: 'everyone', schedule: '*/2 * * * * *' },
      },
      {
        vip: `select customer_id, email from ${DATA}.customers where tier = 'vip'`,
        everyone: `select customer_id, email from ${DATA}.customers`,
      },
    );
    const p = await load();
    const a = scheduler();
    const b = scheduler({
      openEngine: async (p: Project) => lagging(await openSyncEngine(p, { logger })),
    });
    await Promise.all([a.scheduler.start(p), b.scheduler.start(await load())]);
    const ran = () => [...a.events, ...b.events].filter((e) => e.outcome === 'ran').length;
    try {
      await waitFor(() => ran() >= 6);
    } finally {
      await Promise.all([a.scheduler.stop(), b.scheduler.stop()]);
    }
    for (const id of ['vip_two', 'all_two']) {
      const runs = await runsOf(id);
      const ticks = runs.map((r) => Math.floor(r.started_at.getTime() / 2000));
      expect(runs.length).toBeGreaterThanOrEqual(3);
      // One run per 2-second tick, whichever worker ran it, and every one succeeded.
      expect(new Set(ticks).size).toBe(runs.length);
      expect(runs.every((r) => r.status === 'succeeded')).toBe(true);
    }
    // The late worker found each tick already run and skipped it.
    const skipped = b.events.filter((e) => e.outcome === 'skipped' && e.reason === 'already_ran');
    expect(skipped.length).toBeGreaterThan(0);
    expect(await membership('vip_two', p)).toEqual(await segmentHashes(`tier = 'vip'`));
    expect(await membership('all_two', p)).toEqual(await segmentHashes('true'));
    const text = await a.metrics.metrics();
    expect(text).toMatch(
      /tailor_destination_requests_total\{destination="x",endpoint="[^"]+",status="200"\} \d+/,
    );
  });

  it('pauses an activation whose SQL keeps failing, shows why, and resumes when its model is fixed', async () => {
    const activations = { broken: { model: 'broken', schedule: '* * * * * *' } };
    const { dir, load } = await project(activations, {
      broken: `select customer_id, email from ${DATA}.no_such_table`,
    });
    const { scheduler: s, events } = scheduler({ maxFailures: 2, backoff: { initialMs: 500, maxMs: 1_000 } });
    await s.start(await load());
    try {
      await waitFor(() => events.some((e) => 'paused' in e && e.paused));
      const failed = await runsOf('broken');
      expect(failed.map((r) => r.status)).toEqual(['failed', 'failed']);
      const paused = await load();
      {
        await using engine = await openSyncEngine(paused, { logger });
        const [view] = await describeActivations(engine, resolveActivations(paused));
        expect(view).toMatchObject({ id: 'broken', paused: true, consecutiveFailures: 2, nextRunAt: null });
        expect(view!.pausedReason).toMatch(/^2 consecutive failed runs; last failed: .*no_such_table/);
        expect(view!.lastRun?.status).toBe('failed');
      }
      // Paused: ticks go by without runs.
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      expect((await runsOf('broken')).length).toBe(2);

      // The analyst fixes the model; a reload sees the new config and resumes it.
      await writeProject(dir, activations, {
        broken: `select customer_id, email from ${DATA}.customers where customer_id <= 120`,
      });
      expect((await s.reload(load)).applied).toBe(true);
      await waitFor(async () => (await runsOf('broken')).some((r) => r.status === 'succeeded'));
    } finally {
      await s.stop();
    }
    const fixed = await load();
    expect(await membership('broken', fixed)).toEqual(await segmentHashes('customer_id <= 120'));
    await using engine = await openSyncEngine(fixed, { logger });
    const status = await engine.state().getActivationStatus('broken');
    expect(status).toMatchObject({ consecutiveFailures: 0, pausedAt: null });
    const [view] = await describeActivations(engine, resolveActivations(fixed));
    expect(view).toMatchObject({ paused: false, lastRun: { status: 'succeeded' }, audienceError: null });
    expect(view!.audience?.id).toBe(view!.audienceId);
  });
});
