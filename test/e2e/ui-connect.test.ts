import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RunningEmulator, startEmulator } from '../../src/emulator/index.js';
import { type HeadlessBrowser, launchBrowser } from '../helpers/browser.js';
import { expectConnectionSecrets } from '../helpers/connect.js';
import { CLI, type CliResult, runCli } from '../helpers/cli.js';
import { waitFor } from '../helpers/e2e.js';
import { TEST_POSTGRES_URL, uniqueName } from '../helpers/warehouse.js';

/**
 * The web UI's Connect X end to end: `tailor init` in an empty folder, `tailor ui` (a subprocess),
 * real headless Chromium through the emulator's sign-in, the account picker, and then Activate
 * syncing an audience with what Connect X wrote; "Cancel", a wrong app secret and a user without an
 * account write nothing; forged changes are refused.
 */

const APP = {
  consumerKey: 'ui-app-key-5Tn8',
  consumerSecret: 'ui-app-secret-Qw93LmZp0x',
  name: 'UI Tailor app',
};
const ANA = { userId: '4242', screenName: 'ana_ads' };
const LONE = { userId: '5151', screenName: 'lone_user' };
const ACCOUNTS = [
  { id: 'acme1', name: 'Acme Ads', approvalStatus: 'ACCEPTED' },
  { id: 'pend1', name: 'Pending Co', approvalStatus: 'PENDING' },
];

let emulator: RunningEmulator;
let browser: HeadlessBrowser;
let database: string;
let databaseUrl: string;
let dir: string;
let url: string;
interface Ui {
  url: string;
  kill(): void;
  done: Promise<CliResult>;
  output(): string;
}
let ui: Ui;
let failed = false;
/** Every page's HTML, scanned at the end for secrets. */
const pages: string[] = [];

async function sql(target: string, text: string): Promise<void> {
  const client = new pg.Client({ connectionString: target });
  await client.connect();
  try {
    await client.query(text);
  } finally {
    await client.end();
  }
}

async function files(): Promise<{ yml: string; env: boolean }> {
  return { yml: await readFile(join(dir, 'tailor.yml'), 'utf8'), env: existsSync(join(dir, '.env')) };
}

async function keep(): Promise<string> {
  const html = await browser.page.content();
  pages.push(html);
  return html;
}

/** Opens Connect X and submits it; returns once the browser is on X's (the emulator's) authorize page, or (`refused`) on the form with its problem. */
async function submitConnect(
  fields: { key?: string; secret?: string; apiUrl?: boolean; destination?: string },
  refused = false,
) {
  const page = browser.page;
  await page.goto(`${url}/connect${fields.destination ? `?destination=${fields.destination}` : ''}`);
  await keep();
  if (fields.key !== undefined)
    await page.getByLabel('API key (consumer key) of your X app').fill(fields.key);
  if (fields.secret !== undefined)
    await page.getByLabel('API key secret (consumer secret)').fill(fields.secret);
  if (fields.apiUrl) {
    await page.getByText('Advanced').click();
    await page.getByLabel(/^Ads API URL/).fill(emulator.url);
  }
  await page.getByRole('button', { name: 'Sign in with X' }).click();
  if (refused) await page.getByRole('alert').waitFor();
  // The answer's meta refresh takes the browser on to X's authorize page.
  else await page.waitForURL((where) => where.pathname === '/oauth/authorize');
}

/** On X's authorize page: chooses the user and clicks a button; waits for the UI's answer. */
async function authorize(button: 'Authorize app' | 'Cancel', user = ANA): Promise<string> {
  const page = browser.page;
  await page.getByLabel('Signed in as').selectOption(user.userId);
  await Promise.all([
    page.waitForURL((where) => where.origin === url && where.pathname !== '/oauth/authorize'),
    page.getByRole('button', { name: button }).click(),
  ]);
  await page.waitForLoadState();
  await keep();
  return page.locator('main').innerText();
}

