import { spawn } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';

/**
 * `npm start` (scripts/demo.ts) on a copy of the example project: a fresh PGlite warehouse seeded with
 * the sample, the emulator in process, `tailor sync --all`. The sample is smaller than the demo's own
 * to keep the suite lean; everything else is what a new user runs.
 */

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

let dir: string;
let env: Record<string, string>;

function script(name: string, args: string[] = []): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts', name), ...args], {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface Report {
  activation: string;
  status: string;
  added: number;
  removed: number;
  changed: number;
  invalid: number;
}

const reports = (run: Run) => (JSON.parse(run.stdout) as { activations: Report[] }).activations;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tailor-demo-'));
  await cp(join(REPO_ROOT, 'tailor.yml'), join(dir, 'tailor.yml'));
  await cp(join(REPO_ROOT, 'models'), join(dir, 'models'), { recursive: true });
  env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    TZ: 'UTC',
    TAILOR_DEMO_DIR: dir,
    TAILOR_DEMO_CUSTOMERS: '3000',
    // The demo's emulator listens where tailor.yml's api_url points; a free port avoids other runs.
    X_API_URL: `http://127.0.0.1:${await freePort()}`,
  };
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('npm start: the embedded demo', () => {
  it('seeds, syncs every example activation, then finds nothing to send; churn shows adds, removes and changes', async () => {
    const first = await script('demo.ts');
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toMatch(/seeded the warehouse .* with 3000 customers/);
    expect(first.stdout).toMatch(/vip_customers_x\s+succeeded/);
    expect(first.stdout).toMatch(/customers_au_x\s+succeeded/);
    expect(first.stdout).toMatch(/lapsed_customers_x\s+succeeded/);
    // Not a terminal: plain progress lines on stderr, the summary on stdout.
    expect(first.stderr).toMatch(/^vip_customers_x: diffed, [\d,]+ members to send$/m);
    expect(first.stderr).toMatch(/^vip_customers_x: done \([\d,]+\/[\d,]+\)$/m);

    const second = await script('demo.ts', ['--json']);
    expect(second.code, second.stderr).toBe(0);
    for (const report of reports(second)) {
      expect(report).toMatchObject({ status: 'succeeded', added: 0, removed: 0, changed: 0 });
    }

    const churn = await script('demo-churn.ts');
    expect(churn.code, churn.stderr).toBe(0);
    expect(churn.stdout).toMatch(/^demo churn #1: /);

    const third = await script('demo.ts', ['--json']);
    expect(third.code, third.stderr).toBe(0);
    const totals = reports(third).reduce(
      (sum, r) => ({
        added: sum.added + r.added,
        removed: sum.removed + r.removed,
        changed: sum.changed + r.changed,
      }),
      { added: 0, removed: 0, changed: 0 },
    );
    expect(totals.added).toBeGreaterThan(0);
    expect(totals.removed).toBeGreaterThan(0);
    expect(totals.changed).toBeGreaterThan(0);
  }, 300_000);
});
