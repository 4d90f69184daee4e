import type { Logger } from 'pino';
import type { Project } from '../config/load-project.js';
import {
  effectiveMappings,
  type ResolvedActivation,
  resolveActivation,
} from '../config/resolve-activation.js';
import type { ApplyOutcome, Destination } from '../destinations/destination.js';
import { createDestination } from '../destinations/registry.js';
import { hashMember } from '../destinations/x-ads/identifiers.js';
import type { Mappings } from '../destinations/x-ads/x-ads-config.js';
import { createStateStore } from '../diff/state-store.js';
import type { DeltaRow, DiffRun, MemberAck, RejectionRecord, StateStore } from '../diff/types.js';
import { AudienceMissingError, ConfigError, errorMessage, isTailorError, LockBusyError } from '../errors.js';
import { openSource } from '../sources/registry.js';
import type { ColumnInfo, Source } from '../sources/source.js';
import {
  acknowledged,
  changeIndexes,
  deleteCandidates,
  type BatchPlan,
  type HashedRow,
  heldOnceCommitted,
  holdsAny,
  type MemberEffect,
  memberEffect,
  type MemberPlan,
  planBatch,
} from './membership.js';
import type { SyncCounts, SyncDeps, SyncEngine, SyncOptions, SyncReport } from './types.js';
import { activationWarnings } from './warnings.js';

/**
 * Delta rows per batch: each batch is hashed, sent and committed. 10,000 members fit one request of
 * X's users endpoint when each is one user object (about 300 bytes with four identifiers, against
 * the 4,000,000-byte request budget). A changed member adds a Delete of only the identifiers it lost,
 * so 10,000 changed members took one request in the benchmark; more changed identifiers take two.
 */
export const DELTA_BATCH_SIZE = 10_000;
/**
 * Batches sent (or being sent) and not yet committed, at most; with the batch being read and hashed,
 * memory holds one more. Three lets two commits run at once while the next batch is sent: on a 1M
 * initial load the warehouse's commit work, not hashing or sending, sets the pace. Measured with two
 * (bench/RESULTS.md, "Tried and rejected"): the 5M incremental run peaked at 240-253 MB instead of
 * 260-293 MB, but 1M initial loads took about 13% longer.
 */
const MAX_UNCOMMITTED = 3;
const DAY_MS = 86_400_000;

export function emptyCounts(): SyncCounts {
  return {
    rows: 0,
    added: 0,
    removed: 0,
    changed: 0,
    refreshed: 0,
    invalid: 0,
    rejected: 0,
    requests: 0,
    invalidByReason: {},
  };
}

/** The counts without the breakdown, as the run log keeps them. */
function runCounts(counts: SyncCounts) {
  const { invalidByReason: _ignored, ...rest } = counts;
  return rest;
}

function countEffect(counts: SyncCounts, effect: MemberEffect) {
  if (effect === 'added') counts.added++;
  else if (effect === 'removed') counts.removed++;
  else if (effect === 'changed') counts.changed++;
  else if (effect === 'refreshed') counts.refreshed++;
}

function countInvalid(counts: SyncCounts, reason: string, by = 1) {
  counts.invalid += by;
  counts.invalidByReason[reason] = (counts.invalidByReason[reason] ?? 0) + by;
}

function describeError(error: unknown): string {
  const message = errorMessage(error);
  const hint = isTailorError(error) ? error.hint : undefined;
  return hint ? `${message} (${hint})` : message;
}

/** What the body of one run decided, for the run log and the report. */
interface Outcome {
  status: 'succeeded' | 'held' | 'failed';
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
}

class Engine implements SyncEngine {
  readonly project: Project;
  readonly #deps: SyncDeps;
  readonly #source: Source;
  readonly #state: StateStore;
  readonly #destinations = new Map<string, Destination>();
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

