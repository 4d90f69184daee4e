import { rm } from 'node:fs/promises';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { loadProject, type Project } from '../../src/config/load-project.js';
import type { Destination } from '../../src/destinations/destination.js';
import type {
  ActivationLock,
  ActivationStatus,
  RunCounts,
  RunRecord,
  RunStatus,
  StateStore,
} from '../../src/diff/types.js';
import { ConfigError, LockBusyError } from '../../src/errors.js';
import { SchedulerMetrics } from '../../src/scheduler/metrics.js';
import { startOpsServer } from '../../src/scheduler/ops-server.js';
import { Scheduler, type TickEvent } from '../../src/scheduler/scheduler.js';
import type { SyncEngine, SyncOptions, SyncReport } from '../../src/sync/types.js';
import { makeProject } from '../helpers/project.js';
import { runCountsOf } from '../helpers/counts.js';

/**
 * The scheduler against a fake SyncEngine (whose behaviour each test sets) over an in-memory
 * state store with a real lock and run log, under vitest's fake timers: node-cron's ticks, the
 * interval timers and the shutdown deadline all run on the fake clock, so these tests take
 * milliseconds and never depend on real timing.
 */

const ZERO: RunCounts = runCountsOf();

/** A state store shared by every "worker" of a test: the warehouse, in memory. */
class MemoryWarehouse {
  locks = new Set<string>();
  runs: RunRecord[] = [];
  statuses = new Map<string, ActivationStatus>();
  #next = 0;

  store(): StateStore {
    const unused = () => {
      throw new Error('not used by the scheduler');
    };
    return {
      keyRangesIndexed: false,
      migrate: async () => undefined,
      lock: async (id: string): Promise<ActivationLock> => {
        if (this.locks.has(id)) throw new LockBusyError(id);
        this.locks.add(id);
        const release = async () => {
          this.locks.delete(id);
        };
        return { release, [Symbol.asyncDispose]: release };
      },
      getBinding: unused,
      saveBinding: unused,
      prepareDiff: unused,
      memberCount: unused,
      suppressedHashes: unused,
      membersHoldingSuppressed: unused,
      suppressionToApply: unused,
      recordSuppressionApplied: unused,
      listRejections: unused,
      identifiedMemberCount: unused,
      ownerId: unused,
      startRun: async (activationId: string, startedAt: Date) => {
        const id = String(++this.#next);
        this.runs.push({
          id,
          activationId,
          startedAt,
          finishedAt: null,
          status: 'running',
          counts: ZERO,
          error: null,
        });
        return id;
      },
      finishRun: async (runId, result) => {
        const run = this.runs.find((r) => r.id === runId)!;
        Object.assign(run, {
          status: result.status,
          finishedAt: result.finishedAt,
          counts: result.counts,
          error: result.error,
        });
      },
      recordRejections: unused,
      listRuns: async ({ activationId, limit }) =>
        this.runs
          .filter((r) => activationId === undefined || r.activationId === activationId)
          .sort((a, b) => b.startedAt.getTime() - a.startedAt.getTime())
          .slice(0, limit)
          .map((r) => ({ ...r })),
      reset: unused,
      getActivationStatus: async (id) => {
        const status = this.statuses.get(id);
        return status && { ...status };
      },
      setActivationStatus: async (status) => {
        this.statuses.set(status.activationId, { ...status });
      },
      listActivationStatus: async () => [...this.statuses.values()].map((s) => ({ ...s })),
    };
  }

  runsOf(id: string): RunRecord[] {
    return this.runs.filter((r) => r.activationId === id);
  }
}

type Behaviour = (activationId: string, signal: AbortSignal | undefined) => Promise<RunStatus | 'throw'>;

/** A SyncEngine that takes the lock and logs runs like the real one, doing what `behaviour` says. */
class FakeEngine implements SyncEngine {
  readonly project: Project;
  closed = false;
  active = 0;
  maxActive = 0;
  readonly #warehouse: MemoryWarehouse;
  readonly #behaviour: () => Behaviour;

  constructor(project: Project, warehouse: MemoryWarehouse, behaviour: () => Behaviour) {
    this.project = project;
    this.#warehouse = warehouse;
    this.#behaviour = behaviour;
  }

  state(): StateStore {
    return this.#warehouse.store();
  }

  destination(): Destination {
    throw new Error('not used');
  }

