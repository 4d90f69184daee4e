import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/emulator/index.js';
import { createE2eProject, type E2eProject, startTestEmulator } from '../helpers/e2e.js';

/**
 * What a model's SQL can do, through the CLI on Postgres: run as one read-only statement (SQL that
 * closes Tailor's wrapping subquery to add a DROP fails as the model's error, and drops nothing,
 * under `plan` as under `sync`), end in a comment or a semicolon, and fail on a value holding
 * quotes without that value reaching stdout, `--json`, the log or the run log (`runs.error`).
 */

const QUOTED = 'ja"ne@example.com';

let emulator: RunningEmulator;
let project: E2eProject;

beforeAll(async () => {
  emulator = await startTestEmulator();
  project = await createE2eProject(emulator, {
    setup: [
      'create table {schema}.people (person_id int primary key, email text)',
      `insert into {schema}.people values (1, 'one@example.org'), (2, 'two@example.org')`,
      'create table {schema}.keep (id int)',
      'insert into {schema}.keep values (1)',
      'create table {schema}.quoted (person_id text, email text)',
      `insert into {schema}.quoted values ('${QUOTED}', '${QUOTED}')`,
    ],
    models: {
      evil: {
        sql: "select person_id, email from {schema}.people) as m; drop table {schema}.keep; select * from (select 1 as person_id, 'x@example.org' as email",
        yml: 'name: evil\nprimary_key: person_id\n',
      },
      leaky: {
        sql: 'select cast(person_id as integer) as person_id, email from {schema}.quoted',
        yml: 'name: leaky\nprimary_key: person_id\n',
      },
      commented: {
        sql: 'select person_id, email from {schema}.people; -- everyone\n',
        yml: 'name: commented\nprimary_key: person_id\n',
      },
    },
    activations: ['evil', 'leaky', 'commented']
      .map(
        (model) => `  ${model}_x:
    model: ${model}
    destination: x
    audience: { name: '${model} {schema}' }
    mappings: { email: email }
    schedule: manual
`,
      )
      .join(''),
  });
});

afterAll(async () => {
  await project?.cleanup();
  await emulator?.close();
});

const keepRows = async () =>
  (await project.sql<{ n: number }>('select count(*)::int as n from {schema}.keep'))[0]!.n;

describe('model SQL through the CLI (Postgres)', () => {
  it('a model that closes the wrapping to add a DROP fails as the model’s error and drops nothing', async () => {
    for (const args of [
      ['plan', 'evil_x'],
      ['sync', 'evil_x'],
      ['plan', 'evil_x', '--json'],
    ]) {
      const result = await project.cli(args);
      // The model's error (ModelSqlError), reported on the activation: the project's to fix, exit 2.
      expect(result.code, `${args.join(' ')}: ${result.stdout}\n${result.stderr}`).toBe(2);
      expect(`${result.stdout}\n${result.stderr}`).toMatch(/model evil: cannot insert multiple commands/);
      expect(await keepRows()).toBe(1);
    }
  });

  it('a model ending in a semicolon and a comment syncs', async () => {
    const result = await project.cli(['sync', 'commented_x']);
    expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
  });

  it('a value holding a quote never reaches stdout, --json, the log or the run log', async () => {
    const before = project.outputs.length;
    for (const args of [
      ['plan', 'leaky_x'],
      ['plan', 'leaky_x', '--json'],
      ['sync', 'leaky_x'],
      ['sync', 'leaky_x', '--json'],
      ['sync', 'leaky_x', '--debug'],
    ]) {
      const result = await project.cli(args);
      expect(result.code, `${args.join(' ')}: ${result.stdout}\n${result.stderr}`).not.toBe(0);
      expect(`${result.stdout}\n${result.stderr}`).toMatch(/invalid input syntax for type integer/);
    }
    const shown = project.outputs.slice(before).join('\n');
    expect(shown).not.toMatch(/ne@example|ja\\?"ne|example\.com/);
    const runs = await project.sql<{ error: string | null }>(
      `select error from ${project.stateSchema}.runs where error is not null`,
    );
    expect(runs.length).toBeGreaterThan(0);
    for (const run of runs) expect(run.error).not.toMatch(/ne@example|ja"ne|example\.com/);
  });
});
