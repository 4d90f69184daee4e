import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { z } from 'zod';
import { loadProject, PROJECT_SECRET_PATHS } from '../../src/config/load-project.js';
import { secret, secretPaths, secretValues } from '../../src/config/secret.js';
import { parseYamlText } from '../../src/config/yaml-file.js';
import { zodIssuesToConfigIssues } from '../../src/config/zod-issues.js';
import { ConfigError } from '../../src/errors.js';
import { makeProject, VIP_MODEL } from '../helpers/project.js';

/** A valid warehouse of each kind, so that every secret field can be set wrong in turn. */
const WAREHOUSES: Record<string, Record<string, unknown>> = {
  postgres: { type: 'postgres', url: 'postgres://postgres@127.0.0.1/test' },
  bigquery: { type: 'bigquery', project_id: 'my-project-123' },
  snowflake: {
    type: 'snowflake',
    account: 'myorg-myaccount',
    username: 'tailor',
    password: 'pw-valid-123',
    warehouse: 'wh',
    database: 'db',
  },
};
const WAREHOUSE_OF: Record<string, string> = {
  url: 'postgres',
  key_json: 'bigquery',
  private_key: 'snowflake',
  private_key_passphrase: 'snowflake',
  password: 'snowflake',
};

function baseConfig(warehouse: string) {
  return {
    warehouse: { ...WAREHOUSES[warehouse] },
    destinations: {
      x: {
        type: 'x_ads',
        account_id: '18ce54d4x5t',
        api_url: 'http://127.0.0.1:4010',
        credentials: {
          consumer_key: 'ck-valid',
          consumer_secret: 'cs-valid',
          access_token: 'at-valid',
          access_token_secret: 'ats-valid',
        },
      },
    },
    activations: { vip_x: { model: 'vip', destination: 'x' } },
    alerts: { x: { type: 'slack', url: 'https://hooks.slack.com/services/T0/B0/valid' } },
  };
}

function setAt(root: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = root;
  for (const key of path.slice(0, -1)) node = node[key === '*' ? 'x' : key] as Record<string, unknown>;
  node[path[path.length - 1]!] = value;
}

const NUMBER_SECRET = 987654321012345;
/** Wrong values a secret field may hold, each with the text that must never be printed. */
const WRONG_VALUES: [string, unknown, string][] = [
  ['a number', NUMBER_SECRET, String(NUMBER_SECRET)],
  ['an eleven-digit number', 31415926535, '31415926535'],
  ['a list holding the secret', ['sk-listed-secret-42'], 'sk-listed-secret-42'],
  ['a mapping holding the secret', { value: 'sk-mapped-secret-42' }, 'sk-mapped-secret-42'],
];

describe('no secret value in any configuration message', () => {
  const fields = PROJECT_SECRET_PATHS.map((path) => path.join('.'));

  it('covers every secret field of tailor.yml', () => {
    expect(fields.length).toBeGreaterThanOrEqual(9);
  });

  for (const path of PROJECT_SECRET_PATHS) {
    const leaf = path[path.length - 1]!;
    const warehouse = path[0] === 'warehouse' ? WAREHOUSE_OF[leaf]! : 'postgres';
    for (const [what, value, text] of WRONG_VALUES) {
      it(`${path.join('.')} holding ${what}`, async () => {
        const config = baseConfig(warehouse);
        setAt(config, path, value);
        const dir = await makeProject({ 'tailor.yml': stringify(config), ...VIP_MODEL });
        const heard: string[] = [];
        const error = await loadProject(dir, {}, { onSecrets: (values) => heard.push(...values) }).catch(
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(ConfigError);
        const issues = (error as ConfigError).issues;
        expect(issues.map((issue) => issue.path)).toContain(path.join('.').replace('*', 'x'));
        expect(JSON.stringify(issues)).not.toContain(text);
        expect((error as ConfigError).message).not.toContain(text);
        // The raw value is handed to the scrubber too, as a second line of defence.
        if (typeof value === 'number') expect(heard).toContain(text);
      });
    }
  }

  it('says what kind of value it found, and how to fix a secret YAML reads as a number', async () => {
    const config = baseConfig('postgres');
    setAt(config, ['destinations', 'x', 'credentials', 'consumer_secret'], NUMBER_SECRET);
    const dir = await makeProject({ 'tailor.yml': stringify(config), ...VIP_MODEL });
    const error = (await loadProject(dir, {}).catch((e: unknown) => e)) as ConfigError;
    expect(error.issues).toContainEqual(
      expect.objectContaining({
        path: 'destinations.x.credentials.consumer_secret',
        message: 'expected string, got a number (quote the value in YAML so that it is read as a string)',
        line: expect.any(Number),
      }),
    );
  });

  it('whatever a schema error map quotes: too short, unions, refinements', () => {
    const quoting = (issue: { input?: unknown }) => `bad value ${JSON.stringify(issue.input)}`;
    const schema = z.strictObject({
      token: secret(z.string().min(40, { error: quoting })),
      either: secret(
        z.union([z.string().regex(/^k-/), z.strictObject({ file: z.string() })], { error: quoting }),
      ),
      checked: secret(z.string().refine((v) => v.startsWith('sk-'), { error: quoting })),
      nested: z.strictObject({ key: secret(z.string().max(4, { error: quoting })) }),
      plain: z.string().min(40),
    });
    const text = [
      'token: tok-short-secret',
      'either: 271828182845',
      'checked: wrong-prefix-secret',
      'nested: { key: too-long-secret }',
      'plain: public-value',
      '',
    ].join('\n');
    const yaml = parseYamlText(text, 'x.yml', []);
    const result = schema.safeParse(yaml!.value);
    expect(result.success).toBe(false);
    const issues = zodIssuesToConfigIssues(result.error!, yaml!, [], secretPaths(schema));
    const printed = JSON.stringify(issues);
    for (const value of ['tok-short-secret', '271828182845', 'wrong-prefix-secret', 'too-long-secret'])
      expect(printed).not.toContain(value);
    expect(issues.map((issue) => [issue.path, issue.message])).toEqual(
      expect.arrayContaining([
        ['token', 'is too short (at least 40 characters)'],
        ['either', 'has an unexpected shape (a number)'],
        ['checked', 'bad value [REDACTED]'],
        ['nested.key', 'is too long (at most 4 characters)'],
      ]),
    );
    // A field that holds no secret may still be quoted back.
    expect(secretValues(schema, yaml!.value)).toContain('271828182845');
  });
});
