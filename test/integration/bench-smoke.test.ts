import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import {
  applyEdits,
  createPeople,
  editCounts,
  PEOPLE_MAPPINGS,
  PEOPLE_MODEL_SQL,
} from '../../bench/people.js';
import { hashMember } from '../../src/destinations/x-ads/identifiers.js';

/**
 * The benchmark script runs end to end on a tiny segment and writes a report with every section.
 * Only that: performance is measured by `npm run bench`, never asserted in tests. The PGlite case is
 * left out: creating a PGlite data directory alone takes most of the smoke test's budget. The
 * BigQuery case runs at 2,000 rows on bqemulator (from .venv-bq, as the BigQuery contract test), with
 * `tailor sync` taking its token from the benchmark's fake metadata server.
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

const TEST_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';

describe('the benchmark segment', () => {
  it('edits forward by exactly 1% / 1% / 1%, and back to the very same table; every value is valid', async () => {
    const schema = `bench_people_${randomBytes(4).toString('hex')}`;
    const client = new pg.Client(TEST_POSTGRES_URL);
    await client.connect();
    try {
      await client.query(`create schema ${schema}`);
      await client.query(`set search_path to ${schema}`);
      const exec = (sql: string) => client.query(sql);
      const rows = 3000;
      await createPeople(exec, rows);
      const checksum = async () =>
        (
          await client.query<{ sum: string }>(
            `select md5(string_agg(p::text, '|' order by person_id)) as sum from people p`,
          )
        ).rows[0]!.sum;
      const before = await checksum();
      await client.query('create table base as table people');

      await applyEdits(exec, rows, 'forward');
      const { rows: diff } = await client.query<{ change: string; n: string }>(
        `select case when b.person_id is null then 'added' when p.person_id is null then 'removed' else 'changed' end as change,
                count(*) as n
           from people p full outer join base b on b.person_id = p.person_id
          where p.person_id is null or b.person_id is null or p::text <> b::text
          group by 1`,
      );
      const counts = Object.fromEntries(diff.map((d) => [d.change, Number(d.n)]));
      expect(counts).toEqual(editCounts(rows));

      await applyEdits(exec, rows, 'back');
      expect(await checksum()).toBe(before);

      // The report says every value is valid: each row hashes with no invalid identifier, and the
      // hashed identifiers are unique across members (no shared identifiers to muddy the counts).
      const { rows: members } = await client.query<Record<string, unknown>>(PEOPLE_MODEL_SQL);
      const seen = new Set<string>();
      for (const member of members) {
        const { hashes, invalid } = hashMember(member, { ...PEOPLE_MAPPINGS }, { defaultRegion: 'US' });
        expect(invalid).toEqual([]);
        expect(hashes.email).toHaveLength(1);
        for (const values of Object.values(hashes)) {
          for (const value of values ?? []) {
            expect(seen.has(value)).toBe(false);
            seen.add(value);
          }
        }
      }
    } finally {
      await client.query(`drop schema if exists ${schema} cascade`);
      await client.end();
    }
  });
});

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
      '--bigquery-rows',
      '2000',
    ]);
    expect(code, stderr.split('\n').slice(-30).join('\n')).toBe(0);
    expect(stderr).toMatch(/\[bench [\d:]+\] 2,000 rows · initial 1 · tailor /);
    expect(stderr).toMatch(/\[bench [\d:]+\] BigQuery 2,000 rows · incremental 1 · tailor /);

    const report = await readFile(out, 'utf8');
    for (const section of [
      '# Tailor benchmarks',
      '## Machine',
      '## Targets',
      '## PostgreSQL, 2,000 rows',
      '## BigQuery (local engine: bqemulator on DuckDB), 2,000 rows',
      '### Initial sync (every member added)',
      '### Incremental sync (1% added, 1% removed, 1% changed)',
      '## How it is measured',
      '## Every run',
    ]) {
      expect(report, section).toContain(section);
    }
    // The server settings the figures depend on, read from the server (a value and its unit each).
    expect(report).toMatch(
      /\| PostgreSQL settings \| [^|]*shared_buffers \d+[kMG]B[^|]*synchronous_commit \w+/,
    );
    for (const system of ['Tailor (`tailor sync`)', 'Floor (plain SQL)', 'Full pull (baseline)']) {
      expect(report).toContain(`| ${system} | 1 |`);
    }
    // Every case counted what the edits did: nothing in the notes about wrong counts or membership.
    expect(report).not.toMatch(/expected \+|the audience holds|stopped early/);
    // The commits' statements, from Tailor's `commit step` debug lines: a first load inserts new members
    // and their hash rows; BigQuery writes members with one MERGE.
    expect(report).toMatch(
      /tailor's commit statements, summed \(commits overlap\): new members \d[^·]*hash rows inserted \d/,
    );
    expect(report).toMatch(/tailor's commit statements, summed \(commits overlap\): [^·]*members written \d/);
    // Twice: PostgreSQL and BigQuery, the same edits.
    expect(report.match(/delta: 60 members/g)).toHaveLength(2);
    // The fake metadata server was asked for nothing but tokens.
    expect(report).not.toContain('fake metadata server answered 404');
    expect(report).toContain('The PGlite case was skipped (--skip-pglite).');
  });
});
