import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { LockBusyError } from '../errors.js';
import type { Source } from '../sources/source.js';
import { lookupInChunks } from './chunked-lookup.js';
import { hashesFromRows, WarehouseDiffRun } from './diff-run.js';
import { openDiff } from './diff-sql.js';
import { heldSampleBound, StateSql } from './state-sql.js';
import type { MemberHashRow } from '../sources/warehouse-hooks.js';
import type {
  ActivationLock,
  ActivationStatus,
  AudienceBinding,
  DiffRun,
  DiffSpec,
  MemberHashes,
  RejectionRecord,
  RunRejections,
  RunFinish,
  RunRecord,
  StateStore,
} from './types.js';

/**
 * The StateStore in `stateSchema` of any warehouse, over the source's connection and hooks
 * (`source.stateBackend`). The state schema is migrated on first use (once per store; `migrate` is
 * idempotent and safe under concurrency).
 */
export function createStateStore(
  source: Pick<Source, 'stateBackend'>,
  stateSchema: string,
  options: { logger: Logger },
): StateStore {
  const backend = source.stateBackend(stateSchema);
  const logger = options.logger.child({ stateSchema: backend.stateSchema });
  return new WarehouseStateStore(new StateSql(backend, logger), logger);
}

class WarehouseStateStore implements StateStore {
  readonly #sql: StateSql;
  readonly #logger: Logger;
  #migration: Promise<void> | undefined;
  #stateId: Promise<string> | undefined;

  constructor(sql: StateSql, logger: Logger) {
    this.#sql = sql;
    this.#logger = logger;
  }

  get keyRangesIndexed(): boolean {
    return this.#sql.hooks.memberKeyRanges === true;
  }

