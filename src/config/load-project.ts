import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { isSupportedCountry } from 'libphonenumber-js';
import { ConfigError, type ConfigIssue } from '../errors.js';
import { dbtConfigSchema, loadDbtModels } from '../models/dbt-manifest.js';
import { loadModels } from '../models/load-models.js';
import type { Model } from '../models/model.js';
import { substituteEnv } from './env.js';
import { type ProjectConfig, projectConfigSchema } from './project-schema.js';
import { renderTemplate } from './resolve-activation.js';
import { isTimezone, parseSchedule } from './schedule.js';
import { secretPaths, secretValues } from './secret.js';
import { readYamlFile, type YamlFile } from './yaml-file.js';
import { zodIssuesToConfigIssues } from './zod-issues.js';

export const CONFIG_FILE = 'tailor.yml';

/**
 * The project directory for a command run in `start`: the nearest of `start` and its parents that
 * holds tailor.yml, as git finds `.git`, so that commands work from models/ or any sub-directory.
 * Undefined when none does.
 */
export function findProjectDir(start: string): string | undefined {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, CONFIG_FILE))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** A loaded, validated project: tailor.yml and its models. */
export interface Project {
  dir: string;
  configPath: string;
  config: ProjectConfig;
  models: Map<string, Model>;
  /** The secret values in the config, to be scrubbed from any output. */
  secrets: string[];
}

/** The secret-marked paths of tailor.yml, derived once from the schema. */
export const PROJECT_SECRET_PATHS = secretPaths(projectConfigSchema);

const TEMPLATE_FIELDS = new Set(['model', 'description']);

function checkTemplate(text: string, path: string[], yaml: YamlFile, issues: ConfigIssue[]) {
  for (const match of text.matchAll(/\{([^{}]*)\}/g)) {
    if (!TEMPLATE_FIELDS.has(match[1]!)) {
      issues.push({
        file: yaml.file,
        path: path.join('.'),
        message: `unknown placeholder {${match[1]}} (use {model} or {description})`,
        ...yaml.locate(path),
      });
    }
  }
}

type Raw = Record<string, unknown>;
const asRecord = (value: unknown): Raw | undefined =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Raw) : undefined;
const asString = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/**
 * Checks that need more than one part of the project at once (names that refer to each other,
 * schedules, regions, templates). They run on the raw values, even when the schema found problems
 * elsewhere, so that `tailor check` reports every problem in one pass.
 */
