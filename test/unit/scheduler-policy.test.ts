import { rm } from 'node:fs/promises';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { loadProject } from '../../src/config/load-project.js';
import { resolveActivation } from '../../src/config/resolve-activation.js';
import { parseSchedule, type Schedule } from '../../src/config/schedule.js';
import type { ActivationStatus, RunRecord } from '../../src/diff/types.js';
import { backoffMs } from '../../src/scheduler/backoff.js';
import { activationFingerprint } from '../../src/scheduler/fingerprint.js';
import { cronNextRuns, plannedNextRun } from '../../src/scheduler/next-run.js';
import { resolvePause } from '../../src/scheduler/pausing.js';
import { Semaphore } from '../../src/scheduler/semaphore.js';
import { MINIMAL_TAILOR_YML, makeProject, VIP_MODEL } from '../helpers/project.js';
import { runCountsOf } from '../helpers/counts.js';

const policy = { initialMs: 30_000, maxMs: 3_600_000 };

const schedule = (text: string): Schedule => {
  const parsed = parseSchedule(text);
  if ('error' in parsed) throw new Error(parsed.error);
  return parsed;
};

const run = (startedAt: string, finishedAt: string | null, status: RunRecord['status']): RunRecord => ({
  id: startedAt,
  activationId: 'a',
  startedAt: new Date(startedAt),
  finishedAt: finishedAt === null ? null : new Date(finishedAt),
  status,
  counts: runCountsOf(),
  error: null,
});

const status = (over: Partial<ActivationStatus>): ActivationStatus => ({
  activationId: 'a',
  consecutiveFailures: 0,
  pausedAt: null,
  pausedReason: null,
  configFingerprint: 'f1',
  updatedAt: new Date('2026-01-01T00:00:00Z'),
  ...over,
});

describe('backoff', () => {
  it('doubles from the initial wait and never exceeds the cap', () => {
    expect([0, 1, 2, 3, 4].map((n) => backoffMs(n, policy))).toEqual([0, 30_000, 60_000, 120_000, 240_000]);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), (n) => {
        const wait = backoffMs(n, policy);
        expect(wait).toBeLessThanOrEqual(policy.maxMs);
        expect(wait).toBeGreaterThanOrEqual(backoffMs(n - 1, policy));
        expect(Number.isFinite(wait)).toBe(true);
      }),
    );
  });
});

describe('pausing', () => {
  const now = new Date('2026-01-02T00:00:00Z');
  const paused = status({
    consecutiveFailures: 5,
    pausedAt: new Date('2026-01-01T12:00:00Z'),
    pausedReason: '5 consecutive failed runs',
  });

  it('stays paused with the same config and no newer success', () => {
    const runs = [run('2026-01-01T11:00:00Z', '2026-01-01T11:01:00Z', 'succeeded')];
    expect(resolvePause(paused, 'f1', runs, now)).toEqual({ status: paused, resumed: null });
  });

  it('resumes when the config fingerprint changed', () => {
    const result = resolvePause(paused, 'f2', [], now);
    expect(result.resumed).toBe('config_changed');
    expect(result.status).toMatchObject({ consecutiveFailures: 0, pausedAt: null, configFingerprint: 'f2' });
  });

  it('resumes after a run succeeded since the pause (a tailor sync by hand)', () => {
    const runs = [
      run('2026-01-01T13:00:00Z', '2026-01-01T13:01:00Z', 'succeeded'),
      run('2026-01-01T11:00:00Z', '2026-01-01T11:01:00Z', 'failed'),
    ];
    expect(resolvePause(paused, 'f1', runs, now).resumed).toBe('synced');
    expect(
      resolvePause(paused, 'f1', [run('2026-01-01T13:00:00Z', null, 'running')], now).resumed,
    ).toBeNull();
  });

  it('clears the failure count of a failing, unpaused activation after a later success', () => {
    const failing = status({ consecutiveFailures: 2 });
    const result = resolvePause(
      failing,
      'f1',
      [run('2026-01-01T01:00:00Z', '2026-01-01T01:00:10Z', 'succeeded')],
      now,
    );
    expect(result).toMatchObject({ resumed: 'synced', status: { consecutiveFailures: 0 } });
  });
});

