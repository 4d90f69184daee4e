import type { Command } from 'commander';
import { AlertNotifier } from '../../alerts/alert-delivery.js';
import { withAlerts } from '../../alerts/alerting-engine.js';
import type { Project } from '../../config/load-project.js';
import { ConfigError, type ConfigIssue } from '../../errors.js';
import { type DbtSelection, readRunResults, selectAfterDbt } from '../../models/dbt-manifest.js';
import { openSyncEngine } from '../../sync/engine.js';
import { syncMany } from '../../sync/sync-many.js';
import type { SyncOptions, SyncReport } from '../../sync/types.js';
import { type CommandContext, withExamples, withGlobalOptions } from '../context.js';
import { commandLineError, EXIT, exitCodeForReports } from '../exit-codes.js';
import type { Logger } from '../logger.js';
import { formatCount, formatDuration, formatTable, interactive } from '../output.js';
import { createProgressView, NO_PROGRESS, type ProgressView } from '../progress.js';
import type { Wrap } from './index.js';

/**
 * The engine's logger for a command that prints its own summary: warnings and errors only, unless
 * `--debug` asks for everything (the scheduler keeps `info`: its log is the record of its runs).
 */
export function engineLogger(ctx: CommandContext): Logger {
  return ctx.logger.child({}, { level: ctx.globals.debug ? 'debug' : 'warn' });
}

/**
 * The activations a command names, checked against tailor.yml; `all` takes every enabled one. Unknown
 * ids are a configuration error before anything runs.
 */
export function selectActivations(project: Project, ids: readonly string[], all: boolean): string[] {
  const known = Object.keys(project.config.activations);
  if (all) {
    if (ids.length > 0) throw commandLineError('give activation ids or --all, not both');
    return known.filter((id) => project.config.activations[id]!.enabled);
  }
  const unknown = ids.filter((id) => !(id in project.config.activations));
  if (unknown.length > 0) {
    throw new ConfigError(
      unknown.map((id) => ({
        file: 'tailor.yml',
        path: 'activations',
        message: `unknown activation "${id}"${known.length ? ` (defined: ${known.join(', ')})` : ''}`,
      })),
    );
  }
  return [...new Set(ids)];
}

/** One report as `sync --json` and `plan --json` print it (snake_case, as machines and YAML see it). */
export function reportJson(report: SyncReport) {
  const c = report.counts;
  return {
    activation: report.activationId,
    status: report.status,
    run_id: report.runId,
    audience_id: report.audienceId,
    rows: c.rows,
    added: c.added,
    removed: c.removed,
    changed: c.changed,
    refreshed: c.refreshed,
    invalid: c.invalid,
    invalid_by_reason: c.invalidByReason,
    rejected: c.rejected,
    suppressed: c.suppressed,
    requests: c.requests,
    duration_ms: report.durationMs,
    warnings: report.warnings,
    error: report.error,
    ...(report.errorKind ? { error_kind: report.errorKind } : {}),
  };
}

/** The human summary: a table, then each activation's invalid breakdown, warnings and errors. */
export function printReports(ctx: CommandContext, reports: readonly SyncReport[], plan: boolean): void {
  const headers = plan
    ? ['activation', 'status', 'rows', 'add', 'remove', 'change', 'refresh', 'invalid', 'suppress']
    : [
        'activation',
        'status',
        'rows',
        'added',
        'removed',
        'changed',
        'refreshed',
        'invalid',
        'suppressed',
        'rejected',
        'audience id',
        'time',
      ];
  const rows = reports.map((r) => {
    const c = r.counts;
    const status = plan && r.status === 'succeeded' ? 'ok' : r.status;
    const counts = [c.rows, c.added, c.removed, c.changed, c.refreshed, c.invalid, c.suppressed].map(
      formatCount,
    );
    const base = [r.activationId, status, ...counts];
    return plan
      ? base
      : [...base, formatCount(c.rejected), r.audienceId ?? '-', formatDuration(r.durationMs)];
  });
  ctx.print(formatTable(headers, rows));
  const lines: string[] = [];
  for (const r of reports) {
    const reasons = Object.entries(r.counts.invalidByReason);
    if (reasons.length > 0)
      lines.push(
        `${r.activationId}: invalid ${reasons.map(([reason, n]) => `${reason} ${formatCount(n)}`).join(', ')}`,
      );
    for (const warning of r.warnings) lines.push(`${r.activationId}: warning: ${warning}`);
    if (r.error) lines.push(`${r.activationId}: ${r.status === 'held' ? '' : `${r.status}: `}${r.error}`);
  }
  if (lines.length > 0) ctx.print(`\n${lines.join('\n')}`);
  const total = (key: 'added' | 'removed' | 'changed' | 'refreshed') =>
    reports.reduce((sum, r) => sum + r.counts[key], 0);
  const nothing =
    reports.every((r) => r.status === 'succeeded') &&
    total('added') + total('removed') + total('changed') + total('refreshed') === 0;
  if (nothing) ctx.print(plan ? '\nno changes to send' : '\nno changes: the audiences were already in step');
}

/** Progress on stderr for people: none under `--json`; bars on a terminal, lines elsewhere. */
export function progressView(ctx: CommandContext, ids: readonly string[], dryRun: boolean): ProgressView {
  if (ctx.globals.json || ids.length === 0) return NO_PROGRESS;
  return createProgressView(ctx.io.stderr, ids, {
    interactive: interactive(ctx.io.stderr, ctx.io.env),
    dryRun,
  });
}

