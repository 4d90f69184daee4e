import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { Project } from '../config/load-project.js';
import { type ResolvedActivation, resolveActivations } from '../config/resolve-activation.js';
import type { ActivationStatus, RunRecord } from '../diff/types.js';
import { errorMessage, LockBusyError } from '../errors.js';
import type { SyncEngine, SyncReport } from '../sync/types.js';
import { type BackoffPolicy, DEFAULT_BACKOFF } from './backoff.js';
import { activationFingerprint } from './fingerprint.js';
import type { SchedulerMetrics, SkipReason } from './metrics.js';
import { backoffUntil, intervalDueAt } from './next-run.js';
import type { HealthReport } from './ops-server.js';
import { resolvePause } from './pausing.js';
import { Semaphore } from './semaphore.js';

/** Opens one SyncEngine per config generation (the CLI passes `openSyncEngine` with its deps). */
export type EngineFactory = (project: Project) => Promise<SyncEngine>;

export interface SchedulerOptions {
  openEngine: EngineFactory;
  logger: Logger;
  metrics?: SchedulerMetrics;
  /** Activations running at once in this worker. Default 4. */
  concurrency?: number;
  /** Consecutive failures after which an activation is paused. Default 5. */
  maxFailures?: number;
  /** How long a stop waits for in-flight runs before aborting them. Default 30 s. */
  shutdownTimeoutMs?: number;
  /** After aborting, how long to wait for runs to wind down before giving up on them. Default 10 s. */
  abortGraceMs?: number;
  backoff?: BackoffPolicy;
  now?: () => Date;
  /** Called after every tick, whatever its outcome (tests and logs of record). */
  onTick?: (event: TickEvent) => void;
}

/** What became of one tick of one activation. */
export type TickEvent =
  | { activationId: string; outcome: 'ran'; report: SyncReport; paused: boolean }
  | { activationId: string; outcome: 'error'; error: string; paused: boolean }
  | { activationId: string; outcome: 'aborted' }
  | { activationId: string; outcome: 'skipped'; reason: SkipReason | 'superseded' };

export interface ReloadResult {
  applied: boolean;
  /** Why the new configuration was rejected (ConfigError issues are in its message, one a line). */
  error?: string;
}

/** What the scheduler knows of one activation right now (for /healthz, metrics and logs). */
export interface ScheduledActivationInfo {
  id: string;
  schedule: string;
  enabled: boolean;
  nextRunAt: Date | null;
  paused: boolean;
  pausedReason: string | null;
  consecutiveFailures: number;
  running: boolean;
}

interface Entry {
  activation: ResolvedActivation;
  fingerprint: string;
  task?: ScheduledTask;
  timer?: NodeJS.Timeout;
  /** Interval schedules: when the timer fires next. */
  dueAt: Date | null;
  paused: boolean;
  pausedReason: string | null;
  consecutiveFailures: number;
}

interface Generation {
  id: number;
  project: Project;
  engine: SyncEngine;
  entries: Map<string, Entry>;
  /** Ticks of this generation in progress (queued or running); its engine closes at zero once retired. */
  ticks: number;
  retired: boolean;
  closed: Promise<void> | undefined;
}

