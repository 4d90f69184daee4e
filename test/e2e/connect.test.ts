import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { PassThrough } from 'node:stream';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { type RunningEmulator, startEmulator } from '../../src/emulator/index.js';
import { type HeadlessBrowser, launchBrowser } from '../helpers/browser.js';
import { expectConnectionSecrets } from '../helpers/connect.js';
import { type CliResult, runCli, startCli } from '../helpers/cli.js';
import { TEST_POSTGRES_URL, uniqueName } from '../helpers/warehouse.js';

/**
 * `tailor connect` end to end: a new user's empty folder, `tailor init`, `tailor connect` against the
 * emulator's sign-in (its authorize page clicked in real headless Chromium), `tailor check`, and
 * `tailor activate <model>` syncing an audience; the PIN flow; and every refusal writing nothing.
 */

const APP = {
  consumerKey: 'e2e-app-key-7Qm2',
  consumerSecret: 'e2e-app-secret-Zr81xPq4vN',
  name: 'E2E Tailor app',
};
const ANA = { userId: '4242', screenName: 'ana_ads' };
const LONE = { userId: '5151', screenName: 'lone_user' };
const ACCOUNTS = [
  { id: 'acme1', name: 'Acme Ads', approvalStatus: 'ACCEPTED' },
  { id: 'pend1', name: 'Pending Co', approvalStatus: 'PENDING' },
  { id: 'beta2', name: 'Beta Shop', approvalStatus: 'ACCEPTED' },
];

let emulator: RunningEmulator;
let browser: HeadlessBrowser;
let database: string;
let databaseUrl: string;
let dir: string;
const outputs: string[] = [];

async function sql(url: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { DATABASE_URL: databaseUrl, ...extra };
}

async function cli(args: string[], extra: Record<string, string> = {}): Promise<CliResult> {
  const result = await runCli(args, { cwd: dir, env: env(extra), timeoutMs: 120_000 });
  outputs.push(result.stdout, result.stderr);
  return result;
}

/** Opens the authorize URL the CLI printed, chooses the user, clicks a button; returns the page's text after. */
async function authorize(url: string, button: 'Authorize app' | 'Cancel', user = ANA): Promise<string> {
  const page = browser.page;
  await page.goto(url);
  await page.getByLabel('Signed in as').selectOption(user.userId);
  await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: button }).click()]);
  return page.locator('body').innerText();
}

/** `tailor connect` with the browser flow: waits for the URL, clicks, returns the finished run and the page. */
async function connectInBrowser(
  args: string[],
  button: 'Authorize app' | 'Cancel' = 'Authorize app',
  user = ANA,
  extraEnv: Record<string, string> = {},
): Promise<{ result: CliResult; page: string }> {
  const run = startCli(['connect', '--no-browser', ...args], {
    cwd: dir,
    env: env({ X_CONSUMER_SECRET: APP.consumerSecret, ...extraEnv }),
    timeoutMs: 120_000,
  });
  const [url] = await run.stderrMatch(/http:\/\/127\.0\.0\.1:\d+\/oauth\/authorize\?oauth_token=[\w-]+/);
  // The callback listener is up before the URL is printed: the click's redirect always lands.
  const page = await authorize(url, button, user);
  const result = await run.done;
  outputs.push(result.stdout, result.stderr);
  return { result, page };
}

const BASE_ARGS = () => ['--api-url', emulator.url, '--consumer-key', APP.consumerKey];

