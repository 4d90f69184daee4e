import type { Logger } from 'pino';
import type { Project } from '../config/load-project.js';
import { suppressionStateId } from '../config/suppression-config.js';
import type { Destination } from '../destinations/destination.js';
import type { MemberAck, StateStore } from '../diff/types.js';
import { ConfigError } from '../errors.js';
import type { Source } from '../sources/source.js';
import { actualColumn } from './mappings.js';

/**
 * Suppression state (docs/suppression.md): each model of `suppression:` in tailor.yml is diffed
 * against its own state (`suppression__<model>`) exactly as an activation's segment is, in the
 * warehouse, and its delta normalized and hashed through the destination's `prepare`, so that
 * state's member_hashes rows for it ARE the suppressed identifiers, kept incrementally. Nothing is
 * sent anywhere. Every activation run brings it up to date before its own diff.
 */

/** The state ids of the project's suppression models. */
export function suppressionStateIds(project: Project): string[] {
  return project.config.suppression.map((entry) => suppressionStateId(entry.model));
}

export interface SuppressionRefresh {
  /** Suppression rows whose state changed: new, changed or gone opt-outs. */
  changed: number;
  /** Values that could not be normalized (not suppressing anyone); never logged raw. */
  invalid: number;
}

/** Brings every suppression model's state up to date, each under its own lock. */
export async function refreshSuppression(args: {
  project: Project;
  source: Pick<Source, 'describeModel'>;
  state: StateStore;
  destination: Destination;
  phoneDefaultRegion: string;
  batchSize: number;
  logger: Logger;
}): Promise<SuppressionRefresh> {
  const { project, source, state, destination } = args;
  const total: SuppressionRefresh = { changed: 0, invalid: 0 };
  for (const [index, entry] of project.config.suppression.entries()) {
    const model = project.models.get(entry.model);
    if (!model)
      throw new ConfigError([
        { file: 'tailor.yml', path: `suppression.${index}.model`, message: `unknown model "${entry.model}"` },
      ]);
    const columns = (await source.describeModel(model.name, model.sql)).map((column) => column.name);
    const issues = [];
    const primaryKey = actualColumn(columns, model.primaryKey);
    if (primaryKey === undefined)
      issues.push({
        file: `models/${model.name}.yml`,
        path: 'primary_key',
        message: `column "${model.primaryKey}" is not among the columns the model returns (${columns.join(', ')})`,
      });
    const mappings: Record<string, string> = {};
    for (const [column, type] of Object.entries(entry.mappings)) {
      const actual = actualColumn(columns, column);
      if (actual === undefined)
        issues.push({
          file: 'tailor.yml',
          path: `suppression.${index}.mappings.${column}`,
          message: `model ${model.name} returns no column "${column}" (it returns ${columns.join(', ')})`,
        });
      else mappings[actual] = type;
    }
    if (issues.length > 0) throw new ConfigError(issues);

    const stateId = suppressionStateId(entry.model);
    const options = { defaultRegion: entry.phone_default_region ?? args.phoneDefaultRegion };
    let changed = 0;
    let invalid = 0;
    {
      // Two activations' runs may refresh it at once (other processes, the scheduler): one at a time.
      await using _lock = await state.lock(stateId, { wait: true });
      await using diff = await state.prepareDiff({
        activationId: stateId,
        modelSql: model.sql,
        modelName: model.name,
        primaryKey: primaryKey!,
        columns: Object.keys(mappings),
        refreshBefore: null,
        fullResync: false,
      });
      for await (const batch of diff.delta(args.batchSize)) {
        const acks: MemberAck[] = batch.map((row) => {
          if (row.change === 'removed' || row.values === null)
            return {
              key: row.key,
              change: 'removed',
              fingerprint: null,
              hashes: null,
              previousHashes: row.previousHashes,
              sentAt: null,
            };
          const prepared = destination.prepare(row.values, mappings, options);
          invalid += prepared.invalid.length;
          return {
            key: row.key,
            keyHash: row.keyHash ?? null,
            change: row.change,
            fingerprint: row.fingerprint,
            hashes: prepared.hashes,
            previousHashes: row.previousHashes,
            sentAt: null,
          };
        });
        await diff.commit(acks);
        changed += batch.length;
      }
      await diff.settleKeyHashes();
      if (diff.counts.invalidKeys > 0)
        args.logger.warn(
          { model: model.name, rows: diff.counts.invalidKeys },
          'suppression rows with a null or duplicated primary key were left out: give every opt-out row a unique key',
        );
    }
    args.logger.info({ model: model.name, changed, invalid }, 'suppression state brought up to date');
    total.changed += changed;
    total.invalid += invalid;
  }
  return total;
}
