import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { expect } from 'vitest';

/**
 * What a connection (`tailor connect` or the UI's Connect X) must leave in a project: the four X
 * secrets in `.env`, owner-only and git-ignored, the app's secret as given, and none of them in
 * tailor.yml. Parsed with Node's own .env parser, not Tailor's. Returns the values for later checks.
 */
export async function expectConnectionSecrets(
  dir: string,
  yml: string,
  consumerSecret: string,
): Promise<Record<string, string>> {
  const path = join(dir, '.env');
  expect((await stat(path)).mode & 0o777).toBe(0o600);
  expect(await readFile(join(dir, '.gitignore'), 'utf8')).toMatch(/^\.env$/m);
  const values = Object.fromEntries(
    Object.entries(parseEnv(await readFile(path, 'utf8'))).filter(([key]) => key.startsWith('X_')),
  ) as Record<string, string>;
  expect(Object.keys(values).sort()).toEqual([
    'X_ACCESS_TOKEN',
    'X_ACCESS_TOKEN_SECRET',
    'X_CONSUMER_KEY',
    'X_CONSUMER_SECRET',
  ]);
  expect(values['X_CONSUMER_SECRET']).toBe(consumerSecret);
  for (const key of ['X_CONSUMER_SECRET', 'X_ACCESS_TOKEN', 'X_ACCESS_TOKEN_SECRET'])
    expect(yml).not.toContain(values[key]);
  return values;
}
