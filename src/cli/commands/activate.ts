import type { Command } from 'commander';
import type { Project } from '../../config/load-project.js';
import { addActivation, editConfig } from '../../config/write-config.js';
import { ConfigError } from '../../errors.js';
import { pickDestination, proposeActivation } from '../../sync/activate.js';
import { openSyncEngine } from '../../sync/engine.js';
import { syncMany } from '../../sync/sync-many.js';
import type { SyncReport } from '../../sync/types.js';
import { type CommandContext, withExamples, withGlobalOptions } from '../context.js';
import { commandLineError, EXIT, exitCodeForReports } from '../exit-codes.js';
import type { Wrap } from './index.js';
import { engineLogger, printReports, progressView, reportJson } from './sync.js';

export function defineActivate(program: Command, wrap: Wrap): void {
  withExamples(withGlobalOptions(program.command('activate <model>')), [
    'tailor activate vip_customers                     # write the activation, create the audience, first sync',
    'tailor activate vip_customers --destination x --no-run   # only write it into tailor.yml',
  ])
    .description(
      "one-click activation of a model from the destination's default settings: writes it into tailor.yml, creates the audience and runs the first sync",
    )
    .option('--destination <name>', 'the destination (needed when tailor.yml defines several)')
    .option('--no-run', 'only write the activation into tailor.yml; create nothing at X and sync nothing')
    .action(
      wrap(async (ctx, modelName: string, flags: { destination?: string; run: boolean }) => {
        const project = await ctx.project();
        if (!project.models.has(modelName)) {
          const known = [...project.models.keys()];
          throw new ConfigError(
            `unknown model "${modelName}" (no models/${modelName}.sql and .yml)${known.length ? `; models: ${known.join(', ')}` : ''}`,
          );
        }
        if (flags.destination !== undefined && !(flags.destination in project.config.destinations)) {
          const names = Object.keys(project.config.destinations);
          throw commandLineError(
            `unknown destination "${flags.destination}"${names.length ? ` (defined: ${names.join(', ')})` : ''}`,
            { option: '--destination' },
          );
        }
        const destinationName = pickDestination(project, flags.destination);
        let proposal;
        {
          // Closed before the first sync opens its own: an embedded warehouse takes one opener at a time.
          await using engine = await openSyncEngine(project, { logger: engineLogger(ctx) });
          proposal = await proposeActivation(project, engine, modelName, destinationName);
        }
        const { id, mappings, audienceName, value } = proposal;
        const model = { name: proposal.model };
        // Never leave a tailor.yml behind that no longer loads: editConfig undoes the edit if it fails.
        const updated: Project = await editConfig(
          project.configPath,
          (doc) => addActivation(doc, id, value),
          () => ctx.reloadProject(),
        );
        const summary = Object.entries(mappings)
          .map(([column, type]) => `${column} → ${type}`)
          .join(', ');
        let report: SyncReport | undefined;
        if (flags.run) {
          if (!ctx.globals.json)
            ctx.note(`activated ${id}: audience "${audienceName}", ${summary}; running the first sync`);
          report = await firstSync(ctx, updated, id);
        }
        const code = report ? exitCodeForReports([report], ['succeeded']) : EXIT.ok;
        if (ctx.globals.json) {
          ctx.printJson({
            ok: code === EXIT.ok,
            activation: id,
            config: value,
            run: report ? reportJson(report) : null,
          });
        } else if (report) {
          printReports(ctx, [report], false);
        } else {
          ctx.print(
            `activated ${id} in tailor.yml: model ${model.name} → audience "${audienceName}" on ${destinationName} (${summary}); ` +
              `run \`tailor sync ${id}\` to create the audience and send its members`,
          );
        }
        return code;
      }),
    );
}

/** The first run of a new activation, through an engine that knows the rewritten tailor.yml. */
async function firstSync(ctx: CommandContext, project: Project, id: string): Promise<SyncReport> {
  const view = progressView(ctx, [id], false);
  try {
    await using engine = await openSyncEngine(project, { logger: engineLogger(ctx) });
    const [report] = await syncMany(engine, [id], {
      fullResync: false,
      recreate: false,
      force: false,
      dryRun: false,
      waitForLock: false,
      signal: ctx.signal,
      onProgress: (progress) => view.onProgress(progress),
    });
    view.finish([report!]);
    return report!;
  } finally {
    view.stop();
  }
}
