import type { Logger } from 'pino';
import type { Project } from '../config/load-project.js';
import { type ResolvedActivation, resolveActivation } from '../config/resolve-activation.js';
import type { AudienceInfo, Destination } from '../destinations/destination.js';
import { createDestination } from '../destinations/registry.js';
import type { DiffRun, RejectionRecord, RunMatch, StateStore } from '../diff/types.js';
import { ConfigError, errorMessage, isTailorError, LockBusyError } from '../errors.js';
import { createStateStore } from '../diff/state-store.js';
import { openSource } from '../sources/registry.js';
import type { ColumnInfo, Source } from '../sources/source.js';
import { bindAudience } from './bind-audience.js';
import { countInvalid, emptyCounts, runCounts } from './counts.js';
import { actualColumn, checkMappings } from './mappings.js';
import {
  countDelta,
  countSuppressedMembers,
  deleteSuppressedHashes,
  deliverDelta,
  estimateRemovals,
  passCacheLimit,
  type PreparedBatch,
  removeSuppressedMembers,
} from './pipeline.js';
import { refreshSuppression, suppressionStateIds } from './suppression.js';
import {
  heldSampleFor,
  mayDelete,
  type RemovalEstimate,
  removalHoldFrom,
  segmentHold,
  settledBeforePass,
  startEstimate,
} from './safety.js';
import type { SyncCounts, SyncDeps, SyncEngine, SyncOptions, SyncReport } from './types.js';
import { activationWarnings } from './warnings.js';
import { matchRateOfRun } from './match-rate.js';

/**
 * One run of an activation, top-down: take the activation's lock, record the run, bind the audience
 * (bind-audience.ts), snapshot and diff the model in the warehouse, apply the safety rules
 * (safety.ts), move the delta (pipeline.ts: prepare, plan, send, commit) and record how it ended.
 */

/**
 * Delta rows per batch: each batch is hashed, sent and committed. 10,000 members fit one request of
 * X's users endpoint when each is one user object (about 300 bytes with four identifiers, against
 * the 4,000,000-byte request budget). A changed member adds a Delete of only the identifiers it lost,
 * so 10,000 changed members took one request in the benchmark; more changed identifiers take two.
 */
export const DELTA_BATCH_SIZE = 10_000;
const DAY_MS = 86_400_000;
const INTERRUPTED =
  'stopped by a signal; what X acknowledged is committed, and the next run sends the rest and repairs anything sent but unacknowledged';

export { emptyCounts };

function describeError(error: unknown): string {
  const message = errorMessage(error);
  const hint = isTailorError(error) ? error.hint : undefined;
  return hint ? `${message} (${hint})` : message;
}

function unacknowledgedOutcome(unacknowledged: number): Outcome {
  return {
    status: 'failed',
    error: `X did not acknowledge ${unacknowledged} member${unacknowledged === 1 ? '' : 's'} (retries gave up); the next run sends them again`,
  };
}

/** A hold's message, with the suppressed members removed anyway (the hold never blocks those). */
function withSuppressed(hold: string, suppressed: number): string {
  return suppressed === 0
    ? hold
    : `${hold}; ${suppressed} suppressed member${suppressed === 1 ? '' : 's'} left the audience all the same`;
}

/** What the body of one run decided, for the run log and the report. */
interface Outcome {
  status: 'succeeded' | 'held' | 'failed' | 'interrupted';
  error: string | null;
}

/** The mutable parts of a report while a run goes on. */
interface RunContext {
  activation: ResolvedActivation;
  options: SyncOptions;
  logger: Logger;
  counts: SyncCounts;
  warnings: string[];
  audienceId: string | null;
  runId: string | null;
  /** The run's diff, kept for the members count after its commits (valid once it is disposed). */
  diff?: DiffRun;
}

class Engine implements SyncEngine {
  readonly project: Project;
  readonly #deps: SyncDeps;
  readonly #source: Source;
  readonly #state: StateStore;
  readonly #destinations = new Map<string, Destination>();
  /** A refresh of the suppression state under way, shared by the runs that start meanwhile. */
  #suppressionRefresh: Promise<void> | null = null;
  #closed = false;

  constructor(project: Project, deps: SyncDeps, source: Source, state: StateStore) {
    this.project = project;
    this.#deps = deps;
    this.#source = source;
    this.#state = state;
  }

