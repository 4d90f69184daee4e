import { activationConfigSchema } from '../config/activation-config.js';
import type { Project } from '../config/load-project.js';
import { NAME_PATTERN } from '../config/names.js';
import { effectiveMappings, renderTemplate, resolveActivations } from '../config/resolve-activation.js';
import type { Mappings } from '../destinations/x-ads/x-ads-config.js';
import { ConfigError } from '../errors.js';
import type { SyncEngine } from './types.js';

/**
 * One-click activation, shared by `tailor activate` and the web UI: the activation a model gets from
 * its destination's default settings, built from the columns the model really returns.
 */

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

/** The destination to activate on: the one named, or the only one tailor.yml defines. */
export function pickDestination(project: Project, requested: string | undefined): string {
  const names = Object.keys(project.config.destinations);
  if (requested !== undefined) {
    if (!(requested in project.config.destinations))
      throw new ConfigError(
        `unknown destination "${requested}"${names.length ? ` (defined: ${names.join(', ')})` : ''}`,
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

/** What activating a model will write into tailor.yml, and why. */
export interface ActivationProposal {
  id: string;
  model: string;
  destinationName: string;
  audienceName: string;
  audienceDescription: string;
  /** The columns the model returns, in order. */
  columns: string[];
  mappings: Mappings;
  schedule: string;
  /** `activations.<id>` exactly as it is written into tailor.yml. */
  value: Record<string, unknown>;
}

/** Models of the project that no activation syncs yet, by name. */
export function unactivatedModels(project: Project): string[] {
  const used = new Set(Object.values(project.config.activations).map((a) => a.model));
  return [...project.models.keys()].filter((name) => !used.has(name)).sort();
}

/**
 * Builds the activation of `modelName` on `destinationName` from the destination's defaults: the
 * audience name and description from its templates, the mappings its default mappings give for the
 * model's actual columns (read from the warehouse through `engine`), its schedule and mode. Throws
 * ConfigError when the model cannot be activated that way (unknown, already activated, no mapped
 * column, an audience name another activation uses).
 */
export async function proposeActivation(
  project: Project,
  engine: Pick<SyncEngine, 'describeModel'>,
  modelName: string,
  destinationName: string,
): Promise<ActivationProposal> {
  const model = project.models.get(modelName);
  if (!model) {
    const known = [...project.models.keys()];
    throw new ConfigError(
      `unknown model "${modelName}" (no models/${modelName}.sql and .yml)${known.length ? `; models: ${known.join(', ')}` : ''}`,
    );
  }
  const destination = project.config.destinations[destinationName];
  if (!destination) throw new ConfigError(`unknown destination "${destinationName}"`);
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
      throw new ConfigError(`model ${model.name} is already activated on ${destinationName} as ${other.id}`);
    if ('name' in other.audience && other.audience.name === audienceName)
      throw new ConfigError(
        `activation ${other.id} already syncs audience "${audienceName}"; two activations must not share an audience`,
        { hint: 'change destinations.<name>.defaults.audience_name, or write this activation by hand' },
      );
  }
  if (!engine.describeModel) throw new ConfigError('this warehouse cannot describe a model');
  const columns = (await engine.describeModel(model.name)).map((column) => column.name);
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
    audience: { name: audienceName, ...(audienceDescription ? { description: audienceDescription } : {}) },
    mappings,
    schedule: defaults.schedule,
    mode: defaults.mode,
    ...(Object.values(mappings).includes('phone_number')
      ? { phone_default_region: defaults.phone_default_region }
      : {}),
  };
  return {
    id,
    model: model.name,
    destinationName,
    audienceName,
    audienceDescription,
    columns,
    mappings,
    schedule: defaults.schedule,
    value,
  };
}

/**
 * The project as it will be once the proposal is written, kept in memory: what a plan of the
 * activation-to-be runs against before anything is written or created.
 */
export function withProposal(project: Project, proposal: ActivationProposal): Project {
  const parsed = activationConfigSchema.parse(proposal.value);
  return {
    ...project,
    config: { ...project.config, activations: { ...project.config.activations, [proposal.id]: parsed } },
  };
}