  migrate(): Promise<void> {
    this.#migration ??= this.#sql.migrate().catch((error: unknown) => {
      this.#migration = undefined;
      throw error;
    });
    return this.#migration;
  }

  async lock(activationId: string, options: { wait: boolean; timeoutMs?: number }): Promise<ActivationLock> {
    await this.migrate();
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    for (;;) {
      const held = await this.#sql.hooks.tryLock(activationId);
      if (held) {
        this.#logger.debug({ activation: activationId }, 'activation lock taken');
        const release = async () => {
          await held.release();
        };
        return { release, [Symbol.asyncDispose]: release };
      }
      const remaining = deadline - Date.now();
      if (!options.wait || remaining <= 0) throw new LockBusyError(activationId);
      await sleep(Math.min(this.#sql.hooks.lockPollMs, remaining));
    }
  }

  async getBinding(activationId: string): Promise<AudienceBinding | undefined> {
    await this.migrate();
    return this.#sql.getBinding(activationId);
  }

  async saveBinding(binding: AudienceBinding): Promise<void> {
    await this.migrate();
    await this.#sql.saveBinding(binding);
  }

  async prepareDiff(spec: DiffSpec): Promise<DiffRun> {
    await this.migrate();
    const token = randomBytes(8).toString('hex');
    const started = Date.now();
    // Measured at 1M members (3M hash rows): the count takes 2.1 s, the diff 4.8 s; side by side
    // on two backends the count no longer adds to the run (bench/RESULTS.md). What starts is what the
    // safety rule asks first: the lower bound over the spec's sample, or the count without one.
    const held =
      spec.heldCountLikely && this.#sql.hooks.speculativeReads
        ? this.#sql.heldHashCount(spec.activationId, heldSampleBound(spec.heldSample))
        : undefined;
    // Awaited by heldHashCount(), or below when the diff fails; this only keeps a failure unhandled-safe.
    held?.catch(() => undefined);
    // The members with hashes, counted beside the diff where that is free (another backend of a
    // PostgreSQL server) and exact afterwards: one transaction writes a member's row and its hash rows,
    // so an added member holds none, and the lock keeps every other writer out until the run ends.
    // The run's commits then move it; the count after the load (a scan of the member index: 1.9 s
    // after a 1M first load and 0.5 s after a 1M incremental one, logged with every statement's
    // duration) leaves the run's end.
    const identified =
      this.#sql.hooks.speculativeReads && this.#sql.hooks.transactions
        ? this.#sql.identifiedMemberCount(spec.activationId)
        : undefined;
    identified?.catch(() => undefined);
    const diff = await openDiff(
      this.#sql,
      {
        activationId: spec.activationId,
        modelName: spec.modelName,
        modelSql: spec.modelSql,
        primaryKey: spec.primaryKey,
        columns: spec.columns,
        refreshBefore: spec.refreshBefore,
        fullResync: spec.fullResync,
        token,
      },
      this.#logger.child({ activation: spec.activationId }),
    ).catch(async (error: unknown) => {
      await held?.catch(() => undefined);
      await identified?.catch(() => undefined);
      throw error;
    });
    this.#logger.debug(
      {
        activation: spec.activationId,
        counts: diff.counts,
        keysCompared: diff.keysCompared,
        ms: Date.now() - started,
      },
      'diff prepared in the warehouse',
    );
    return new WarehouseDiffRun(this.#sql, diff, spec, held, identified);
  }

  async ownerId(activationId: string): Promise<string> {
    await this.migrate();
    this.#stateId ??= this.#sql.stateId(randomUUID()).catch((error: unknown) => {
      this.#stateId = undefined;
      throw error;
    });
    const stateId = await this.#stateId;
    return createHash('sha256').update(`${stateId}\n${activationId}`).digest('hex').slice(0, 24);
  }

  async suppressedHashes(stateIds: readonly string[], hashes: readonly string[]): Promise<Set<string>> {
    await this.migrate();
    return lookupInChunks([...new Set(hashes)], this.#sql.hooks.maxHashesPerLookup, (chunk) =>
      this.#sql.suppressedHashes(stateIds, chunk),
    );
  }

  async membersHoldingSuppressed(
    activationId: string,
    stateIds: readonly string[],
  ): Promise<{ key: string; hashes: MemberHashes }[]> {
    await this.migrate();
    const rows = await this.#sql.membersHoldingSuppressed(activationId, stateIds);
    return rows.map((row) => ({ key: row.key, hashes: hashesFromRows(row.hashes) }));
  }

  suppressionToApply(appliedId: string, stateIds: readonly string[]): Promise<MemberHashRow[]> {
    return this.migrate().then(() => this.#sql.suppressionToApply(appliedId, stateIds));
  }

  async recordSuppressionApplied(
    appliedId: string,
    stateIds: readonly string[],
    deleted: readonly MemberHashRow[],
  ): Promise<void> {
    await this.migrate();
    // Each hash is its own member (key = the hash) of the audience's record.
    const step = this.#sql.hooks.maxRowsPerStatement;
    for (let i = 0; i < deleted.length; i += step) {
      await this.#sql.applyMemberChanges(appliedId, {
        upserts: deleted
          .slice(i, i + step)
          .map((row) => ({ key: row.hash, fingerprint: row.hash, hashes: [row], lastSentAt: null })),
        removals: [],
        olderIntents: false,
      });
    }
    const lifted = await this.#sql.suppressionLifted(appliedId, stateIds);
    for (let i = 0; i < lifted.length; i += step) {
      await this.#sql.applyMemberChanges(appliedId, {
        upserts: [],
        removals: lifted.slice(i, i + step),
        olderIntents: false,
      });
    }
  }

  async memberCount(activationId: string): Promise<number> {
    await this.migrate();
    return this.#sql.memberCount(activationId);
  }

  async identifiedMemberCount(activationId: string): Promise<number> {
    await this.migrate();
    return this.#sql.identifiedMemberCount(activationId);
  }

  async startRun(activationId: string, startedAt: Date): Promise<string> {
    await this.migrate();
    // The caller holds the activation's lock: a run still `running` belongs to a dead process.
    const abandoned = await this.#sql.abandonRunningRuns(activationId, startedAt);
    if (abandoned > 0)
      this.#logger.warn(
        { activation: activationId, runs: abandoned },
        'closed runs a killed process left running as abandoned',
      );
    const id = randomUUID();
    await this.#sql.insertRun({ id, activationId, startedAt });
    return id;
  }

  async finishRun(runId: string, result: RunFinish): Promise<void> {
    await this.migrate();
    await this.#sql.finishRun(runId, result);
  }

  async recordRejections(
    runId: string,
    activationId: string,
    rows: readonly RejectionRecord[],
  ): Promise<void> {
    await this.migrate();
    const step = this.#sql.hooks.maxRowsPerStatement;
    for (let i = 0; i < rows.length; i += step) {
      await this.#sql.insertRejections(runId, activationId, rows.slice(i, i + step));
    }
  }

  async listRuns(options: { activationId?: string; limit: number }): Promise<RunRecord[]> {
    await this.migrate();
    return this.#sql.listRuns(options);
  }

  async listRejections(runId: string, limit: number): Promise<RunRejections> {
    await this.migrate();
    return this.#sql.listRejections(runId, limit);
  }

  async reset(activationId: string, options?: { keepBinding?: boolean }): Promise<void> {
    await this.migrate();
    await this.#sql.deleteAllMembers(activationId);
    if (!options?.keepBinding) await this.#sql.deleteBinding(activationId);
  }

  async getActivationStatus(activationId: string): Promise<ActivationStatus | undefined> {
    await this.migrate();
    return this.#sql.getActivationStatus(activationId);
  }

  async setActivationStatus(status: ActivationStatus): Promise<void> {
    await this.migrate();
    await this.#sql.setActivationStatus(status);
  }

  async listActivationStatus(): Promise<ActivationStatus[]> {
    await this.migrate();
    return this.#sql.listActivationStatus();
  }
}