  #now(): Date {
    return this.#deps.now?.() ?? new Date();
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
    const report = (status: SyncReport['status'], error: string | null, kind?: string): SyncReport => ({
      activationId,
      runId: ctx.runId,
      status,
      counts: ctx.counts,
      audienceId: ctx.audienceId,
      durationMs: Date.now() - started,
      error,
      warnings: ctx.warnings,
      cost: null,
      ...(kind ? { errorKind: kind } : {}),
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
      try {
        await this.#state.finishRun(ctx.runId, {
          status: outcome.status,
          counts: runCounts(ctx.counts),
          error: outcome.error,
          finishedAt: this.#now(),
        });
      } catch (error) {
        log.error({ err: errorMessage(error) }, 'could not record the end of the run');
        if (outcome.status !== 'failed') outcome = { status: 'failed', error: describeError(error) };
      }
      if (thrown instanceof ConfigError) throw thrown;
      const kind = thrown === undefined ? undefined : isTailorError(thrown) ? thrown.kind : 'internal';
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
    if (options.dryRun) {
      // A plan never talks to X; it shows the audience it would use, when one is bound already.
      ctx.audienceId = (await this.#state.getBinding(activation.id))?.audienceId ?? null;
    } else {
      ctx.audienceId = await this.#bind(ctx);
    }
    const columns = (await this.#source.describeModel(model.name, model.sql)).map((c) => c.name);
    const mappings = checkMappings(activation, columns);
    const now = this.#now();
    await using diff = await this.#state.prepareDiff({
      activationId: activation.id,
      modelSql: model.sql,
      modelName: model.name,
      primaryKey: actualColumn(columns, model.primaryKey)!,
      columns: Object.keys(mappings),
      refreshBefore: new Date(now.getTime() - activation.refreshAfterDays * DAY_MS),
      fullResync: options.fullResync,
    });
    counts.rows = diff.counts.rows;
    await this.#invalidKeys(ctx, diff);
    const members = diff.counts.rows - diff.counts.invalidKeys;
    ctx.warnings.push(...activationWarnings({ members, schedule: activation.schedule }));

    const hold = options.force ? null : safetyHold(activation, diff, members);
    if (hold && !options.dryRun) {
      ctx.logger.warn({ reason: hold }, 'run held by a safety rule');
      return { status: 'held', error: hold };
    }

    const total = diff.counts.added + diff.counts.removed + diff.counts.changed + diff.counts.refresh;
    const progress = (phase: 'snapshot' | 'deliver' | 'commit' | 'done', done: number) =>
      options.onProgress?.({ activationId: activation.id, phase, done, total });
    progress('snapshot', 0);
    const hashOptions = { defaultRegion: activation.phoneDefaultRegion };
    const batchSize = this.#deps.deltaBatchSize ?? DELTA_BATCH_SIZE;
    const hashBatch = (batch: readonly DeltaRow[]) => {
      const rejections: RejectionRecord[] = [];
      const hashed: HashedRow[] = batch.map((row) => {
        if (row.change === 'removed' || row.values === null) return { row, hashes: null };
        const { hashes, invalid } = hashMember(row.values, mappings, hashOptions);
        for (const problem of invalid) {
          countInvalid(counts, problem.reason);
          rejections.push({ memberKey: row.key, identifierType: problem.type, reason: problem.reason });
        }
        return { row, hashes };
      });
      return { hashed, rejections };
    };

    if (options.dryRun) {
      let done = 0;
      for await (const batch of diff.delta(batchSize)) {
        options.signal?.throwIfAborted();
        for (const { row, hashes } of hashBatch(batch).hashed) {
          countEffect(
            counts,
            memberEffect(row.change, row.previousHashes, hashes, activation.mode, options.fullResync),
          );
        }
        done += batch.length;
      }
      progress('done', done);
      if (hold) return { status: 'held', error: hold };
      return { status: 'succeeded', error: null };
    }

