import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/emulator/index.js';
import {
  createE2eProject,
  type E2eProject,
  type JsonReport,
  normalizeHeld,
  startTestEmulator,
} from '../helpers/e2e.js';

/**
 * The safety rule counts identifiers, not rows: 2,000 members whose emails all turn NULL are 2,000
 * changed rows and no removed one, yet syncing them would empty the audience. `plan` predicts the
 * hold, `sync` holds it (X untouched), `--force` lets it through.
 */

let emulator: RunningEmulator;
let project: E2eProject;

beforeAll(async () => {
  emulator = await startTestEmulator();
  project = await createE2eProject(emulator, {
    setup: [
      'create table {schema}.customers (customer_id bigint primary key, email text)',
      `insert into {schema}.customers select i, 'member' || i || '@example.com' from generate_series(1, 2000) as i`,
    ],
    models: {
      members: {
        sql: 'select customer_id, email from {schema}.customers',
        yml: 'name: members\ndescription: Every member\nprimary_key: customer_id\n',
      },
    },
    activations: `  members_x:
    model: members
    destination: x
    audience: { name: 'Safety {schema}' }
    mappings: { email: email }
    schedule: manual
`,
  });
});

afterAll(async () => {
  await project?.cleanup();
  await emulator?.close();
});

async function run(command: 'plan' | 'sync', ...args: string[]) {
  const { result, body } = await project.json<JsonReport>([command, 'members_x', ...args]);
  if (!body.activations)
    throw new Error(`no report (exit ${result.code}): ${result.stdout}\n${result.stderr}`);
  return { result, report: body.activations[0]! };
}

describe('a run that would delete every identifier while every row stays', () => {
  let audienceId: string;

  it('syncs 2,000 members', async () => {
    const { result, report } = await run('sync');
    expect(result.code, result.stderr).toBe(0);
    expect(report).toMatchObject({ status: 'succeeded', added: 2000 });
    audienceId = report.audience_id!;
    expect(normalizeHeld(project.held(audienceId)).email).toHaveLength(2000);
  });

  it('lets runs under the share through, settled by bounds, by a sample of what X holds, or by the count', async () => {
    const emails = (upTo: number, value: string) =>
      project.sql(
        `update {schema}.customers set email = case when customer_id <= ${upTo} then ${value} else 'member' || customer_id || '@example.com' end`,
      );
    /** The safety rule's debug line: how it settled the run, with the held hashes it used. */
    const sync = async () => {
      const { result, report } = await run('sync', '--debug');
      const lines = result.stderr.split('\n').filter((l) => l.includes('"msg":"safety'));
      if (lines.length !== 1) throw new Error(`expected one safety line: ${result.stderr}`);
      const safety = JSON.parse(lines[0]!) as { msg: string; held: number; heldExact: boolean };
      return { report, safety };
    };
    const restore = async (changed: number) => {
      await emails(0, 'null');
      expect((await run('sync')).report).toMatchObject({ status: 'succeeded', changed });
    };
    // 20 of 2,000 emails invalid (1%): a sample of 8% of the members holds about 160 hashes, and the
    // 20 changed members hold 20 in state: settled before the pass.
    await emails(20, `'not an email'`);
    const early = await sync();
    expect(early.report).toMatchObject({ status: 'succeeded', changed: 20 });
    expect(early.safety).toMatchObject({ msg: 'safety rule settled before the pass', deletesAtMost: 20 });
    expect(early.safety.held).toBeGreaterThanOrEqual(40);
    expect(early.safety.held).toBeLessThan(2000);
    await restore(20);
    // 600 emails in capitals: 600 changed members holding 600 hashes, too many for the bounds, but the
    // pass finds that they delete nothing (the same normalized email), and the sample settles that.
    await emails(600, `upper('member' || customer_id || '@example.com')`);
    const sampled = await sync();
    // (Nothing to send: a change of case alone is no change to X, and the report counts none.)
    expect(sampled.report).toMatchObject({ status: 'succeeded', changed: 0, requests: 0 });
    expect(sampled.safety).toMatchObject({ msg: 'safety pass over the delta', heldExact: false, deletes: 0 });
    await restore(0);
    // 900 invalid (45%): too many for the sample to settle; the whole count lets it through.
    await emails(900, `'not an email'`);
    const counted = await sync();
    expect(counted.report).toMatchObject({ status: 'succeeded', changed: 900 });
    expect(counted.safety).toMatchObject({
      msg: 'safety pass over the delta',
      held: 2000,
      heldExact: true,
      deletes: 900,
    });
    await restore(900);
    expect(normalizeHeld(project.held(audienceId)).email).toHaveLength(2000);
  });

  it('is held by plan and by sync when every email turns NULL, and X is untouched', async () => {
    await project.sql('update {schema}.customers set email = null');
    const plan = await run('plan');
    expect(plan.result.code, plan.result.stderr).toBe(0);
    expect(plan.report.status).toBe('held');
    expect(plan.report.error).toMatch(/delete all 2000 identifiers X holds/);
    expect(plan.report).toMatchObject({ rows: 2000, removed: 0, changed: 2000 });

    const held = await run('sync');
    expect(held.result.code).toBe(1);
    expect(held.report.status).toBe('held');
    expect(held.report.error).toMatch(/delete all 2000 identifiers X holds/);
    expect(held.report.requests).toBe(0);
    expect(normalizeHeld(project.held(audienceId)).email).toHaveLength(2000);
  });

  it('is held when most emails turn invalid, over max_removal_share', async () => {
    await project.sql(
      `update {schema}.customers set email = case when customer_id <= 1400 then 'not an email' else 'member' || customer_id || '@example.com' end`,
    );
    const plan = await run('plan');
    expect(plan.report.status).toBe('held');
    expect(plan.report.error).toMatch(
      /delete up to 1400 of the 2000 identifiers X holds for the audience \(70%\)/,
    );
    const held = await run('sync');
    expect(held.report.status).toBe('held');
    expect(normalizeHeld(project.held(audienceId)).email).toHaveLength(2000);
  });

  it('lets --force empty the audience', async () => {
    await project.sql('update {schema}.customers set email = null');
    const forced = await run('sync', '--force');
    expect(forced.result.code, forced.result.stderr).toBe(0);
    expect(forced.report).toMatchObject({ status: 'succeeded', changed: 2000 });
    expect(normalizeHeld(project.held(audienceId))).toEqual({});
    // Nothing left to delete: the next plan holds nothing.
    expect((await run('plan')).report.status).toBe('succeeded');
  });
});
