import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { substituteEnv } from '../../src/config/env.js';
import { findProjectDir, loadProject, PROJECT_SECRET_PATHS } from '../../src/config/load-project.js';
import { effectiveMappings, renderTemplate, resolveActivation } from '../../src/config/resolve-activation.js';
import { parseSchedule } from '../../src/config/schedule.js';
import { redactionPaths } from '../../src/config/secret.js';
import { parseYamlText } from '../../src/config/yaml-file.js';
import { ConfigError, type ConfigIssue } from '../../src/errors.js';
import { MINIMAL_TAILOR_YML, makeProject, VIP_MODEL } from '../helpers/project.js';

describe('environment substitution', () => {
  it('replaces ${VAR}, ${VAR:-default} and $$, and names unset variables with their path', () => {
    const issues: ConfigIssue[] = [];
    const out = substituteEnv(
      { a: '${A}', b: { c: 'x-${B:-dflt}-y', d: ['${MISSING}'] }, e: '$${A}', f: 3 },
      { A: 'alpha' },
      'tailor.yml',
      issues,
    );
    expect(out).toEqual({ a: 'alpha', b: { c: 'x-dflt-y', d: [''] }, e: '${A}', f: 3 });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toMatchObject({ path: 'b.d.0' });
    expect(issues[0]!.message).toContain('MISSING');
  });

  it('uses the default when the variable is empty', () => {
    expect(substituteEnv('${E:-d}', { E: '' }, 'f', [])).toBe('d');
    expect(substituteEnv('${E}', { E: '' }, 'f', [])).toBe('');
  });
});

describe('schedules', () => {
  it.each([
    ['manual', 'manual'],
    ['every 6 hours', 'interval'],
    ['every hour', 'interval'],
    ['every 15 minutes', 'interval'],
    ['every 1 days', 'interval'],
    ['0 */6 * * *', 'cron'],
    ['*/10 * * * * *', 'cron'],
  ])('accepts %s', (text, kind) => {
    const parsed = parseSchedule(text);
    expect('error' in parsed ? parsed.error : parsed.kind).toBe(kind);
  });

  it('computes interval lengths', () => {
    expect(parseSchedule('every 6 hours')).toMatchObject({ everyMs: 6 * 3_600_000 });
    expect(parseSchedule('every 2 days')).toMatchObject({ everyMs: 2 * 86_400_000 });
  });

  it.each(['', 'every fortnight', 'every 0 hours', '61 * * * *', 'sometimes', '* * *'])(
    'rejects %j',
    (text) => {
      expect(parseSchedule(text)).toHaveProperty('error');
    },
  );
});

describe('secrets', () => {
  it('derives the secret paths from the schema marks', () => {
    const paths = PROJECT_SECRET_PATHS.map((p) => p.join('.'));
    expect(paths).toEqual(
      expect.arrayContaining([
        'destinations.*.credentials.consumer_secret',
        'destinations.*.credentials.access_token_secret',
        'warehouse.url',
        'warehouse.key_json',
        'warehouse.private_key',
        'warehouse.password',
      ]),
    );
    expect(paths).not.toContain('destinations.*.account_id');
    const redacted = redactionPaths(PROJECT_SECRET_PATHS);
    expect(redacted).toContain('*.consumer_secret');
    expect(redacted).toContain('config.warehouse.url');
    expect(redacted).not.toContain('*.url');
  });
});

