import { createServer, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { MINIMAL_TAILOR_YML, makeProject, VIP_MODEL } from '../helpers/project.js';

const ENV = { X_CONSUMER_SECRET: 'cs-for-exit-code-tests' };

/** tailor.yml with a Postgres warehouse at `url` (a secret: it may carry a password). */
const withPostgresUrl = (url: string) =>
  MINIMAL_TAILOR_YML.replace('type: pglite', 'type: postgres').replace(
    'url: .tailor/warehouse',
    `url: "${url}"`,
  );

describe('exit codes (CLI subprocess)', () => {
  it('prints help and exits 2 when no command is given; `help` and --help exit 0', async () => {
    const bare = await runCli([]);
    expect(bare.code).toBe(2);
    expect(bare.stdout + bare.stderr).toContain('Usage: tailor');
    expect((await runCli(['--help'])).code).toBe(0);
    expect((await runCli(['help'])).code).toBe(0);
  });

  it('exits 2 on an unknown activation in history, as in every other command', async () => {
    const dir = await makeProject({ 'tailor.yml': MINIMAL_TAILOR_YML, ...VIP_MODEL });
    const result = await runCli(['history', 'no_such_activation', '--project', dir], { env: ENV });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown activation "no_such_activation" (defined: vip_x)');
  });

  it("exits 2 when a model's SQL fails in the warehouse: the analyst must fix models/", async () => {
    const dir = await makeProject({
      'tailor.yml': MINIMAL_TAILOR_YML,
      'models/vip.sql': 'select customer_id, email from no_such_table\n',
      'models/vip.yml': VIP_MODEL['models/vip.yml'],
    });
    const result = await runCli(['plan', '--project', dir], { env: ENV });
    expect(result.stdout).toMatch(/model vip: relation "no_such_table" does not exist/);
    expect(result.code).toBe(2);
  });

  it('refuses a YAML alias bomb with exit 2, naming the file and line', async () => {
    const lol = (name: string, of: string) => `${name}: &${name} [${Array(9).fill(of).join(', ')}]`;
    const bomb = [
      lol('a', '"lol"'),
      lol('b', '*a'),
      lol('c', '*b'),
      lol('d', '*c'),
      lol('e', '*d'),
      lol('f', '*e'),
      lol('g', '*f'),
      lol('h', '*g'),
    ].join('\n');
    const dir = await makeProject({ 'tailor.yml': `${MINIMAL_TAILOR_YML}${bomb}\n`, ...VIP_MODEL });
    const line = MINIMAL_TAILOR_YML.split('\n').length + 1; // the first alias, on b's line
    const result = await runCli(['check', '--offline', '--project', dir], { env: ENV, timeoutMs: 30_000 });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(new RegExp(`tailor\\.yml:${line}:\\d+: invalid YAML: its aliases`));
    expect(result.stderr).not.toMatch(/\bat .*\.(ts|js):\d+/);
  });

  it('refuses a malformed or unknown-scheme warehouse URL with exit 2, never printing it', async () => {
    for (const [url, message] of [
      ['postgress://tailor:hunter2-secret@db.internal/analytics', 'unknown scheme "postgress://"'],
      ['postgres://tailor:hunter2-secret@db.internal:port/analytics', 'is not a valid connection URL'],
      ['tailor:hunter2-secret@db.internal/analytics', 'must be a connection URL such as postgres://'],
    ] as const) {
      const dir = await makeProject({ 'tailor.yml': withPostgresUrl(url), ...VIP_MODEL });
      for (const args of [
        ['check', '--offline'],
        ['plan', '--debug'],
      ]) {
        const result = await runCli([...args, '--project', dir], { env: ENV });
        expect(result.code, `${url}: ${args.join(' ')}`).toBe(2);
        expect(result.stderr).toContain(`warehouse.url: ${message}`);
        expect(result.stdout + result.stderr).not.toContain('hunter2-secret');
      }
    }
  });

  it('does not blame tailor.yml when the ops port of `tailor schedule` is busy', async () => {
    const dir = await makeProject({ 'tailor.yml': MINIMAL_TAILOR_YML, ...VIP_MODEL });
    const busy: Server = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const port = (busy.address() as { port: number }).port;
    try {
      const result = await runCli(['schedule', '--port', String(port), '--project', dir], { env: ENV });
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(
        `error: --port: cannot listen on 127.0.0.1:${port}: another process already listens there`,
      );
      expect(result.stderr).toContain('hint: choose another port with --port');
      expect(result.stderr).not.toContain('tailor.yml');
      expect(result.stderr).not.toContain('in the project');
    } finally {
      await new Promise((resolve) => busy.close(resolve));
    }
  });
});
