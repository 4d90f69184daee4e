import type { Command } from 'commander';
import { withExamples, withGlobalOptions } from '../context.js';
import { EXIT, exitCodeForReports } from '../exit-codes.js';
import type { Wrap } from './index.js';
import { printReports, reportJson, runActivations, selectActivations } from './sync.js';

export function definePlan(program: Command, wrap: Wrap): void {
  withExamples(withGlobalOptions(program.command('plan [activations...]')), [
    'tailor plan                 # every enabled activation',
    'tailor plan vip_customers_x --json',
  ])
    .description('dry run: counts to add, remove, change and refresh, and invalid rows; nothing is sent')
    .action(
      wrap(async (ctx, activations: string[]) => {
        const project = await ctx.project();
        // No ids: every enabled activation, as `sync --all` would run them.
        const ids = selectActivations(project, activations, activations.length === 0);
        const reports = await runActivations(ctx, project, ids, {
          fullResync: false,
          recreate: false,
          force: false,
          dryRun: true,
          waitForLock: false,
        });
        // A plan that predicts a safety hold is still a good plan: it says why.
        const code = exitCodeForReports(reports, ['succeeded', 'held']);
        if (ctx.globals.json) ctx.printJson({ ok: code === EXIT.ok, activations: reports.map(reportJson) });
        else if (reports.length === 0) ctx.print('no enabled activations to plan');
        else printReports(ctx, reports, true);
        return code;
      }),
    );
}