    // The batches go through a pipeline: batch n+1 is read and hashed while batch n is sent and
    // earlier ones are committed. Sends go one at a time in delta order; each batch's commit starts
    // when its send is answered, and commits of different batches (different members, one
    // transaction each) may run side by side, on their own connections. At most MAX_UNCOMMITTED
    // batches wait for X or the warehouse. A batch that may delete identifiers asks state which of
    // them members outside it and outside the uncommitted batches hold; for the members of those
    // batches it waits only for their answers from X and works out what their commits will leave
    // (acknowledged: what was sent; otherwise what state holds already). So its plan is the one it
    // would make after those commits, without waiting for them.
    const destination = this.destination(activation.destinationName);
    let sent = 0; // members of the batches handed to the destination so far
    let committed = 0; // members of the batches committed so far
    let unacknowledged = 0;
    let lastSend: Promise<unknown> = Promise.resolve();
    let sendFailed = false;
    const commits: Promise<void>[] = []; // batches sent or being sent and not yet known committed
    /** Batches handed to the destination whose commit has not finished: their members and answers. */
    const uncommitted = new Set<{ members: readonly MemberPlan[]; sending: Promise<ApplyOutcome> }>();
    let commitFailed = false;
    let batchNumber = 0;
    let readStarted = performance.now();
    /** The commit stage of one batch: once X answered, acknowledge, commit and record rejections. */
    const commitBatch = async (
      number: number,
      size: number,
      members: BatchPlan['members'],
      rejections: RejectionRecord[],
      sending: Promise<ApplyOutcome>,
      timing: StepTimer,
    ): Promise<void> => {
      const outcome = await sending;
      timing.lap('sendMs');
      counts.requests += outcome.requests;
      const sentAt = this.#now();
      const acks: MemberAck[] = [];
      for (const member of members) {
        if (acknowledged(member, outcome.results)) {
          acks.push({
            key: member.key,
            change: member.change,
            fingerprint: member.fingerprint,
            hashes: member.hashes,
            previousHashes: member.previousHashes,
            sentAt: member.sendsUpdate ? sentAt : null,
          });
          countEffect(counts, member.effect);
          continue;
        }
        const rejected = changeIndexes(member)
          .map((index) => outcome.results[index])
          .find((answer) => answer?.status === 'rejected');
        if (rejected && rejected.status === 'rejected') {
          counts.rejected++;
          rejections.push({ memberKey: member.key, identifierType: null, reason: rejected.reason });
        } else {
          unacknowledged++;
        }
      }
      await diff.commit(acks);
      if (rejections.length > 0) await this.#state.recordRejections(ctx.runId!, activation.id, rejections);
      timing.lap('commitMs');
      committed += size;
      progress('commit', committed);
      if (ctx.logger.isLevelEnabled('debug')) {
        ctx.logger.debug(
          { batch: number, members: size, requests: outcome.requests, ...timing.totals(), ...memoryMb() },
          'batch committed',
        );
      }
    };
    try {
      for await (const batch of diff.delta(batchSize)) {
        options.signal?.throwIfAborted();
        // Where a batch's time goes, for --debug: reading it, hashing, waiting for earlier batches,
        // looking up shared identifiers, sending and committing.
        const timing = new StepTimer();
        timing.add('readMs', performance.now() - readStarted);
        const { hashed, rejections } = hashBatch(batch);
        timing.lap('hashMs');
        const candidates = deleteCandidates(hashed, activation.mode);
        let held = new Set<string>();
        if (candidates.length > 0) {
          // A failed send or commit ends the run: rethrow it before planning more deletes.
          if (sendFailed || commitFailed) await Promise.all(commits);
          const pending = [...uncommitted];
          const wanted = new Set(candidates);
          // Left out of the lookup: this batch, and the uncommitted members state may still show
          // holding a candidate their commit will take away. Any other uncommitted member shows either
          // no candidate (before its commit) or what heldOnceCommitted adds below (after it).
          const excluded = batch.map((row) => row.key);
          for (const { members } of pending) {
            for (const member of members)
              if (holdsAny(member.previousHashes, wanted)) excluded.push(member.key);
          }
          let answers: ApplyOutcome[];
          [held, answers] = await Promise.all([
            diff.hashesHeldByOthers(candidates, excluded),
            Promise.all(pending.map(({ sending }) => sending)),
          ]);
          timing.lap('lookupMs');
          pending.forEach(({ members }, i) => heldOnceCommitted(members, answers[i]!.results, wanted, held));
        }
        const plan = planBatch(hashed, held, activation.mode, options.fullResync);
        while (commits.length >= MAX_UNCOMMITTED) await commits.shift();
        await lastSend;
        // A send that threw (not a refused member: the audience gone, credentials revoked) ends the
        // run; its commit rethrows it here rather than after more batches went the same way.
        if (sendFailed) await Promise.all(commits);
        timing.lap('waitMs');
        const number = ++batchNumber;
        const size = batch.length;
        const base = sent;
        sent += size;
        const sending =
          plan.changes.length === 0
            ? Promise.resolve({ results: [], requests: 0 })
            : destination.apply(ctx.audienceId!, plan.changes, {
                ...(options.signal ? { signal: options.signal } : {}),
                onProgress: (p) => {
                  // Changes are up to two per member; report members, proportionally.
                  const share = p.total === 0 ? 1 : p.done / p.total;
                  progress('deliver', base + Math.floor(share * size));
                },
              });
        lastSend = sending.catch(() => {
          sendFailed = true;
        });
        // Only what the commit needs stays referenced (not the rows' raw values nor the user objects).
        const inFlight = { members: plan.members, sending };
        uncommitted.add(inFlight);
        const commit = commitBatch(number, size, plan.members, rejections, sending, timing).then(
          () => void uncommitted.delete(inFlight),
          (error: unknown) => {
            commitFailed = true;
            throw error;
          },
        );
        // Awaited below (or by the next batch); this only keeps an early failure from being unhandled.
        commit.catch(() => undefined);
        commits.push(commit);
        readStarted = performance.now();
      }
      await Promise.all(commits);
    } catch (error) {
      // Let what is in flight finish (or fail) before the diff closes: nothing acknowledged is lost.
      await Promise.allSettled([lastSend, ...commits]);
      throw error;
    }
    progress('done', committed);
    if (hold) return { status: 'held', error: hold };
    if (unacknowledged > 0) {
      return {
        status: 'failed',
        error: `X did not acknowledge ${unacknowledged} member${unacknowledged === 1 ? '' : 's'} (retries gave up); the next run sends them again`,
      };
    }
    return { status: 'succeeded', error: null };
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

