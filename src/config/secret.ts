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
 * Walks `schema` and reports every secret-marked schema it reaches, with its path from the root
 * (record keys and array elements as `*`, the wildcard pino's redaction understands). Given a parsed
 * `value` (`{ value }`), it walks the value alongside and reports what the value holds there, and of a
 * union it follows only the options that accept the value: a `url` is a secret under a Postgres
 * warehouse, where it may carry a password, but not under PGlite, where it is a directory. (When no
 * option accepts the value, every option is followed: scrubbing too much is the safe side.)
 */
function walkSecrets(
  schema: z.ZodType,
  input: { value: unknown } | undefined,
  report: (path: string[], value: unknown) => void,
): void {
  const seen = new Set<z.ZodType>();
  const walk = (node: z.ZodType, path: string[], value: unknown): void => {
    if (input && (value === null || value === undefined)) return;
    if (secretRegistry.has(node)) {
      report(path, value);
      return;
    }
    if (seen.has(node) && path.length > 12) return;
    seen.add(node);
    const def = defOf(node);
    const children = (): [string, unknown][] =>
      input && typeof value === 'object'
        ? Object.entries(value as Record<string, unknown>)
        : [['*', undefined]];
    switch (def.type) {
      case 'object':
        for (const [key, child] of Object.entries(def.shape ?? {})) {
          if (input && typeof value !== 'object') break;
          walk(child, [...path, key], input ? (value as Record<string, unknown>)[key] : undefined);
        }
        break;
      case 'optional':
      case 'nullable':
      case 'default':
      case 'prefault':
      case 'readonly':
      case 'catch':
      case 'nonoptional':
        if (def.innerType) walk(def.innerType, path, value);
        break;
      case 'pipe':
        if (def.in) walk(def.in, path, value);
        if (def.out) walk(def.out, path, value);
        break;
      case 'union': {
        const options = def.options ?? [];
        const accepting = input ? options.filter((option) => option.safeParse(value).success) : [];
        for (const option of accepting.length > 0 ? accepting : options) walk(option, path, value);
        break;
      }
      case 'record':
        if (def.valueType) for (const [, child] of children()) walk(def.valueType, [...path, '*'], child);
        break;
      case 'array':
        if (def.element) for (const [, child] of children()) walk(def.element, [...path, '*'], child);
        break;
      default:
        break;
    }
  };
  walk(schema, [], input?.value);
}

/** Every path (from the schema's root) that leads to a secret-marked schema, in any union option. */
export function secretPaths(schema: z.ZodType): string[][] {
  const found = new Map<string, string[]>();
  walkSecrets(schema, undefined, (path) => found.set(path.join('.'), path));
  return [...found.values()];
}

/**
 * The secret values a config holds, by the schema's marks (see walkSecrets). `value` may also be the
 * raw, unvalidated config: a secret written as a YAML number (`consumer_secret: 9876...`) is still a
 * secret, so scalars of every type are listed, as the text they print as.
 */
export function secretValues(schema: z.ZodType, value: unknown): string[] {
  const values = new Set<string>();
  walkSecrets(schema, { value }, (_path, found) => {
    if (typeof found === 'string' || typeof found === 'number' || typeof found === 'bigint') {
      const text = String(found);
      if (text.length > 0) values.add(text);
    }
  });
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