function crossCheck(
  raw: Raw,
  models: Map<string, Model>,
  yaml: YamlFile,
  issues: ConfigIssue[],
  modelIssues: boolean,
) {
  const at = (path: string[], message: string) =>
    issues.push({ file: yaml.file, path: path.join('.'), message, ...yaml.locate(path) });
  const destinations = asRecord(raw.destinations) ?? {};
  for (const [name, value] of Object.entries(destinations)) {
    const defaults = asRecord(asRecord(value)?.defaults);
    if (!defaults) continue;
    const base = ['destinations', name, 'defaults'];
    const schedule = asString(defaults.schedule);
    if (schedule !== undefined) {
      const parsed = parseSchedule(schedule);
      if ('error' in parsed) at([...base, 'schedule'], parsed.error);
    }
    const region = asString(defaults.phone_default_region);
    if (region !== undefined && region.length === 2 && !isSupportedCountry(region.toUpperCase())) {
      at([...base, 'phone_default_region'], `unknown region "${region}" (an ISO 3166 code such as US)`);
    }
    for (const key of ['audience_name', 'audience_description']) {
      const template = asString(defaults[key]);
      if (template !== undefined) checkTemplate(template, [...base, key], yaml, issues);
    }
  }
  const activationIds = Object.keys(asRecord(raw.activations) ?? {});
  for (const [name, value] of Object.entries(asRecord(raw.alerts) ?? {})) {
    const only = asRecord(value)?.activations;
    if (!Array.isArray(only)) continue;
    only.forEach((id, index) => {
      if (typeof id === 'string' && !activationIds.includes(id))
        at(['alerts', name, 'activations', String(index)], `unknown activation "${id}"`);
    });
  }
  if (Array.isArray(raw.suppression)) {
    raw.suppression.forEach((value, index) => {
      const model = asString(asRecord(value)?.model);
      if (model !== undefined && !models.has(model) && !modelIssues)
        at(
          ['suppression', String(index), 'model'],
          `unknown model "${model}" (no models/${model}.sql and .yml)`,
        );
    });
  }
  for (const [id, value] of Object.entries(asRecord(raw.activations) ?? {})) {
    const activation = asRecord(value);
    if (!activation) continue;
    const base = ['activations', id];
    const destination = asString(activation.destination);
    if (destination !== undefined && !(destination in destinations)) {
      const known = Object.keys(destinations);
      at(
        [...base, 'destination'],
        `unknown destination "${destination}"${known.length ? ` (defined: ${known.join(', ')})` : ''}`,
      );
    }
    const model = asString(activation.model);
    if (model !== undefined && !models.has(model) && !modelIssues) {
      at(
        [...base, 'model'],
        `unknown model "${model}" (no models/${model}.sql and .yml${raw.models_from === 'dbt' ? ', nor a dbt model marked for Tailor' : ''})`,
      );
    }
    const schedule = asString(activation.schedule);
    if (schedule !== undefined) {
      const parsed = parseSchedule(schedule);
      if ('error' in parsed) at([...base, 'schedule'], parsed.error);
      else if (parsed.kind === 'after_dbt') {
        if (raw.models_from !== 'dbt')
          at([...base, 'schedule'], '"after dbt" needs models_from: dbt (and a dbt model)');
        else if (model !== undefined && models.has(model) && !models.get(model)!.dbt)
          at([...base, 'schedule'], `"after dbt" needs a dbt model; ${model} is a models/ file`);
      }
    }
    const timezone = asString(activation.timezone);
    if (timezone !== undefined && !isTimezone(timezone)) {
      at([...base, 'timezone'], `unknown time zone "${timezone}" (an IANA name such as Europe/Paris)`);
    }
    const region = asString(activation.phone_default_region);
    if (region !== undefined && region.length === 2 && !isSupportedCountry(region.toUpperCase())) {
      at([...base, 'phone_default_region'], `unknown region "${region}" (an ISO 3166 code such as US)`);
    }
    const mappings = asRecord(activation.mappings);
    if (mappings && Object.keys(mappings).length === 0) {
      at([...base, 'mappings'], 'mappings is empty: map at least one column to an identifier type');
    }
  }
}

/**
 * Activations that name one audience (same account of the same API, same id or same name once the
 * templates are filled): an audience is fed by one activation only, else each run would delete what
 * the other sent. Each later one is reported, naming the first.
 */
function sharedAudiences(config: ProjectConfig, models: Map<string, Model>, yaml: YamlFile): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const first = new Map<string, string>();
  for (const [id, activation] of Object.entries(config.activations)) {
    const destination = config.destinations[activation.destination];
    const model = models.get(activation.model);
    if (!destination || !model) continue; // reported elsewhere
    const audience = activation.audience;
    const which =
      audience && 'id' in audience
        ? `id ${audience.id.toLowerCase()}`
        : `"${audience?.name ?? renderTemplate(destination.defaults.audience_name, model)}"`;
    const key = `${destination.api_url} ${destination.account_id.toLowerCase()} ${which}`;
    const owner = first.get(key);
    if (owner === undefined) {
      first.set(key, id);
      continue;
    }
    const path = ['activations', id, ...(audience ? ['audience'] : [])];
    issues.push({
      file: yaml.file,
      path: path.join('.'),
      message: `audience ${which} of account ${destination.account_id} is already fed by activation ${owner}: an audience is fed by one activation only (give this one another audience name or id)`,
      ...yaml.locate(path),
    });
  }
  return issues;
}

