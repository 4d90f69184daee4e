import type { Logger } from 'pino';
import type { AudienceInfo } from '../destinations/destination.js';
import { errorMessage } from '../errors.js';
import { type MatchRate, matchRate, matchRateJson } from '../sync/match-rate.js';
import type { SyncEngine, SyncOptions, SyncReport } from '../sync/types.js';
import type { AlertNotifier } from './alert-delivery.js';
import { type AlertEvent, eventsForRun, previousRuns } from './alert-events.js';

export interface AlertingDeps {
  logger: Logger;
  now?: () => Date;
  /**
   * Asks X for the audience after every successful run (not only when an alert needs it) and hands
   * over the match rate: the scheduler's /metrics gauges.
   */
  onMatchRate?: (activationId: string, rate: MatchRate) => void;
}

/** Runs read to find the previous settled run behind a few interrupted ones. */
const RECENT_RUNS = 10;

/**
 * After a run, reads what the alerts need (the run log, the audience binding, and X's view of the
 * audience only when an alert asks about targetability or match rate), logs the match rate, and
 * sends the alerts the run's state changes call for. Never throws: an alert is not the run.
 */
export async function alertAfterRun(
  engine: SyncEngine,
  notifier: AlertNotifier,
  report: SyncReport,
  deps: AlertingDeps & { signal?: AbortSignal },
): Promise<AlertEvent[]> {
  const alerts = notifier.forActivation(report.activationId);
  const measure = deps.onMatchRate !== undefined;
  if ((alerts.length === 0 && !measure) || report.runId === null) return [];
  const log = deps.logger.child({ run: report.runId, activation: report.activationId });
  try {
    const state = engine.state();
    const [runs, binding] = await Promise.all([
      state.listRuns({ activationId: report.activationId, limit: RECENT_RUNS }),
      state.getBinding(report.activationId),
    ]);
    let audience: AudienceInfo | null = null;
    let rate: MatchRate | null = null;
    const asksX = alerts.some(
      ([, alert]) => alert.events.includes('not_targetable') || alert.events.includes('low_match_rate'),
    );
    if (report.status === 'succeeded' && (asksX || measure) && binding) {
      const activation = engine.project.config.activations[report.activationId];
      if (activation) {
        audience =
          (await engine.destination(activation.destination).getAudience(binding.audienceId, deps.signal)) ??
          null;
        if (audience) {
          const sent = await state.identifiedMemberCount(report.activationId);
          rate = matchRate(audience, sent, report.counts.rows);
          log.info({ matchRate: matchRateJson(rate) }, 'match rate');
          deps.onMatchRate?.(report.activationId, rate);
        }
      }
    }
    const facts = {
      report,
      ...previousRuns(runs, report.runId),
      firstSyncAt: binding?.boundAt ?? null,
      audience,
      matchRate: rate,
      now: deps.now?.() ?? new Date(),
    };
    const sent: AlertEvent[] = [];
    await Promise.all(
      alerts.map(async ([name, alert]) => {
        const events = eventsForRun(alert, facts);
        sent.push(...events);
        await notifier.deliver(name, alert, events);
      }),
    );
    return sent;
  } catch (error) {
    log.error({ err: { message: errorMessage(error) } }, 'could not evaluate alerts for this run');
    return [];
  }
}

/**
 * An engine whose runs (not plans) are followed by their alerts: what `tailor sync` and the
 * scheduler both run through, so each sends the same alerts for the same state changes.
 */
export function withAlerts(engine: SyncEngine, notifier: AlertNotifier, deps: AlertingDeps): SyncEngine {
  if (!notifier.configured && !deps.onMatchRate) return engine;
  const sync = async (activationId: string, options: SyncOptions): Promise<SyncReport> => {
    const report = await engine.sync(activationId, options);
    if (!options.dryRun && report.status !== 'skipped') await alertAfterRun(engine, notifier, report, deps);
    return report;
  };
  return new Proxy(engine, {
    get(target, property, receiver) {
      if (property === 'sync') return sync;
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}
