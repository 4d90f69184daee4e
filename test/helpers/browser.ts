import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

/**
 * Debian's Chromium (installed by scripts/chromium.sh), driven by playwright-core through its executable
 * path: nothing is downloaded. The flags keep it from reaching for Google's hosts, which this closed
 * network refuses, and let it run as root with no sandbox in CI containers.
 */
export const CHROMIUM_PATH = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';

const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export interface HeadlessBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Saves a screenshot under test-artifacts/ (kept by CI) when `failed`, then closes everything. */
  close(options?: { failed?: boolean; name?: string }): Promise<void>;
}

export async function launchBrowser(): Promise<HeadlessBrowser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    // playwright gives each launch a fresh temporary profile of its own.
    args: FLAGS,
  });
  const context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
  const page = await context.newPage();
  return {
    browser,
    context,
    page,
    async close({ failed = false, name = 'page' } = {}) {
      try {
        if (failed) {
          const dir = join(process.cwd(), 'test-artifacts');
          await mkdir(dir, { recursive: true });
          const file = join(dir, `${name.replace(/[^a-z0-9_-]+/gi, '_')}-${Date.now()}.png`);
          await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
        }
      } finally {
        await browser.close().catch(() => undefined);
      }
    },
  };
}
