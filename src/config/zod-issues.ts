import type { z } from 'zod';
import type { ConfigIssue } from '../errors.js';
import type { YamlFile } from './yaml-file.js';

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${JSON.stringify(value)}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/** Turns zod's issues into config issues that say, in plain words, what is wrong and where. */
export function zodIssuesToConfigIssues(
  error: z.ZodError,
  yaml: YamlFile,
  prefix: readonly PropertyKey[] = [],
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const push = (path: readonly PropertyKey[], message: string) => {
    const full = [...prefix, ...path];
    out.push({ file: yaml.file, path: full.map(String).join('.'), message, ...yaml.locate(full) });
  };
  for (const issue of error.issues) {
    const input = valueAt(yaml.value, [...prefix, ...issue.path]);
    switch (issue.code) {
      case 'unrecognized_keys':
        for (const key of issue.keys) push([...issue.path, key], `unknown key "${key}"`);
        break;
      case 'invalid_union': {
        const disc = (issue as { discriminator?: string; options?: unknown[] }).discriminator;
        const options = (issue as { options?: unknown[] }).options;
        if (disc !== undefined && options) {
          const parent = issue.path.slice(0, -1);
          const actual = valueAt(yaml.value, [...prefix, ...issue.path]);
          const what = parent.length ? String(parent[parent.length - 1]) : 'value';
          push(
            issue.path,
            actual === undefined
              ? `"${disc}" is required (one of ${options.join(', ')})`
              : `unknown ${what} ${disc} ${JSON.stringify(actual)} (expected one of ${options.join(', ')})`,
          );
        } else {
          push(
            issue.path,
            input === undefined ? 'is required' : `has an unexpected shape (${describe(input)})`,
          );
        }
        break;
      }
      case 'invalid_type':
        push(
          issue.path,
          input === undefined ? 'is required' : `expected ${issue.expected}, got ${describe(input)}`,
        );
        break;
      case 'invalid_key':
        push(
          issue.path,
          `key ${JSON.stringify(issue.path[issue.path.length - 1])}: ${issue.issues[0]?.message ?? issue.message}`,
        );
        break;
      default:
        push(issue.path, issue.message);
    }
  }
  return out;
}