async function snapshot(): Promise<{ yml: string; env: boolean }> {
  return { yml: await readFile(join(dir, 'tailor.yml'), 'utf8'), env: existsSync(join(dir, '.env')) };
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

beforeAll(async () => {
  emulator = await startEmulator({
    seed: {
      accounts: ACCOUNTS,
      apps: [APP],
      users: [
        {
          ...ANA,
          access: { acme1: ['ACCOUNT_ADMIN'], pend1: ['ACCOUNT_ADMIN'], beta2: ['PARTNER_AUDIENCE_MANAGER'] },
        },
        { ...LONE, access: {} },
      ],
    },
  });
  browser = await launchBrowser();
  // A database of its own: `tailor init` writes `state_schema: tailor`, which must not meet other runs'.
  database = uniqueName('tailor_connect');
  await sql(TEST_POSTGRES_URL, `create database ${database}`);
  databaseUrl = TEST_POSTGRES_URL.replace(/\/test$/, `/${database}`);
  await sql(
    databaseUrl,
    `create table customers (customer_id int primary key, email text, phone text, lifetime_value numeric);
     insert into customers
     select i, 'Customer' || i || '@Example.com', '+1 415 555 ' || lpad(i::text, 4, '0'), case when i % 3 = 0 then 1500 else 200 end
     from generate_series(1, 60) i;`,
  );
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await emulator?.close();
  if (database) await sql(TEST_POSTGRES_URL, `drop database if exists ${database} with (force)`);
});

describe('tailor connect', () => {
  beforeEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = await mkdtemp(join(tmpdir(), 'tailor-connect-'));
    const init = await cli(['init']);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toContain('tailor connect');
  });

  it('takes a new user from an empty folder to a synced audience: init, connect (browser), check, activate', async () => {
    const before = await readFile(join(dir, 'tailor.yml'), 'utf8');
    const { result, page } = await connectInBrowser([...BASE_ARGS(), '--account', 'acme1', '--debug']);
    expect(result.code, result.stderr).toBe(0);
    expect(page).toContain('Connected');
    expect(result.stdout).toContain('connected as @ana_ads');
    expect(result.stdout).toContain('acme1');

    // tailor.yml: comments kept, the destination with ${VAR} references only.
    const yml = await readFile(join(dir, 'tailor.yml'), 'utf8');
    for (const line of before.split('\n').filter((l) => l.startsWith('#'))) expect(yml).toContain(line);
    expect(yml).toContain('account_id: acme1');
    expect(yml).toContain(`api_url: ${emulator.url}`);
    expect(yml).toContain('consumer_key: ${X_CONSUMER_KEY}');
    expect(yml).toContain('access_token_secret: ${X_ACCESS_TOKEN_SECRET}');
    expect(yml).toContain('audience_name: "Tailor: {model}"');

    // .env: the four secrets, owner-only, git-ignored; none of them in tailor.yml.
    const values = await expectConnectionSecrets(dir, yml, APP.consumerSecret);

    // Every command loads .env: check verifies the connection with nothing in the environment.
    const check = await cli(['check']);
    expect(check.code, check.stderr).toBe(0);
    // ...and a value already in the environment wins over .env.
    const overridden = await cli(['check'], { X_ACCESS_TOKEN_SECRET: 'not-the-secret' });
    expect(overridden.code).toBe(1);
    expect(overridden.stdout).toMatch(/refused the request signature/);

    const activate = await cli(['activate', 'high_value_customers']);
    expect(activate.code, activate.stderr).toBe(0);
    const audiences = emulator.admin.audiences('acme1').filter((a) => !a.deleted);
    expect(audiences.map((a) => a.name)).toEqual(['Tailor: high_value_customers']);
    expect(emulator.admin.memberCount('acme1', audiences[0]!.id)).toBe(20);

    // No token or secret in any output, --debug included.
    const all = outputs.join('\n');
    for (const secret of [values.X_CONSUMER_SECRET!, values.X_ACCESS_TOKEN!, values.X_ACCESS_TOKEN_SECRET!])
      expect(all).not.toContain(secret);

    // Connecting again refreshes the tokens and touches nothing else.
    const beforeAgain = await readFile(join(dir, 'tailor.yml'), 'utf8');
    const again = await connectInBrowser(BASE_ARGS().slice(2));
    expect(again.result.code, again.result.stderr).toBe(0);
    expect(again.result.stdout).toContain('refreshed the tokens of destinations.x');
    expect(await readFile(join(dir, 'tailor.yml'), 'utf8')).toBe(beforeAgain);
    const envAfter = await readFile(join(dir, '.env'), 'utf8');
    expect(envAfter).not.toContain(values.X_ACCESS_TOKEN!);
    expect(envAfter).toContain(`X_CONSUMER_SECRET=${APP.consumerSecret}`);
    const sync = await cli(['sync', '--all']);
    expect(sync.code, sync.stderr).toBe(0);
  }, 240_000);

  it('signs in with a PIN typed back (--pin), for machines no browser can reach', async () => {
    const run = startCli(['connect', '--pin', '--no-browser', ...BASE_ARGS(), '--account', 'beta2'], {
      cwd: dir,
      env: env({ X_CONSUMER_SECRET: APP.consumerSecret }),
      timeoutMs: 120_000,
    });
    const [url] = await run.stderrMatch(/http:\/\/127\.0\.0\.1:\d+\/oauth\/authorize\?oauth_token=[\w-]+/);
    await run.stderrMatch(/PIN shown by X: /);
    const text = await authorize(url, 'Authorize app');
    expect(text).toContain('Enter this PIN');
    const pin = await browser.page.locator('#pin').innerText();
    run.write(`${pin}\n`);
    const result = await run.done;
    outputs.push(result.stdout, result.stderr);
    expect(result.code, result.stderr).toBe(0);
    expect(await readFile(join(dir, 'tailor.yml'), 'utf8')).toContain('account_id: beta2');
    expect((await cli(['check'])).code).toBe(0);
  }, 120_000);

  it('asks on a terminal: the app key and secret (not echoed), then the account from a list', async () => {
    // A terminal's streams, in process: what main() reads and writes, with isTTY set.
    const stdin = Object.assign(new PassThrough(), { isTTY: true as const });
    const stderr = Object.assign(new PassThrough(), { isTTY: true as const });
    const stdout = new PassThrough();
    let written = '';
    const waiters = new Set<() => void>();
    stderr.setEncoding('utf8').on('data', (chunk: string) => {
      written += chunk;
      for (const waiter of [...waiters]) waiter();
    });
    let out = '';
    stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    /** Resolves once stderr has shown `text` `times` times. */
    const shown = (text: string, times = 1) =>
      new Promise<void>((resolve) => {
        const waiter = () => {
          if (written.split(text).length - 1 >= times) {
            waiters.delete(waiter);
            resolve();
          }
        };
        waiters.add(waiter);
        waiter();
      });
    const controller = new AbortController();
    const exit = main(
      ['connect', '--no-browser', '--api-url', emulator.url],
      { stdin, stderr, stdout, cwd: dir, env: { ...env(), NO_COLOR: '1' } },
      controller.signal,
    );
    await shown('X app consumer key: ');
    stdin.write(`${APP.consumerKey}\n`);
    await shown('X app consumer secret (not shown): ');
    stdin.write(`${APP.consumerSecret}\n`);
    await shown('/oauth/authorize?oauth_token=');
    await shown('waiting for X');
    const url = /http:\/\/127\.0\.0\.1:\d+\/oauth\/authorize\?oauth_token=[\w-]+/.exec(written)![0];
    expect(await authorize(url, 'Authorize app')).toContain('Connected');
    await shown('choose 1-3: ');
    expect(written).toMatch(
      /1\) Acme Ads {2}acme1 {2}ACCEPTED\n {2}2\) Beta Shop {2}beta2 {2}ACCEPTED\n {2}3\) Pending Co {2}pend1 {2}PENDING\n/,
    );
    stdin.write('3\n');
    await shown('not approved for custom audiences (approval_status PENDING); choose another');
    await shown('choose 1-3: ', 2);
    stdin.write('2\n');
    expect(await exit).toBe(0);
    expect(out).toContain('connected as @ana_ads');
    expect(await readFile(join(dir, 'tailor.yml'), 'utf8')).toContain('account_id: beta2');
    expect(written + out).not.toContain(APP.consumerSecret);
  }, 120_000);

  describe('refuses with one line saying what to do, and writes nothing', () => {
    async function expectRefused(
      result: CliResult,
      code: number,
      message: RegExp,
      before: { yml: string; env: boolean },
    ) {
      expect(result.code, result.stderr).toBe(code);
      const errors = result.stderr.split('\n').filter((l) => l.startsWith('error:'));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(message);
      expect(result.stderr).toMatch(/^hint: /m);
      expect(await snapshot()).toEqual(before);
      expect(result.stderr + result.stdout).not.toContain(APP.consumerSecret);
    }

    it('a wrong consumer secret', async () => {
      const before = await snapshot();
      const result = await cli(['connect', '--no-browser', ...BASE_ARGS(), '--account', 'acme1'], {
        X_CONSUMER_SECRET: 'wrong-secret-123',
      });
      await expectRefused(result, 1, /refused the app's consumer key and secret/, before);
    });

    it('a denied authorization ("Cancel")', async () => {
      const before = await snapshot();
      const { result, page } = await connectInBrowser([...BASE_ARGS(), '--account', 'acme1'], 'Cancel');
      expect(page).toContain('Not connected');
      await expectRefused(result, 1, /authorization was denied/, before);
    }, 60_000);

    it('a callback that never comes', async () => {
      const before = await snapshot();
      const result = await cli(
        ['connect', '--no-browser', ...BASE_ARGS(), '--account', 'acme1', '--timeout', '2'],
        {
          X_CONSUMER_SECRET: APP.consumerSecret,
        },
      );
      await expectRefused(result, 1, /did not send the browser back within 2 s/, before);
    });

    it('a closed port', async () => {
      const before = await snapshot();
      const port = await closedPort();
      const result = await cli(
        [
          'connect',
          '--no-browser',
          '--api-url',
          `http://127.0.0.1:${port}`,
          '--consumer-key',
          APP.consumerKey,
          '--account',
          'acme1',
        ],
        { X_CONSUMER_SECRET: APP.consumerSecret },
      );
      await expectRefused(result, 1, /cannot reach X's sign-in host .*connection refused/, before);
    });

    it('no terminal and no --account', async () => {
      const before = await snapshot();
      const result = await cli(['connect', '--no-browser', ...BASE_ARGS()], {
        X_CONSUMER_SECRET: APP.consumerSecret,
      });
      await expectRefused(result, 2, /--account/, before);
    });

    it('an --api-url that is not https (plain http only on loopback)', async () => {
      const before = await snapshot();
      const result = await cli(['connect', '--api-url', 'http://ads.example.com', '--account', 'acme1']);
      await expectRefused(result, 2, /--api-url: must be an https URL/, before);
    });

    it('no consumer key given and no terminal to ask on', async () => {
      const before = await snapshot();
      const result = await cli(['connect', '--no-browser', '--api-url', emulator.url, '--account', 'acme1']);
      await expectRefused(result, 2, /no consumer key .*X_CONSUMER_KEY/, before);
    });

    it('an account not approved for custom audiences', async () => {
      const before = await snapshot();
      const { result } = await connectInBrowser([...BASE_ARGS(), '--account', 'pend1']);
      await expectRefused(
        result,
        1,
        /pend1 .*not approved for custom audiences \(approval_status PENDING\)/,
        before,
      );
    }, 60_000);

    it('a user who can reach no ad account', async () => {
      const before = await snapshot();
      const { result } = await connectInBrowser(
        [...BASE_ARGS(), '--account', 'acme1'],
        'Authorize app',
        LONE,
      );
      await expectRefused(result, 1, /@lone_user can reach no X ad account/, before);
    }, 60_000);
  });
});