describe('loading a project', () => {
  it('loads, applies defaults and lists the secret values', async () => {
    const dir = await makeProject({ 'tailor.yml': MINIMAL_TAILOR_YML, ...VIP_MODEL });
    const project = await loadProject(dir, { X_CONSUMER_SECRET: 'top-secret-value' });
    expect(project.secrets).toContain('top-secret-value');
    expect(project.models.get('vip')).toMatchObject({
      primaryKey: 'customer_id',
      sql: 'select customer_id, email from customers',
    });
    const activation = resolveActivation(project, 'vip_x');
    expect(activation).toMatchObject({
      audience: { name: 'Tailor: vip', description: 'VIPs' },
      mode: 'mirror',
      enabled: true,
      phoneDefaultRegion: 'US',
      maxRemovalShare: 0.5,
    });
    expect(activation.schedule.kind).toBe('interval');
  });

  it('keeps a PGlite data directory out of the secrets, and a Postgres URL in them', async () => {
    const pglite = await makeProject({
      'tailor.yml': MINIMAL_TAILOR_YML.replace('url: .tailor/warehouse', 'url: warehouse'),
      ...VIP_MODEL,
    });
    const local = await loadProject(pglite, { X_CONSUMER_SECRET: 'top-secret-value' });
    expect(local.secrets).toContain('top-secret-value');
    expect(local.secrets).not.toContain('warehouse');
    const server = await makeProject({
      'tailor.yml': MINIMAL_TAILOR_YML.replace('type: pglite', 'type: postgres').replace(
        'url: .tailor/warehouse',
        'url: postgres://tailor:hunter22@db.internal/analytics',
      ),
      ...VIP_MODEL,
    });
    const remote = await loadProject(server, { X_CONSUMER_SECRET: 'top-secret-value' });
    expect(remote.secrets).toContain('postgres://tailor:hunter22@db.internal/analytics');
  });

  it('reports every problem at once, with file, path and line', async () => {
    const dir = await makeProject({
      'tailor.yml': MINIMAL_TAILOR_YML.replace('account_id:', 'acount_id:').replace(
        'destination: x',
        'destination: y\n    schedule: nope',
      ),
      'models/vip.sql': '',
      'models/vip.yml': 'name: vip\n',
    });
    const error = await loadProject(dir, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    const messages = (error as ConfigError).issues.map((i) => `${i.file}: ${i.path}: ${i.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /tailor.yml: destinations.x.credentials.consumer_secret: environment variable X_CONSUMER_SECRET/,
        ),
        'tailor.yml: destinations.x.acount_id: unknown key "acount_id"',
        'tailor.yml: destinations.x.account_id: is required',
        'tailor.yml: activations.vip_x.destination: unknown destination "y" (defined: x)',
        expect.stringMatching(/^tailor.yml: activations.vip_x.schedule: schedule "nope"/),
        'models/vip.sql: : model SQL is empty (write one SELECT)',
        'models/vip.yml: primary_key: is required',
      ]),
    );
    const unknownKey = (error as ConfigError).issues.find((i) => i.path === 'destinations.x.acount_id');
    expect(unknownKey).toMatchObject({ line: 7 });
  });
});

describe('audience names', () => {
  const withName = (name: string) =>
    makeProject({
      'tailor.yml': `${MINIMAL_TAILOR_YML}    audience: { name: ${JSON.stringify(name)} }\n`,
      ...VIP_MODEL,
    });
  it('are measured in code points, as the emulator measures them: 255 emoji pass, 256 do not', async () => {
    const emoji = (n: number) => '😀'.repeat(n);
    const ok = await loadProject(await withName(emoji(255)), { X_CONSUMER_SECRET: 's' });
    expect(resolveActivation(ok, 'vip_x').audience).toMatchObject({ name: emoji(255) });
    for (const name of [emoji(256), 'x'.repeat(256)]) {
      const error = await loadProject(await withName(name), { X_CONSUMER_SECRET: 's' }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toMatch(/activations\.vip_x\.audience.*at most 255 characters/);
    }
  });
});

describe('templates and mappings', () => {
  it('renders {model} and {description}', () => {
    expect(
      renderTemplate('Tailor: {model} ({description})', { name: 'vip', description: 'Big spenders' }),
    ).toBe('Tailor: vip (Big spenders)');
  });

  it('applies default mappings only to columns the model has, case-insensitively', () => {
    const mappings = effectiveMappings(
      {
        explicitMappings: undefined,
        defaultMappings: { email: 'email', phone: 'phone_number', x_handle: 'handle' },
      },
      ['CUSTOMER_ID', 'EMAIL', 'x_handle'],
    );
    expect(mappings).toEqual({ EMAIL: 'email', x_handle: 'handle' });
  });
});

describe('finding the project', () => {
  it('is the nearest directory holding tailor.yml, from the start up', async () => {
    const outer = await makeProject({ 'tailor.yml': MINIMAL_TAILOR_YML, 'models/deep/er/.keep': '' });
    expect(findProjectDir(outer)).toBe(outer);
    expect(findProjectDir(join(outer, 'models', 'deep', 'er'))).toBe(outer);
    const inner = join(outer, 'models', 'deep');
    await writeFile(join(inner, 'tailor.yml'), MINIMAL_TAILOR_YML);
    expect(findProjectDir(join(inner, 'er'))).toBe(inner);
  });

  it('is undefined when no directory up to the root holds one', async () => {
    const dir = await makeProject({ 'a/b/.keep': '' });
    expect(findProjectDir(join(dir, 'a', 'b'))).toBeUndefined();
  });
});

describe('YAML files', () => {
  it('refuses exponential aliases as an issue with its line, instead of throwing', () => {
    const rows = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (const [name, of] of ['ba', 'cb', 'dc', 'ed', 'fe', 'gf']) {
      rows.push(`${name}: &${name} [${Array(9).fill(`*${of}`).join(', ')}]`);
    }
    const issues: ConfigIssue[] = [];
    expect(parseYamlText(`top: 1\n${rows.join('\n')}\n`, 'tailor.yml', issues)).toBeUndefined();
    expect(issues).toEqual([
      expect.objectContaining({ file: 'tailor.yml', line: 3, message: expect.stringMatching(/aliases/) }),
    ]);
  });

  it('reports an alias that names no anchor as such, at the alias', () => {
    const issues: ConfigIssue[] = [];
    expect(parseYamlText('a: &x 1\nb: *y\n', 'tailor.yml', issues)).toBeUndefined();
    expect(issues).toEqual([
      expect.objectContaining({
        line: 2,
        column: 4,
        message: expect.stringMatching(/^invalid YAML: Unresolved alias/),
      }),
    ]);
  });

  it('still expands a few aliases', () => {
    const yaml = parseYamlText('base: &base { a: 1 }\nother: *base\n', 'x.yml', []);
    expect(yaml?.value).toEqual({ base: { a: 1 }, other: { a: 1 } });
  });
});

describe('one audience, one activation', () => {
  const project = (activations: string) =>
    makeProject({
      'tailor.yml': `${MINIMAL_TAILOR_YML}${activations}`,
      ...VIP_MODEL,
      'models/gold.sql': 'select customer_id, email from gold;\n',
      'models/gold.yml': 'name: gold\ndescription: Gold\nprimary_key: customer_id\n',
    });
  const issuesOf = async (dir: string) => {
    const error = await loadProject(dir, { X_CONSUMER_SECRET: 's' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues;
  };

  it('refuses two activations naming one audience, by name once the templates are filled', async () => {
    // vip_x's audience is the default template, "Tailor: {model}" → "Tailor: vip".
    const issues = await issuesOf(
      await project(
        `  vip_again:\n    model: gold\n    destination: x\n    audience: { name: "Tailor: vip" }\n`,
      ),
    );
    expect(issues).toEqual([
      expect.objectContaining({
        file: 'tailor.yml',
        path: 'activations.vip_again.audience',
        line: 21,
        message: expect.stringMatching(
          /audience "Tailor: vip" of account 18ce54d4x5t is already fed by activation vip_x/,
        ),
      }),
    ]);
  });

  it('refuses two activations naming one audience by id, whatever its case', async () => {
    const issues = await issuesOf(
      await project(
        `    audience: { id: 1NMTH }\n  gold_x:\n    model: gold\n    destination: x\n    audience: { id: 1nmth }\n`,
      ),
    );
    expect(issues.map((i) => `${i.path}: ${i.message}`)).toEqual([
      expect.stringMatching(
        /^activations.gold_x.audience: audience id 1nmth .* already fed by activation vip_x/,
      ),
    ]);
  });

  it('lets two activations of one model feed two audiences', async () => {
    const dir = await project(`  gold_x:\n    model: gold\n    destination: x\n`);
    await expect(loadProject(dir, { X_CONSUMER_SECRET: 's' })).resolves.toBeDefined();
  });
});

describe('suppression:', () => {
  const withSuppression = (block: string, activations = '') =>
    MINIMAL_TAILOR_YML.replace('activations:\n', `${block}activations:\n${activations}`);

  it('loads suppression models with their own mappings', async () => {
    const dir = await makeProject({
      'tailor.yml': withSuppression(
        'suppression:\n  - model: optouts\n    mappings: { email: email, mobile: phone_number }\n    phone_default_region: gb\n',
      ),
      ...VIP_MODEL,
      'models/optouts.sql': 'select email, mobile from unsubscribes;\n',
      'models/optouts.yml': 'name: optouts\ndescription: Opt-outs\nprimary_key: email\n',
    });
    const project = await loadProject(dir, { X_CONSUMER_SECRET: 's' });
    expect(project.config.suppression).toEqual([
      { model: 'optouts', mappings: { email: 'email', mobile: 'phone_number' }, phone_default_region: 'GB' },
    ]);
  });

  it('defaults to none, and reports an unknown model, empty mappings, a model listed twice and a reserved activation id', async () => {
    const plain = await loadProject(await makeProject({ 'tailor.yml': MINIMAL_TAILOR_YML, ...VIP_MODEL }), {
      X_CONSUMER_SECRET: 's',
    });
    expect(plain.config.suppression).toEqual([]);

    const dir = await makeProject({
      'tailor.yml': withSuppression(
        'suppression:\n  - model: nope\n    mappings: {}\n  - model: vip\n    mappings: { email: email }\n  - model: vip\n    mappings: { email: email }\n',
        '  suppression__vip:\n    model: vip\n    destination: x\n',
      ),
      ...VIP_MODEL,
    });
    const error = await loadProject(dir, { X_CONSUMER_SECRET: 's' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    const messages = (error as ConfigError).issues.map((i) => `${i.path}: ${i.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        'suppression.0.model: unknown model "nope" (no models/nope.sql and .yml)',
        'suppression.0.mappings: map at least one column to an identifier type',
        'suppression.2.model: model vip is listed twice',
        expect.stringMatching(
          /^activations.suppression__vip: .*activation ids may not start with suppression__/,
        ),
      ]),
    );
  });
});
