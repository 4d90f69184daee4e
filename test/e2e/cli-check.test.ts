import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { DEMO_CREDENTIALS, startEmulator } from '../../src/emulator/index.js';
import { MINIMAL_TAILOR_YML, makeProject, VIP_MODEL } from '../helpers/project.js';
import { TEST_POSTGRES_URL } from '../helpers/warehouse.js';

const SECRET = 'sk-live-0123456789abcdef';

/** A model that compiles in any empty Postgres or PGlite warehouse (online check describes it). */
const SELF_CONTAINED_MODEL = {
  ...VIP_MODEL,
  'models/vip.sql': "select 1 as customer_id, 'a@example.com' as email\n",
};
/** MINIMAL_TAILOR_YML with its activation's column mapped (it has no default mappings). */
const MAPPED_YML = `${MINIMAL_TAILOR_YML}    mappings: { email: email }\n`;

describe('tailor check (CLI subprocess)', () => {
  it('accepts the example project at the repository root with no environment variables', async () => {
    const result = await runCli(['check', '--offline']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ok: 3 models/);
  });

  it('prints a machine-readable result with --json', async () => {
    const result = await runCli(['check', '--json', '--offline']);
    expect(result.code).toBe(0);
    const body = JSON.parse(result.stdout);
    expect(body).toMatchObject({ ok: true, issues: [], warehouse: 'pglite', checks: [] });
    expect(body.activations.map((a: { id: string }) => a.id)).toContain('vip_customers_x');
  });

  it('exits 2 with every problem, file and path, and no stack trace', async () => {
    const dir = await makeProject({
      'tailor.yml': MINIMAL_TAILOR_YML.replace('destination: x', 'destination: y'),
      'models/vip.sql': '   \n',
      'models/vip.yml': 'name: vip\nprimary_key: customer_id\n',
      'models/orphan.yml': 'name: orphan\nprimary_key: id\n',
    });
    const result = await runCli(['check', '--project', dir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      'tailor.yml:17:18: activations.vip_x.destination: unknown destination "y"',
    );
    expect(result.stderr).toContain('environment variable X_CONSUMER_SECRET is not set');
    expect(result.stderr).toContain('models/vip.sql: model SQL is empty');
    expect(result.stderr).toContain('models/orphan.sql: model SQL file is missing');
    expect(result.stderr).not.toMatch(/\bat .*\.ts:\d+/);
  });

  it('refuses two activations naming one audience, with file, path and line (exit 2)', async () => {
    const dir = await makeProject({
      'tailor.yml': `${MINIMAL_TAILOR_YML}  vip_again:\n    model: vip\n    destination: x\n    audience: { name: 'Tailor: vip' }\n`,
      ...VIP_MODEL,
    });
    for (const args of [
      ['check', '--offline'],
      ['sync', 'vip_x'],
    ]) {
      const result = await runCli([...args, '--project', dir], { env: { X_CONSUMER_SECRET: 's' } });
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain(
        'tailor.yml:21:5: activations.vip_again.audience: audience "Tailor: vip" of account 18ce54d4x5t is already fed by activation vip_x',
      );
    }
  });

  it('reports malformed YAML with its line and column', async () => {
    const dir = await makeProject({ 'tailor.yml': 'warehouse:\n  type: pglite\n  url: [a,\n b: 2\n' });
    const result = await runCli(['check', '--project', dir, '--json']);
    expect(result.code).toBe(2);
    const body = JSON.parse(result.stdout);
    expect(body.ok).toBe(false);
    expect(body.error.kind).toBe('config');
    expect(body.error.issues[0]).toMatchObject({
      file: 'tailor.yml',
      line: expect.any(Number),
      column: expect.any(Number),
    });
    expect(body.error.issues[0].message).toMatch(/^invalid YAML/);
  });

  it('says so when tailor.yml is missing', async () => {
    const dir = await makeProject({});
    const result = await runCli(['check', '--project', dir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('tailor.yml: file not found');
  });

  it('never prints a secret from tailor.yml, --debug included', async () => {
    const dir = await makeProject({
      'tailor.yml': MINIMAL_TAILOR_YML.replace('destination: x', 'destination: nowhere').replace(
        'consumer_key: ck',
        `consumer_key: ${SECRET}`,
      ),
      ...VIP_MODEL,
    });
    for (const args of [
      ['check'],
      ['check', '--debug'],
      ['check', '--json', '--debug'],
      ['sync', '--all', '--debug'],
    ]) {
      const result = await runCli([...args, '--project', dir], { env: { X_CONSUMER_SECRET: `${SECRET}-2` } });
      expect(result.code).not.toBe(0);
      expect(result.stdout + result.stderr).not.toContain(SECRET);
    }
  });

  it('never echoes a secret of the wrong type, in text or JSON', async () => {
    const dir = await makeProject({
      'tailor.yml': MINIMAL_TAILOR_YML.replace('${X_CONSUMER_SECRET}', '98765432101234567'),
      ...VIP_MODEL,
    });
    for (const args of [['check'], ['check', '--json'], ['plan', '--debug']]) {
      const result = await runCli([...args, '--project', dir]);
      expect(result.code, args.join(' ')).toBe(2);
      const output = result.stdout + result.stderr;
      expect(output).toContain('destinations.x.credentials.consumer_secret: expected string, got a number');
      // Nor any form of it (YAML reads it as a number that rounds to 98765432101234570).
      expect(output).not.toContain('9876543210123');
    }
  });

  it('tests the warehouse connection and the X credentials, target by target', async () => {
    const emulator = await startEmulator({ port: 0, rateLimits: false });
    try {
      const yml = (url: string, secret: string) =>
        MAPPED_YML.replace('type: pglite', 'type: postgres')
          .replace('url: .tailor/warehouse', `url: ${url}`)
          .replace('http://127.0.0.1:4010', emulator.url)
          .replace('consumer_key: ck', `consumer_key: ${DEMO_CREDENTIALS.consumerKey}`)
          .replace('access_token: at', `access_token: ${DEMO_CREDENTIALS.accessToken}`)
          .replace('access_token_secret: ats', `access_token_secret: ${secret}`);
      const good = await makeProject({
        'tailor.yml': yml(TEST_POSTGRES_URL, DEMO_CREDENTIALS.accessTokenSecret),
        ...SELF_CONTAINED_MODEL,
      });
      const env = { X_CONSUMER_SECRET: DEMO_CREDENTIALS.consumerSecret };
      const ok = await runCli(['check', '--project', good], { env });
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toContain('ok: warehouse (postgres) reachable');
      expect(ok.stdout).toContain('ok: destination x (x_ads) reachable');

      const bad = await makeProject({
        'tailor.yml': yml('postgres://postgres@127.0.0.1:1/test', 'wrong-token-secret-123'),
        ...SELF_CONTAINED_MODEL,
      });
      const failed = await runCli(['check', '--json', '--project', bad], { env });
      expect(failed.code).toBe(1);
      const body = JSON.parse(failed.stdout);
      expect(body.ok).toBe(false);
      expect(body.checks).toMatchObject([
        { target: 'warehouse', kind: 'postgres', ok: false, error: expect.any(String) },
        { target: 'destination x', kind: 'x_ads', ok: false, error: expect.any(String) },
      ]);
      expect(failed.stdout).not.toContain('wrong-token-secret-123');
      const text = await runCli(['check', '--project', bad], { env });
      expect(text.stdout).toMatch(/^failed: warehouse \(postgres\): /m);
      expect(text.stdout).toMatch(/^failed: destination x \(x_ads\): /m);
    } finally {
      await emulator.close();
    }
  });

  it('describes every enabled model in the warehouse: each problem with its file and path, exit 2, and exits at once', async () => {
    const emulator = await startEmulator({ port: 0, rateLimits: false });
    try {
      const activations = `activations:
  vip_x:
    model: vip
    destination: x
    mappings: { email: email, mobile: phone_number }
  broken_x:
    model: broken
    destination: x
  nokey_x:
    model: nokey
    destination: x
  paused_x:
    model: paused
    destination: x
    enabled: false
`;
      const yml = MAPPED_YML.replace('type: pglite', 'type: postgres')
        .replace('url: .tailor/warehouse', `url: ${TEST_POSTGRES_URL}`)
        .replace('http://127.0.0.1:4010', emulator.url)
        .replace('consumer_key: ck', `consumer_key: ${DEMO_CREDENTIALS.consumerKey}`)
        .replace('access_token: at', `access_token: ${DEMO_CREDENTIALS.accessToken}`)
        .replace('access_token_secret: ats', `access_token_secret: ${DEMO_CREDENTIALS.accessTokenSecret}`)
        .replace(/activations:[\s\S]*$/, activations);
      const dir = await makeProject({
        'tailor.yml': yml,
        'models/vip.sql': "select 1 as customer_id, 'a@example.com' as email",
        'models/vip.yml': 'name: vip\nprimary_key: customer_id\n',
        'models/broken.sql': 'select customer_id, email from tailor_no_such_table',
        'models/broken.yml': 'name: broken\nprimary_key: customer_id\n',
        'models/nokey.sql': "select 1 as id, 'a@example.com' as email",
        'models/nokey.yml': 'name: nokey\nprimary_key: customer_id\n',
        // Paused: not checked, as it does not run.
        'models/paused.sql': 'select nothing from tailor_no_such_table',
        'models/paused.yml': 'name: paused\nprimary_key: id\n',
      });
      const env = { X_CONSUMER_SECRET: DEMO_CREDENTIALS.consumerSecret };
      // Well under the warehouse pool's 30 s idle timeout, which used to keep the process alive, and
      // long enough for a loaded machine.
      const text = await runCli(['check', '--project', dir], { env, timeoutMs: 20_000 });
      expect(text.signal, 'still running after it printed').toBeNull();
      expect(text.code, text.stdout + text.stderr).toBe(2);
      expect(text.stdout).toContain('ok: warehouse (postgres) reachable');
      expect(text.stdout).toContain('ok: destination x (x_ads) reachable');
      expect(text.stdout).toMatch(/^ {2}models\/broken\.sql: model broken: .*tailor_no_such_table/m);
      expect(text.stdout).toMatch(/^ {2}models\/nokey\.yml: primary_key: column "customer_id" is not among/m);
      expect(text.stdout).toMatch(
        /^ {2}tailor\.yml: activations\.vip_x\.mappings\.mobile: model vip returns no column "mobile"/m,
      );
      expect(text.stdout).not.toContain('paused');

      const json = await runCli(['check', '--json', '--project', dir], { env, timeoutMs: 20_000 });
      expect(json.code).toBe(2);
      const body = JSON.parse(json.stdout);
      expect(body.ok).toBe(false);
      expect(body.issues).toEqual([
        { file: 'tailor.yml', path: 'activations.vip_x.mappings.mobile', message: expect.any(String) },
        { file: 'models/broken.sql', path: '', message: expect.stringContaining('tailor_no_such_table') },
        { file: 'models/nokey.yml', path: 'primary_key', message: expect.any(String) },
      ]);
    } finally {
      await emulator.close();
    }
  });

  it('fails at once when X does not listen (a closed loopback port), naming the address and what to check', async () => {
    const gone = await startEmulator({ port: 0 });
    await gone.close();
    const port = new URL(gone.url).port;
    const dir = await makeProject({
      // A query string in api_url must never be echoed (it may carry a token).
      'tailor.yml': MAPPED_YML.replace('http://127.0.0.1:4010', `http://127.0.0.1:${port}/?token=abc123`),
      ...SELF_CONTAINED_MODEL,
    });
    const env = { X_CONSUMER_SECRET: 'cs' };
    const text = await runCli(['check', '--project', dir, '--debug'], { env });
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(
      new RegExp(
        `^failed: destination x \\(x_ads\\): cannot reach the X Ads API at http://127\\.0\\.0\\.1:${port}: connection refused`,
        'm',
      ),
    );
    expect(text.stdout).toMatch(/^ {2}hint: check destinations\.x\.api_url in tailor\.yml/m);
    expect(text.stdout).toMatch(/tailor emulator/);
    // At once: one attempt (--debug logs each), no retry, no "gave up after N attempts".
    expect(text.stderr.match(/X Ads request failed/g)).toHaveLength(1);
    expect(text.stdout + text.stderr).not.toMatch(/retrying|gave up|abc123/);

    const json = await runCli(['check', '--json', '--project', dir], { env });
    expect(json.code).toBe(1);
    const body = JSON.parse(json.stdout);
    expect(body.checks).toContainEqual({
      target: 'destination x',
      kind: 'x_ads',
      ok: false,
      error: expect.stringContaining(`cannot reach the X Ads API at http://127.0.0.1:${port}`),
      hint: expect.stringContaining('destinations.x.api_url in tailor.yml'),
    });
  });

  it('has --help with examples on every command and exits 2 on an unknown command', async () => {
    for (const command of [
      'init',
      'connect',
      'check',
      'plan',
      'sync',
      'activate',
      'schedule',
      'status',
      'history',
      'audiences',
      'emulator',
    ]) {
      const result = await runCli([command, '--help']);
      expect(result.code, command).toBe(0);
      expect(result.stdout).toContain(`Usage: tailor ${command}`);
      expect(result.stdout, command).toMatch(new RegExp(`\\nExamples:\\n  \\$ tailor ${command}\\b`));
    }
    const state = await runCli(['state', 'reset', '--help']);
    expect(state.stdout).toContain('Usage: tailor state reset');
    expect(state.stdout).toContain('Examples:\n  $ tailor state reset vip_customers_x');
    expect((await runCli(['frobnicate'])).code).toBe(2);
  }, 180_000);
});
