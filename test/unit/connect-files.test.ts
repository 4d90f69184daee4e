/**
 * What `tailor connect` writes: `.env` (kept lines, mode 0600), `.gitignore`, and tailor.yml through
 * the Document API (comments kept; an existing destination changed only where a credential was literal).
 */
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureGitignored, readDotEnv, writeDotEnv } from '../../src/config/dotenv.js';
import { loadProject } from '../../src/config/load-project.js';
import { addDestination, editConfig } from '../../src/config/write-config.js';
import { ConfigError } from '../../src/errors.js';
import {
  chooseAccount,
  defaultCredentialVars,
  requireUsableAccount,
  readExistingDestination,
  referencedVar,
  saveConnection,
} from '../../src/destinations/x-ads/x-connect.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tailor-connect-files-'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

const TOKENS = { accessToken: '77-abc', accessTokenSecret: 's3cr3t+/=', userId: '77', screenName: 'seven' };
const CONSUMER = { consumerKey: 'ck-1', consumerSecret: 'cs-2' };

describe('.env', () => {
  it('replaces variables in place, appends new ones, keeps every other line, and is owner-only', async () => {
    await writeFile(join(dir, '.env'), '# mine\nDATABASE_URL=postgres://db/x\nexport X_ACCESS_TOKEN=old\n', {
      mode: 0o644,
    });
    await chmod(join(dir, '.env'), 0o644);
    await writeDotEnv(dir, { X_ACCESS_TOKEN: 'new-token', X_NEW: 'with space' });
    const text = await readFile(join(dir, '.env'), 'utf8');
    expect(text).toBe("# mine\nDATABASE_URL=postgres://db/x\nX_ACCESS_TOKEN=new-token\nX_NEW='with space'\n");
    expect((await stat(join(dir, '.env'))).mode & 0o777).toBe(0o600);
    expect(await readDotEnv(dir)).toEqual({
      DATABASE_URL: 'postgres://db/x',
      X_ACCESS_TOKEN: 'new-token',
      X_NEW: 'with space',
    });
    await expect(writeDotEnv(dir, { BAD: 'a\nb' })).rejects.toThrow(/line break/);
  });

  it('a new file is created 0600 with a warning comment; no file reads as empty', async () => {
    expect(await readDotEnv(dir)).toEqual({});
    await writeDotEnv(dir, { A: '1' });
    expect((await stat(join(dir, '.env'))).mode & 0o777).toBe(0o600);
    expect(parseEnv(await readFile(join(dir, '.env'), 'utf8'))).toEqual({ A: '1' });
  });

  it('.gitignore gets .env once', async () => {
    expect(await ensureGitignored(dir)).toBe(true);
    expect(await ensureGitignored(dir)).toBe(false);
    await writeFile(join(dir, '.gitignore'), 'node_modules');
    expect(await ensureGitignored(dir)).toBe(true);
    expect(await readFile(join(dir, '.gitignore'), 'utf8')).toBe('node_modules\n.env\n');
  });
});