  async sync(activationId: string, options: SyncOptions): Promise<SyncReport> {
    if (!this.project.config.activations[activationId]) throw new ConfigError(`unknown ${activationId}`);
    const state = this.state();
    const report = (status: SyncReport['status'], runId: string | null, error: string | null) => ({
      activationId,
      runId,
      status,
      counts: { ...ZERO, added: status === 'succeeded' ? 3 : 0, invalidByReason: {} },
      audienceId: 'aud1',
      durationMs: 5,
      error,
      warnings: [],
    });
    let lock: ActivationLock;
    try {
      lock = await state.lock(activationId, { wait: options.waitForLock });
    } catch (error) {
      if (error instanceof LockBusyError) return report('skipped', null, error.message);
      throw error;
    }
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    try {
      const runId = await state.startRun(activationId, new Date());
      const outcome = await this.#behaviour()(activationId, options.signal);
      if (outcome === 'throw') {
        await state.finishRun(runId, {
          status: 'failed',
          counts: ZERO,
          error: 'boom',
          finishedAt: new Date(),
        });
        throw new Error('model vip: relation "nope" does not exist');
      }
      const status = outcome === 'running' ? 'failed' : outcome;
      const error = status === 'succeeded' ? null : `${status}: relation "nope" does not exist`;
      await state.finishRun(runId, { status, counts: ZERO, error, finishedAt: new Date() });
      return report(status, runId, error);
    } finally {
      this.active--;
      await lock.release();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

const sleepOrAbort = (ms: number, signal?: AbortSignal) =>
  new Promise<'succeeded' | 'failed'>((resolve) => {
    const timer = setTimeout(() => resolve('succeeded'), ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve('failed');
    });
  });

function tailorYml(activations: Record<string, { schedule: string; enabled?: boolean; model?: string }>) {
  const lines = [
    'warehouse:',
    '  type: pglite',
    '  url: .tailor/warehouse',
    'destinations:',
    '  x:',
    '    type: x_ads',
    '    account_id: 18ce54d4x5t',
    '    api_url: http://127.0.0.1:4010',
    '    credentials: { consumer_key: ck, consumer_secret: cs, access_token: at, access_token_secret: ats }',
    'activations:',
  ];
  for (const [id, a] of Object.entries(activations)) {
    lines.push(
      `  ${id}:`,
      `    model: ${a.model ?? 'vip'}`,
      '    destination: x',
      // One audience per activation: two activations naming one audience are refused.
      `    audience: { name: "Audience ${id}" }`,
      `    schedule: "${a.schedule}"`,
    );
    if (a.enabled === false) lines.push('    enabled: false');
  }
  return `${lines.join('\n')}\n`;
}

const MODELS = {
  'models/vip.sql': 'select customer_id, email from customers',
  'models/vip.yml': 'name: vip\nprimary_key: customer_id\n',
  'models/other.sql': 'select customer_id, email from customers where false',
  'models/other.yml': 'name: other\nprimary_key: customer_id\n',
};

const dirs: string[] = [];
async function project(yml: string): Promise<Project> {
  const dir = await makeProject({ 'tailor.yml': yml, ...MODELS });
  dirs.push(dir);
  return loadProject(dir, {});
}

const logger = pino({ level: 'silent' });

interface Harness {
  scheduler: Scheduler;
  engines: FakeEngine[];
  events: TickEvent[];
}

function harness(
  warehouse: MemoryWarehouse,
  behaviour: () => Behaviour,
  options: Partial<ConstructorParameters<typeof Scheduler>[0]> = {},
): Harness {
  const engines: FakeEngine[] = [];
  const events: TickEvent[] = [];
  const scheduler = new Scheduler({
    logger,
    openEngine: async (p) => {
      const engine = new FakeEngine(p, warehouse, behaviour);
      engines.push(engine);
      return engine;
    },
    backoff: { initialMs: 10_000, maxMs: 40_000 },
    onTick: (event) => events.push(event),
    ...options,
  });
  return { scheduler, engines, events };
}

const succeed: Behaviour = async () => 'succeeded';

/** Stops schedulers while the fake clock runs, so in-flight runs can finish. */
async function stopAll(...schedulers: Scheduler[]): Promise<void> {
  const stopped = Promise.all(schedulers.map((s) => s.stop()));
  await vi.advanceTimersByTimeAsync(60_000);
  await stopped;
}

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-03-01T00:00:00.400Z') });
});

afterEach(async () => {
  vi.useRealTimers();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe('scheduler (fake engine, fake clock)', () => {
  it('runs a cron activation every tick, never a manual or disabled one', async () => {
    const warehouse = new MemoryWarehouse();
    const { scheduler, events } = harness(warehouse, () => succeed);
    await scheduler.start(
      await project(
        tailorYml({
          every_second: { schedule: '* * * * * *' },
          by_hand: { schedule: 'manual' },
          off: { schedule: '* * * * * *', enabled: false },
        }),
      ),
    );
    await vi.advanceTimersByTimeAsync(5_000);
    await stopAll(scheduler);
    expect(warehouse.runsOf('every_second').length).toBe(5);
    expect(warehouse.runsOf('by_hand')).toEqual([]);
    expect(warehouse.runsOf('off')).toEqual([]);
    expect(events.every((e) => e.outcome === 'ran')).toBe(true);
    // Each run started at or after its own tick, one per second.
    const starts = warehouse.runsOf('every_second').map((r) => r.startedAt.getTime());
    expect(new Set(starts.map((t) => Math.floor(t / 1000))).size).toBe(5);
  });

  it('runs each activation once per tick across two workers sharing one warehouse', async () => {
    const warehouse = new MemoryWarehouse();
    // Runs are quick (50 ms): the lock alone would let the slower worker run the tick again.
    const quick: Behaviour = (_id, signal) => sleepOrAbort(50, signal);
    const a = harness(warehouse, () => quick);
    const b = harness(warehouse, () => quick);
    const p = await project(
      tailorYml({ one: { schedule: '*/2 * * * * *' }, two: { schedule: '*/2 * * * * *' } }),
    );
    await a.scheduler.start(p);
    await b.scheduler.start(p);
    await vi.advanceTimersByTimeAsync(10_000);
    await stopAll(a.scheduler, b.scheduler);
    for (const id of ['one', 'two']) {
      const runs = warehouse.runsOf(id);
      const ticks = runs.map((r) => Math.floor(r.startedAt.getTime() / 2000));
      expect(runs.length).toBe(5);
      expect(new Set(ticks).size).toBe(runs.length);
    }
    const skipped = [...a.events, ...b.events].filter((e) => e.outcome === 'skipped');
    expect(skipped.length).toBe(10);
    expect(
      skipped.every((e) => e.outcome === 'skipped' && ['already_ran', 'lock_busy'].includes(e.reason)),
    ).toBe(true);
  });

  it('skips a tick while the previous run of the activation is still going', async () => {
    const warehouse = new MemoryWarehouse();
    const slow: Behaviour = (_id, signal) => sleepOrAbort(2_500, signal);
    const { scheduler, events } = harness(warehouse, () => slow);
    await scheduler.start(await project(tailorYml({ slow: { schedule: '* * * * * *' } })));
    await vi.advanceTimersByTimeAsync(6_000);
    await stopAll(scheduler);
    const runs = warehouse.runsOf('slow');
    // Runs at 1 s and 4 s (the ticks at 2 s and 3 s overlap the first, 5 s and 6 s the second).
    expect(runs.length).toBe(2);
    expect(
      events.filter((e) => e.outcome === 'skipped' && e.reason === 'running_here').length,
    ).toBeGreaterThan(0);
  });

  it('runs several activations in parallel, never more than the concurrency limit', async () => {
    const warehouse = new MemoryWarehouse();
    const slow: Behaviour = (_id, signal) => sleepOrAbort(300, signal);
    const { scheduler, engines } = harness(warehouse, () => slow, { concurrency: 2 });
    await scheduler.start(
      await project(
        tailorYml({
          a: { schedule: '*/5 * * * * *' },
          b: { schedule: '*/5 * * * * *' },
          c: { schedule: '*/5 * * * * *' },
          d: { schedule: '*/5 * * * * *' },
        }),
      ),
    );
    await vi.advanceTimersByTimeAsync(5_000);
    await stopAll(scheduler);
    expect(engines[0]!.maxActive).toBe(2);
    for (const id of ['a', 'b', 'c', 'd']) expect(warehouse.runsOf(id).length).toBe(1);
  });

  it('backs off after a failure, pauses after N in a row, and resumes on a config change', async () => {
    const warehouse = new MemoryWarehouse();
    let outcome: RunStatus | 'throw' = 'failed';
    const { scheduler, events } = harness(warehouse, () => async () => outcome, { maxFailures: 3 });
    const failing = await project(tailorYml({ bad: { schedule: '* * * * * *' } }));
    await scheduler.start(failing);
    // Failures at 1 s; backoff 10 s -> 11 s; 20 s -> 31 s: paused after the third.
    await vi.advanceTimersByTimeAsync(40_000);
    expect(warehouse.runsOf('bad').length).toBe(3);
    const status = warehouse.statuses.get('bad')!;
    expect(status.consecutiveFailures).toBe(3);
    expect(status.pausedAt).toBeInstanceOf(Date);
    expect(status.pausedReason).toMatch(/^3 consecutive failed runs; last failed: .*relation "nope"/);
    expect(scheduler.activations()[0]).toMatchObject({ id: 'bad', paused: true, nextRunAt: null });
    expect(events.filter((e) => e.outcome === 'skipped' && e.reason === 'backoff').length).toBeGreaterThan(5);
    const pausedSkips = events.filter((e) => e.outcome === 'skipped' && e.reason === 'paused').length;
    expect(pausedSkips).toBeGreaterThan(0);

    // The same config again: still paused.
    expect(
      (await scheduler.reload(() => project(tailorYml({ bad: { schedule: '* * * * * *' } })))).applied,
    ).toBe(true);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(warehouse.runsOf('bad').length).toBe(3);

    // A changed model (the fix): resumed at once, and the next tick runs.
    outcome = 'succeeded';
    const fixed = await project(tailorYml({ bad: { schedule: '* * * * * *', model: 'other' } }));
    expect((await scheduler.reload(async () => fixed)).applied).toBe(true);
    expect(warehouse.statuses.get('bad')).toMatchObject({ consecutiveFailures: 0, pausedAt: null });
    await vi.advanceTimersByTimeAsync(2_000);
    await stopAll(scheduler);
    expect(
      warehouse
        .runsOf('bad')
        .slice(3)
        .every((r) => r.status === 'succeeded'),
    ).toBe(true);
    expect(warehouse.runsOf('bad').length).toBeGreaterThan(3);
  });

  it('counts thrown errors as failures and resumes after a successful run by hand', async () => {
    const warehouse = new MemoryWarehouse();
    let behaviour: Behaviour = async () => 'throw';
    const { scheduler } = harness(warehouse, () => behaviour, { maxFailures: 1 });
    await scheduler.start(await project(tailorYml({ bad: { schedule: '* * * * * *' } })));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(warehouse.statuses.get('bad')).toMatchObject({ consecutiveFailures: 1 });
    expect(warehouse.statuses.get('bad')!.pausedReason).toContain('failed: model vip');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(warehouse.runsOf('bad').length).toBe(1);
    // The model is fixed and `tailor sync bad` succeeds (the sync engine knows nothing of pausing).
    await vi.advanceTimersByTimeAsync(1_000);
    behaviour = succeed;
    warehouse.runs.push({
      id: 'manual',
      activationId: 'bad',
      startedAt: new Date(),
      finishedAt: new Date(),
      status: 'succeeded',
      counts: ZERO,
      error: null,
    });
    await vi.advanceTimersByTimeAsync(1_500);
    await stopAll(scheduler);
    expect(warehouse.statuses.get('bad')).toMatchObject({ consecutiveFailures: 0, pausedAt: null });
    expect(warehouse.runsOf('bad').at(-1)!.status).toBe('succeeded');
  });

  it('keeps the old schedule when a reload finds an invalid config', async () => {
    const warehouse = new MemoryWarehouse();
    const { scheduler, engines } = harness(warehouse, () => succeed);
    await scheduler.start(await project(tailorYml({ a: { schedule: '* * * * * *' } })));
    await vi.advanceTimersByTimeAsync(2_000);
    const result = await scheduler.reload(() => project(tailorYml({ a: { schedule: 'every fortnight' } })));
    expect(result.applied).toBe(false);
    expect(result.error).toContain('activations.a.schedule');
    await vi.advanceTimersByTimeAsync(3_000);
    await stopAll(scheduler);
    expect(engines.length).toBe(1);
    expect(warehouse.runsOf('a').length).toBe(5);
  });

  it('applies a reload that arrives while starting after the start, leaving one schedule', async () => {
    const warehouse = new MemoryWarehouse();
    const { scheduler, engines } = harness(warehouse, () => succeed);
    const first = await project(tailorYml({ a: { schedule: '* * * * * *' } }));
    const second = await project(tailorYml({ b: { schedule: '* * * * * *' } }));
    const starting = scheduler.start(first);
    const reloading = scheduler.reload(async () => second);
    await starting;
    expect((await reloading).applied).toBe(true);
    expect(scheduler.activations().map((a) => a.id)).toEqual(['b']);
    await vi.advanceTimersByTimeAsync(3_000);
    await stopAll(scheduler);
    expect(engines.map((e) => e.closed)).toEqual([true, true]);
    expect(warehouse.runsOf('a')).toEqual([]);
    expect(warehouse.runsOf('b').length).toBe(3);
  });

  it('replaces the schedule on a valid reload without cutting an in-flight run short', async () => {
    const warehouse = new MemoryWarehouse();
    let signalSeen: AbortSignal | undefined;
    const slow: Behaviour = (_id, signal) => {
      signalSeen = signal;
      return sleepOrAbort(3_000, signal);
    };
    const { scheduler, engines } = harness(warehouse, () => slow);
    await scheduler.start(await project(tailorYml({ a: { schedule: '*/10 * * * * *' } })));
    await vi.advanceTimersByTimeAsync(10_500);
    expect(scheduler.health().inFlight.map((r) => r.activation)).toEqual(['a']);
    const reloaded = await scheduler.reload(() =>
      project(tailorYml({ a: { schedule: '*/10 * * * * *' }, b: { schedule: '* * * * * *' } })),
    );
    expect(reloaded.applied).toBe(true);
    expect(engines.length).toBe(2);
    expect(engines[0]!.closed).toBe(false);
    await vi.advanceTimersByTimeAsync(3_000);
    // The first run finished normally on the old engine, which then closed.
    expect(signalSeen?.aborted).toBe(false);
    expect(warehouse.runsOf('a')[0]!.status).toBe('succeeded');
    expect(engines[0]!.closed).toBe(true);
    expect(warehouse.runsOf('b').length).toBeGreaterThan(0);
    await stopAll(scheduler);
    expect(engines[1]!.closed).toBe(true);
  });

  it('on stop, lets in-flight runs finish within the deadline, else aborts them', async () => {
    const warehouse = new MemoryWarehouse();
    const signals: AbortSignal[] = [];
    const slow: Behaviour = (_id, signal) => {
      signals.push(signal!);
      return sleepOrAbort(5_000, signal);
    };
    const first = harness(warehouse, () => slow, { shutdownTimeoutMs: 10_000 });
    expect(first.scheduler.health().status).toBe('starting');
    await first.scheduler.start(await project(tailorYml({ a: { schedule: '* * * * * *' } })));
    await vi.advanceTimersByTimeAsync(1_500);
    expect(first.scheduler.health().status).toBe('ok');
    const stopped = first.scheduler.stop();
    expect(first.scheduler.health().status).toBe('shutting_down');
    await vi.advanceTimersByTimeAsync(6_000);
    await stopped;
    expect(signals[0]!.aborted).toBe(false);
    expect(warehouse.runsOf('a').map((r) => r.status)).toEqual(['succeeded']);
    expect(first.engines[0]!.closed).toBe(true);

    const second = harness(warehouse, () => slow, { shutdownTimeoutMs: 1_000 });
    await second.scheduler.start(await project(tailorYml({ a: { schedule: '* * * * * *' } })));
    await vi.advanceTimersByTimeAsync(1_000);
    const stopping = second.scheduler.stop();
    await vi.advanceTimersByTimeAsync(1_500);
    await stopping;
    expect(signals[1]!.aborted).toBe(true);
    expect(second.events.at(-1)).toEqual({ activationId: 'a', outcome: 'aborted' });
    // An aborted run is not a failure of the activation.
    expect(warehouse.statuses.get('a')).toBeUndefined();
  });

  it('runs an interval activation a fixed time after its last run ended, as the run log says', async () => {
    const warehouse = new MemoryWarehouse();
    const takes =
      (ms: number): Behaviour =>
      (_id, signal) =>
        sleepOrAbort(ms, signal);
    const { scheduler } = harness(warehouse, () => takes(30_000));
    // A run ended 50 minutes ago (another worker, or a `tailor sync`): due in 10 minutes.
    warehouse.runs.push({
      id: 'earlier',
      activationId: 'hourly',
      startedAt: new Date(Date.now() - 51 * 60_000),
      finishedAt: new Date(Date.now() - 50 * 60_000),
      status: 'succeeded',
      counts: ZERO,
      error: null,
    });
    await scheduler.start(await project(tailorYml({ hourly: { schedule: 'every 1 hours' } })));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(scheduler.activations()[0]!.nextRunAt?.getTime()).toBe(
      warehouse.runs[0]!.finishedAt!.getTime() + 3_600_000,
    );
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(warehouse.runsOf('hourly').length).toBe(2);
    const second = warehouse.runsOf('hourly')[1]!;
    // The run takes 30 s; the next is due an hour after it ended, not after it began.
    await vi.advanceTimersByTimeAsync(60 * 60_000);
    expect(warehouse.runsOf('hourly').length).toBe(2);
    await vi.advanceTimersByTimeAsync(31_000);
    expect(warehouse.runsOf('hourly').length).toBe(3);
    expect(warehouse.runsOf('hourly')[2]!.startedAt.getTime()).toBe(second.finishedAt!.getTime() + 3_600_000);
    await stopAll(scheduler);
  });

  it('serves /healthz and /metrics with runs, members, next run and X requests', async () => {
    vi.useRealTimers();
    const warehouse = new MemoryWarehouse();
    const metrics = new SchedulerMetrics();
    const { scheduler } = harness(warehouse, () => succeed, { metrics });
    await scheduler.start(
      await project(tailorYml({ fast: { schedule: '* * * * * *' }, later: { schedule: '0 0 1 1 *' } })),
    );
    const server = await startOpsServer({
      host: '127.0.0.1',
      port: 0,
      metrics,
      health: () => scheduler.health(),
      logger,
    });
    try {
      metrics.observer.onRequest?.({
        destination: 'x',
        endpoint: 'custom_audiences/:id/users',
        method: 'POST',
        status: 429,
        attempt: 1,
        durationMs: 3,
      });
      metrics.observer.onRequest?.({
        destination: 'x',
        endpoint: 'custom_audiences/:id/users',
        method: 'POST',
        status: 200,
        attempt: 2,
        durationMs: 3,
      });
      await vi.waitFor(() => expect(warehouse.runsOf('fast').length).toBeGreaterThan(0), { timeout: 3_000 });
      await vi.waitFor(async () => {
        const text = await (await fetch(`${server.url}/metrics`)).text();
        expect(text).toContain('tailor_runs_total{activation="fast",status="succeeded"}');
      });
      const response = await fetch(`${server.url}/metrics`);
      expect(response.headers.get('content-type')).toContain('text/plain');
      const text = await response.text();
      expect(text).toMatch(/tailor_members_total\{activation="fast",change="added"\} \d+/);
      expect(text).toMatch(/tailor_last_success_timestamp_seconds\{activation="fast"\} \d+/);
      expect(text).toContain(
        `tailor_next_run_timestamp_seconds{activation="later"} ${Date.UTC(2027, 0, 1) / 1000}`,
      );
      expect(text).toContain(
        'tailor_destination_requests_total{destination="x",endpoint="custom_audiences/:id/users",status="429"} 1',
      );
      expect(text).toContain(
        'tailor_destination_retries_total{destination="x",endpoint="custom_audiences/:id/users",status="200"} 1',
      );
      expect(text).toContain('tailor_run_duration_seconds_bucket{le="0.5",activation="fast"}');
      expect(text).toContain('tailor_activation_paused{activation="fast"} 0');

      const health = await fetch(`${server.url}/healthz`);
      expect(health.status).toBe(200);
      const body = (await health.json()) as { activations: { id: string }[] };
      expect(body).toMatchObject({
        status: 'ok',
        uptimeSeconds: expect.any(Number),
        inFlight: expect.any(Array),
      });
      expect(body.activations.map((a: { id: string }) => a.id)).toEqual(['fast', 'later']);
      expect(body.activations[1]).toMatchObject({
        schedule: '0 0 1 1 *',
        nextRunAt: '2027-01-01T00:00:00.000Z',
      });

      const stopping = scheduler.stop();
      expect((await fetch(`${server.url}/healthz`)).status).toBe(503);
      await stopping;
      expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    } finally {
      await scheduler.stop();
      await server.close();
    }
  });
});
