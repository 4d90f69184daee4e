import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/emulator/index.js';
import { type HeadlessBrowser, launchBrowser } from '../helpers/browser.js';
import {
  createE2eProject,
  type E2eProject,
  normalizeHeld,
  spawnCli,
  startTestEmulator,
  waitFor,
} from '../helpers/e2e.js';

/**
 * The web UI end to end: `tailor ui` as users start it (a subprocess), real headless Chromium,
 * Postgres and the X emulator over HTTP. One click activates a model; runs, pause/resume and the
 * guards against forged changes are driven through the pages as a person would.
 */

let emulator: RunningEmulator;
let project: E2eProject;
let ui: ReturnType<typeof spawnCli>;
let url: string;
let browser: HeadlessBrowser;
let stdout = '';
let failed = false;
/** Every page's HTML, scanned at the end for raw identifiers. */
const pages: string[] = [];

const MAPPINGS = { email: 'email', phone: 'phone_number' } as const;

beforeAll(async () => {
  emulator = await startTestEmulator();
  project = await createE2eProject(emulator, {
    setup: [
      'create table {schema}.customers (customer_id int primary key, email text, phone text)',
      // 60 customers; every 10th has an email that cannot be normalized (invalid, never sent).
      `insert into {schema}.customers select i,
         case when i % 10 = 0 then 'not an email ' || i else 'shopper' || i || '@example.com' end,
         case when i % 4 = 0 then '+1 415 555 ' || lpad(i::text, 4, '0') end
       from generate_series(1, 60) i`,
    ],
    models: {
      shoppers: {
        sql: 'select customer_id, email, phone from {schema}.customers',
        yml: 'name: shoppers\ndescription: Everyone who shopped\nprimary_key: customer_id\n',
      },
      few: {
        sql: 'select customer_id, email from {schema}.customers where customer_id <= 5',
        yml: 'name: few\ndescription: The first five\nprimary_key: customer_id\n',
      },
    },
    activations: `  # Hand-written; the UI must keep this comment.
  few_x:
    model: few
    destination: x
    audience: { name: 'Few {schema}' } # trailing comment
    schedule: manual
`,
  });
  ui = spawnCli(['ui', '--port', '0', '--project', project.dir], project.dir);
  ui.child.stdout.on('data', (chunk: Buffer | string) => (stdout += String(chunk)));
  await waitFor(() => /Tailor UI: http:\/\/\S+/.test(stdout), 'tailor ui to listen', 60_000);
  url = /Tailor UI: (http:\/\/\S+)/.exec(stdout)![1]!;
  browser = await launchBrowser();
});

afterEach(({ task }) => {
  if (task.result?.state === 'fail') failed = true;
});

afterAll(async () => {
  await browser?.close({ failed, name: 'ui-browser' });
  if (ui && ui.child.exitCode === null) {
    ui.child.kill('SIGTERM');
    await ui.done;
  }
  await project?.cleanup();
  await emulator?.close();
});

const config = () => readFile(join(project.dir, 'tailor.yml'), 'utf8');

/** Waits for a job page to show its result: the page reloads itself when the job's SSE stream says done. */
async function finishedJob(): Promise<Record<string, string>> {
  const page = browser.page;
  await page.waitForSelector('section.job[data-state="finished"]', { timeout: 60_000 });
  const numbers = await page.$$eval('section.job [data-count], section.job [data-field="status"]', (els) =>
    Object.fromEntries(els.map((el) => [el.getAttribute('data-count') ?? 'status', el.textContent!.trim()])),
  );
  pages.push(await page.content());
  return numbers;
}

