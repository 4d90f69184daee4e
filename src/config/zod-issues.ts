import type { z } from 'zod';
import type { ConfigIssue } from '../errors.js';
import type { YamlFile } from './yaml-file.js';

/** What kind of value the user wrote, in words, never the value itself. */
function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'number' || typeof value === 'bigint') return 'a number';
  if (typeof value === 'boolean') return 'a boolean';
  return typeof value;
}

/** The value itself, for fields that hold no secret: the user recognizes what they wrote. */
function describe(value: unknown): string {
  if (value === null || typeof value === 'object') return kindOf(value);
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

/**
 * Whether an issue's path is a secret field, lies inside one, or holds one (a secret written where
 * its parent mapping belongs, such as `credentials: <token>`). Secret paths use `*` for record keys
 * and list items (see `secretPaths`).
 */
export function touchesSecret(
  path: readonly PropertyKey[],
  secretPaths: readonly (readonly string[])[],
): boolean {
  return secretPaths.some((secretPath) => {
    const length = Math.min(secretPath.length, path.length);
    for (let i = 0; i < length; i++) {
      if (secretPath[i] !== '*' && secretPath[i] !== String(path[i])) return false;
    }
    return true;
  });
}

/** Replaces every occurrence of a scalar `value` in `text`, in case an error map quoted it. */
function redact(text: string, value: unknown): string {
  if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'bigint') return text;
  const raw = String(value);
  if (raw === '') return text;
  let out = text;
  for (const form of new Set([JSON.stringify(raw), raw])) out = out.split(form).join('[REDACTED]');
  return out;
}

/**
 * The message of an issue on a secret field, from the issue's code and bounds only, so no error map
 * (zod's or a schema's own) can quote the value into it.
 */
function secretMessage(issue: z.core.$ZodIssue, input: unknown): string {
  switch (issue.code) {
    case 'invalid_type':
      if (input === undefined) return 'is required';
      return (
        `expected ${issue.expected}, got ${kindOf(input)}` +
        (issue.expected === 'string' && (typeof input === 'number' || typeof input === 'boolean')
          ? ' (quote the value in YAML so that it is read as a string)'
          : '')
      );
    case 'invalid_union':
      return input === undefined ? 'is required' : `has an unexpected shape (${kindOf(input)})`;
    case 'too_small':
      return issue.origin === 'string'
        ? `is too short (at least ${String(issue.minimum)} characters)`
        : `is too small (at least ${String(issue.minimum)})`;
    case 'too_big':
      return issue.origin === 'string'
        ? `is too long (at most ${String(issue.maximum)} characters)`
        : `is too big (at most ${String(issue.maximum)})`;
    case 'invalid_format':
      return `is not a valid ${issue.format}`;
    default:
      // Refinements: the schema's author wrote the message; still never let it carry the value.
      return redact(issue.message, input);
  }
}

/**
 * Turns zod's issues into config issues that say, in plain words, what is wrong and where. Values
 * are quoted back to the user, except on the paths `secretPaths` names (derived from the schema's
 * secret marks): there a message says what kind of value was found, never the value.
 */
export function zodIssuesToConfigIssues(
  error: z.ZodError,
  yaml: YamlFile,
  prefix: readonly PropertyKey[] = [],
  secretPaths: readonly (readonly string[])[] = [],
): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  const push = (path: readonly PropertyKey[], message: string) => {
    const full = [...prefix, ...path];
    out.push({ file: yaml.file, path: full.map(String).join('.'), message, ...yaml.locate(full) });
  };
  for (const issue of error.issues) {
    const input = valueAt(yaml.value, [...prefix, ...issue.path]);
    if (issue.code !== 'unrecognized_keys' && touchesSecret([...prefix, ...issue.path], secretPaths)) {
      push(issue.path, secretMessage(issue, input));
      continue;
    }
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