/**
 * Adds the dbt models marked for Tailor to the native ones. A name both define is an issue naming
 * both places: which one a run would query must never be a guess.
 */
async function addDbtModels(
  projectDir: string,
  config: Parameters<typeof loadDbtModels>[1],
  models: Map<string, Model>,
  issues: ConfigIssue[],
): Promise<void> {
  const dbtModels = await loadDbtModels(projectDir, config, issues);
  for (const [name, model] of dbtModels) {
    if (models.has(name)) {
      issues.push({
        file: relative(projectDir, model.sqlPath),
        path: `nodes.${model.dbt!.uniqueId}`,
        message: `model "${name}" is defined twice: by models/${name}.yml and by this dbt model (rename one, e.g. with meta.tailor.name)`,
      });
      models.delete(name);
      continue;
    }
    models.set(name, model);
  }
}

/**
 * Loads tailor.yml and the models of a project directory, substituting `${VAR}` from `env`. Every
 * problem found is collected and thrown at once as a ConfigError. `onSecrets` hears the values at
 * secret-marked paths before validation, so that a caller can scrub them from what it prints even
 * when the file is invalid (a secret of the wrong type or length is still a secret).
 */
export async function loadProject(
  dir: string,
  env: Readonly<Record<string, string | undefined>>,
  options: { onSecrets?: (values: string[]) => void } = {},
): Promise<Project> {
  const projectDir = resolve(dir);
  const configPath = join(projectDir, CONFIG_FILE);
  const issues: ConfigIssue[] = [];
  const yaml = await readYamlFile(configPath, CONFIG_FILE, issues);
  const modelIssues: ConfigIssue[] = [];
  const models = await loadModels(projectDir, modelIssues);
  let config: ProjectConfig | undefined;
  if (yaml) {
    if (yaml.value === null || typeof yaml.value !== 'object' || Array.isArray(yaml.value)) {
      issues.push({
        file: CONFIG_FILE,
        path: '',
        message: 'must be a mapping with warehouse, destinations and activations',
      });
    } else {
      const substituted = substituteEnv(yaml.value, env, CONFIG_FILE, issues) as Raw;
      options.onSecrets?.(secretValues(projectConfigSchema, substituted));
      for (const issue of issues) Object.assign(issue, yaml.locate(issue.path.split('.')));
      // A value emptied by a missing variable is already reported; don't report it twice.
      const envPaths = new Set(issues.map((issue) => issue.path));
      const parsed = projectConfigSchema.safeParse(substituted);
      if (parsed.success) config = parsed.data;
      else
        issues.push(
          ...zodIssuesToConfigIssues(parsed.error, yaml, [], PROJECT_SECRET_PATHS).filter(
            (issue) => !envPaths.has(issue.path),
          ),
        );
      if (substituted.models_from === 'dbt') {
        const dbtConfig = dbtConfigSchema.safeParse(substituted.dbt ?? {});
        // A wrong `dbt:` block is reported by the project schema above.
        if (dbtConfig.success) await addDbtModels(projectDir, dbtConfig.data, models, modelIssues);
      }
      crossCheck(substituted, models, yaml, issues, modelIssues.length > 0);
      if (config) issues.push(...sharedAudiences(config, models, yaml));
    }
  }
  issues.push(...modelIssues);
  if (issues.length > 0 || !config) throw new ConfigError(issues);
  return {
    dir: projectDir,
    configPath,
    config,
    models,
    secrets: secretValues(projectConfigSchema, config),
  };
}

/** Resolves a path from tailor.yml against the project directory. */
export function projectPath(project: Pick<Project, 'dir'>, path: string): string {
  const clean = path.replace(/^file:(\/\/)?/, '');
  return isAbsolute(clean) ? clean : join(project.dir, clean);
}
