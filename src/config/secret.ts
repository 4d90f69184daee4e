import { z } from 'zod';

/**
 * Secrets are marked on the schema itself, so that the paths pino redacts and the values the CLI
 * scrubs from every output are derived from one place and cannot drift from the config shape.
 */
export const secretRegistry = z.registry<{ secret: true }>();

/** Marks a schema as holding a secret (credentials, private keys, passwords). */
export function secret<T extends z.ZodType>(schema: T): T {
  secretRegistry.add(schema, { secret: true });
  return schema;
}

interface LooseDef {
  type: string;
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  options?: z.ZodType[];
  valueType?: z.ZodType;
  element?: z.ZodType;
}

function defOf(schema: z.ZodType): LooseDef {
  return schema._zod.def as unknown as LooseDef;
}

/**
 * Every path (from the schema's root) that leads to a secret-marked schema. Record keys and array
 * elements show as `*`, the wildcard pino's redaction understands.
 */
export function secretPaths(schema: z.ZodType): string[][] {
  const found = new Map<string, string[]>();
  const seen = new Set<z.ZodType>();
  const walk = (node: z.ZodType, path: string[]): void => {
    if (secretRegistry.has(node)) {
      found.set(path.join('.'), path);
      return;
    }
    if (seen.has(node) && path.length > 12) return;
    seen.add(node);
    const def = defOf(node);
    switch (def.type) {
      case 'object':
        for (const [key, child] of Object.entries(def.shape ?? {})) walk(child, [...path, key]);
        break;
      case 'optional':
      case 'nullable':
      case 'default':
      case 'prefault':
      case 'readonly':
      case 'catch':
      case 'nonoptional':
        if (def.innerType) walk(def.innerType, path);
        break;
      case 'pipe':
        if (def.in) walk(def.in, path);
        if (def.out) walk(def.out, path);
        break;
      case 'union':
        for (const option of def.options ?? []) walk(option, path);
        break;
      case 'record':
        if (def.valueType) walk(def.valueType, [...path, '*']);
        break;
      case 'array':
        if (def.element) walk(def.element, [...path, '*']);
        break;
      default:
        break;
    }
  };
  walk(schema, []);
  return [...found.values()];
}

/** Collects the secret values present in a parsed config, following the schema's secret paths. */
export function secretValues(value: unknown, paths: string[][]): string[] {
  const values = new Set<string>();
  const visit = (node: unknown, path: string[]): void => {
    if (node === null || node === undefined) return;
    if (path.length === 0) {
      if (typeof node === 'string' && node.length > 0) values.add(node);
      return;
    }
    const [head, ...rest] = path as [string, ...string[]];
    if (typeof node !== 'object') return;
    if (head === '*') {
      for (const child of Object.values(node as Record<string, unknown>)) visit(child, rest);
    } else {
      visit((node as Record<string, unknown>)[head], rest);
    }
  };
  for (const path of paths) visit(value, path);
  return [...values];
}

/**
 * Pino redaction paths for secret keys wherever they appear in a log object: the full paths under a
 * `config` key, and the leaf key names at the first few depths (credentials are often logged as a
 * fragment of the config).
 */
const GENERIC_KEYS = new Set(['url']);

export function redactionPaths(paths: string[][]): string[] {
  const out = new Set<string>();
  for (const path of paths) {
    const leaf = path[path.length - 1];
    if (!leaf || leaf === '*') continue;
    out.add(['config', ...path].join('.'));
    // A generic leaf name such as `url` appears in many harmless log fields (listen addresses, API
    // URLs); only its full path is redacted by key. Its value is still scrubbed from every line.
    if (GENERIC_KEYS.has(leaf)) continue;
    out.add(leaf);
    out.add(`*.${leaf}`);
    out.add(`*.*.${leaf}`);
    out.add(`*.*.*.${leaf}`);
  }
  return [...out];
}
