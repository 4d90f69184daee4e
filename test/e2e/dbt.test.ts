import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { type RunningEmulator, startEmulator } from '../../src/emulator/index.js';
import { appendToDbtFile, copyDbtProject, DBT_EXAMPLE, runDbt } from '../helpers/dbt.js';
import { runCli } from '../helpers/cli.js';
import { TEST_POSTGRES_URL, uniqueName } from '../helpers/warehouse.js';
import {
  createE2eProject,
  type E2eProject,
  type JsonReport,
  spawnCli,
  startTestEmulator,
  waitFor,
} from '../helpers/e2e.js';

/**
 * dbt models end to end: the fixture dbt project (test/fixtures/dbt) built by a real dbt-core +
 * dbt-postgres into the test's own schema, its manifest.json and run_results.json read by the CLI,
 * the audiences fed at the emulator over HTTP.
 */

// Each test runs dbt (a Python process of several seconds) more than once: generous limits, for a
// loaded machine.
let emulator: RunningEmulator;
const projects: E2eProject[] = [];

beforeAll(async () => {
  emulator = await startTestEmulator();
});

afterAll(async () => {
  for (const project of projects) await project.cleanup();
  await emulator?.close();
});

const ACTIVATIONS = `  high_value_x:
    model: high_value_customers
    destination: x
    mappings: { email: email, phone: phone_number }
  every_customer_x:
    model: every_customer
    destination: x
    mappings: { email: email }
  native_x:
    model: native_vips
    destination: x
    mappings: { email: email }
`;

/** An e2e project whose tailor.yml reads models from the dbt project copied into dbt/. */
async function dbtProject(
  activations = ACTIVATIONS,
  x: RunningEmulator = emulator,
): Promise<{ project: E2eProject; dbtDir: string }> {
  const project = await createE2eProject(x, {
    activations,
    models: {
      native_vips: {
        sql: 'select id, email from {schema}.native',
        yml: 'name: native_vips\ndescription: Native model\nprimary_key: id\n',
      },
    },
    setup: [
      'create table {schema}.native (id int, email text)',
      `insert into {schema}.native values (1, 'native@example.com')`,
    ],
  });
  projects.push(project);
  const config = join(project.dir, 'tailor.yml');
  await writeFile(config, `models_from: dbt\ndbt: { project_dir: dbt }\n${await readFile(config, 'utf8')}`);
  const dbtDir = await copyDbtProject(join(project.dir, 'dbt'));
  return { project, dbtDir };
}

type AfterDbtReport = JsonReport & { skipped: { activation: string; reason: string }[] };

