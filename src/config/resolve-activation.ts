import type { Mappings } from '../destinations/x-ads/x-ads-config.js';
import type { ActivationMode } from './activation-mode.js';
import { ConfigError } from '../errors.js';
import type { Model } from '../models/model.js';
import type { Project } from './load-project.js';
import type { DestinationConfig } from './project-schema.js';
import { parseSchedule, type Schedule } from './schedule.js';

/** An activation with the destination's defaults applied: everything a run or the scheduler needs. */
export interface ResolvedActivation {
  id: string;
  model: Model;
  destinationName: string;
  destination: DestinationConfig;
  /** The audience to bind to: by id, or by name (found, else created). */
  audience: { id: string } | { name: string; description: string };
  /** Explicit mappings (column -> identifier), or undefined to apply the defaults to the model's columns. */
  explicitMappings: Mappings | undefined;
  defaultMappings: Mappings;
  schedule: Schedule;
  timezone: string;
  mode: ActivationMode;
  enabled: boolean;
  phoneDefaultRegion: string;
  maxRemovalShare: number;
  refreshAfterDays: number;
}

/** Fills `{model}` and `{description}` in an audience name or description template. */
export function renderTemplate(template: string, model: Pick<Model, 'name' | 'description'>): string {
  return template.replace(/\{(model|description)\}/g, (_, field: 'model' | 'description') =>
    field === 'model' ? model.name : model.description,
  );
}

/**
 * The mappings a run uses: the activation's own, or else the destination's defaults limited to the
 * columns the model actually returns. Column names compare case-insensitively (warehouses differ).
 */
export function effectiveMappings(
  activation: Pick<ResolvedActivation, 'explicitMappings' | 'defaultMappings'>,
  columns: readonly string[],
): Mappings {
  if (activation.explicitMappings) return activation.explicitMappings;
  const byLower = new Map(columns.map((column) => [column.toLowerCase(), column]));
  const out: Mappings = {};
  for (const [column, type] of Object.entries(activation.defaultMappings)) {
    const actual = byLower.get(column.toLowerCase());
    if (actual !== undefined) out[actual] = type;
  }
  return out;
}

export function resolveActivation(project: Project, id: string): ResolvedActivation {
  const config = project.config.activations[id];
  if (!config) {
    const known = Object.keys(project.config.activations);
    throw new ConfigError([
      {
        file: 'tailor.yml',
        path: 'activations',
        message: `unknown activation "${id}"${known.length ? ` (defined: ${known.join(', ')})` : ''}`,
      },
    ]);
  }
  const destination = project.config.destinations[config.destination];
  const model = project.models.get(config.model);
  if (!destination || !model)
    throw new ConfigError(`activation ${id} refers to a missing destination or model`);
  const defaults = destination.defaults;
  const scheduleText = config.schedule ?? defaults.schedule;
  const schedule = parseSchedule(scheduleText);
  if ('error' in schedule)
    throw new ConfigError([
      { file: 'tailor.yml', path: `activations.${id}.schedule`, message: schedule.error },
    ]);
  const audience =
    config.audience && 'id' in config.audience
      ? { id: config.audience.id.toLowerCase() }
      : {
          name: config.audience?.name ?? renderTemplate(defaults.audience_name, model),
          description: config.audience?.description ?? renderTemplate(defaults.audience_description, model),
        };
  return {
    id,
    model,
    destinationName: config.destination,
    destination,
    audience,
    explicitMappings: config.mappings,
    defaultMappings: defaults.mappings,
    schedule,
    timezone: config.timezone ?? 'UTC',
    mode: config.mode ?? defaults.mode,
    enabled: config.enabled,
    phoneDefaultRegion: config.phone_default_region ?? defaults.phone_default_region,
    maxRemovalShare: config.max_removal_share,
    refreshAfterDays: config.refresh_after_days,
  };
}

export function resolveActivations(project: Project): ResolvedActivation[] {
  return Object.keys(project.config.activations).map((id) => resolveActivation(project, id));
}
