import type { AudienceInfo } from '../destinations/destination.js';
import type { RunRecord, RunStatus } from '../diff/types.js';
import type { MatchRate } from '../sync/match-rate.js';
import type { SyncReport } from '../sync/types.js';
import type { AlertConfig, AlertEventKind } from './alerts-config.js';

/** One state change of an activation, as an alert reports it. Never carries an identifier. */
export interface AlertEvent {
  kind: AlertEventKind;
  activationId: string;
  /** One line a person can act on. */
  message: string;
  runId: string | null;
  audienceId: string | null;
  at: Date;
  matchRate?: MatchRate;
}

/** What is known of an activation right after one of its runs. */
export interface RunFacts {
  report: SyncReport;
  /** The status of the activation's last settled run (succeeded, failed or held) before this one. */
  previousStatus: RunStatus | null;
  /** When the run before this one (of any status) finished: thresholds crossed since are new. */
  previousFinishedAt: Date | null;
  /** When the activation's audience was bound: its first sync. */
  firstSyncAt: Date | null;
  audience: AudienceInfo | null;
  matchRate: MatchRate | null;
  now: Date;
}

const SETTLED: readonly RunStatus[] = ['succeeded', 'failed', 'held'];

/**
 * The run before `runId` whose outcome says something about the activation's state (interrupted and
 * abandoned runs say nothing), and when the run just before this one finished. Runs come newest first.
 */
export function previousRuns(
  runs: readonly RunRecord[],
  runId: string | null,
): { previousStatus: RunStatus | null; previousFinishedAt: Date | null } {
  const earlier = runs.filter((run) => run.id !== runId && run.status !== 'running');
  const settled = earlier.find((run) => SETTLED.includes(run.status));
  const last = earlier[0];
  return {
    previousStatus: settled?.status ?? null,
    previousFinishedAt: last ? (last.finishedAt ?? last.startedAt) : null,
  };
}

/**
 * Whether `hours` after the first sync falls in (the previous run, now]: a threshold is judged once,
 * by the first run after it passes, so an alert is sent once per audience, not once per run. The
 * state is the run log's: nothing else is stored.
 */
function crossed(facts: RunFacts, hours: number): boolean {
  if (!facts.firstSyncAt) return false;
  const due = facts.firstSyncAt.getTime() + hours * 3_600_000;
  if (due > facts.now.getTime()) return false;
  return facts.previousFinishedAt === null || facts.previousFinishedAt.getTime() < due;
}

const percent = (rate: number) => `${(rate * 100).toFixed(1)}%`;

/**
 * The state changes one run makes, for one alert's thresholds. One alert per change: a second failed
 * run in a row is not a new failure, a success after a failure or hold is `recovered`.
 */
export function eventsForRun(alert: AlertConfig, facts: RunFacts): AlertEvent[] {
  const { report } = facts;
  const base = {
    activationId: report.activationId,
    runId: report.runId,
    audienceId: report.audienceId,
    at: facts.now,
  };
  const events: AlertEvent[] = [];
  const previous = facts.previousStatus;
  if (report.status === 'failed' && previous !== 'failed')
    events.push({ ...base, kind: 'run_failed', message: `run failed: ${report.error ?? 'no reason given'}` });
  if (report.status === 'held' && previous !== 'held')
    events.push({
      ...base,
      kind: 'run_held',
      message: `run held by a safety rule: ${report.error ?? 'no reason given'} (tailor sync ${report.activationId} --force sends it)`,
    });
  if (report.status === 'succeeded') {
    if (previous === 'failed' || previous === 'held')
      events.push({
        ...base,
        kind: 'recovered',
        message: `recovered: a run succeeded after a ${previous} run`,
      });
    const audience = facts.audience;
    if (audience?.targetable === false && crossed(facts, alert.not_targetable_after_hours)) {
      const reasons =
        audience.reasonsNotTargetable.length > 0 ? `: ${audience.reasonsNotTargetable.join(', ')}` : '';
      events.push({
        ...base,
        kind: 'not_targetable',
        message: `audience ${audience.id} is still not targetable ${alert.not_targetable_after_hours} h after its first sync${reasons}`,
      });
    }
    const rate = facts.matchRate;
    if (
      rate &&
      rate.ofSent !== null &&
      rate.ofSent < alert.min_match_rate &&
      crossed(facts, alert.match_rate_after_hours)
    ) {
      events.push({
        ...base,
        kind: 'low_match_rate',
        message: `X matched ${percent(rate.ofSent)} of the members sent (${rate.audienceSize} of ${rate.sent}), below ${percent(alert.min_match_rate)}`,
        matchRate: rate,
      });
    }
  }
  return events;
}