describe('dbt models', () => {
  it('syncs the dbt models a dbt run rebuilt, queried as their relations, and says what it skipped', async () => {
    const { project, dbtDir } = await dbtProject();
    await runDbt(dbtDir, ['build'], project.schema);

    const check = await project.json<{ ok: boolean; models: string[] }>(['check']);
    expect(check.result.stderr).toBe('');
    expect(check.body.ok).toBe(true);
    expect(check.body.models.sort()).toEqual(['every_customer', 'high_value_customers', 'native_vips']);

    const first = await project.json<AfterDbtReport>(['sync', '--after-dbt']);
    expect(first.result.code).toBe(0);
    const byId = Object.fromEntries(first.body.activations.map((a) => [a.activation, a]));
    expect(Object.keys(byId).sort()).toEqual(['every_customer_x', 'high_value_x']);
    // The table model keeps customers worth at least $1,000 (ids 1, 3, 4); the view has all five.
    expect(byId.high_value_x).toMatchObject({ status: 'succeeded', rows: 3, added: 3 });
    expect(byId.every_customer_x).toMatchObject({ status: 'succeeded', rows: 5, added: 5 });
    expect(Object.keys(project.held(byId.high_value_x!.audience_id!))).toEqual(
      expect.arrayContaining(['email']),
    );
    expect(first.body.skipped).toEqual([
      { activation: 'native_x', reason: 'model native_vips is not a dbt model' },
    ]);
    // The audience's description comes from the dbt model's docs.
    const listed = await project.json<{
      destinations: { audiences: { id: string; description: string | null }[] }[];
    }>(['audiences']);
    const audience = listed.body.destinations[0]!.audiences.find(
      (a) => a.id === byId.high_value_x!.audience_id,
    );
    expect(audience?.description).toContain('Customers whose lifetime value is at least $1,000');

    // A run of one model: only its activation syncs; the other is skipped as not rebuilt.
    await runDbt(dbtDir, ['run', '--select', 'all_customers'], project.schema);
    const second = await project.cli(['sync', '--after-dbt']);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/every_customer_x\s+succeeded/);
    expect(second.stdout).toContain(
      'high_value_x: dbt model model.tailor_fixture.high_value_customers was not part of this dbt run',
    );

    // A failed model is skipped with dbt's status: the relation dbt left is not synced.
    await runDbt(
      dbtDir,
      ['run', '--select', 'high_value_customers', '--vars', '{min_value: "oops"}'],
      project.schema,
      {
        allowFailure: true,
      },
    );
    const third = await project.json<AfterDbtReport>(['sync', '--after-dbt']);
    expect(third.body.activations).toEqual([]);
    expect(third.body.skipped).toContainEqual({
      activation: 'high_value_x',
      reason: 'dbt reported error for model.tailor_fixture.high_value_customers',
    });
  }, 180_000);

  it('check reports an ephemeral marked model, a name in both places, a missing or unsupported manifest', async () => {
    const { project, dbtDir } = await dbtProject();
    const missing = await project.cli(['check', '--offline']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('dbt/target/manifest.json: dbt manifest not found');

    // Mark the ephemeral staging model, and name the view's Tailor model as the native one.
    const schemaYml = join(dbtDir, 'models', 'schema.yml');
    await writeFile(
      schemaYml,
      (await readFile(schemaYml, 'utf8')).replace('name: every_customer', 'name: native_vips'),
    );
    await appendToDbtFile(
      dbtDir,
      'models/schema.yml',
      '    config:\n      meta:\n        tailor: { primary_key: customer_id }\n',
    );
    await runDbt(dbtDir, ['parse'], project.schema);
    const bad = await project.cli(['check', '--offline']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(
      'dbt/target/manifest.json: nodes.model.tailor_fixture.stg_customers.config.materialized: dbt model stg_customers is ephemeral',
    );
    expect(bad.stderr).toContain(
      'dbt/target/manifest.json: nodes.model.tailor_fixture.all_customers: model "native_vips" is defined twice',
    );

    const manifestPath = join(dbtDir, 'target', 'manifest.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as {
      metadata: { dbt_schema_version: string };
    };
    manifest.metadata.dbt_schema_version = 'https://schemas.getdbt.com/dbt/manifest/v99.json';
    await writeFile(manifestPath, JSON.stringify(manifest));
    const future = await project.cli(['check', '--offline']);
    expect(future.code).toBe(2);
    expect(future.stderr).toMatch(
      /dbt\/target\/manifest.json: metadata.dbt_schema_version: manifest v99 \(dbt 1\.11\.\d+\) is not supported/,
    );
  }, 180_000);

  it('tailor schedule syncs `schedule: after dbt` activations when dbt writes new run results', async () => {
    const sizing = await startEmulator({ port: 0, rateLimits: false, switches: { minTargetableSize: 1 } });
    onTestFinished(() => sizing.close());
    // The dbt-fed activation runs after dbt; the others are manual, so nothing else runs them.
    const { project, dbtDir } = await dbtProject(
      ACTIVATIONS.replaceAll('destination: x\n', 'destination: x\n    schedule: manual\n').replace(
        'schedule: manual\n    mappings: { email: email, phone: phone_number }',
        'schedule: after dbt\n    mappings: { email: email }',
      ),
      // An emulator that reports the size of small audiences, so /metrics has a match rate to show.
      sizing,
    );
    await runDbt(dbtDir, ['build'], project.schema);
    const daemon = spawnCli(['schedule', '--port', '0', '--project', project.dir], project.dir);
    // The daemon's JSON log lines, as they arrive (spawnCli decodes stderr as UTF-8).
    let stderr = '';
    daemon.child.stderr.on('data', (chunk: string) => (stderr += chunk));
    const logs = () =>
      stderr
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map(
          (line) => JSON.parse(line) as { msg: string; activation?: string; run?: string[]; listen?: string },
        );
    const seen = (predicate: (line: { msg: string; activation?: string; run?: string[] }) => boolean) =>
      logs().filter(predicate).length;
    const succeeded = (line: { msg: string; activation?: string }) =>
      line.msg === 'run succeeded' && line.activation === 'high_value_x';
    const until = (check: () => boolean, what: string) =>
      waitFor(check, what, 50_000).catch((error: unknown) => {
        throw new Error(`${String(error)}\n${stderr.slice(-3000)}`);
      });
    try {
      // The dbt run that finished before the scheduler started is synced at start.
      await until(() => seen(succeeded) >= 1, 'the first run after dbt');
      sizing.admin.processAudiences(); // X sizes the audience: its 3 members all match
      const found = (line: { msg: string }) => line.msg.startsWith('dbt run found');
      const before = seen(found);
      await runDbt(dbtDir, ['run', '--select', 'high_value_customers'], project.schema);
      await until(() => seen(succeeded) >= 2, 'the run after the second dbt run');
      const listen = logs().find((line) => line.msg.startsWith('scheduler running'))!.listen!;
      const metrics = await (await fetch(`${listen}/metrics`)).text();
      expect(metrics).toContain('tailor_audience_match_rate{activation="high_value_x",of="sent"} 1');
      expect(metrics).toContain('tailor_audience_match_rate{activation="high_value_x",of="rows"} 1');
      expect(metrics).toContain('tailor_audience_size{activation="high_value_x"} 3');
      // A dbt run that rebuilt another model only: found, nothing to sync.
      await runDbt(dbtDir, ['run', '--select', 'all_customers'], project.schema);
      await until(() => seen(found) >= before + 2, 'the third dbt run to be seen');
      expect(logs().filter(found).at(-1)!.run).toEqual([]);
      expect(seen(succeeded)).toBe(2);
      // Only the `after dbt` activation ran; the manual ones never did.
      const runs = await project.sql<{ activation_id: string; n: string }>(
        `select activation_id, count(*) as n from "${project.stateSchema}".runs group by 1`,
      );
      expect(runs).toEqual([{ activation_id: 'high_value_x', n: '2' }]);
    } finally {
      daemon.child.kill('SIGTERM');
      const exit = await daemon.done;
      expect(exit.code, stderr.slice(-2000)).toBe(0);
    }
  }, 180_000);

  it('the example project (examples/dbt) builds with dbt and syncs its dbt model after dbt', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tailor-dbt-example-'));
    const schema = uniqueName('dbt_example');
    const env = { TAILOR_EXAMPLE_SCHEMA: schema, TAILOR_STATE_SCHEMA: `${schema}_state` };
    const admin = new pg.Client(TEST_POSTGRES_URL);
    await admin.connect();
    try {
      await cp(DBT_EXAMPLE, dir, { recursive: true });
      await runDbt(join(dir, 'analytics'), ['build'], schema, { env });
      const result = await runCli(['sync', '--after-dbt', '--json'], {
        cwd: dir,
        env: { ...env, DATABASE_URL: TEST_POSTGRES_URL },
      });
      expect(result.code, result.stderr).toBe(0);
      const body = JSON.parse(result.stdout) as AfterDbtReport;
      // Three customers have spent at least $1,000; every one has a valid email.
      expect(body.activations).toMatchObject([
        { activation: 'big_spenders_x', status: 'succeeded', added: 3 },
      ]);
      expect(body.skipped).toEqual([]);
    } finally {
      await admin.query(`drop schema if exists ${schema} cascade`);
      await admin.query(`drop schema if exists ${schema}_state cascade`);
      await admin.end();
      await rm(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
