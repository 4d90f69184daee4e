import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedEmulator } from '../../src/cli/embedded-emulator.js';
import { REPO_ROOT, runCli } from '../helpers/cli.js';
import { silentLogger } from '../helpers/warehouse.js';

/**
 * `api_url: embedded` (the example project's default): on a fresh copy of the example project, with
 * nothing started by hand, every command that talks to X runs the emulator in its own process, its
 * state in .tailor/emulator.json; a second process of the project uses the owner's emulator; a lock
 * left by a dead process is taken over.
 */

let dir: string;
const env = { TAILOR_DEMO_CUSTOMERS: '300' };

function npmStart(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'scripts', 'demo.ts')], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        TZ: 'UTC',
        TAILOR_DEMO_DIR: dir,
        ...env,
      },
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

/** A pid no process has: one that just exited. */
function deadPid(): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('exit', () => resolve(child.pid!));
  });
}

const cli = (args: string[]) => runCli([...args, '--project', dir], { cwd: dir, timeoutMs: 60_000 });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tailor-embedded-'));
  await cp(join(REPO_ROOT, 'tailor.yml'), join(dir, 'tailor.yml'));
  await cp(join(REPO_ROOT, 'models'), join(dir, 'models'), { recursive: true });
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('api_url: embedded', () => {
  it('the example project talks to X with nothing started by hand: audiences, check, status', async () => {
    expect(await readFile(join(dir, 'tailor.yml'), 'utf8')).toMatch(/api_url: \$\{X_API_URL:-embedded\}/);
    // On a fresh clone: the first command creates the embedded warehouse with the sample
    // (`sample: demo`), and check describes the models in it and reaches X.
    const fresh = await cli(['check']);
    expect(fresh.code, fresh.stdout + fresh.stderr).toBe(0);
    expect(fresh.stdout + fresh.stderr).toMatch(/created .*warehouse with the demo sample/);
    expect(fresh.stdout).toContain('ok: destination x (x_ads) reachable');
    const none = await cli(['audiences']);
    expect(none.code, none.stderr).toBe(0);
    expect(none.stdout).toContain('x (account 18ce54d4x5t): 0 audiences');

    // npm start syncs the sample; its audiences persist in .tailor/emulator.json.
    const demo = await npmStart();
    expect(demo.code, demo.stderr).toBe(0);
    expect(demo.stdout).toMatch(/vip_customers_x\s+succeeded/);

    const check = await cli(['check']);
    expect(check.code, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toContain('ok: destination x (x_ads) reachable');

    const audiences = await cli(['audiences', '--json']);
    expect(audiences.code, audiences.stderr).toBe(0);
    expect(JSON.stringify(JSON.parse(audiences.stdout))).toContain('VIP customers');

    const status = await cli(['status']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/vip_customers_x\s+active/);
    expect(existsSync(join(dir, '.tailor', 'emulator.lock')), 'lock left behind').toBe(false);
  }, 240_000);

  it('a second process of the project uses the owner’s emulator, and says so', async () => {
    const owner = await startEmbeddedEmulator(dir, silentLogger);
    try {
      expect(owner.sharedWith).toBeUndefined();
      const shared = await cli(['audiences']);
      expect(shared.code, shared.stderr).toBe(0);
      expect(shared.stderr).toContain(
        `X: using the embedded emulator that process ${process.pid} runs for this project (${owner.url})`,
      );
      expect(shared.stdout).toContain('VIP customers');
    } finally {
      await owner.close();
    }
    expect(existsSync(join(dir, '.tailor', 'emulator.lock'))).toBe(false);
  });

  it('takes over a lock left by a process that died', async () => {
    const lock = join(dir, '.tailor', 'emulator.lock');
    await writeFile(lock, JSON.stringify({ pid: await deadPid(), url: 'http://127.0.0.1:1' }));
    const result = await cli(['audiences']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).not.toContain('using the embedded emulator');
    expect(result.stdout).toContain('VIP customers');
    expect(existsSync(lock)).toBe(false);
  });
});
