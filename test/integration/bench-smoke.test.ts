import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The benchmark script runs end to end on a tiny segment and writes a report with every section.
 * Only that: performance is measured by `npm run bench`, never asserted in tests. The PGlite case is
 * left out: creating a PGlite data directory alone takes most of the smoke test's budget.
 */

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dirs: string[] = [];

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

function runBench(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'bench', 'run.ts'), ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TZ: 'UTC' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 110_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe('npm run bench (smoke)', () => {
  it('runs every case on 2,000 rows and writes the results', { timeout: 120_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tailor-bench-smoke-'));
    dirs.push(dir);
    const out = join(dir, 'RESULTS.md');
    const database = `tailor_bench_smoke_${randomBytes(4).toString('hex')}`;
    const { code, stderr } = await runBench([
      '--rows',
      '2000',
      '--runs',
      '1',
      '--out',
      out,
      '--database',
      database,
      '--pg-url',
      'postgres://postgres@127.0.0.1:5432/test',
      '--skip-pglite',
    ]);
    expect(code, stderr.split('\n').slice(-30).join('\n')).toBe(0);
    expect(stderr).toMatch(/\[bench [\d:]+\] 2,000 rows · initial 1 · tailor /);

    const report = await readFile(out, 'utf8');
    for (const section of [
      '# Tailor benchmarks',
      '## Machine',
      '## Targets',
      '## PostgreSQL, 2,000 rows',
      '### Initial sync (every member added)',
      '### Incremental sync (1% added, 1% removed, 1% changed)',
      '## How it is measured',
      '## Every run',
    ]) {
      expect(report, section).toContain(section);
    }
    for (const system of ['Tailor (`tailor sync`)', 'Floor (plain SQL)', 'Full pull (baseline)']) {
      expect(report).toContain(`| ${system} | 1 |`);
    }
    // Every case counted what the edits did: nothing in the notes about wrong counts or membership.
    expect(report).not.toMatch(/expected \+|the audience holds|stopped early/);
    expect(report).toContain('delta: 60 members');
    expect(report).toContain('The PGlite case was skipped (--skip-pglite).');
  });
});
