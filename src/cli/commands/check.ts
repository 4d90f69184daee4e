import type { Command } from 'commander';
import { resolveActivations } from '../../config/resolve-activation.js';
import { withGlobalOptions } from '../context.js';
import { EXIT } from '../exit-codes.js';
import type { Wrap } from './index.js';

export function defineCheck(program: Command, wrap: Wrap): void {
  withGlobalOptions(program.command('check'))
    .description('validate tailor.yml and the models, reporting every problem with its file and path')
    .action(
      wrap(async (ctx) => {
        const project = await ctx.project();
        const activations = resolveActivations(project);
        if (ctx.globals.json) {
          ctx.printJson({
            ok: true,
            issues: [],
            warehouse: project.config.warehouse.type,
            models: [...project.models.keys()],
            destinations: Object.keys(project.config.destinations),
            activations: activations.map((a) => ({
              id: a.id,
              model: a.model.name,
              destination: a.destinationName,
              schedule: a.schedule.text,
              enabled: a.enabled,
            })),
          });
        } else {
          ctx.print(
            `ok: ${project.models.size} model${project.models.size === 1 ? '' : 's'}, ` +
              `${Object.keys(project.config.destinations).length} destination(s), ${activations.length} activation(s) ` +
              `(warehouse: ${project.config.warehouse.type})`,
          );
        }
        return EXIT.ok;
      }),
    );
}