/** `tailor ui --port 0` in the project, as a subprocess; resolves once it listens. */
async function startUi(extraEnv: Record<string, string> = {}): Promise<Ui> {
  const child = spawn(process.execPath, [CLI, 'ui', '--port', '0'], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TZ: 'UTC',
      DATABASE_URL: databaseUrl,
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: out, stderr: '' }));
  });
  await waitFor(
    () => /Tailor UI: http:\/\/\S+/.test(out) || child.exitCode !== null,
    'tailor ui to listen',
    60_000,
  );
  const found = /Tailor UI: (http:\/\/\S+)/.exec(out);
  if (!found) throw new Error(`tailor ui did not start:\n${out}`);
  return { url: found[1]!, kill: () => child.kill('SIGTERM'), done, output: () => out };
}

beforeAll(async () => {
  emulator = await startEmulator({
    seed: {
      accounts: ACCOUNTS,
      apps: [APP],
      users: [
        { ...ANA, access: { acme1: ['ACCOUNT_ADMIN'], pend1: ['ACCOUNT_ADMIN'] } },
        { ...LONE, access: {} },
      ],
    },
  });
  database = uniqueName('tailor_uiconnect');
  await sql(TEST_POSTGRES_URL, `create database ${database}`);
  databaseUrl = TEST_POSTGRES_URL.replace(/\/test$/, `/${database}`);
  await sql(
    databaseUrl,
    `create table customers (customer_id int primary key, email text, phone text, lifetime_value numeric);
     insert into customers
     select i, 'Customer' || i || '@Example.com', '+1 415 555 ' || lpad(i::text, 4, '0'), case when i % 3 = 0 then 1500 else 200 end
     from generate_series(1, 60) i;`,
  );
  dir = await mkdtemp(join(tmpdir(), 'tailor-ui-connect-'));
  const init = await runCli(['init'], { cwd: dir, env: { DATABASE_URL: databaseUrl }, timeoutMs: 60_000 });
  expect(init.code, init.stderr).toBe(0);

  // `tailor ui` as a user starts it, in a project with no destination yet.
  ui = await startUi();
  url = ui.url;
  browser = await launchBrowser();
}, 120_000);

afterEach(({ task }) => {
  if (task.result?.state === 'fail') failed = true;
});

