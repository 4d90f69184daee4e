import { describe, expect, it } from 'vitest';
import { type RunFacts, eventsForRun, previousRuns } from '../../src/alerts/alert-events.js';
import { alertConfigSchema } from '../../src/alerts/alerts-config.js';
import type { AudienceInfo } from '../../src/destinations/destination.js';
import type { RunRecord } from '../../src/diff/types.js';
import { matchRate } from '../../src/sync/match-rate.js';
import type { SyncReport } from '../../src/sync/types.js';
import { runCountsOf } from '../helpers/counts.js';

const alert = alertConfigSchema.parse({
  type: 'webhook',
  url: 'http://127.0.0.1:1/hook',
  not_targetable_after_hours: 48,
  min_match_rate: 0.3,
  match_rate_after_hours: 24,
});

const H = 3_600_000;
const t0 = new Date('2026-12-01T00:00:00Z');
const at = (hours: number) => new Date(t0.getTime() + hours * H);

const counts = runCountsOf({ rows: 100 });
const report = (status: SyncReport['status'], error: string | null = null): SyncReport => ({
  activationId: 'vip_x',
  runId: 'r-now',
  status,
  counts: { ...counts, invalidByReason: {} },
  audienceId: 'aud1',
  durationMs: 1,
  error,
  warnings: [],
});
const audience = (size: number | null, targetable: boolean | null): AudienceInfo => ({
  id: 'aud1',
  name: 'VIP',
  description: null,
  size,
  targetable,
  reasonsNotTargetable: targetable === false ? ['TOO_SMALL'] : [],
  deleted: false,
  createdAt: null,
  updatedAt: '2026-12-02T00:00:00Z',
});
const facts = (over: Partial<RunFacts>): RunFacts => ({
  report: report('succeeded'),
  previousStatus: 'succeeded',
  previousFinishedAt: at(1),
  firstSyncAt: t0,
  audience: null,
  matchRate: null,
  now: at(2),
  ...over,
});
const kinds = (f: RunFacts) => eventsForRun(alert, f).map((e) => e.kind);

describe('alert events: one per state change, derived from the run log', () => {
  it('tells a failure or a hold once, and the recovery after it', () => {
    expect(kinds(facts({ report: report('failed', 'boom'), previousStatus: 'succeeded' }))).toEqual([
      'run_failed',
    ]);
    expect(kinds(facts({ report: report('failed', 'boom'), previousStatus: null }))).toEqual(['run_failed']);
    expect(kinds(facts({ report: report('failed', 'boom'), previousStatus: 'failed' }))).toEqual([]);
    expect(kinds(facts({ report: report('held', 'too many'), previousStatus: 'failed' }))).toEqual([
      'run_held',
    ]);
    expect(kinds(facts({ report: report('held', 'too many'), previousStatus: 'held' }))).toEqual([]);
    expect(kinds(facts({ previousStatus: 'held' }))).toEqual(['recovered']);
    expect(kinds(facts({ previousStatus: 'succeeded' }))).toEqual([]);
  });

  it('judges targetability once, by the first run after the set time since the first sync', () => {
    const notTargetable = audience(50, false);
    // Before 48 h: too early. The first run after 48 h: alert. The next run: already told.
    expect(kinds(facts({ audience: notTargetable, previousFinishedAt: at(40), now: at(47) }))).toEqual([]);
    expect(kinds(facts({ audience: notTargetable, previousFinishedAt: at(47), now: at(49) }))).toEqual([
      'not_targetable',
    ]);
    expect(kinds(facts({ audience: notTargetable, previousFinishedAt: at(49), now: at(55) }))).toEqual([]);
    expect(kinds(facts({ audience: audience(500, true), previousFinishedAt: at(47), now: at(49) }))).toEqual(
      [],
    );
  });

  it('judges the match rate (matched ÷ sent) once, after its own delay, when X has sized the audience', () => {
    const low = matchRate(audience(200, true), 1000, 1200);
    expect(low).toMatchObject({ ofSent: 0.2, ofRows: 0.1667 });
    const events = eventsForRun(alert, facts({ matchRate: low, previousFinishedAt: at(20), now: at(25) }));
    expect(events.map((e) => e.kind)).toEqual(['low_match_rate']);
    expect(events[0]!.message).toBe('X matched 20.0% of the members sent (200 of 1000), below 30.0%');
    expect(kinds(facts({ matchRate: low, previousFinishedAt: at(25), now: at(30) }))).toEqual([]);
    const fine = matchRate(audience(600, true), 1000, 1200);
    expect(kinds(facts({ matchRate: fine, previousFinishedAt: at(20), now: at(25) }))).toEqual([]);
    const sizing = matchRate(audience(null, null), 1000, 1200);
    expect(sizing.ofSent).toBeNull();
    expect(kinds(facts({ matchRate: sizing, previousFinishedAt: at(20), now: at(25) }))).toEqual([]);
  });

  it('reads the previous settled status past interrupted runs', () => {
    const run = (id: string, status: RunRecord['status'], hours: number): RunRecord => ({
      id,
      activationId: 'vip_x',
      startedAt: at(hours),
      finishedAt: at(hours + 0.1),
      status,
      counts,
      error: null,
    });
    const runs = [run('r-now', 'succeeded', 10), run('r3', 'interrupted', 9), run('r2', 'failed', 8)];
    expect(previousRuns(runs, 'r-now')).toEqual({ previousStatus: 'failed', previousFinishedAt: at(9.1) });
    expect(previousRuns([run('r-now', 'failed', 1)], 'r-now')).toEqual({
      previousStatus: null,
      previousFinishedAt: null,
    });
  });
});