  /**
   * The audience of the activation: the bound one, else the configured id, else the one with the
   * configured name, else a new one. The binding is saved at once, so no run ever creates a second.
   */
  async #bind(ctx: RunContext): Promise<string> {
    const { activation, options, logger } = ctx;
    const destination = this.destination(activation.destinationName);
    const accountId = activation.destination.account_id;
    const signal = options.signal;
    const binding = await this.#state.getBinding(activation.id);
    const save = async (audienceId: string, audienceName: string) => {
      await this.#state.saveBinding({
        activationId: activation.id,
        destination: activation.destinationName,
        accountId,
        audienceId,
        audienceName,
        boundAt: this.#now(),
      });
      return audienceId;
    };
    if (binding) {
      if (binding.destination !== activation.destinationName || binding.accountId !== accountId) {
        throw new ConfigError(
          `activation ${activation.id} is bound to audience ${binding.audienceId} of account ${binding.accountId} (destination ${binding.destination}), not to destination ${activation.destinationName} (account ${accountId})`,
          {
            hint: `run \`tailor state reset ${activation.id}\` to bind it afresh (its next run is a full sync)`,
          },
        );
      }
      if ('id' in activation.audience && activation.audience.id !== binding.audienceId) {
        throw new ConfigError(
          `activation ${activation.id} is bound to audience ${binding.audienceId}, but tailor.yml names audience ${activation.audience.id}`,
          { hint: `run \`tailor state reset ${activation.id}\` to move it to the audience tailor.yml names` },
        );
      }
      const info = await destination.getAudience(binding.audienceId, signal);
      if (info && !info.deleted) return binding.audienceId;
      if (!(options.fullResync && options.recreate)) {
        throw new AudienceMissingError(
          `audience ${binding.audienceId} ("${binding.audienceName}") of activation ${activation.id} no longer exists at X (it was deleted)`,
          {
            hint: `run \`tailor sync ${activation.id} --full-resync --recreate\` to create a new audience and send every member to it`,
          },
        );
      }
      if ('id' in activation.audience) {
        throw new ConfigError(
          `activation ${activation.id} names audience ${activation.audience.id}, which X deleted; Tailor cannot recreate an audience by id`,
          { hint: 'set `audience: { name: ... }` (or another existing audience id) in tailor.yml' },
        );
      }
      const created = await destination.createAudience(
        activation.audience.name,
        activation.audience.description || undefined,
        signal,
      );
      logger.warn({ audience: created.id }, 'the bound audience was deleted at X; created a new one');
      // The old audience's members are gone with it: forget them so that everything is sent again.
      await this.#state.reset(activation.id);
      return save(created.id, created.name);
    }
    if ('id' in activation.audience) {
      const info = await destination.getAudience(activation.audience.id, signal);
      if (!info || info.deleted) {
        throw new AudienceMissingError(
          `audience ${activation.audience.id} named by activation ${activation.id} does not exist in account ${accountId}`,
          {
            hint: 'check the id with `tailor audiences`, or use `audience: { name: ... }` to have one created',
          },
        );
      }
      return save(info.id, info.name);
    }
    const { name, description } = activation.audience;
    const found = await destination.findAudienceByName(name, signal);
    if (found) {
      logger.info({ audience: found.id }, 'bound to the existing audience of that name');
      return save(found.id, found.name);
    }
    const created = await destination.createAudience(name, description || undefined, signal);
    logger.info({ audience: created.id }, 'created the audience');
    return save(created.id, created.name);
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

