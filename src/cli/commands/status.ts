import type { Command } from 'commander';
import { resolveActivations } from '../../config/resolve-activation.js';
import { type ActivationStatusView, describeActivations } from '../../scheduler/status-report.js';
import { openSyncEngine } from '../../sync/index.js';
import { formatMatchRate, matchRateJson } from '../../sync/match-rate.js';
import { type CommandContext, withExamples, withGlobalOptions } from '../context.js';
import { EXIT } from '../exit-codes.js';
import { formatCount, formatInstant, formatTable } from '../output.js';
import type { Wrap } from './index.js';
import { selectActivations } from './sync.js';

const iso = (date: Date | null | undefined) => (date ? date.toISOString() : null);

/** `status --json`: snake_case, as machines and the warehouse see it. */
function viewJson(view: ActivationStatusView) {
  const run = view.lastRun;
  return {
    activation: view.id,
    enabled: view.enabled,
    schedule: view.schedule,
    timezone: view.timezone,
    next_run_at: iso(view.nextRunAt),
    next_run_reason: view.nextRunReason,
    last_run: run
      ? {
          run_id: run.id,
          status: run.status,
          started_at: iso(run.startedAt),
          finished_at: iso(run.finishedAt),
          rows: run.counts.rows,
          added: run.counts.added,
          removed: run.counts.removed,
          changed: run.counts.changed,
          refreshed: run.counts.refreshed,
          invalid: run.counts.invalid,
          rejected: run.counts.rejected,
          suppressed: run.counts.suppressed,
          requests: run.counts.requests,
          error: run.error,
        }
      : null,
    last_success_at: iso(view.lastSuccessAt),
    paused: view.paused,
    paused_at: iso(view.pausedAt),
    paused_reason: view.pausedReason,
    consecutive_failures: view.consecutiveFailures,
    audience_id: view.audienceId,
    audience: view.audience
      ? {
          id: view.audience.id,
          name: view.audience.name,
          size: view.audience.size,
          targetable: view.audience.targetable,
          reasons_not_targetable: view.audience.reasonsNotTargetable,
        }
      : null,
    audience_error: view.audienceError,
    match_rate: view.matchRate ? matchRateJson(view.matchRate) : null,
  };
}

/** A time for a table, as `history` prints it; `--json` has the exact instant. */
const short = (date: Date | null) => formatInstant(date);

function nextRunText(view: ActivationStatusView): string {
  if (view.nextRunReason === 'scheduled') return short(view.nextRunAt);
  if (view.nextRunReason === 'backoff') return `${short(view.nextRunAt)} (backoff)`;
  return view.nextRunReason === 'after_dbt' ? 'after dbt' : view.nextRunReason;
}

function lastRunText(view: ActivationStatusView): string {
  const run = view.lastRun;
  if (!run) return 'never';
  return `${run.status} ${short(run.finishedAt ?? run.startedAt)}`;
}

function countsText(view: ActivationStatusView): string {
  const c = view.lastRun?.counts;
  if (!c) return '-';
  const n = formatCount;
  return `+${n(c.added)} -${n(c.removed)} ~${n(c.changed)} r${n(c.refreshed)} !${n(c.invalid)} x${n(c.rejected)} s${n(c.suppressed)}`;
}

function audienceText(view: ActivationStatusView): [string, string, string] {
  if (!view.audienceId) return ['-', '-', '-'];
  if (!view.audience) return [view.audienceId, '?', '?'];
  const size = view.audience.size === null ? 'pending' : formatCount(view.audience.size);
  const targetable = view.audience.targetable === null ? '?' : view.audience.targetable ? 'yes' : 'no';
  return [view.audienceId, size, targetable];
}

const matchText = (view: ActivationStatusView): string => formatMatchRate(view.matchRate);

function printTable(ctx: CommandContext, views: readonly ActivationStatusView[]): void {
  if (views.length === 0) {
    ctx.print('no activations in tailor.yml');
    return;
  }
  const rows = views.map((view) => [
    view.id,
    view.enabled ? (view.paused ? 'paused' : 'active') : 'disabled',
    view.schedule,
    nextRunText(view),
    lastRunText(view),
    countsText(view),
    ...audienceText(view),
    matchText(view),
  ]);
  const lines = [
    formatTable(
      [
        'ACTIVATION',
        'STATE',
        'SCHEDULE',
        'NEXT RUN',
        'LAST RUN',
        'LAST COUNTS',
        'AUDIENCE ID',
        'SIZE',
        'TARGETABLE',
        'MATCH SENT/ROWS',
      ],
      rows,
    ),
  ];
  const notes: string[] = [];
  for (const view of views) {
    if (view.paused)
      notes.push(
        `${view.id}: paused since ${short(view.pausedAt)}: ${view.pausedReason ?? 'no reason recorded'}`,
      );
    else if (view.consecutiveFailures > 0)
      notes.push(`${view.id}: ${view.consecutiveFailures} failed run(s) in a row`);
    if (view.lastRun?.error && view.lastRun.status !== 'succeeded')
      notes.push(`${view.id}: last run: ${view.lastRun.error}`);
    if (view.audienceError) notes.push(`${view.id}: ${view.audienceError}`);
    const reasons = view.audience?.reasonsNotTargetable ?? [];
    if (view.audience?.targetable === false && reasons.length > 0)
      notes.push(`${view.id}: not targetable: ${reasons.join(', ')}`);
    const rate = view.matchRate;
    if (rate && rate.audienceSize !== null)
      notes.push(
        `${view.id}: X matched ${formatCount(rate.audienceSize)} of ${formatCount(rate.sent)} members sent` +
          (rate.rows === null ? '' : ` (${formatCount(rate.rows)} rows)`) +
          (rate.processedAt ? `, processed ${short(new Date(rate.processedAt))}` : ''),
      );
  }
  if (notes.length > 0) lines.push('', ...notes);
  lines.push('', 'counts: +added -removed ~changed r refreshed ! invalid x rejected s suppressed');
  ctx.print(lines.join('\n'));
}

export function defineStatus(program: Command, wrap: Wrap): void {
  withExamples(withGlobalOptions(program.command('status')), [
    'tailor status',
    'tailor status vip_customers_x --json',
  ])
    .argument('[activation...]', 'activations to show (default: all)')
    .description(
      "per activation: schedule, next run, last run and its counts, paused or not, and X's audience size and targetability",
    )
    .action(
      wrap(async (ctx, ids: string[]) => {
        const project = await ctx.project();
        selectActivations(project, ids, false); // unknown ids are a configuration error
        const activations = resolveActivations(project).filter((a) => ids.length === 0 || ids.includes(a.id));
        // The engine's own logging would only repeat what the table says; keep warnings and errors.
        const logger = ctx.logger.child({}, { level: ctx.globals.debug ? 'debug' : 'warn' });
        await using engine = await openSyncEngine(project, { logger });
        const views = await describeActivations(engine, activations, { signal: ctx.signal });
        if (ctx.globals.json) ctx.printJson({ ok: true, activations: views.map(viewJson) });
        else printTable(ctx, views);
        return EXIT.ok;
      }),
    );
}
