import type { Command } from 'commander';
import { openSyncEngine } from '../../sync/engine.js';
import { formatMatchRate, matchRateJson, matchRateOfRun } from '../../sync/match-rate.js';
import { withExamples, withGlobalOptions } from '../context.js';
import { commandLineError, EXIT } from '../exit-codes.js';
import { formatCount, formatDuration, formatInstant, formatTable } from '../output.js';
import type { Wrap } from './index.js';
import { engineLogger, selectActivations } from './sync.js';

function parseLimit(text: string): number {
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 1 || limit > 10_000)
    throw commandLineError(`must be a whole number from 1 to 10000 (got "${text}")`, { option: '--limit' });
  return limit;
}

export function defineHistory(program: Command, wrap: Wrap): void {
  withExamples(withGlobalOptions(program.command('history [activation]')), [
    'tailor history',
    'tailor history vip_customers_x --limit 5',
  ])
    .description('past runs with their counts, newest first')
    .option('--limit <n>', 'how many runs to show', '20')
    .action(
      wrap(async (ctx, activation: string | undefined, flags: { limit: string }) => {
        const limit = parseLimit(flags.limit);
        const project = await ctx.project();
        // An unknown id is a mistake to report, as every other command does, not an empty history.
        if (activation !== undefined) selectActivations(project, [activation], false);
        await using engine = await openSyncEngine(project, { logger: engineLogger(ctx) });
        const runs = await engine
          .state()
          .listRuns({ ...(activation ? { activationId: activation } : {}), limit });
        if (ctx.globals.json) {
          ctx.printJson({
            ok: true,
            runs: runs.map((run) => ({
              id: run.id,
              activation: run.activationId,
              started_at: run.startedAt.toISOString(),
              finished_at: run.finishedAt?.toISOString() ?? null,
              status: run.status,
              ...run.counts,
              match_rate: run.match ? matchRateJson(matchRateOfRun(run.match, run.counts.rows)) : null,
              error: run.error,
            })),
          });
          return EXIT.ok;
        }
        if (runs.length === 0) {
          ctx.print(activation ? `no runs of ${activation} yet` : 'no runs yet');
          return EXIT.ok;
        }
        ctx.print(
          formatTable(
            [
              'started',
              'activation',
              'status',
              'time',
              'rows',
              'added',
              'removed',
              'changed',
              'refreshed',
              'invalid',
              'rejected',
              'suppressed',
              'match sent/rows',
              'error',
            ],
            runs.map((run) => [
              formatInstant(run.startedAt),
              run.activationId,
              run.status,
              run.finishedAt ? formatDuration(run.finishedAt.getTime() - run.startedAt.getTime()) : '-',
              ...[
                run.counts.rows,
                run.counts.added,
                run.counts.removed,
                run.counts.changed,
                run.counts.refreshed,
                run.counts.invalid,
                run.counts.rejected,
                run.counts.suppressed,
              ].map(formatCount),
              formatMatchRate(run.match ? matchRateOfRun(run.match, run.counts.rows) : null),
              run.error ?? '',
            ]),
          ),
        );
        return EXIT.ok;
      }),
    );
}