interface InFlight {
  activationId: string;
  generation: Generation;
  controller: AbortController;
  /** Set once the run itself starts (after the queue and the checks). */
  startedAt: Date | null;
  done: Promise<void>;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
/** Node may fire a timer a millisecond early; an interval run this close to due is due. */
const DUE_TOLERANCE_MS = 1_000;
/** Runs read per tick: enough to find the last success behind a few failed manual runs. */
const RECENT_RUNS = 20;

function settleWithin(promises: Promise<unknown>[], ms: number): Promise<boolean> {
  if (promises.length === 0) return Promise.resolve(true);
  let timer: NodeJS.Timeout | undefined;
  const all = Promise.allSettled(promises).then(() => true);
  const deadline = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return Promise.race([all, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Runs every enabled activation at its own frequency: cron expressions through node-cron (with
 * `noOverlap` and the activation's time zone), `every N …` through a timer from the last run's end
 * as the run log records it, `manual` never. Safe to run on many workers at once:
 *
 * - the warehouse lock (taken by `SyncEngine.sync` with `waitForLock: false`) keeps each activation
 *   to one run at a time; a worker that loses the race skips the tick;
 * - before running a cron tick, the run log is read: a run that started at or after the tick's
 *   scheduled time means another worker already ran this tick, so this one skips it (the lock
 *   alone would let a slow worker run the tick again after a fast one finished);
 * - failures and pauses live in the warehouse (`ActivationStatusStore`), shared by every worker.
 *
 * node-cron's `distributed` run coordinator is not used: it elects before this worker's
 * concurrency queue, so a tick waiting in the queue could be elected here and run elsewhere too;
 * the run-log check after the queue closes that gap.
 */
export class Scheduler {
  readonly #options: SchedulerOptions;
  readonly #logger: Logger;
  readonly #semaphore: Semaphore;
  readonly #maxFailures: number;
  readonly #backoff: BackoffPolicy;
  readonly #now: () => Date;
  readonly #startedAt = Date.now();
  readonly #stopController = new AbortController();
  readonly #inFlight = new Map<string, InFlight>();
  readonly #retired = new Set<Generation>();
  #generation: Generation | undefined;
  #generationCount = 0;
  #started = false;
  #reloading: Promise<ReloadResult> = Promise.resolve({ applied: true });
  #stopped: Promise<void> | undefined;

  constructor(options: SchedulerOptions) {
    this.#options = options;
    this.#logger = options.logger;
    this.#semaphore = new Semaphore(options.concurrency ?? 4);
    this.#maxFailures = options.maxFailures ?? 5;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#now = options.now ?? (() => new Date());
    options.metrics?.attach({
      activations: () => this.activations(),
      inFlight: () => [...this.#inFlight.values()].filter((run) => run.startedAt).length,
    });
  }

  get stopping(): boolean {
    return this.#stopped !== undefined;
  }

  /** Opens the engine for the project and schedules its activations. Throws if it cannot. */
  async start(project: Project): Promise<void> {
    if (this.#started || this.#stopped) throw new Error('the scheduler was already started');
    this.#started = true;
    // On the reload chain, so a SIGHUP that arrives while starting waits for the start.
    const started = this.#reloading.then(async () => {
      const generation = await this.#open(project);
      if (this.#stopped) {
        await this.#close(generation);
        return;
      }
      this.#install(generation);
    });
    this.#reloading = started.then(
      () => ({ applied: true }),
      (error: unknown) => ({ applied: false, error: errorMessage(error) }),
    );
    await started;
  }

  /**
   * Re-reads the project and, if it is valid and its warehouse opens, replaces the schedule with
   * it. In-flight runs finish on the old engine, which closes after them. An invalid project is
   * rejected and the old schedule keeps running. Reloads are serialized.
   */
  reload(load: () => Promise<Project>): Promise<ReloadResult> {
    this.#reloading = this.#reloading.then(async () => {
      if (this.#stopped) return { applied: false, error: 'the scheduler is stopping' };
      let generation: Generation;
      try {
        generation = await this.#open(await load());
      } catch (error) {
        this.#logger.error(
          `configuration reload rejected; the previous schedule keeps running:\n${errorMessage(error)}`,
        );
        this.#options.metrics?.recordReload('rejected');
        return { applied: false, error: errorMessage(error) };
      }
      if (this.#stopped) {
        await this.#close(generation);
        return { applied: false, error: 'the scheduler is stopping' };
      }
      const previous = this.#generation;
      if (previous) this.#retire(previous);
      this.#install(generation);
      this.#options.metrics?.recordReload('applied');
      this.#logger.info({ generation: generation.id }, 'configuration reloaded');
      return { applied: true };
    });
    return this.#reloading;
  }

  /**
   * Stops scheduling, lets in-flight runs finish up to the shutdown timeout, then aborts them (a
   * sync commits only what X acknowledged, so the rest is re-sent next time) and closes engines.
   * Idempotent; never throws.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#shutdown();
    return this.#stopped;
  }

  /** Aborts in-flight runs now instead of waiting for the deadline (a second SIGTERM). */
  abortInFlight(): void {
    for (const run of this.#inFlight.values())
      run.controller.abort(new Error('the scheduler was told to stop now'));
  }

  /**
   * Ticks the named activations of the configuration in force now, for an event that happened at
   * `at` (a dbt run that rebuilt their models): an activation whose last run started after `at` has
   * already seen it (here or in another worker) and is skipped as `already_ran`, as a cron tick is.
   */
  runAfter(activationIds: readonly string[], at: Date): void {
    const generation = this.#generation;
    if (!generation || this.#stopped) return;
    for (const id of activationIds) {
      const entry = generation.entries.get(id);
      if (entry && entry.activation.enabled) void this.#tick(generation, entry, at);
    }
  }

  activations(): ScheduledActivationInfo[] {
    const generation = this.#generation;
    if (!generation) return [];
    return [...generation.entries.values()].map((entry) => ({
      id: entry.activation.id,
      schedule: entry.activation.schedule.text,
      enabled: entry.activation.enabled,
      nextRunAt: this.#nextRunAt(entry),
      paused: entry.paused,
      pausedReason: entry.pausedReason,
      consecutiveFailures: entry.consecutiveFailures,
      running: this.#inFlight.get(entry.activation.id)?.startedAt != null,
    }));
  }

  health(): HealthReport {
    return {
      status: this.#stopped ? 'shutting_down' : this.#generation ? 'ok' : 'starting',
      uptimeSeconds: Math.round((Date.now() - this.#startedAt) / 1000),
      activations: this.activations().map((a) => ({
        id: a.id,
        schedule: a.schedule,
        nextRunAt: a.nextRunAt?.toISOString() ?? null,
        paused: a.paused,
        running: a.running,
      })),
      inFlight: [...this.#inFlight.values()]
        .filter((run) => run.startedAt)
        .map((run) => ({ activation: run.activationId, startedAt: run.startedAt!.toISOString() })),
    };
  }

  #nextRunAt(entry: Entry): Date | null {
    if (entry.paused) return null;
    if (entry.task) return entry.task.getNextRun();
    return entry.dueAt;
  }

  async #open(project: Project): Promise<Generation> {
    // Resolving first rejects a bad activation before any connection is made.
    const activations = resolveActivations(project);
    const engine = await this.#options.openEngine(project);
    const generation: Generation = {
      id: ++this.#generationCount,
      project,
      engine,
      entries: new Map(),
      ticks: 0,
      retired: false,
      closed: undefined,
    };
    try {
      const state = engine.state();
      await state.migrate();
      const statuses = new Map((await state.listActivationStatus()).map((s) => [s.activationId, s]));
      const now = this.#now();
      for (const activation of activations) {
        const fingerprint = activationFingerprint(activation);
        let status = statuses.get(activation.id);
        // A paused activation whose config changed resumes at once, visibly, not at its next tick.
        const resolved = resolvePause(status, fingerprint, [], now);
        if (resolved.resumed && resolved.status) {
          await state.setActivationStatus(resolved.status);
          this.#logger.info({ activation: activation.id }, 'activation resumed: its configuration changed');
          status = resolved.status;
        }
        generation.entries.set(activation.id, {
          activation,
          fingerprint,
          dueAt: null,
          paused: Boolean(status?.pausedAt),
          pausedReason: status?.pausedReason ?? null,
          consecutiveFailures: status?.consecutiveFailures ?? 0,
        });
      }
    } catch (error) {
      await this.#close(generation);
      throw error;
    }
    return generation;
  }

  #install(generation: Generation): void {
    this.#generation = generation;
    const summary: Record<string, string> = {};
    for (const entry of generation.entries.values()) {
      const { activation } = entry;
      const log = this.#logger.child({ activation: activation.id });
      if (!activation.enabled) {
        summary[activation.id] = 'disabled';
        continue;
      }
      const { schedule } = activation;
      if (schedule.kind === 'manual') {
        summary[activation.id] = 'manual';
        continue;
      }
      // Run by `runAfter` when dbt has rebuilt the model, never by a timer.
      if (schedule.kind === 'after_dbt') {
        summary[activation.id] = schedule.text;
        continue;
      }
      summary[activation.id] = schedule.text;
      if (schedule.kind === 'cron') {
        const task = cron.createTask(
          schedule.expression,
          (context) => this.#tick(generation, entry, context.date),
          {
            name: activation.id,
            timezone: activation.timezone,
            noOverlap: true,
            logger: {
              info: (message) => log.debug(message),
              warn: (message) => log.debug(message),
              debug: (message) => log.debug(String(message)),
              error: (message, error) => log.error({ err: error ?? message }, String(message)),
            },
          },
        );
        task.on('execution:overlap', () => {
          this.#emit(this.#skip(entry, 'running_here'));
        });
        task.on('execution:missed', (context) =>
          log.warn(
            { tick: context.date.toISOString() },
            'a scheduled tick was missed (the process was busy)',
          ),
        );
        entry.task = task;
        void task.start();
      } else {
        void this.#armInterval(generation, entry);
      }
    }
    this.#logger.info({ generation: generation.id, activations: summary }, 'schedule installed');
    if (!Object.values(summary).some((text) => text !== 'manual' && text !== 'disabled'))
      this.#logger.warn('no activation is scheduled (every one is manual or disabled); waiting for a reload');
  }

  #disarm(generation: Generation): void {
    for (const entry of generation.entries.values()) {
      if (entry.task) void entry.task.destroy();
      entry.task = undefined;
      if (entry.timer) clearTimeout(entry.timer);
      entry.timer = undefined;
    }
  }

  #retire(generation: Generation): void {
    generation.retired = true;
    this.#disarm(generation);
    this.#retired.add(generation);
    if (generation.ticks === 0) void this.#close(generation);
  }

  #close(generation: Generation): Promise<void> {
    generation.closed ??= generation.engine.close().catch((error: unknown) => {
      this.#logger.warn({ err: { message: errorMessage(error) } }, 'closing a sync engine failed');
    });
    return generation.closed.finally(() => this.#retired.delete(generation));
  }

  /** Sets an interval activation's timer from the run log (its last run's end plus the interval). */
  async #armInterval(generation: Generation, entry: Entry): Promise<void> {
    const schedule = entry.activation.schedule;
    if (schedule.kind !== 'interval' || this.#stopped || generation.retired) return;
    const id = entry.activation.id;
    const now = this.#now();
    let dueAt: Date;
    try {
      const state = generation.engine.state();
      const [runs, stored] = await Promise.all([
        state.listRuns({ activationId: id, limit: RECENT_RUNS }),
        state.getActivationStatus(id),
      ]);
      const lastSuccess = runs.find((r) => r.status === 'succeeded');
      if (lastSuccess)
        this.#options.metrics?.observeSuccess(id, lastSuccess.finishedAt ?? lastSuccess.startedAt);
      const { status } = resolvePause(stored, entry.fingerprint, runs, now);
      if (status?.pausedAt) {
        // Paused: look again now and then, so a `tailor sync` by hand resumes it.
        dueAt = new Date(now.getTime() + Math.min(schedule.everyMs, 5 * 60_000));
      } else {
        dueAt = intervalDueAt(schedule.everyMs, runs[0], now);
        const until = backoffUntil(status, this.#backoff);
        if (until && until > dueAt) dueAt = until;
      }
    } catch (error) {
      this.#logger.warn(
        { activation: id, err: { message: errorMessage(error) } },
        'could not read the run log to schedule the next run; trying again later',
      );
      dueAt = new Date(now.getTime() + this.#backoff.initialMs);
    }
    if (this.#stopped || generation.retired) return;
    if (entry.timer) clearTimeout(entry.timer);
    entry.dueAt = dueAt;
    const delay = Math.min(Math.max(0, dueAt.getTime() - this.#now().getTime()), MAX_TIMER_MS);
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      void this.#tick(generation, entry, null);
    }, delay);
  }

  #skip(entry: Entry, reason: SkipReason | 'superseded', detail?: Record<string, unknown>): TickEvent {
    const activationId = entry.activation.id;
    if (reason !== 'superseded') this.#options.metrics?.recordSkip(activationId, reason);
    const log = this.#logger.child({ activation: activationId });
    const messages: Record<SkipReason | 'superseded', string> = {
      lock_busy: 'skipped this tick: another worker holds the activation lock',
      already_ran: 'skipped this tick: another worker already ran it',
      not_due: 'not due yet: another run finished recently',
      running_here: 'skipped this tick: the previous run is still going',
      paused: 'skipped this tick: paused after repeated failures',
      backoff: 'skipped this tick: backing off after a failure',
      warehouse_error: 'skipped this tick: the warehouse could not be read',
      shutting_down: 'skipped this tick: shutting down',
      superseded: 'skipped this tick: the configuration was reloaded',
    };
    const level =
      reason === 'warehouse_error' ? 'error' : reason === 'paused' || reason === 'not_due' ? 'debug' : 'info';
    log[level]({ reason, ...detail }, messages[reason]);
    return { activationId, outcome: 'skipped', reason };
  }

  async #tick(generation: Generation, entry: Entry, slot: Date | null): Promise<void> {
    const id = entry.activation.id;
    if (this.#stopped || generation.retired) {
      this.#emit(this.#skip(entry, 'shutting_down'));
      return;
    }
    if (this.#inFlight.has(id)) {
      this.#emit(this.#skip(entry, 'running_here'));
      return;
    }
    let resolveDone!: () => void;
    const run: InFlight = {
      activationId: id,
      generation,
      controller: new AbortController(),
      startedAt: null,
      done: new Promise<void>((resolve) => (resolveDone = resolve)),
    };
    this.#inFlight.set(id, run);
    generation.ticks++;
    let holding = false;
    let event: TickEvent | undefined;
    try {
      try {
        await this.#semaphore.acquire(this.#stopController.signal);
        holding = true;
      } catch {
        event = this.#skip(entry, 'shutting_down');
        return;
      }
      if (this.#stopped) {
        event = this.#skip(entry, 'shutting_down');
        return;
      }
      if (generation.retired) {
        event = this.#skip(entry, 'superseded');
        return;
      }
      event = await this.#runTick(generation, entry, slot, run);
    } catch (error) {
      // A bug, not a run failure: log it and keep the daemon alive.
      this.#logger.error({ activation: id, err: error }, 'scheduler tick failed unexpectedly');
      event = { activationId: id, outcome: 'error', error: errorMessage(error), paused: entry.paused };
    } finally {
      if (holding) this.#semaphore.release();
      this.#inFlight.delete(id);
      generation.ticks--;
      if (generation.retired && generation.ticks === 0) void this.#close(generation);
      resolveDone();
      if (entry.activation.schedule.kind === 'interval') await this.#armInterval(generation, entry);
      if (event) this.#emit(event);
    }
  }

  #emit(event: TickEvent): void {
    try {
      this.#options.onTick?.(event);
    } catch (error) {
      this.#logger.warn({ err: error }, 'onTick listener failed');
    }
  }

  async #runTick(generation: Generation, entry: Entry, slot: Date | null, run: InFlight): Promise<TickEvent> {
    const id = entry.activation.id;
    const log = this.#logger.child({ activation: id });
    const state = generation.engine.state();
    const now = this.#now();
    let stored: ActivationStatus | undefined;
    let runs: RunRecord[];
    try {
      [stored, runs] = await Promise.all([
        state.getActivationStatus(id),
        state.listRuns({ activationId: id, limit: RECENT_RUNS }),
      ]);
    } catch (error) {
      return this.#skip(entry, 'warehouse_error', { err: { message: errorMessage(error) } });
    }
    const lastSuccess = runs.find((r) => r.status === 'succeeded');
    if (lastSuccess)
      this.#options.metrics?.observeSuccess(id, lastSuccess.finishedAt ?? lastSuccess.startedAt);
    const resolved = resolvePause(stored, entry.fingerprint, runs, now);
    const status = resolved.status;
    if (resolved.resumed && status) {
      try {
        await state.setActivationStatus(status);
      } catch (error) {
        return this.#skip(entry, 'warehouse_error', { err: { message: errorMessage(error) } });
      }
      log.info(
        { reason: resolved.resumed },
        resolved.resumed === 'synced'
          ? 'activation resumed: a run succeeded since it was paused or failed'
          : 'activation resumed: its configuration changed',
      );
    }
    entry.paused = Boolean(status?.pausedAt);
    entry.pausedReason = status?.pausedReason ?? null;
    entry.consecutiveFailures = status?.consecutiveFailures ?? 0;
    if (status?.pausedAt) return this.#skip(entry, 'paused', { pausedReason: status.pausedReason });
    const until = backoffUntil(status, this.#backoff);
    if (until && now < until) return this.#skip(entry, 'backoff', { until: until.toISOString() });
    const last = runs[0];
    if (slot && last && last.startedAt >= slot)
      return this.#skip(entry, 'already_ran', { tick: slot.toISOString() });
    const schedule = entry.activation.schedule;
    if (schedule.kind === 'interval') {
      const due = intervalDueAt(schedule.everyMs, last, now);
      if (due.getTime() - now.getTime() > DUE_TOLERANCE_MS)
        return this.#skip(entry, 'not_due', { dueAt: due.toISOString() });
    }

    run.startedAt = this.#now();
    const started = Date.now();
    log.info({ tick: slot?.toISOString() }, 'run starting');
    let report: SyncReport | undefined;
    let thrown: unknown;
    try {
      report = await generation.engine.sync(id, {
        fullResync: false,
        recreate: false,
        force: false,
        dryRun: false,
        waitForLock: false,
        signal: run.controller.signal,
      });
    } catch (error) {
      thrown = error;
    }
    const durationMs = Date.now() - started;
    if (thrown instanceof LockBusyError || report?.status === 'skipped')
      return this.#skip(entry, 'lock_busy', { detail: report?.error ?? undefined });
    if (run.controller.signal.aborted && (thrown !== undefined || report?.status !== 'succeeded')) {
      // Not the activation's fault: a stop cut it short. What X acknowledged is committed; the
      // rest is re-sent by the next run, so this is neither a failure nor a success.
      if (report) this.#options.metrics?.recordRun(report, this.#now());
      log.warn({ durationMs }, 'run stopped by shutdown; unacknowledged changes are re-sent next run');
      return { activationId: id, outcome: 'aborted' };
    }
    if (report) this.#options.metrics?.recordRun(report, this.#now());
    else this.#options.metrics?.recordRunError(id, durationMs);

    if (report?.status === 'succeeded') {
      log.info(
        {
          run: report.runId,
          durationMs,
          counts: report.counts,
          ...(report.warnings.length > 0 ? { warnings: report.warnings } : {}),
        },
        'run succeeded',
      );
      if (status && (status.consecutiveFailures > 0 || status.pausedAt)) {
        await this.#saveStatus(state, log, {
          activationId: id,
          consecutiveFailures: 0,
          pausedAt: null,
          pausedReason: null,
          configFingerprint: entry.fingerprint,
          updatedAt: this.#now(),
        });
      }
      entry.consecutiveFailures = 0;
      return { activationId: id, outcome: 'ran', report, paused: false };
    }