afterAll(async () => {
  await browser?.close({ failed, name: 'ui-connect' });
  if (ui) {
    ui.kill();
    await ui.done;
  }
  await emulator?.close();
  if (database) await sql(TEST_POSTGRES_URL, `drop database if exists ${database} with (force)`);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('Connect X in the web UI', () => {
  it('writes nothing when the user cancels on X, the app secret is wrong, or the user reaches no account', async () => {
    const before = await files();
    expect(before.env).toBe(false);
    expect(before.yml).not.toMatch(/^\s+x:/m);

    await submitConnect({ key: APP.consumerKey, secret: APP.consumerSecret, apiUrl: true });
    expect(new URL(browser.page.url()).origin).toBe(emulator.url);
    const cancelled = await authorize('Cancel');
    expect(cancelled).toContain('Not connected');
    expect(cancelled).toContain('cancelled on X\'s page ("Cancel"); nothing was written');

    await submitConnect({ key: APP.consumerKey, secret: 'not-the-secret', apiUrl: true }, true);
    expect(new URL(browser.page.url()).pathname).toBe('/connect');
    expect(await browser.page.getByRole('alert').innerText()).toContain(
      "X refused the app's consumer key and secret (401)",
    );
    expect(await keep()).not.toContain('not-the-secret');

    await submitConnect({ key: APP.consumerKey, secret: APP.consumerSecret, apiUrl: true });
    const lone = await authorize('Authorize app', LONE);
    expect(lone).toContain('the X user @lone_user can reach no X ad account');

    expect(await files()).toEqual(before);
  }, 120_000);

  it('refuses a forged POST to the connect routes', async () => {
    const before = await files();
    const target = `${url}/connect`;
    // A page on another origin that submits the form, as an attacker's site would.
    const evil: Server = createServer((_request, response) => {
      response
        .writeHead(200, { 'content-type': 'text/html' })
        .end(
          `<form id="f" method="post" action="${target}"><input name="_csrf" value="guess">` +
            `<input name="consumer_key" value="evil"><input name="consumer_secret" value="evil"></form>` +
            `<script>document.getElementById('f').submit()</script>`,
        );
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    try {
      const refused = browser.page.waitForResponse((response) => response.url() === target);
      await browser.page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
      expect((await refused).status()).toBe(403);
    } finally {
      await new Promise((resolve) => evil.close(resolve));
    }
    // Same origin, no page token: neither the sign-in nor an account choice goes through.
    for (const [path, body] of [
      ['/connect', `consumer_key=${APP.consumerKey}&consumer_secret=${APP.consumerSecret}`],
      ['/connect/account', 'handle=guess&account=acme1'],
    ] as const) {
      const response = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { origin: url, 'content-type': 'application/x-www-form-urlencoded' },
        body,
        redirect: 'manual',
      });
      expect(response.status, path).toBe(403);
    }
    // X's answer for a sign-in this UI never started is refused too.
    const stray = await fetch(`${url}/connect/callback?oauth_token=forged&oauth_verifier=forged`);
    expect(stray.status).toBe(422);
    expect(await stray.text()).toContain('this sign-in is unknown or has expired');
    expect(await files()).toEqual(before);
  });

  it('signs in, picks the approved account, writes tailor.yml and .env, and Activate syncs with them', async () => {
    const before = await files();
    await submitConnect({ key: APP.consumerKey, secret: APP.consumerSecret, apiUrl: true });
    const picker = await authorize('Authorize app');
    expect(picker).toContain('Signed in as the X user @ana_ads');
    const page = browser.page;
    // The unapproved account is shown, not selectable, with the reason.
    await expect(page.locator('#account-pend1').isDisabled()).resolves.toBe(true);
    expect(picker).toContain('ad account pend1 ("Pending Co") is not approved for custom audiences');
    await page.locator('#account-acme1').check();
    await Promise.all([
      page.waitForURL((where) => where.pathname === '/destinations/x'),
      page.getByRole('button', { name: 'Use this account' }).click(),
    ]);
    const connected = await page.locator('main').innerText();
    await keep();
    expect(connected).toContain('Connected: destination x written into tailor.yml for ad account acme1');
    expect(connected).toContain('Connection checked: X accepts these credentials');
    expect(await page.getByRole('link', { name: 'Destination x' }).count()).toBe(1);

    // tailor.yml: comments kept, the destination with ${VAR} references only.
    const yml = await readFile(join(dir, 'tailor.yml'), 'utf8');
    for (const line of before.yml.split('\n').filter((l) => l.startsWith('#'))) expect(yml).toContain(line);
    expect(yml).toContain('account_id: acme1');
    expect(yml).toContain(`api_url: ${emulator.url}`);
    for (const variable of ['X_CONSUMER_KEY', 'X_CONSUMER_SECRET', 'X_ACCESS_TOKEN', 'X_ACCESS_TOKEN_SECRET'])
      expect(yml).toContain(`\${${variable}}`);
    // .env: the four secrets, owner-only, git-ignored; none of them in tailor.yml.
    const values = await expectConnectionSecrets(dir, yml, APP.consumerSecret);

    // The UI runs with what it wrote: Activate creates the audience and syncs it.
    await page.goto(`${url}/models/high_value_customers`);
    await page.getByRole('button', { name: 'Activate high_value_customers' }).click();
    await page.waitForSelector('section.job[data-state="finished"]', { timeout: 90_000 });
    await keep();
    expect(await page.locator('section.job').innerText()).not.toMatch(/failed|error/i);
    const audiences = emulator.admin.audiences('acme1').filter((a) => !a.deleted);
    expect(audiences.map((a) => a.name)).toEqual(['Tailor: high_value_customers']);
    expect(emulator.admin.memberCount('acme1', audiences[0]!.id)).toBe(20);

    // Connecting again (the keys now in .env, left blank) refreshes the tokens and nothing else.
    const ymlBefore = await readFile(join(dir, 'tailor.yml'), 'utf8');
    await page.goto(`${url}/connect?destination=x`);
    const form = await page.locator('main').innerText();
    expect(form).toContain('X_CONSUMER_KEY is already set');
    expect(form).toContain('X_CONSUMER_SECRET is already set');
    expect(form).toContain('connecting again refreshes its tokens only');
    expect(await page.getByLabel('API key secret (consumer secret)').inputValue()).toBe('');
    await submitConnect({ destination: 'x' });
    await authorize('Authorize app');
    expect(new URL(page.url()).pathname).toBe('/destinations/x');
    expect(await page.locator('main').innerText()).toContain('Connected: fresh tokens for ad account acme1');
    expect(await readFile(join(dir, 'tailor.yml'), 'utf8')).toBe(ymlBefore);
    const envAfter = await readFile(join(dir, '.env'), 'utf8');
    expect(envAfter).not.toContain(values.X_ACCESS_TOKEN!);
    expect(envAfter).toContain(`X_CONSUMER_SECRET=${APP.consumerSecret}`);
    const sync = await runCli(['sync', '--all'], {
      cwd: dir,
      env: { DATABASE_URL: databaseUrl },
      timeoutMs: 120_000,
    });
    expect(sync.code, sync.stderr).toBe(0);

    // No secret on any page or in the UI's output.
    const fresh = Object.fromEntries(
      envAfter
        .split('\n')
        .filter((l) => /^X_/.test(l))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    const seen = [...pages, ui.output()].join('\n');
    for (const secret of [
      APP.consumerSecret,
      values.X_ACCESS_TOKEN!,
      values.X_ACCESS_TOKEN_SECRET!,
      fresh.X_ACCESS_TOKEN!,
      fresh.X_ACCESS_TOKEN_SECRET!,
    ])
      expect(seen).not.toContain(secret);
  }, 240_000);

  it('with TAILOR_UI_TOKEN, the cross-site redirect from X returns through a same-site hop that carries the token cookie', async () => {
    const token = 'ui-token-for-connect-Jd82kq';
    const guarded = await startUi({ TAILOR_UI_TOKEN: token });
    const context = await browser.browser.newContext();
    try {
      const page = await context.newPage();
      await page.goto(`${guarded.url}/?token=${token}`);
      expect(new URL(page.url()).search).toBe('');
      const ymlBefore = await readFile(join(dir, 'tailor.yml'), 'utf8');
      const envBefore = await readFile(join(dir, '.env'), 'utf8');
      await page.goto(`${guarded.url}/connect?destination=x`);
      // Sign in on another site than the UI's (localhost, not 127.0.0.1), as X's own host is.
      await page.getByText('Advanced').click();
      const emulatorPort = new URL(emulator.url).port;
      await page.getByLabel(/^Sign-in URL/).fill(`http://localhost:${emulatorPort}`);
      await page.getByRole('button', { name: 'Sign in with X' }).click();
      await page.waitForURL(
        (where) => where.hostname === 'localhost' && where.pathname === '/oauth/authorize',
      );
      await page.getByLabel('Signed in as').selectOption(ANA.userId);
      await Promise.all([
        page.waitForURL((where) => where.pathname === '/destinations/x'),
        page.getByRole('button', { name: 'Authorize app' }).click(),
      ]);
      expect(await page.locator('main').innerText()).toContain(
        'Connected: fresh tokens for ad account acme1',
      );
      expect(await readFile(join(dir, 'tailor.yml'), 'utf8')).toBe(ymlBefore);
      expect(await readFile(join(dir, '.env'), 'utf8')).not.toBe(envBefore);
      expect(guarded.output()).not.toContain(token);
      // Without the cookie the hop happens once, then the UI asks for its token as anywhere else.
      const hop = await fetch(`${guarded.url}/connect/callback?oauth_token=t&oauth_verifier=v`);
      expect(hop.status).toBe(200);
      expect(await hop.text()).toContain('/connect/callback?oauth_token=t&amp;oauth_verifier=v&amp;hop=1');
      const after = await fetch(`${guarded.url}/connect/callback?oauth_token=t&oauth_verifier=v&hop=1`);
      expect(after.status).toBe(401);
    } finally {
      await context.close();
      guarded.kill();
      await guarded.done;
    }
  }, 120_000);
});
