import type { Command } from 'commander';
import type { AudienceInfo } from '../../destinations/destination.js';
import { createDestination } from '../../destinations/registry.js';
import { withExamples, withGlobalOptions } from '../context.js';
import { commandLineError, EXIT } from '../exit-codes.js';
import { formatCount, formatTable } from '../output.js';
import type { Wrap } from './index.js';

export function defineAudiences(program: Command, wrap: Wrap): void {
  withExamples(withGlobalOptions(program.command('audiences')), [
    'tailor audiences',
    'tailor audiences --destination x --json',
  ])
    .description("list the X account's custom audiences (id, name, size, targetability)")
    .option('--destination <name>', 'only this destination (default: every x_ads destination)')
    .action(
      wrap(async (ctx, flags: { destination?: string }) => {
        const project = await ctx.project();
        const destinations = Object.entries(project.config.destinations).filter(
          ([name, config]) => config.type === 'x_ads' && (!flags.destination || name === flags.destination),
        );
        if (flags.destination && destinations.length === 0) {
          throw commandLineError(
            `no x_ads destination named ${flags.destination} (destinations: ${Object.keys(project.config.destinations).join(', ') || 'none'})`,
            { option: '--destination' },
          );
        }
        // Request logs only when asked: the table is the output.
        const logger = ctx.logger.child({}, { level: ctx.globals.debug ? 'debug' : 'warn' });
        const listed: Array<{ name: string; accountId: string; audiences: AudienceInfo[] }> = [];
        for (const [name, config] of destinations) {
          const destination = createDestination(name, config, { logger });
          const audiences = await destination.listAudiences(ctx.signal);
          audiences.sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
          listed.push({ name, accountId: config.account_id, audiences });
        }

        if (ctx.globals.json) {
          ctx.printJson({
            destinations: listed.map(({ name, accountId, audiences }) => ({
              destination: name,
              account_id: accountId,
              audiences: audiences.map((a) => ({
                id: a.id,
                name: a.name,
                description: a.description,
                size: a.size,
                targetable: a.targetable,
                reasons_not_targetable: a.reasonsNotTargetable,
                created_at: a.createdAt,
                updated_at: a.updatedAt,
              })),
            })),
          });
          return EXIT.ok;
        }
        if (listed.length === 0) {
          ctx.print('no x_ads destinations in tailor.yml');
          return EXIT.ok;
        }
        const blocks = listed.map(({ name, accountId, audiences }) => {
          const title = `${name} (account ${accountId}): ${audiences.length} audience${audiences.length === 1 ? '' : 's'}`;
          if (audiences.length === 0) return title;
          const rows = audiences.map((a) => [
            a.id,
            a.name,
            // X reports no size while it is still matching the audience, and none for an audience below
            // its targeting minimum of 100 matched users (https://docs.x.com/x-ads-api/audiences).
            a.size === null ? '-' : formatCount(a.size),
            a.targetable === null ? '?' : a.targetable ? 'yes' : 'no',
            a.reasonsNotTargetable.join(', ') || '-',
          ]);
          return `${title}\n${formatTable(['id', 'name', 'size', 'targetable', 'reasons'], rows)}`;
        });
        ctx.print(blocks.join('\n\n'));
        return EXIT.ok;
      }),
    );
}
