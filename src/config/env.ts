import type { ConfigIssue } from '../errors.js';

const REFERENCE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Replaces `${VAR}` and `${VAR:-default}` in every string of a parsed YAML tree. `$$` stands for a
 * literal `$`. An unset variable without a default is an issue naming the variable and where it is
 * used; an empty variable counts as set only for `${VAR}` (as in POSIX shells, `:-` also covers empty).
 */
export function substituteEnv(
  value: unknown,
  env: Readonly<Record<string, string | undefined>>,
  file: string,
  issues: ConfigIssue[],
  path: string[] = [],
): unknown {
  if (typeof value === 'string') {
    return value.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
      if (match === '$$') return '$';
      const current = env[name!];
      if (fallback !== undefined) return current === undefined || current === '' ? fallback : current;
      if (current === undefined) {
        issues.push({
          file,
          path: path.join('.'),
          message: `environment variable ${name} is not set (use \${${name}:-default} to give it a default)`,
        });
        return '';
      }
      return current;
    });
  }
  if (Array.isArray(value)) {
    return value.map((item, index) => substituteEnv(item, env, file, issues, [...path, String(index)]));
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(value)) {
      out[key] = substituteEnv(child, env, file, issues, [...path, key]);
    }
    return out;
  }
  return value;
}
