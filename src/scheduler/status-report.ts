import type { ResolvedActivation } from '../config/resolve-activation.js';
import type { AudienceInfo } from '../destinations/destination.js';
import type { ActivationStatus, RunRecord } from '../diff/types.js';
import { errorMessage, WarehouseError } from '../errors.js';
import { type MatchRate, matchRate } from '../sync/match-rate.js';
import type { SyncEngine } from '../sync/types.js';
import { type BackoffPolicy, DEFAULT_BACKOFF } from './backoff.js';
import { activationFingerprint } from './fingerprint.js';
import { type NextRunReason, plannedNextRun } from './next-run.js';
import { resolvePause } from './pausing.js';

/** Everything `tailor status` shows about one activation. */
export interface ActivationStatusView {
  id: string;
  enabled: boolean;
  schedule: string;
  timezone: string;
  nextRunAt: Date | null;
  nextRunReason: NextRunReason;
  lastRun: RunRecord | null;
  lastSuccessAt: Date | null;
  paused: boolean;
  pausedAt: Date | null;
  pausedReason: string | null;
  consecutiveFailures: number;
  /** The bound audience (or the one named by id in tailor.yml); null before the first run binds one. */
  audienceId: string | null;
  /** What X says about it; null when there is no audience or X could not be asked. */
  audience: AudienceInfo | null;
  /** Why X's view is missing (unreachable, refused, deleted), in words; null when it is there. */
  audienceError: string | null;
  /**
   * X's matched size ÷ members sent with a valid identifier, and ÷ rows of the last successful run,
   * with when X last processed the audience; null when X's view of the audience is missing. What the
   * web UI shows as the match rate.
   */
  matchRate: MatchRate | null;
}

/** Runs read per activation: enough to find the last success behind a streak of failures. */
const RECENT_RUNS = 20;

/**
 * Reads the state of each activation from the warehouse (runs, pause status, binding) and asks the
 * destination for its audience's size and targetability. A warehouse that cannot be read throws
 * WarehouseError (the command fails); a destination that cannot be reached is reported per
 * activation and the rest still shows.
 */
export async function describeActivations(
  engine: SyncEngine,
  activations: readonly ResolvedActivation[],
  options: { now?: Date; backoff?: BackoffPolicy; signal?: AbortSignal; audienceTimeoutMs?: number } = {},
): Promise<ActivationStatusView[]> {
  const now = options.now ?? new Date();
  const state = engine.state();
  let statuses: Map<string, ActivationStatus>;
  let perActivation: { runs: RunRecord[]; boundAudience: string | undefined }[];
  try {
    statuses = new Map((await state.listActivationStatus()).map((s) => [s.activationId, s]));
    perActivation = await Promise.all(
      activations.map(async (activation) => {
        const [runs, binding] = await Promise.all([
          state.listRuns({ activationId: activation.id, limit: RECENT_RUNS }),
          state.getBinding(activation.id),
        ]);
        return { runs, boundAudience: binding?.audienceId };
      }),
    );
  } catch (error) {
    if (error instanceof WarehouseError) throw error;
    throw new WarehouseError(`could not read the state in the warehouse: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  return Promise.all(
    activations.map(async (activation, index) => {
      const { runs, boundAudience } = perActivation[index]!;
      // Show what the scheduler will act on: a pause lifted by a later success or a config change
      // reads as not paused, though only the scheduler writes the reset.
      const { status } = resolvePause(
        statuses.get(activation.id),
        activationFingerprint(activation),
        runs,
        now,
      );
      const next = plannedNextRun({
        schedule: activation.schedule,
        timezone: activation.timezone,
        enabled: activation.enabled,
        lastRun: runs[0],
        status,
        now,
        backoff: options.backoff ?? DEFAULT_BACKOFF,
      });
      const lastSuccess = runs.find((run) => run.status === 'succeeded');
      const audienceId = boundAudience ?? ('id' in activation.audience ? activation.audience.id : null);
      const view: ActivationStatusView = {
        id: activation.id,
        enabled: activation.enabled,
        schedule: activation.schedule.text,
        timezone: activation.timezone,
        nextRunAt: next.at,
        nextRunReason: next.reason,
        lastRun: runs[0] ?? null,
        lastSuccessAt: lastSuccess ? (lastSuccess.finishedAt ?? lastSuccess.startedAt) : null,
        paused: Boolean(status?.pausedAt),
        pausedAt: status?.pausedAt ?? null,
        pausedReason: status?.pausedAt ? status.pausedReason : null,
        consecutiveFailures: status?.consecutiveFailures ?? 0,
        audienceId,
        audience: null,
        audienceError: null,
        matchRate: null,
      };
      if (audienceId === null) return view;
      const signals = [AbortSignal.timeout(options.audienceTimeoutMs ?? 15_000)];
      if (options.signal) signals.push(options.signal);
      try {
        const info = await engine
          .destination(activation.destinationName)
          .getAudience(audienceId, AbortSignal.any(signals));
        if (info) {
          view.audience = info;
          const sent = await engine.state().identifiedMemberCount(activation.id);
          view.matchRate = matchRate(info, sent, lastSuccess?.counts.rows ?? null);
        } else
          view.audienceError = `audience ${audienceId} no longer exists at ${activation.destinationName}`;
      } catch (error) {
        view.audienceError = `could not reach ${activation.destinationName}: ${errorMessage(error)}`;
      }
      return view;
    }),
  );
}