describe('next run', () => {
  const now = new Date();

  it('follows cron in the activation time zone', () => {
    const [next] = cronNextRuns('0 9 * * *', 'Asia/Tokyo', 1);
    expect(next!.getUTCHours()).toBe(0);
    expect(next!.getTime()).toBeGreaterThan(now.getTime());
    const planned = plannedNextRun({
      schedule: schedule('0 9 * * *'),
      timezone: 'Asia/Tokyo',
      enabled: true,
      lastRun: undefined,
      status: undefined,
      now,
      backoff: policy,
    });
    expect(planned).toEqual({ at: next, reason: 'scheduled' });
  });

  it('is an interval after the last run ended, or now when it never ran', () => {
    const base = {
      schedule: schedule('every 6 hours'),
      timezone: 'UTC',
      enabled: true,
      status: undefined,
      now,
    };
    const last = run('2026-01-01T00:00:00Z', '2026-01-01T00:10:00Z', 'succeeded');
    expect(plannedNextRun({ ...base, lastRun: last, backoff: policy }).at).toEqual(
      new Date('2026-01-01T06:10:00Z'),
    );
    expect(plannedNextRun({ ...base, lastRun: undefined, backoff: policy }).at).toEqual(now);
  });

  it('is never for manual, disabled and paused activations', () => {
    const base = { timezone: 'UTC', lastRun: undefined, now, backoff: policy };
    expect(
      plannedNextRun({ ...base, schedule: schedule('manual'), enabled: true, status: undefined }),
    ).toEqual({
      at: null,
      reason: 'manual',
    });
    expect(
      plannedNextRun({ ...base, schedule: schedule('0 0 * * *'), enabled: false, status: undefined }).reason,
    ).toBe('disabled');
    expect(
      plannedNextRun({
        ...base,
        schedule: schedule('every 1 hours'),
        enabled: true,
        status: status({ pausedAt: now }),
      }),
    ).toEqual({ at: null, reason: 'paused' });
  });

  it('skips cron ticks inside the backoff window', () => {
    const failing = status({ consecutiveFailures: 3, updatedAt: now }); // 2 minutes of backoff
    const planned = plannedNextRun({
      schedule: schedule('* * * * * *'),
      timezone: 'UTC',
      enabled: true,
      lastRun: undefined,
      status: failing,
      now,
      backoff: policy,
    });
    expect(planned.reason).toBe('backoff');
    expect(planned.at!.getTime()).toBeGreaterThanOrEqual(now.getTime() + 120_000);
    expect(planned.at!.getTime()).toBeLessThan(now.getTime() + 122_000);
  });
});

describe('config fingerprint', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });
  const fingerprint = async (yml: string, sql = 'select customer_id, email from customers') => {
    const dir = await makeProject({ 'tailor.yml': yml, ...VIP_MODEL, 'models/vip.sql': sql });
    dirs.push(dir);
    const project = await loadProject(dir, { X_CONSUMER_SECRET: 'secret-one' });
    return activationFingerprint(resolveActivation(project, 'vip_x'));
  };

  it('changes with what a run does, not with credentials or the project folder', async () => {
    const base = await fingerprint(MINIMAL_TAILOR_YML);
    expect(await fingerprint(MINIMAL_TAILOR_YML)).toBe(base);
    expect(base).toMatch(/^[0-9a-f]{64}$/);
    expect(await fingerprint(MINIMAL_TAILOR_YML.replace('consumer_key: ck', 'consumer_key: other'))).toBe(
      base,
    );
    expect(
      await fingerprint(MINIMAL_TAILOR_YML, 'select customer_id, email from customers where vip'),
    ).not.toBe(base);
    expect(await fingerprint(`${MINIMAL_TAILOR_YML}    mode: upsert\n`)).not.toBe(base);
    expect(await fingerprint(`${MINIMAL_TAILOR_YML}    schedule: every 2 hours\n`)).not.toBe(base);
  });
});

describe('semaphore', () => {
  it('never lets more than the limit hold at once, and serves every waiter', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 20 }),
        async (limit, delays) => {
          const semaphore = new Semaphore(limit);
          let holding = 0;
          let most = 0;
          let finished = 0;
          await Promise.all(
            delays.map(async (delay) => {
              await semaphore.acquire();
              holding++;
              most = Math.max(most, holding);
              for (let i = 0; i < delay; i++) await Promise.resolve();
              holding--;
              finished++;
              semaphore.release();
            }),
          );
          expect(most).toBeLessThanOrEqual(limit);
          expect(finished).toBe(delays.length);
          expect(semaphore.held).toBe(0);
        },
      ),
    );
  });

  it('drops a waiter whose signal aborts', async () => {
    const semaphore = new Semaphore(1);
    await semaphore.acquire();
    const controller = new AbortController();
    const waiting = semaphore.acquire(controller.signal);
    controller.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
    expect(semaphore.waiting).toBe(0);
    semaphore.release();
    expect(semaphore.held).toBe(0);
  });
});
