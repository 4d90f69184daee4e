import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { z } from 'zod';
import { NAME_PATTERN } from '../config/names.js';
import type { ConfigIssue } from '../errors.js';
import type { Model } from './model.js';

/**
 * Models from a dbt project: `target/manifest.json` is read (never dbt's SQL), and each dbt model
 * marked for Tailor in its `meta` (`meta: { tailor: { primary_key: customer_id } }`, or
 * `meta: { tailor: true }` with the key taken from the model's `unique` + `not_null` tests) becomes a
 * Tailor model queried as its materialized relation (`relation_name`, which dbt renders already
 * quoted for its adapter: `"db"."schema"."alias"` on Postgres and Snowflake, backticks on BigQuery).
 * Manifest format: https://docs.getdbt.com/reference/artifacts/manifest-json
 */

/** `dbt:` in tailor.yml. */
export const dbtConfigSchema = z.strictObject({
  /** The dbt project's directory (holding dbt_project.yml), relative to the Tailor project. */
  project_dir: z.string().min(1).default('.'),
  /** dbt's target path, relative to `project_dir` (dbt's `target-path`, `target` by default). */
  target_path: z.string().min(1).default('target'),
});
export type DbtConfig = z.infer<typeof dbtConfigSchema>;

/**
 * Manifest schema versions read: v10 (dbt 1.6), v11 (1.7) and v12 (1.8 to 1.11, the version the
 * tests build with). The fields read (nodes' resource_type, name, description, meta,
 * config.materialized, relation_name, test_metadata, attached_node, column_name) are the same
 * across them; https://schemas.getdbt.com/ lists every version.
 */
export const SUPPORTED_MANIFEST_VERSIONS = [10, 11, 12] as const;
/** run_results.json versions read: v5 (dbt 1.6 to 1.7) and v6 (1.8 onwards). */
export const SUPPORTED_RUN_RESULTS_VERSIONS = [5, 6] as const;

/** Materializations that leave a relation to query; `ephemeral` leaves none. */
const QUERYABLE = new Set(['table', 'view', 'incremental', 'materialized_view', 'dynamic_table', 'snapshot']);

/** Where a dbt project's artifacts are, as absolute paths and as paths to print. */
export interface DbtPaths {
  targetDir: string;
  manifestPath: string;
  runResultsPath: string;
  /** The paths as shown in messages (relative to the Tailor project). */
  manifestFile: string;
  runResultsFile: string;
}

export function dbtPaths(projectDir: string, config: DbtConfig): DbtPaths {
  const dbtDir = isAbsolute(config.project_dir) ? config.project_dir : join(projectDir, config.project_dir);
  const targetDir = isAbsolute(config.target_path) ? config.target_path : join(dbtDir, config.target_path);
  const show = (path: string) => relative(projectDir, path) || path;
  return {
    targetDir,
    manifestPath: join(targetDir, 'manifest.json'),
    runResultsPath: join(targetDir, 'run_results.json'),
    manifestFile: show(join(targetDir, 'manifest.json')),
    runResultsFile: show(join(targetDir, 'run_results.json')),
  };
}

/** What a Tailor model knows of the dbt model it came from. */
export interface DbtModelRef {
  uniqueId: string;
  relation: string;
  materialized: string;
}

type Raw = Record<string, unknown>;
const asRecord = (value: unknown): Raw | undefined =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Raw) : undefined;
const asString = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** The version number of a dbt artifact (`.../manifest/v12.json` → 12), or undefined. */
export function artifactVersion(json: Raw, kind: 'manifest' | 'run-results'): number | undefined {
  const url = asString(asRecord(json.metadata)?.dbt_schema_version) ?? '';
  const match = new RegExp(`/${kind}/v(\\d+)\\.json$`).exec(url);
  return match ? Number(match[1]) : undefined;
}