describe('tailor ui (Chromium, Postgres, emulator)', () => {
  it('lists activations and the models not yet activated', async () => {
    const page = browser.page;
    await page.goto(url);
    pages.push(await page.content());
    expect(await page.locator('tr[data-activation="few_x"]').count()).toBe(1);
    expect(await page.locator('li[data-model="shoppers"]').count()).toBe(1);
    expect(await page.locator('li[data-model="few"]').count()).toBe(0);
  });

  it('shows what Activate will do, then activates the model with one click and shows the first run', async () => {
    const page = browser.page;
    await page.getByRole('link', { name: 'Activate shoppers…' }).click();
    await page.waitForSelector('dd[data-field="audience-name"]');
    pages.push(await page.content());
    expect(await page.textContent('dd[data-field="audience-name"]')).toBe('Tailor: shoppers');
    // The mapping from the model's actual columns, and the plan: 60 rows, 60 members to add, 6 invalid emails.
    const mapping = await page.$$eval('table.compact tbody tr', (rows) =>
      rows.map((row) => [...row.querySelectorAll('td')].map((td) => td.textContent!.trim())),
    );
    expect(mapping).toEqual(
      expect.arrayContaining([
        ['email', 'email'],
        ['phone', 'phone_number'],
      ]),
    );
    expect(await page.textContent('.plan dd[data-count="rows"]')).toBe('60');
    // Three of the six rows with an invalid email still have a valid phone: 57 members.
    expect(await page.textContent('.plan dd[data-count="added"]')).toBe('57');
    expect(await page.textContent('.plan dd[data-count="invalid"]')).toBe('6');
    expect(await page.textContent('.plan')).toContain('invalid_email');
    const before = await config();
    expect(before).not.toContain('shoppers_x');

    await page.getByRole('button', { name: 'Activate shoppers' }).click();
    const first = await finishedJob();
    expect(first).toMatchObject({ status: 'succeeded', rows: '60', added: '57', removed: '0', invalid: '6' });

    // Written into tailor.yml exactly as `tailor activate` writes it, comments kept.
    const after = await config();
    expect(after.startsWith(before.trimEnd())).toBe(true);
    expect(after).toContain('# Hand-written; the UI must keep this comment.');
    expect(after).toContain('# trailing comment');
    expect(after).toMatch(
      /shoppers_x:\n\s+model: shoppers\n\s+destination: x\n\s+audience: \{ name: "?Tailor: shoppers"?/,
    );
    // The audience at X holds exactly the segment's valid identifiers.
    const audienceId = (
      await project.sql<{ audience_id: string }>(
        `select audience_id from ${project.stateSchema}.bindings where activation_id = 'shoppers_x'`,
      )
    )[0]!.audience_id;
    expect(normalizeHeld(project.held(audienceId))).toEqual(await project.expected('shoppers', MAPPINGS));
  });

  it('runs again after a data change and shows the delta, runs and rejections', async () => {
    await project.sql(`delete from {schema}.customers where customer_id in (1, 2, 3)`);
    await project.sql(
      `update {schema}.customers set email = 'moved' || customer_id || '@example.org' where customer_id in (11, 12)`,
    );
    await project.sql(
      `insert into {schema}.customers values (101, 'new101@example.com', null), (102, 'new102@example.com', null)`,
    );
    const page = browser.page;
    await page.goto(`${url}/activations/shoppers_x`);
    await page.getByRole('button', { name: 'Run now' }).click();
    const second = await finishedJob();
    expect(second).toMatchObject({ status: 'succeeded', rows: '59', added: '2', removed: '3', changed: '2' });

    await page.goto(`${url}/activations/shoppers_x`);
    pages.push(await page.content());
    expect(await page.locator('table.runs tbody tr').count()).toBe(2);
    const after = await project.sql<{ audience_id: string }>(
      `select audience_id from ${project.stateSchema}.bindings where activation_id = 'shoppers_x'`,
    );
    expect(normalizeHeld(project.held(after[0]!.audience_id))).toEqual(
      await project.expected('shoppers', MAPPINGS),
    );
    // The chart is drawn by the bundled uPlot (nothing from the internet).
    await page.waitForSelector('#runs-chart .uplot canvas');
    // Rejections: by reason, with member keys (never values).
    const rejections = await page.textContent('#rejections + p + table');
    expect(rejections).toContain('invalid_email');
    const keys = await page.$$eval('td.mono', (tds) => tds.map((td) => td.textContent!.trim()));
    // State keeps a member's key as the SHA-256 of the primary key as text (docs/state.md).
    const digest = (key: string) => createHash('sha256').update(key).digest('hex');
    expect(keys).toEqual(expect.arrayContaining(['10', '20', '30'].map(digest)));
  });

  it('runs a full resync only once it is confirmed', async () => {
    const page = browser.page;
    await page.goto(`${url}/activations/shoppers_x`);
    await page.getByRole('link', { name: 'Full resync…' }).click();
    await page.waitForSelector('h1:has-text("Full resync of shoppers_x")');
    const confirmUrl = page.url();
    // The box is required: the browser does not submit without it.
    await page.getByRole('button', { name: 'Run the full resync' }).click();
    expect(page.url()).toBe(confirmUrl);
    expect(await page.locator('section.job').count()).toBe(0);
    await page.getByLabel('I understand: re-send the whole segment now').check();
    await page.getByRole('button', { name: 'Run the full resync' }).click();
    const resync = await finishedJob();
    expect(resync).toMatchObject({ status: 'succeeded', rows: '59', removed: '0' });
    const audienceId = (
      await project.sql<{ audience_id: string }>(
        `select audience_id from ${project.stateSchema}.bindings where activation_id = 'shoppers_x'`,
      )
    )[0]!.audience_id;
    expect(normalizeHeld(project.held(audienceId))).toEqual(await project.expected('shoppers', MAPPINGS));
  });

  it('pauses and resumes through the enabled flag in tailor.yml', async () => {
    const page = browser.page;
    await page.goto(`${url}/activations/shoppers_x`);
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.waitForSelector('button:has-text("Resume")');
    expect(await page.textContent('dd[data-field="state"]')).toContain('paused');
    expect(await config()).toMatch(/shoppers_x:[\s\S]*enabled: false/);
    await page.goto(url);
    expect(await page.textContent('tr[data-activation="shoppers_x"]')).toContain('paused');

    await page.goto(`${url}/activations/shoppers_x`);
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.waitForSelector('button:has-text("Pause")');
    expect(await config()).toMatch(/shoppers_x:[\s\S]*enabled: true/);
    expect(await config()).toContain('# Hand-written; the UI must keep this comment.');
  });

  it('refuses a forged POST from another site, a POST without the page token, and a foreign Host', async () => {
    const before = await config();
    // A page on another origin that submits a form to the UI, as an attacker's site would.
    const target = `${url}/activations/shoppers_x/pause`;
    const evil: Server = createServer((_request, response) => {
      response
        .writeHead(200, { 'content-type': 'text/html' })
        .end(
          `<form id="f" method="post" action="${target}"><input name="_csrf" value="guess"></form>` +
            `<script>document.getElementById('f').submit()</script>`,
        );
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    try {
      const page = browser.page;
      const refused = page.waitForResponse((response) => response.url() === target);
      await page.goto(`http://127.0.0.1:${(evil.address() as AddressInfo).port}/`);
      expect((await refused).status()).toBe(403);
    } finally {
      await new Promise((resolve) => evil.close(resolve));
    }
    // Same origin but no CSRF token (a script that can send a POST but cannot read the page).
    const noToken = await fetch(target, {
      method: 'POST',
      headers: { origin: url, 'content-type': 'application/x-www-form-urlencoded' },
      body: '',
      redirect: 'manual',
    });
    expect(noToken.status).toBe(403);
    // DNS rebinding: a name that resolves to loopback is still not this server's address.
    // (node:http: fetch does not let a caller set Host.)
    const rebound = await new Promise<number>((resolve, reject) => {
      const request = httpRequest(
        `${url}/`,
        { headers: { host: `attacker.example:${new URL(url).port}` } },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      );
      request.on('error', reject).end();
    });
    expect(rebound).toBe(421);
    expect(await config()).toBe(before);
  });

  it('never shows a raw identifier on any page', () => {
    const all = pages.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    expect(all).not.toMatch(/@example\.(com|org)/);
    expect(all).not.toContain('not an email');
    expect(all).not.toContain('415 555');
  });
});