/** Runs (or plans) activations through one engine with progress on stderr; returns the reports. */
export async function runActivations(
  ctx: CommandContext,
  project: Project,
  ids: readonly string[],
  options: Omit<SyncOptions, 'onProgress' | 'signal'>,
): Promise<SyncReport[]> {
  const view = progressView(ctx, ids, options.dryRun);
  const logger = engineLogger(ctx);
  await using opened = await openSyncEngine(project, { logger });
  // Alerts follow runs, not plans; their deliveries are logged at the scheduler's level of detail.
  const engine = options.dryRun
    ? opened
    : withAlerts(opened, new AlertNotifier(project.config.alerts, { logger }), { logger });
  try {
    const reports = await syncMany(engine, ids, {
      ...options,
      signal: ctx.signal,
      onProgress: (progress) => view.onProgress(progress),
    });
    view.finish(reports);
    return reports;
  } finally {
    view.stop();
  }
}

/**
 * The activations `sync --after-dbt` runs: those whose dbt model the last dbt invocation (its
 * run_results.json) rebuilt successfully. A project without `models_from: dbt`, or missing or
 * unsupported run results, is a configuration error.
 */
export async function dbtSelection(project: Project): Promise<DbtSelection> {
  if (project.config.models_from !== 'dbt')
    throw new ConfigError([
      {
        file: 'tailor.yml',
        path: 'models_from',
        message: '--after-dbt needs models_from: dbt in tailor.yml',
      },
    ]);
  const issues: ConfigIssue[] = [];
  const results = await readRunResults(
    project.dir,
    project.config.dbt ?? { project_dir: '.', target_path: 'target' },
    issues,
  );
  if (!results) throw new ConfigError(issues);
  return selectAfterDbt(project.config.activations, project.models, results);
}

export function defineSync(program: Command, wrap: Wrap): void {
  withExamples(withGlobalOptions(program.command('sync [activations...]')), [
    'tailor sync vip_customers_x',
    'tailor sync --all',
    'tailor sync vip_customers_x --force         # even though a safety rule holds it',
    'tailor sync vip_customers_x --full-resync   # re-send the whole segment',
    'dbt build && tailor sync --after-dbt        # the activations whose dbt models dbt just rebuilt',
  ])
    .description(
      'run activations now: diff in the warehouse, send the delta to X, commit what X acknowledged',
    )
    .option('--all', 'every enabled activation', false)
    .option('--full-resync', 're-send the whole segment (and delete what state holds beyond it)', false)
    .option(
      '--recreate',
      'with --full-resync: create a new audience when the bound one was deleted at X',
      false,
    )
    .option('--force', 'run even when a safety rule would hold the run', false)
    .option(
      '--suppression-only',
      'apply only the suppression models (opted-out members leave every audience now); other changes wait for the next run',
      false,
    )
    .option(
      '--after-dbt',
      'sync the enabled activations whose dbt models the last dbt run rebuilt successfully (target/run_results.json)',
      false,
    )
    .option(
      '--adopt',
      'take over an audience another activation or project feeds (its owner mark), or an unmarked one with members',
      false,
    )
    .action(
      wrap(
        async (
          ctx,
          activations: string[],
          flags: {
            all: boolean;
            fullResync: boolean;
            recreate: boolean;
            force: boolean;
            adopt: boolean;
            afterDbt: boolean;
            suppressionOnly: boolean;
          },
        ) => {
          const project = await ctx.project();
          if (flags.suppressionOnly && project.config.suppression.length === 0)
            throw commandLineError('tailor.yml has no suppression: models to apply', {
              option: '--suppression-only',
            });
          if (flags.suppressionOnly && flags.fullResync)
            throw commandLineError('give --suppression-only or --full-resync, not both', {
              option: '--suppression-only',
            });
          if (flags.recreate && !flags.fullResync)
            throw commandLineError('needs --full-resync (a new audience must receive every member)', {
              option: '--recreate',
            });
          let dbt: DbtSelection | undefined;
          if (flags.afterDbt) {
            if (activations.length > 0 || flags.all)
              throw commandLineError('give activation ids, --all or --after-dbt, not several', {
                option: '--after-dbt',
              });
            dbt = await dbtSelection(project);
          } else if (activations.length === 0 && !flags.all)
            throw commandLineError('name the activations to sync, or use --all (or --after-dbt)', {
              hint: `defined: ${Object.keys(project.config.activations).join(', ') || 'none'}`,
            });
          const ids = dbt ? dbt.run : selectActivations(project, activations, flags.all);
          const reports = await runActivations(ctx, project, ids, {
            fullResync: flags.fullResync,
            recreate: flags.recreate,
            force: flags.force,
            adopt: flags.adopt,
            ...(flags.suppressionOnly ? { suppressionOnly: true } : {}),
            dryRun: false,
            waitForLock: false,
          });
          for (const report of reports) {
            if (project.config.activations[report.activationId]?.enabled === false)
              report.warnings.push('this activation is paused (enabled: false); it ran because it was named');
          }
          const code = exitCodeForReports(reports, ['succeeded']);
          const skipped = (dbt?.skipped ?? []).map((s) => ({ activation: s.activationId, reason: s.reason }));
          if (ctx.globals.json)
            ctx.printJson({
              ok: code === EXIT.ok,
              activations: reports.map(reportJson),
              ...(dbt ? { skipped } : {}),
            });
          else {
            if (reports.length === 0)
              ctx.print(dbt ? 'no activation to sync after this dbt run' : 'no enabled activations to sync');
            else printReports(ctx, reports, false);
            if (skipped.length > 0)
              ctx.print(`\nskipped:\n${skipped.map((s) => `  ${s.activation}: ${s.reason}`).join('\n')}`);
          }
          return code;
        },
      ),
    );
}
