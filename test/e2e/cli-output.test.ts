import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/emulator/index.js';
import { runCli } from '../helpers/cli.js';
import { createE2eProject, type E2eProject, startTestEmulator } from '../helpers/e2e.js';

/** Output for people: progress, summaries, tables and log lines, as a pipe (not a terminal) sees them. */

let emulator: RunningEmulator;
let project: E2eProject;

beforeAll(async () => {
  emulator = await startTestEmulator();
  project = await createE2eProject(emulator, {
    setup: [
      'create table {schema}.customers (customer_id int primary key, email text)',
      `insert into {schema}.customers select i, 'member' || i || '@example.com' from generate_series(1, 1200) i`,
    ],
    models: {
      members: {
        sql: 'select customer_id, email from {schema}.customers',
        yml: 'name: members\ndescription: Members\nprimary_key: customer_id\n',
      },
    },
    activations: `  members_x:
    model: members
    destination: x
    schedule: manual
`,
  });
});

afterAll(async () => {
  await project?.cleanup();
  await emulator?.close();
});

/** Lines that are raw pino JSON. */
const jsonLines = (text: string) => text.split('\n').filter((line) => line.startsWith('{'));

describe('output for people (CLI subprocess, not a terminal)', () => {
  it('syncs with progress that only grows, an outcome, and an audience column that says it is an id', async () => {
    const result = await project.cli(['sync', 'members_x']);
    expect(result.code, result.stderr).toBe(0);
    const progress = result.stderr.split('\n').filter((line) => line.startsWith('members_x: '));
    expect(progress[0]).toBe('members_x: diffed, 1,200 members to send');
    expect(progress[progress.length - 1]).toBe('members_x: done (1,200/1,200)');
    for (const label of ['sent', 'committed']) {
      const numbers = progress
        .map((line) => new RegExp(`${label} ([\\d,]+)`).exec(line)?.[1])
        .filter((n): n is string => n !== undefined)
        .map((n) => Number(n.replaceAll(',', '')));
      expect(numbers, result.stderr).toEqual([...numbers].sort((a, b) => a - b));
    }
    const header = result.stdout.split('\n')[0]!;
    expect(header).toMatch(/\baudience id\b/);
    expect(result.stdout).toMatch(/^members_x\s+succeeded\s+1,200\s+1,200\s/m);
    expect(jsonLines(result.stderr)).toEqual([]);
  });

  it('prints counts and times the same way in history and status', async () => {
    const history = await project.cli(['history', 'members_x']);
    const status = await project.cli(['status', 'members_x']);
    expect(history.code, history.stderr).toBe(0);
    expect(status.code, status.stderr).toBe(0);
    const instant = /\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ/;
    expect(history.stdout).toMatch(instant);
    expect(status.stdout).toMatch(instant);
    expect(history.stdout).toMatch(/\bsucceeded\s+[\d.]+s\s+1,200\s+1,200\s/);
    expect(status.stdout).toMatch(/\+1,200 -0 /);
  });

  it('finds the project from a sub-directory, as git does', async () => {
    const result = await runCli(['history', 'members_x'], { cwd: join(project.dir, 'models') });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('members_x');
    const elsewhere = await runCli(['status'], { cwd: '/' });
    expect(elsewhere.code).toBe(2);
    expect(elsewhere.stderr).toContain('tailor.yml: file not found in / or any directory above it');
    expect(elsewhere.stderr).toMatch(/hint: .*--project DIR/);
    // init makes a new project where it is run, never in the one found above.
    const init = await runCli(['init', 'nested'], { cwd: join(project.dir, 'models') });
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toContain(join(project.dir, 'models', 'nested'));
  });

  it('says a held plan would be held, not done; a held sync logs a line for people, JSON only with --json', async () => {
    await project.sql('delete from {schema}.customers where customer_id > 100');
    const plan = await project.cli(['plan', 'members_x']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toMatch(/^members_x\s+held\s/m);
    const progress = plan.stderr.split('\n').filter((line) => line.startsWith('members_x: '));
    expect(progress[progress.length - 1]).toMatch(/^members_x: would be held \(/);
    expect(plan.stderr).not.toMatch(/\bdone\b/);

    const sync = await project.cli(['sync', 'members_x']);
    expect(sync.code).toBe(1);
    expect(sync.stderr).toMatch(/WARN.*run held by a safety rule/);
    expect(sync.stderr).not.toMatch(/\bdone\b/);
    expect(jsonLines(sync.stderr)).toEqual([]);

    const json = await project.cli(['sync', 'members_x', '--json']);
    expect(json.code).toBe(1);
    expect(jsonLines(json.stderr).map((line) => JSON.parse(line) as { msg: string })).toContainEqual(
      expect.objectContaining({ msg: 'run held by a safety rule' }),
    );
  });
});