function actualColumn(columns: readonly string[], name: string): string | undefined {
  return columns.includes(name) ? name : columns.find((c) => c.toLowerCase() === name.toLowerCase());
}

/**
 * The mappings of a run, checked against the columns the model returns: the primary key and every
 * explicitly mapped column must exist, and at least one identifier column must be mapped.
 */
export function checkMappings(activation: ResolvedActivation, columns: readonly string[]): Mappings {
  const model = activation.model;
  const issues = [];
  if (actualColumn(columns, model.primaryKey) === undefined) {
    issues.push({
      file: `models/${model.name}.yml`,
      path: 'primary_key',
      message: `column "${model.primaryKey}" is not among the columns the model returns (${columns.join(', ')})`,
    });
  }
  const mappings: Mappings = {};
  for (const [column, type] of Object.entries(effectiveMappings(activation, columns))) {
    const actual = actualColumn(columns, column);
    if (actual === undefined) {
      issues.push({
        file: 'tailor.yml',
        path: `activations.${activation.id}.mappings.${column}`,
        message: `model ${model.name} returns no column "${column}" (it returns ${columns.join(', ')})`,
      });
    } else mappings[actual] = type;
  }
  if (issues.length === 0 && Object.keys(mappings).length === 0) {
    issues.push({
      file: 'tailor.yml',
      path: `activations.${activation.id}.mappings`,
      message: `no column of model ${model.name} (${columns.join(', ')}) is mapped to an X identifier; add mappings, or columns named as in the destination's default mappings`,
    });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return mappings;
}

/** The process's memory in MB, for debug logs. */
function memoryMb(): Record<string, number> {
  const { rss, heapUsed, external } = process.memoryUsage();
  const mb = (bytes: number) => Math.round(bytes / 1_048_576);
  return { rssMb: mb(rss), heapMb: mb(heapUsed), externalMb: mb(external) };
}

/** Milliseconds by step, measured lap by lap (for debug logs). */
class StepTimer {
  readonly #totals: Record<string, number> = {};
  #last = performance.now();

  add(step: string, ms: number): void {
    this.#totals[step] = (this.#totals[step] ?? 0) + ms;
  }

  /** Adds the time since the previous lap to `step`. */
  lap(step: string): void {
    const now = performance.now();
    this.add(step, now - this.#last);
    this.#last = now;
  }

  totals(): Record<string, number> {
    return Object.fromEntries(Object.entries(this.#totals).map(([k, v]) => [k, Math.round(v)]));
  }
}

/** Why a run must be held (mirror mode only: upsert never removes), or null. */
export function safetyHold(activation: ResolvedActivation, diff: Pick<DiffRun, 'counts'>, members: number) {
  if (activation.mode !== 'mirror') return null;
  const { stateMembers, removed } = diff.counts;
  if (stateMembers === 0) return null;
  if (members === 0) {
    return `held: model ${activation.model.name} returned no members while the audience has ${stateMembers}; nothing was removed (run with --force if the segment is meant to be empty)`;
  }
  const share = removed / stateMembers;
  if (share > activation.maxRemovalShare) {
    const pct = (n: number) => `${Math.round(n * 1000) / 10}%`;
    return `held: this run would remove ${removed} of the audience's ${stateMembers} members (${pct(share)}), more than max_removal_share (${pct(activation.maxRemovalShare)}); nothing was sent (run with --force to remove them)`;
  }
  return null;
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
