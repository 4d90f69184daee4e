import { readFile, rename, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { isMap, isScalar, parseDocument, type YAMLMap } from 'yaml';
import type { Project } from '../../config/load-project.js';
import { NAME_PATTERN } from '../../config/names.js';
import { effectiveMappings, renderTemplate, resolveActivations } from '../../config/resolve-activation.js';
import { ConfigError } from '../../errors.js';
import { openSyncEngine } from '../../sync/engine.js';
import { syncMany } from '../../sync/sync-many.js';
import type { SyncReport } from '../../sync/types.js';
import { type CommandContext, withExamples, withGlobalOptions } from '../context.js';
import { commandLineError, EXIT, exitCodeForReports } from '../exit-codes.js';
import type { Wrap } from './index.js';
import { engineLogger, printReports, progressView, reportJson } from './sync.js';

/** `<model>_<destination>`, made to fit the activation id pattern (it names warehouse tables). */
export function activationIdFor(model: string, destination: string): string {
  let id = `${model}_${destination}`
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/_+/g, '_');
  if (!/^[a-z]/.test(id)) id = `a_${id}`;
  id = id.slice(0, 63).replace(/_+$/, '');
  if (!NAME_PATTERN.test(id))
    throw new ConfigError(`cannot make an activation id from "${model}" and "${destination}"`);
  return id;
}

function pickDestination(project: Project, requested: string | undefined): string {
  const names = Object.keys(project.config.destinations);
  if (requested !== undefined) {
    if (!(requested in project.config.destinations))
      throw commandLineError(
        `unknown destination "${requested}"${names.length ? ` (defined: ${names.join(', ')})` : ''}`,
        { option: '--destination' },
      );
    return requested;
  }
  if (names.length === 1) return names[0]!;
  throw new ConfigError(
    names.length === 0
      ? 'tailor.yml defines no destination to activate the model on'
      : `tailor.yml defines several destinations (${names.join(', ')}): choose one with --destination`,
  );
}

/**
 * Adds `activations.<id>` to tailor.yml through yaml's Document API, so every comment, blank line and
 * quoting style the user wrote stays as it was. The file is replaced atomically.
 */
async function writeActivation(
  configPath: string,
  id: string,
  value: Record<string, unknown>,
): Promise<string> {
  const original = await readFile(configPath, 'utf8');
  const doc = parseDocument(original);
  const existing = doc.get('activations', true);
  if (isMap(existing)) {
    // `activations: {}` (as `tailor init` writes it) becomes a block mapping rather than growing inline.
    if (existing.flow) existing.flow = false;
  } else {
    doc.set('activations', doc.createNode({}));
  }
  const node = doc.createNode(value) as YAMLMap;
  const audience = node.get('audience', true);
  if (isMap(audience)) audience.flow = true;
  doc.setIn(['activations', id], node);
  const activations = doc.get('activations', true) as YAMLMap;
  const pair = activations.items.find((item) => isScalar(item.key) && item.key.value === id);
  if (pair && isScalar(pair.key) && activations.items.length > 1) pair.key.spaceBefore = true;
  const text = String(doc);
  const temp = `${configPath}.${process.pid}.tmp`;
  await writeFile(temp, text);
  await rename(temp, configPath);
  return original;
}

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
        const model = project.models.get(modelName);
        if (!model) {
          const known = [...project.models.keys()];
          throw new ConfigError(
            `unknown model "${modelName}" (no models/${modelName}.sql and .yml)${known.length ? `; models: ${known.join(', ')}` : ''}`,
          );
        }
        const destinationName = pickDestination(project, flags.destination);
        const destination = project.config.destinations[destinationName]!;
        const id = activationIdFor(model.name, destinationName);
        if (id in project.config.activations)
          throw new ConfigError(`activation ${id} already exists in tailor.yml`, {
            hint: `run it with \`tailor sync ${id}\`, or edit it in tailor.yml`,
          });
        const defaults = destination.defaults;
        const audienceName = renderTemplate(defaults.audience_name, model);
        const audienceDescription = renderTemplate(defaults.audience_description, model);
        for (const other of resolveActivations(project)) {
          if (other.destinationName !== destinationName) continue;
          if (other.model.name === model.name)
            throw new ConfigError(
              `model ${model.name} is already activated on ${destinationName} as ${other.id}`,
            );
          if ('name' in other.audience && other.audience.name === audienceName)
            throw new ConfigError(
              `activation ${other.id} already syncs audience "${audienceName}"; two activations must not share an audience`,
              { hint: 'change destinations.<name>.defaults.audience_name, or write this activation by hand' },
            );
        }

        let columns: string[];
        {
          // Closed before the first sync opens its own: an embedded warehouse takes one opener at a time.
          await using engine = await openSyncEngine(project, { logger: engineLogger(ctx) });
          columns = (await engine.describeModel!(model.name)).map((column) => column.name);
        }
        if (!columns.some((column) => column.toLowerCase() === model.primaryKey.toLowerCase()))
          throw new ConfigError(
            `model ${model.name} returns no column "${model.primaryKey}" (its primary_key); it returns ${columns.join(', ')}`,
          );
        const mappings = effectiveMappings(
          { explicitMappings: undefined, defaultMappings: defaults.mappings },
          columns,
        );
        if (Object.keys(mappings).length === 0) {
          const mapped = Object.keys(defaults.mappings);
          throw new ConfigError(
            `no column of model ${model.name} (${columns.join(', ')}) matches the default mappings of destination ${destinationName} (${mapped.join(', ') || 'none'})`,
            {
              hint: `add the columns to destinations.${destinationName}.defaults.mappings, or write the activation by hand`,
            },
          );
        }
        const value: Record<string, unknown> = {
          model: model.name,
          destination: destinationName,
          audience: {
            name: audienceName,
            ...(audienceDescription ? { description: audienceDescription } : {}),
          },
          mappings,
          schedule: defaults.schedule,
          mode: defaults.mode,
          ...(Object.values(mappings).includes('phone_number')
            ? { phone_default_region: defaults.phone_default_region }
            : {}),
        };
        const original = await writeActivation(project.configPath, id, value);
        let updated: Project;
        try {
          updated = await ctx.reloadProject();
        } catch (error) {
          // Never leave a tailor.yml behind that no longer loads.
          await writeFile(project.configPath, original);
          throw error;
        }
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