    const reason = report
      ? `${report.status === 'held' ? 'held' : 'failed'}: ${report.error ?? 'no reason given'}`
      : `failed: ${errorMessage(thrown)}`;
    const failures = (status?.consecutiveFailures ?? 0) + 1;
    const pause = failures >= this.#maxFailures;
    const finishedAt = this.#now();
    await this.#saveStatus(state, log, {
      activationId: id,
      consecutiveFailures: failures,
      pausedAt: pause ? finishedAt : null,
      pausedReason: pause ? `${failures} consecutive failed runs; last ${reason}` : null,
      configFingerprint: entry.fingerprint,
      updatedAt: finishedAt,
    });
    entry.consecutiveFailures = failures;
    entry.paused = pause;
    entry.pausedReason = pause ? `${failures} consecutive failed runs; last ${reason}` : null;
    const context = { run: report?.runId ?? null, durationMs, consecutiveFailures: failures };
    if (pause)
      log.error(
        { ...context, reason },
        `activation paused after ${failures} consecutive failures; it resumes after a successful \`tailor sync\` or a config change`,
      );
    else log.warn({ ...context, reason }, 'run did not succeed; backing off');
    return report
      ? { activationId: id, outcome: 'ran', report, paused: pause }
      : { activationId: id, outcome: 'error', error: errorMessage(thrown), paused: pause };
  }

  async #saveStatus(
    state: ReturnType<SyncEngine['state']>,
    log: Logger,
    status: ActivationStatus,
  ): Promise<void> {
    try {
      await state.setActivationStatus(status);
    } catch (error) {
      log.error({ err: { message: errorMessage(error) } }, 'could not record the activation status');
    }
  }

  async #shutdown(): Promise<void> {
    await this.#reloading.catch(() => undefined);
    this.#stopController.abort(new Error('the scheduler is stopping'));
    const generations = [...this.#retired, ...(this.#generation ? [this.#generation] : [])];
    for (const generation of generations) this.#disarm(generation);
    const pending = [...this.#inFlight.values()];
    const timeoutMs = this.#options.shutdownTimeoutMs ?? 30_000;
    this.#logger.info(
      { inFlight: pending.filter((run) => run.startedAt).map((run) => run.activationId), timeoutMs },
      'stopping: no new runs; waiting for in-flight runs to finish',
    );
    let finished = await settleWithin(
      pending.map((run) => run.done),
      timeoutMs,
    );
    if (!finished) {
      const still = [...this.#inFlight.values()];
      this.#logger.warn(
        { inFlight: still.map((run) => run.activationId) },
        'shutdown deadline passed: aborting in-flight runs (what X acknowledged is kept; the rest is re-sent next run)',
      );
      this.abortInFlight();
      finished = await settleWithin(
        still.map((run) => run.done),
        this.#options.abortGraceMs ?? 10_000,
      );
      if (!finished)
        this.#logger.error(
          { inFlight: [...this.#inFlight.keys()] },
          'runs did not stop after being aborted; exiting anyway (their locks are released with the connection)',
        );
    }
    // A run that ignored its abort may still hold a connection; closing must not hang the exit.
    const closed = await settleWithin(
      generations.map((generation) => this.#close(generation)),
      this.#options.abortGraceMs ?? 10_000,
    );
    if (!closed) this.#logger.error('a sync engine did not close in time; exiting anyway');
    this.#logger.info('scheduler stopped');
  }
}
