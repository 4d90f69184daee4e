import { effectiveMappings, type ResolvedActivation } from '../config/resolve-activation.js';
import { ConfigError } from '../errors.js';

/** Column -> the destination's identifier type. */
export type ColumnMappings = Record<string, string>;

/** The model's column of that name: exactly, else case-insensitively (warehouses differ in case). */
export function actualColumn(columns: readonly string[], name: string): string | undefined {
  return columns.includes(name) ? name : columns.find((c) => c.toLowerCase() === name.toLowerCase());
}

/**
 * The mappings of a run, checked against the columns the model returns: the primary key and every
 * explicitly mapped column must exist, and at least one identifier column must be mapped.
 */
export function checkMappings(activation: ResolvedActivation, columns: readonly string[]): ColumnMappings {
  const model = activation.model;
  const issues = [];
  if (actualColumn(columns, model.primaryKey) === undefined) {
    issues.push({
      file: `models/${model.name}.yml`,
      path: 'primary_key',
      message: `column "${model.primaryKey}" is not among the columns the model returns (${columns.join(', ')})`,
    });
  }
  const mappings: ColumnMappings = {};
  for (const [column, type] of Object.entries(effectiveMappings(activation, columns))) {
    const actual = actualColumn(columns, column);
    if (actual === undefined) {
      issues.push({
        file: 'tailor.yml',
        path: `activations.${activation.id}.mappings.${column}`,
        message: `model ${model.name} returns no column "${column}" (it returns ${columns.join(', ')})`,
      });
    } else mappings[actual] = type;
  }
  if (issues.length === 0 && Object.keys(mappings).length === 0) {
    issues.push({
      file: 'tailor.yml',
      path: `activations.${activation.id}.mappings`,
      message: `no column of model ${model.name} (${columns.join(', ')}) is mapped to an X identifier; add mappings, or columns named as in the destination's default mappings`,
    });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return mappings;
}