describe('tailor.yml', () => {
  it('a new destination goes into destinations, comments and layout kept', async () => {
    const yml = '# top\nwarehouse: { type: pglite, url: w } # inline\n\n# note\nactivations: {}\n';
    await writeFile(join(dir, 'tailor.yml'), yml);
    const path = join(dir, 'tailor.yml');
    const noCheck = async () => undefined;
    await editConfig(
      path,
      (doc) => addDestination(doc, 'x', { type: 'x_ads', account_id: 'abc' }, ' hello'),
      noCheck,
    );
    const written =
      '# top\nwarehouse: { type: pglite, url: w } # inline\ndestinations:\n  # hello\n  x:\n    type: x_ads\n    account_id: abc\n\n# note\nactivations: {}\n';
    expect(await readFile(path, 'utf8')).toBe(written);
    await expect(editConfig(path, (doc) => addDestination(doc, 'x', {}), noCheck)).rejects.toThrow(
      /destinations\.x already exists/,
    );
    expect(await readFile(path, 'utf8')).toBe(written);
  });

  it('saveConnection: a new destination with ${VAR}s and defaults; secrets only in .env', async () => {
    await writeFile(
      join(dir, 'tailor.yml'),
      'warehouse: { type: pglite, url: w }\ndestinations: {}\nactivations: {}\n',
    );
    const saved = await saveConnection({
      projectDir: dir,
      configPath: join(dir, 'tailor.yml'),
      destination: 'eu',
      accountId: 'abc1',
      apiUrl: 'https://ads-api.x.com',
      consumer: CONSUMER,
      tokens: TOKENS,
      validate: async () => loadProject(dir, await readDotEnv(dir)),
    });
    expect(saved).toMatchObject({ created: true, configChanged: true, gitignoreChanged: true });
    const yml = await readFile(join(dir, 'tailor.yml'), 'utf8');
    expect(yml).toContain('consumer_secret: ${X_EU_CONSUMER_SECRET}');
    expect(yml).toContain('mappings:');
    for (const secret of ['cs-2', '77-abc', 's3cr3t']) expect(yml).not.toContain(secret);
    expect(await readDotEnv(dir)).toEqual({
      X_EU_CONSUMER_KEY: 'ck-1',
      X_EU_CONSUMER_SECRET: 'cs-2',
      X_EU_ACCESS_TOKEN: '77-abc',
      X_EU_ACCESS_TOKEN_SECRET: 's3cr3t+/=',
    });
  });

  it('saveConnection on an existing destination: same variables, nothing else changes; a literal secret becomes a reference', async () => {
    const yml =
      'destinations:\n  x:\n    type: x_ads\n    account_id: ${ACCT:-abc1} # mine\n    credentials:\n' +
      '      consumer_key: ${MY_KEY:-k}\n      consumer_secret: ${MY_SECRET}\n      access_token: ${MY_TOKEN}\n' +
      '      access_token_secret: literal-secret # oops\nactivations: {}\n';
    await writeFile(join(dir, 'tailor.yml'), yml);
    const existing = await readExistingDestination(join(dir, 'tailor.yml'), 'x', {});
    expect(existing).toMatchObject({
      accountId: 'abc1',
      apiUrl: 'https://ads-api.x.com',
      oauthUrl: 'https://api.x.com',
      vars: { consumer_key: 'MY_KEY', consumer_secret: 'MY_SECRET', access_token: 'MY_TOKEN' },
    });
    const saved = await saveConnection({
      projectDir: dir,
      configPath: join(dir, 'tailor.yml'),
      destination: 'x',
      consumer: CONSUMER,
      tokens: TOKENS,
      validate: async () => loadProject(dir, await readDotEnv(dir)),
    });
    expect(saved).toMatchObject({ created: false, configChanged: true });
    expect(await readFile(join(dir, 'tailor.yml'), 'utf8')).toBe(
      yml.replace('literal-secret # oops', '${X_ACCESS_TOKEN_SECRET} # oops'),
    );
    expect(Object.keys(await readDotEnv(dir)).sort()).toEqual([
      'MY_KEY',
      'MY_SECRET',
      'MY_TOKEN',
      'X_ACCESS_TOKEN_SECRET',
    ]);
  });

  it('saveConnection refuses a destination that would not load, and writes nothing (.env put back)', async () => {
    const yml = 'warehouse: { type: pglite, url: w }\ndestinations: {}\nactivations: {}\n';
    await writeFile(join(dir, 'tailor.yml'), yml);
    await writeFile(join(dir, '.env'), 'KEEP=1\n', { mode: 0o600 });
    const save = saveConnection({
      projectDir: dir,
      configPath: join(dir, 'tailor.yml'),
      destination: 'x',
      accountId: 'abc1',
      apiUrl: 'ftp://nowhere', // not a URL the schema accepts
      consumer: CONSUMER,
      tokens: TOKENS,
      validate: async () => loadProject(dir, await readDotEnv(dir)),
    });
    await expect(save).rejects.toBeInstanceOf(ConfigError);
    await expect(save).rejects.toThrow(/destinations\.x\.api_url/);
    expect(await readFile(join(dir, 'tailor.yml'), 'utf8')).toBe(yml);
    expect(await readFile(join(dir, '.env'), 'utf8')).toBe('KEEP=1\n');
    expect((await stat(join(dir, '.env'))).mode & 0o777).toBe(0o600);
  });

  it('saveConnection leaves problems elsewhere in tailor.yml to `tailor check`', async () => {
    await writeFile(
      join(dir, 'tailor.yml'),
      'warehouse: { type: pglite, url: w }\ndestinations:\n  other:\n    type: x_ads\n    account_id: o1\n' +
        '    credentials: { consumer_key: "${NOPE_1}", consumer_secret: "${NOPE_2}", access_token: "${NOPE_3}", access_token_secret: "${NOPE_4}" }\nactivations: {}\n',
    );
    const saved = await saveConnection({
      projectDir: dir,
      configPath: join(dir, 'tailor.yml'),
      destination: 'x',
      accountId: 'abc1',
      consumer: CONSUMER,
      tokens: TOKENS,
      validate: async () => loadProject(dir, await readDotEnv(dir)),
    });
    expect(saved.created).toBe(true);
    expect(await readFile(join(dir, 'tailor.yml'), 'utf8')).toContain('account_id: abc1');
  });

  it('names and references', () => {
    expect(defaultCredentialVars('x').access_token).toBe('X_ACCESS_TOKEN');
    expect(defaultCredentialVars('eu_2').access_token).toBe('X_EU_2_ACCESS_TOKEN');
    expect(referencedVar('${A_B}')).toBe('A_B');
    expect(referencedVar('${A:-default}')).toBe('A');
    expect(referencedVar('x${A}')).toBeUndefined();
    expect(referencedVar('literal')).toBeUndefined();
  });

  it('accounts: none, none approved, not reachable, not approved, approved', () => {
    const ok = { id: 'a1', name: 'A', approvalStatus: 'ACCEPTED' };
    const pending = { id: 'p1', name: 'P', approvalStatus: 'PENDING' };
    expect(() => requireUsableAccount([], '@u')).toThrow(/@u can reach no X ad account/);
    expect(() => requireUsableAccount([pending], '@u')).toThrow(
      /none of the ad accounts @u can reach is approved for custom audiences \(p1: PENDING\)/,
    );
    expect(() => requireUsableAccount([pending, ok], '@u')).not.toThrow();
    expect(() => chooseAccount([ok], 'zz', '@u')).toThrow(/@u cannot reach ad account zz/);
    expect(() => chooseAccount([ok, pending], 'P1', '@u')).toThrow(/p1 \("P"\) is not approved/);
    expect(chooseAccount([ok, pending], 'A1', '@u')).toBe(ok);
  });
});