  state(): StateStore {
    return this.#state;
  }

  /** One destination instance per name, shared by every activation: one account, one rate limiter. */
  destination(name: string): Destination {
    let destination = this.#destinations.get(name);
    if (!destination) {
      const config = this.project.config.destinations[name];
      if (!config) throw new ConfigError(`unknown destination "${name}"`);
      destination = createDestination(name, config, {
        logger: this.#deps.logger, // the destination adds { destination: name } itself
        ...(this.#deps.observer ? { observer: this.#deps.observer } : {}),
      });
      this.#destinations.set(name, destination);
    }
    return destination;
  }

  async describeModel(modelName: string): Promise<ColumnInfo[]> {
    const model = this.project.models.get(modelName);
    if (!model) throw new ConfigError(`unknown model "${modelName}" (no models/${modelName}.sql and .yml)`);
    return this.#source.describeModel(model.name, model.sql);
  }

  /**
   * Brings the suppression state up to date before a run diffs its segment, so a new opt-out is
   * honoured by the next run of every activation. Runs that start while a refresh is under way
   * share it; each later run refreshes again (an incremental diff: only changed opt-outs move).
   */
  #refreshSuppression(ctx: RunContext, destination: Destination): Promise<void> {
    this.#suppressionRefresh ??= refreshSuppression({
      project: this.project,
      source: this.#source,
      state: this.#state,
      destination,
      phoneDefaultRegion: ctx.activation.phoneDefaultRegion,
      batchSize: this.#deps.deltaBatchSize ?? DELTA_BATCH_SIZE,
      logger: ctx.logger,
    })
      .then(() => undefined)
      .finally(() => {
        this.#suppressionRefresh = null;
      });
    return this.#suppressionRefresh;
  }

  #now(): Date {
    return this.#deps.now?.() ?? new Date();
  }

  /**
   * X's view of the audience and the members sent with a valid identifier, for the run log's match
   * rate and for what follows the run (alerts, /metrics). Asked after a successful run only; a failure
   * to ask is logged and recorded as unknown, never a failed run.
   */
  async #measureMatch(ctx: RunContext): Promise<{ audience: AudienceInfo; match: RunMatch } | null> {
    if (ctx.audienceId === null) return null;
    try {
      const [audience, sent] = await Promise.all([
        this.destination(ctx.activation.destinationName).getAudience(ctx.audienceId, ctx.options.signal),
        ctx.diff ? ctx.diff.identifiedMemberCount() : this.#state.identifiedMemberCount(ctx.activation.id),
      ]);
      if (!audience) return null;
      const processedAt = audience.updatedAt === null ? null : new Date(audience.updatedAt);
      return { audience, match: { audienceSize: audience.size, sent, processedAt } };
    } catch (error) {
      ctx.logger.warn({ err: errorMessage(error) }, 'could not read the audience from X for the match rate');
      return null;
    }
  }

  async sync(activationId: string, options: SyncOptions): Promise<SyncReport> {
    const activation = resolveActivation(this.project, activationId);
    const started = Date.now();
    const ctx: RunContext = {
      activation,
      options,
      logger: this.#deps.logger.child({ activation: activationId }),
      counts: emptyCounts(),
      warnings: [],
      audienceId: null,
      runId: null,
    };
    let measured: { audience: AudienceInfo; match: RunMatch } | null = null;
    const report = (status: SyncReport['status'], error: string | null, kind?: string): SyncReport => ({
      activationId,
      runId: ctx.runId,
      status,
      counts: ctx.counts,
      audienceId: ctx.audienceId,
      durationMs: Date.now() - started,
      error,
      warnings: ctx.warnings,
      ...(kind ? { errorKind: kind } : {}),
      ...(measured
        ? { audience: measured.audience, matchRate: matchRateOfRun(measured.match, ctx.counts.rows) }
        : {}),
    });

    let lock;
    try {
      lock = await this.#state.lock(activationId, { wait: options.waitForLock });
    } catch (error) {
      if (error instanceof LockBusyError) {
        ctx.logger.warn('another run of this activation holds its lock; skipped');
        return report('skipped', describeError(error), error.kind);
      }
      ctx.logger.error({ err: errorMessage(error) }, 'could not take the activation lock');
      return report('failed', describeError(error), isTailorError(error) ? error.kind : 'internal');
    }
    try {
      if (options.dryRun) {
        try {
          const outcome = await this.#run(ctx);
          return report(outcome.status, outcome.error);
        } catch (error) {
          if (error instanceof ConfigError) throw error;
          return report('failed', describeError(error), isTailorError(error) ? error.kind : 'internal');
        }
      }
      try {
        ctx.runId = await this.#state.startRun(activationId, this.#now());
      } catch (error) {
        ctx.logger.error({ err: errorMessage(error) }, 'could not record the start of the run');
        return report('failed', describeError(error), isTailorError(error) ? error.kind : 'internal');
      }
      const log = (ctx.logger = ctx.logger.child({ run: ctx.runId }));
      log.info({ mode: activation.mode, fullResync: options.fullResync }, 'run started');
      let outcome: Outcome;
      let thrown: unknown;
      try {
        outcome = await this.#run(ctx);
      } catch (error) {
        thrown = error;
        outcome = { status: 'failed', error: describeError(error) };
      }
      // Stopped through options.signal (Ctrl-C, SIGTERM), whether the abort surfaced as a throw or as
      // requests X never acknowledged: in-flight batches ended and what X acknowledged is committed;
      // their intents let the next run repair the rest.
      if (outcome.status === 'failed' && options.signal?.aborted)
        outcome = { status: 'interrupted', error: INTERRUPTED };
      if (outcome.status === 'succeeded') measured = await this.#measureMatch(ctx);
      try {
        await this.#state.finishRun(ctx.runId, {
          status: outcome.status,
          counts: runCounts(ctx.counts),
          error: outcome.error,
          finishedAt: this.#now(),
          match: measured?.match ?? null,
        });
      } catch (error) {
        log.error({ err: errorMessage(error) }, 'could not record the end of the run');
        if (outcome.status !== 'failed') outcome = { status: 'failed', error: describeError(error) };
      }
      if (thrown instanceof ConfigError) throw thrown;
      const kind =
        thrown === undefined || outcome.status === 'interrupted'
          ? undefined
          : isTailorError(thrown)
            ? thrown.kind
            : 'internal';
      const level = outcome.status === 'succeeded' ? 'info' : 'warn';
      log[level](
        { status: outcome.status, ...runCounts(ctx.counts), durationMs: Date.now() - started },
        outcome.status === 'failed' ? `run failed: ${outcome.error}` : 'run finished',
      );
      return report(outcome.status, outcome.error, kind);
    } finally {
      await lock.release().catch((error: unknown) => {
        ctx.logger.error({ err: errorMessage(error) }, 'could not release the activation lock');
      });
    }
  }

  /** The body of a run (or plan), under the lock. Throws on whole-run failures. */
  async #run(ctx: RunContext): Promise<Outcome> {
    const { activation, options, counts } = ctx;
    const model = activation.model;
    const destination = this.destination(activation.destinationName);
    // A plan never talks to X; it shows the audience it would use, when one is bound already.
    ctx.audienceId = options.dryRun
      ? ((await this.#state.getBinding(activation.id))?.audienceId ?? null)
      : await bindAudience({ ...ctx, state: this.#state, destination, now: () => this.#now() });

    const suppressionIds = suppressionStateIds(this.project);
    // A plan reads the suppression state as the last run left it (a plan writes nothing).
    if (suppressionIds.length > 0 && !options.dryRun) await this.#refreshSuppression(ctx, destination);
    const columns = (await this.#source.describeModel(model.name, model.sql)).map((c) => c.name);
    const mappings = checkMappings(activation, columns);
    const now = this.#now();
    const heldSample = heldSampleFor(activation.maxRemovalShare, this.#state.keyRangesIndexed);
    await using diff = await this.#state.prepareDiff({
      activationId: activation.id,
      modelSql: model.sql,
      modelName: model.name,
      primaryKey: actualColumn(columns, model.primaryKey)!,
      columns: Object.keys(mappings),
      refreshBefore: new Date(now.getTime() - activation.refreshAfterDays * DAY_MS),
      fullResync: options.fullResync,
      // Whether the share rule may count what state holds (known for sure once the diff is counted).
      heldCountLikely: activation.mode === 'mirror' && !options.force && !options.suppressionOnly,
      heldSample,
    });
    ctx.diff = diff;
    counts.rows = diff.counts.rows;
    const members = diff.counts.rows - diff.counts.invalidKeys;
    // --suppression-only sends only Deletes of suppressed members, which no safety rule holds.
    let hold = options.force || options.suppressionOnly ? null : segmentHold(activation, diff, members);
    // The share rule counts the hashes X holds and the hashes the run's Deletes would name, known
    // only once the delta is hashed and planned: a pass over it before anything is sent (a plan
    // makes it while counting). Skipped where nothing can be deleted: the initial load, upsert
    // mode, a delta of added members only. What X holds is counted first over a sample of the
    // members (`heldSample`, where an index reads a range of keys: PostgreSQL, PGlite), a lower bound
    // that settles any run deleting a few percent of the audience; only a run it does not settle
    // counts them all (a scan of the activation's hash rows: about 2 s at 1M members). The first
    // count runs on the state's connection: on a PostgreSQL server it started with the diff
    // (heldCountLikely), elsewhere now, while the diff's session records the invalid keys and
    // streams the delta through the pass (bench/RESULTS.md).
    const heldCount =
      !options.force && !options.suppressionOnly && !hold && mayDelete(activation, diff)
        ? diff.heldHashesAtLeast()
        : null;
    // Awaited below on every path; this only keeps a failure from going unhandled meanwhile.
    heldCount?.catch(() => undefined);
    try {
      await this.#invalidKeys(ctx, diff);
    } catch (error) {
      await heldCount?.catch(() => undefined);
      throw error;
    }
    ctx.warnings.push(...activationWarnings({ members, schedule: activation.schedule }));

    const total = diff.counts.added + diff.counts.removed + diff.counts.changed + diff.counts.refresh;
    const progress = (phase: 'snapshot' | 'deliver' | 'commit' | 'done', done: number) =>
      options.onProgress?.({ activationId: activation.id, phase, done, total });
    const delta = {
      ...ctx,
      diff,
      destination,
      mappings,
      batchSize: this.#deps.deltaBatchSize ?? DELTA_BATCH_SIZE,
      progress,
      ...(suppressionIds.length > 0
        ? { suppressed: (hashes: readonly string[]) => this.#state.suppressedHashes(suppressionIds, hashes) }
        : {}),
      ...(options.suppressionOnly ? { suppressionOnly: true } : {}),
    };
    const deliver = {
      ...delta,
      state: this.#state,
      audienceId: ctx.audienceId!,
      runId: ctx.runId!,
      now: () => this.#now(),
    };
    /**
     * Members state holds that a suppression model now matches and the delta did not take out: sent
     * as Deletes whatever the safety rules say (an opt-out is honoured at once), and counted.
     */
    const removeSuppressed = async (): Promise<Outcome | null> => {
      if (suppressionIds.length === 0) return null;
      const { unacknowledged } = await removeSuppressedMembers(deliver, suppressionIds);
      const leftovers =
        activation.mode === 'upsert'
          ? (await deleteSuppressedHashes(deliver, suppressionIds)).unacknowledged
          : 0;
      return unacknowledged + leftovers > 0 ? unacknowledgedOutcome(unacknowledged + leftovers) : null;
    };

    if (hold && !options.dryRun) {
      ctx.logger.warn({ reason: hold }, 'run held by a safety rule');
      const failed = await removeSuppressed();
      return failed ?? { status: 'held', error: withSuppressed(hold, counts.suppressed) };
    }
    if (options.suppressionOnly && !options.dryRun) {
      // Only the suppressed members of the delta (and of state), whatever else changed.
      const { unacknowledged } = await deliverDelta(deliver);
      await diff.settleKeyHashes();
      if (unacknowledged > 0) return unacknowledgedOutcome(unacknowledged);
      return (await removeSuppressed()) ?? { status: 'succeeded', error: null };
    }

    progress('snapshot', 0);
    if (options.dryRun) {
      const estimate: RemovalEstimate | undefined = heldCount ? startEstimate(diff) : undefined;
      let counted: Set<string>;
      try {
        counted = await countDelta(delta, estimate);
      } finally {
        await heldCount?.catch(() => undefined);
      }
      if (suppressionIds.length > 0)
        await countSuppressedMembers({ ...delta, state: this.#state }, suppressionIds, counted);
      if (estimate && heldCount)
        ({ hold } = await removalHoldFrom(activation, await heldCount, () => diff.heldHashCount(), estimate));
      return hold ? { status: 'held', error: hold } : { status: 'succeeded', error: null };
    }
    // A delta no larger than what the pipeline holds in flight is read and hashed once: the pass
    // keeps it for delivery.
    let kept: PreparedBatch[] | undefined;
    // Where state reads a set of members through an index, the pass itself is skipped when bounds
    // settle the run (measured at 1M members, a 3% delta: the pass took 1.0 s before anything was sent).
    const settledEarly =
      heldCount !== null &&
      this.#state.keyRangesIndexed &&
      (await this.#settledBeforePass(ctx, diff, heldCount, heldSample));
    if (heldCount && !settledEarly) {
      const started = performance.now();
      if (total <= passCacheLimit(delta.batchSize)) kept = [];
      let estimate: RemovalEstimate;
      try {
        estimate = await estimateRemovals(delta, heldCount, undefined, kept);
      } finally {
        await heldCount.catch(() => undefined);
      }
      const settled = await removalHoldFrom(
        activation,
        await heldCount,
        () => diff.heldHashCount(),
        estimate,
      );
      ctx.logger.debug(
        {
          held: settled.held,
          // Whether `held` is the count itself or a sample's lower bound that settled the run.
          heldExact: settled.exact || heldSample >= 1,
          ...estimate,
          ms: Math.round(performance.now() - started),
        },
        'safety pass over the delta',
      );
      hold = settled.hold;
      if (hold) {
        ctx.logger.warn({ reason: hold }, 'run held by a safety rule');
        const failed = await removeSuppressed();
        return failed ?? { status: 'held', error: withSuppressed(hold, counts.suppressed) };
      }
    }
    const { unacknowledged } = await deliverDelta(deliver, kept);
    // Whatever X answered: only members state holds get a key hash, each its own key's.
    await diff.settleKeyHashes();
    if (unacknowledged > 0) return unacknowledgedOutcome(unacknowledged);
    return (await removeSuppressed()) ?? { status: 'succeeded', error: null };
  }

  /**
   * Whether the safety rule lets the run through without its planning pass: the hashes the delta's
   * members hold in state (an upper bound of what its Deletes name; one index lookup per member)
   * against the held count's lower bound (`settledBeforePass`).
   */
  async #settledBeforePass(
    ctx: RunContext,
    diff: DiffRun,
    heldCount: Promise<number>,
    heldSample: number,
  ): Promise<boolean> {
    const started = performance.now();
    const [atLeast, atMost] = await Promise.all([heldCount, diff.heldByDelta()]);
    if (!settledBeforePass(ctx.activation, atLeast, atMost, diff)) return false;
    ctx.logger.debug(
      {
        held: atLeast,
        heldExact: heldSample >= 1,
        deletesAtMost: atMost,
        ms: Math.round(performance.now() - started),
      },
      'safety rule settled before the pass',
    );
    return true;
  }

  /** Counts (and, in a run, records) the rows the diff left out for a null or duplicate key. */
  async #invalidKeys(ctx: RunContext, diff: DiffRun): Promise<void> {
    if (diff.counts.invalidKeys === 0) return;
    for await (const rows of diff.invalidKeys()) {
      const records: RejectionRecord[] = [];
      for (const row of rows) {
        countInvalid(ctx.counts, row.reason, row.rows);
        records.push({ memberKey: row.key, identifierType: null, reason: row.reason });
      }
      if (!ctx.options.dryRun && records.length > 0)
        await this.#state.recordRejections(ctx.runId!, ctx.activation.id, records);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#source.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Opens the project's warehouse (and its state schema) for runs; close it when done. */
export async function openSyncEngine(project: Project, deps: SyncDeps): Promise<SyncEngine> {
  const source = await openSource(project.config.warehouse, { projectDir: project.dir, logger: deps.logger });
  try {
    const state = createStateStore(source, project.config.state_schema, { logger: deps.logger });
    await state.migrate();
    return new Engine(project, deps, source, state);
  } catch (error) {
    await source.close().catch(() => undefined);
    throw error;
  }
}
