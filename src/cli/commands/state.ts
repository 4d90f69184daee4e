import type { Command } from 'commander';
import { resolveActivation } from '../../config/resolve-activation.js';
import { openSyncEngine } from '../../sync/engine.js';
import { withExamples, withGlobalOptions } from '../context.js';
import { EXIT } from '../exit-codes.js';
import type { Wrap } from './index.js';
import { engineLogger } from './sync.js';

export function defineState(program: Command, wrap: Wrap): void {
  const state = withExamples(program.command('state'), ['tailor state reset vip_customers_x']).description(
    "manage an activation's state in the warehouse",
  );
  withExamples(withGlobalOptions(state.command('reset <activation>')), ['tailor state reset vip_customers_x'])
    .description('forget the state of an activation (its next run is a full sync)')
    .action(
      wrap(async (ctx, activationId: string) => {
        const project = await ctx.project();
        resolveActivation(project, activationId); // unknown ids are a config error
        await using engine = await openSyncEngine(project, { logger: engineLogger(ctx) });
        const store = engine.state();
        // Under the activation's lock: a reset in the middle of a run would be undone by its commits.
        await using _lock = await store.lock(activationId, { wait: false });
        const binding = await store.getBinding(activationId);
        const members = await store.memberCount(activationId);
        await store.reset(activationId);
        if (ctx.globals.json) {
          ctx.printJson({
            ok: true,
            activation: activationId,
            members_forgotten: members,
            audience_id: binding?.audienceId ?? null,
          });
        } else {
          const audience = binding
            ? ` and its binding to audience ${binding.audienceId} ("${binding.audienceName}")`
            : '';
          ctx.print(
            `reset ${activationId}: forgot ${members} member${members === 1 ? '' : 's'}${audience}; ` +
              'the run log is kept. Its next run binds the audience again (by id or name) and sends every member.',
          );
        }
        return EXIT.ok;
      }),
    );
}