/** Reads a JSON artifact; a missing or unreadable file is an issue, never an exception. */
export async function readArtifact(
  absPath: string,
  file: string,
  issues: ConfigIssue[],
  missing: string,
): Promise<Raw | undefined> {
  let text: string;
  try {
    text = await readFile(absPath, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    issues.push({
      file,
      path: '',
      message: code === 'ENOENT' ? missing : `cannot read: ${code ?? String(error)}`,
    });
    return undefined;
  }
  try {
    const value = asRecord(JSON.parse(text));
    if (value) return value;
  } catch {
    // reported below
  }
  issues.push({
    file,
    path: '',
    message: 'is not a dbt artifact (invalid JSON); run dbt again to rewrite it',
  });
  return undefined;
}

/** The column that both a `unique` and a `not_null` test cover, per model unique id. */
function testedKeys(nodes: Raw): Map<string, string[]> {
  const tests = new Map<string, Map<string, Set<string>>>();
  for (const node of Object.values(nodes)) {
    const test = asRecord(node);
    if (!test || test.resource_type !== 'test') continue;
    const name = asString(asRecord(test.test_metadata)?.name);
    const column = asString(test.column_name);
    if ((name !== 'unique' && name !== 'not_null') || !column) continue;
    // attached_node names the tested model (manifest v10+); depends_on is the fallback.
    const attached =
      asString(test.attached_node) ??
      (asRecord(test.depends_on)?.nodes as unknown[] | undefined)?.find(
        (id): id is string => typeof id === 'string' && id.startsWith('model.'),
      );
    if (!attached) continue;
    const columns = tests.get(attached) ?? new Map<string, Set<string>>();
    const kinds = columns.get(column) ?? new Set<string>();
    kinds.add(name);
    columns.set(column, kinds);
    tests.set(attached, columns);
  }
  const keys = new Map<string, string[]>();
  for (const [model, columns] of tests) {
    const both = [...columns].filter(([, kinds]) => kinds.size === 2).map(([column]) => column);
    keys.set(model, both.sort());
  }
  return keys;
}

/**
 * Reads the manifest and returns the dbt models marked for Tailor. Every problem (missing manifest,
 * unsupported version, an ephemeral or unnamed model, no primary key) is an issue with the
 * manifest's path and the node's path inside it; models with problems are left out.
 */
export async function loadDbtModels(
  projectDir: string,
  config: DbtConfig,
  issues: ConfigIssue[],
): Promise<Map<string, Model>> {
  const models = new Map<string, Model>();
  const paths = dbtPaths(projectDir, config);
  const file = paths.manifestFile;
  const manifest = await readArtifact(
    paths.manifestPath,
    file,
    issues,
    'dbt manifest not found (run `dbt compile`, `dbt run` or `dbt build` in the dbt project first, or fix dbt.project_dir / dbt.target_path in tailor.yml)',
  );
  if (!manifest) return models;
  const version = artifactVersion(manifest, 'manifest');
  const dbtVersion = asString(asRecord(manifest.metadata)?.dbt_version) ?? 'unknown';
  if (version === undefined || !(SUPPORTED_MANIFEST_VERSIONS as readonly number[]).includes(version)) {
    issues.push({
      file,
      path: 'metadata.dbt_schema_version',
      message: `manifest ${version === undefined ? 'of an unknown schema' : `v${version}`} (dbt ${dbtVersion}) is not supported: Tailor reads manifest v${SUPPORTED_MANIFEST_VERSIONS.join(', v')} (dbt 1.6 to 1.11)`,
    });
    return models;
  }
  const nodes = asRecord(manifest.nodes) ?? {};
  const keys = testedKeys(nodes);
  for (const [uniqueId, value] of Object.entries(nodes).sort(([a], [b]) => a.localeCompare(b))) {
    const node = asRecord(value);
    if (!node || node.resource_type !== 'model') continue;
    const nodeConfig = asRecord(node.config) ?? {};
    // dbt 1.10 moved meta into config; older manifests carry it on the node (both are read).
    const mark = asRecord(nodeConfig.meta)?.tailor ?? asRecord(node.meta)?.tailor;
    if (mark === undefined || mark === false || mark === null) continue;
    const at = (path: string, message: string) =>
      issues.push({ file, path: `nodes.${uniqueId}${path ? `.${path}` : ''}`, message });
    const markRecord = asRecord(mark) ?? {};
    if (mark !== true && !asRecord(mark)) {
      at('meta.tailor', 'must be true or a mapping such as { primary_key: customer_id }');
      continue;
    }
    if (nodeConfig.enabled === false) continue;
    const name = asString(markRecord.name) ?? asString(node.name) ?? '';
    if (!NAME_PATTERN.test(name)) {
      at(
        'meta.tailor.name',
        `model name "${name}" must match ^[a-z][a-z0-9_]{0,62}$ (it names warehouse tables): set meta.tailor.name`,
      );
      continue;
    }
    const materialized = asString(nodeConfig.materialized) ?? '';
    const relation = asString(node.relation_name);
    if (!QUERYABLE.has(materialized) || !relation) {
      at(
        'config.materialized',
        `dbt model ${asString(node.name)} is ${materialized || 'not materialized'}: Tailor queries a model's relation, so materialize it as a table, view or incremental model`,
      );
      continue;
    }
    let primaryKey = asString(markRecord.primary_key);
    if (!primaryKey) {
      const tested = keys.get(uniqueId) ?? [];
      if (tested.length === 1) primaryKey = tested[0];
      else {
        at(
          'meta.tailor.primary_key',
          tested.length === 0
            ? 'no primary key: set meta.tailor.primary_key, or give one column both unique and not_null tests'
            : `several columns have unique and not_null tests (${tested.join(', ')}): set meta.tailor.primary_key`,
        );
        continue;
      }
    }
    models.set(name, {
      name,
      description: asString(node.description) ?? '',
      primaryKey: primaryKey!,
      // The materialized relation, as dbt rendered its name; dbt's SQL is never re-run.
      sql: `select * from ${relation}`,
      sqlPath: paths.manifestPath,
      ymlPath: paths.manifestPath,
      dbt: { uniqueId, relation, materialized },
    });
  }
  return models;
}

/** One model's outcome in a dbt invocation. */
export interface DbtRunResult {
  uniqueId: string;
  status: string;
}

/** A dbt invocation as `run_results.json` records it. */
export interface DbtRunResults {
  invocationId: string | null;
  generatedAt: string | null;
  command: string | null;
  results: DbtRunResult[];
}

/** Reads `run_results.json`; problems are issues (missing file, unsupported version). */
export async function readRunResults(
  projectDir: string,
  config: DbtConfig,
  issues: ConfigIssue[],
): Promise<DbtRunResults | undefined> {
  const paths = dbtPaths(projectDir, config);
  const json = await readArtifact(
    paths.runResultsPath,
    paths.runResultsFile,
    issues,
    'dbt run results not found (run `dbt run` or `dbt build` in the dbt project first)',
  );
  if (!json) return undefined;
  const version = artifactVersion(json, 'run-results');
  if (version === undefined || !(SUPPORTED_RUN_RESULTS_VERSIONS as readonly number[]).includes(version)) {
    issues.push({
      file: paths.runResultsFile,
      path: 'metadata.dbt_schema_version',
      message: `run results ${version === undefined ? 'of an unknown schema' : `v${version}`} are not supported: Tailor reads run-results v${SUPPORTED_RUN_RESULTS_VERSIONS.join(', v')} (dbt 1.6 to 1.11)`,
    });
    return undefined;
  }
  const metadata = asRecord(json.metadata) ?? {};
  const results: DbtRunResult[] = [];
  for (const value of Array.isArray(json.results) ? (json.results as unknown[]) : []) {
    const result = asRecord(value);
    const uniqueId = asString(result?.unique_id);
    if (result && uniqueId) results.push({ uniqueId, status: asString(result.status) ?? 'unknown' });
  }
  return {
    invocationId: asString(metadata.invocation_id) ?? null,
    generatedAt: asString(metadata.generated_at) ?? null,
    command: asString(asRecord(json.args)?.which) ?? null,
    results,
  };
}

/** Which activations a dbt invocation calls for, and why each other one is left out. */
export interface DbtSelection {
  run: string[];
  skipped: { activationId: string; reason: string }[];
}

/**
 * The enabled activations whose model is a dbt model that this invocation rebuilt successfully (dbt's
 * `success` status of a model node); every other activation is listed with the reason it is left
 * out. https://docs.getdbt.com/reference/artifacts/run-results-json
 */
export function selectAfterDbt(
  activations: Readonly<Record<string, { model: string; enabled: boolean }>>,
  models: ReadonlyMap<string, Model>,
  results: DbtRunResults,
): DbtSelection {
  const status = new Map(results.results.map((result) => [result.uniqueId, result.status]));
  const selection: DbtSelection = { run: [], skipped: [] };
  for (const [activationId, activation] of Object.entries(activations)) {
    const skip = (reason: string) => selection.skipped.push({ activationId, reason });
    const dbt = models.get(activation.model)?.dbt;
    if (!dbt) skip(`model ${activation.model} is not a dbt model`);
    else if (!activation.enabled) skip('paused (enabled: false)');
    else {
      const outcome = status.get(dbt.uniqueId);
      if (outcome === undefined) skip(`dbt model ${dbt.uniqueId} was not part of this dbt run`);
      else if (outcome !== 'success') skip(`dbt reported ${outcome} for ${dbt.uniqueId}`);
      else selection.run.push(activationId);
    }
  }
  return selection;
}
