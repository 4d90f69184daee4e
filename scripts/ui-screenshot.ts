// Renders the README's screenshot of the web UI (docs/ui.png) from the real UI over the example
// project: a copy of tailor.yml and models/ in a temporary directory (plus one model left to
// activate), synced twice around the demo's churn, served by `tailor ui` and shot in headless
// Chromium (Debian's, through playwright-core; nothing downloaded). Run: node --import tsx scripts/ui-screenshot.ts
import { spawn } from 'node:child_process';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { runChurn } from '../src/demo/run-demo.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'bin', 'tailor.js');
const dir = await mkdtemp(join(tmpdir(), 'tailor-ui-shot-'));

function tailor(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args, '--project', dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`tailor ${args[0]} exited ${code}`)),
    );
  });
}

try {
  await cp(join(root, 'tailor.yml'), join(dir, 'tailor.yml'));
  await cp(join(root, 'models'), join(dir, 'models'), { recursive: true });
  await writeFile(
    join(dir, 'models', 'customers_gb.sql'),
    "-- Every customer living in the United Kingdom.\nselect customer_id, email, phone, x_handle\nfrom customers\nwhere country = 'GB'\n",
  );
  await writeFile(
    join(dir, 'models', 'customers_gb.yml'),
    'name: customers_gb\ndescription: Customers in the United Kingdom\nprimary_key: customer_id\n',
  );
  await tailor(['sync', '--all']);
  await runChurn({ projectDir: dir });
  await tailor(['sync', '--all']);

  const ui = spawn(process.execPath, [cli, 'ui', '--port', '0', '--project', dir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    ui.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const match = /Tailor UI: (http:\/\/\S+)/.exec(out);
      if (match) resolve(match[1]!);
    });
    ui.on('close', (code) => reject(new Error(`tailor ui exited ${code}`)));
  });
  const browser = await chromium.launch({
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  try {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
    await page.goto(url);
    await page.waitForSelector('table.activations');
    await page.screenshot({ path: join(root, 'docs', 'ui.png') });
    await page.goto(`${url}/activations/vip_customers_x`);
    await page.waitForSelector('#runs-chart .uplot canvas');
    await page.screenshot({ path: join(root, 'docs', 'ui-activation.png') });
  } finally {
    await browser.close();
    const exited = new Promise((resolve) => ui.once('close', resolve));
    ui.kill('SIGTERM');
    await exited;
  }
  console.error('wrote docs/ui.png and docs/ui-activation.png');
} finally {
  await rm(dir, { recursive: true, force: true });
}
