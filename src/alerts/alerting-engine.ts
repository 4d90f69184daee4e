import type { Logger } from 'pino';
import { errorMessage } from '../errors.js';
import { type MatchRate, matchRateJson } from '../sync/match-rate.js';
import type { SyncEngine, SyncOptions, SyncReport } from '../sync/types.js';
import type { AlertNotifier } from './alert-delivery.js';
import { type AlertEvent, eventsForRun, previousRuns } from './alert-events.js';

export interface AlertingDeps {
  logger: Logger;
  now?: () => Date;
  /** Takes the match rate of every successful run (X's view, asked once by the engine): /metrics. */
  onMatchRate?: (activationId: string, rate: MatchRate) => void;
}

/** Runs read to find the previous settled run behind a few interrupted ones. */
const RECENT_RUNS = 10;

/**
 * After a run, logs its match rate and hands it on, then reads what the alerts need (the run log and
 * the audience binding; X's view of the audience comes with the report) and sends the alerts the
 * run's state changes call for. Never throws: an alert is not the run.
 */
export async function alertAfterRun(
  engine: SyncEngine,
  notifier: AlertNotifier,
  report: SyncReport,
  deps: AlertingDeps & { signal?: AbortSignal },
): Promise<AlertEvent[]> {
  if (report.runId === null) return [];
  const log = deps.logger.child({ run: report.runId, activation: report.activationId });
  // The engine asked X for the audience once, after the run (absent when the run did not succeed).
  const audience = report.audience ?? null;
  const rate = report.matchRate ?? null;
  if (rate) {
    log.info({ matchRate: matchRateJson(rate) }, 'match rate');
    deps.onMatchRate?.(report.activationId, rate);
  }
  const alerts = notifier.forActivation(report.activationId);
  if (alerts.length === 0) return [];
  try {
    const state = engine.state();
    const [runs, binding] = await Promise.all([
      state.listRuns({ activationId: report.activationId, limit: RECENT_RUNS }),
      state.getBinding(report.activationId),
    ]);
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
