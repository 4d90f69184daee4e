import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/emulator/index.js';
import {
  createE2eProject,
  type E2eProject,
  type JsonReport,
  spawnCli,
  startTestEmulator,
} from '../helpers/e2e.js';
import { startWebhookReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';

/**
 * Alerts end to end: `tailor sync` as a subprocess against Postgres and the emulator, its alerts
 * received by a local HTTP server standing in for a Slack incoming webhook and a generic webhook.
 * One alert per state change, retried with backoff, and a webhook that never answers well never
 * fails the sync.
 */

// The Slack URL's path stands for the secret part of a real incoming-webhook URL.
const SLACK_PATH = '/services/T0SECRET/B0SECRET/s3cr3tT0k3n';
let emulator: RunningEmulator;
let receiver: WebhookReceiver;
let project: E2eProject;

beforeAll(async () => {
  emulator = await startTestEmulator();
  // Slack's first answer is a 500 (retried); the broken hook always fails.
  receiver = await startWebhookReceiver((path, n) =>
    path === '/broken' ? 500 : path === SLACK_PATH && n === 1 ? 500 : 200,
  );
  project = await createE2eProject(emulator, {
    setup: [
      'create table {schema}.customers (customer_id bigint primary key, email text)',
      `insert into {schema}.customers select i, 'alert' || i || '@example.com' from generate_series(1, 50) as i`,
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
    mappings: { email: email }
    schedule: manual
`,
  });
  const config = join(project.dir, 'tailor.yml');
  await writeFile(
    config,
    `alerts:
  team_slack:
    type: slack
    url: \${SLACK_WEBHOOK_URL}
    events: [run_failed, run_held, recovered]
    retry: { attempts: 3, initial_delay_ms: 5, max_delay_ms: 20 }
  ops_hook:
    type: webhook
    url: ${receiver.url}/hook
    retry: { attempts: 2, initial_delay_ms: 5 }
  broken:
    type: webhook
    url: ${receiver.url}/broken
    events: [run_failed]
    retry: { attempts: 2, initial_delay_ms: 5 }
${await readFile(config, 'utf8')}`,
  );
});

afterAll(async () => {
  await project?.cleanup();
  await receiver?.close();
  await emulator?.close();
});

const env = () => ({ SLACK_WEBHOOK_URL: `${receiver.url}${SLACK_PATH}` });

async function sync(): Promise<{ code: number | null; report: JsonReport; stderr: string }> {
  const result = await project.cli(['sync', 'members_x', '--json'], { env: env() });
  return { code: result.code, report: JSON.parse(result.stdout) as JsonReport, stderr: result.stderr };
}

interface SlackBody {
  text: string;
  blocks: { type: string; text?: { type: string; text: string }; elements?: unknown[] }[];
}
interface HookBody {
  source: string;
  event: string;
  activation: string;
  message: string;
  run_id: string;
}

describe('alerts', () => {
  it('sends one alert per state change, retries, and a failing webhook never fails a sync', async () => {
    const first = await sync();
    expect(first.code, first.stderr).toBe(0);
    expect(receiver.requests).toEqual([]); // a first success changes nothing worth telling

    await project.sql('alter table {schema}.customers rename to customers_gone');
    const failed = await sync();
    expect(failed.report.activations[0]!.status).toBe('failed');
    // Slack answered 500 then 200: two attempts, one alert. The CLI waits for deliveries before exiting.
    const slack = await receiver.waitFor(SLACK_PATH, 2);
    const hook = await receiver.waitFor('/hook', 1);
    expect(receiver.on('/broken')).toHaveLength(2); // two attempts, then it gives up
    const slackBody = slack[1]!.body as SlackBody;
    expect(slackBody.text).toMatch(/^Tailor: Run failed: members_x: run failed: /);
    expect(slackBody.blocks.map((b) => b.type)).toEqual(['header', 'section', 'context']);
    expect(slackBody.blocks[0]!.text).toEqual({ type: 'plain_text', text: 'Tailor: Run failed: members_x' });
    expect(slackBody.blocks[1]!.text!.type).toBe('mrkdwn');
    expect(slack[1]!.headers['content-type']).toBe('application/json');
    expect(hook[0]!.body).toMatchObject({
      source: 'tailor',
      event: 'run_failed',
      activation: 'members_x',
      run_id: failed.report.activations[0]!.run_id,
    });
    // The broken webhook is logged, by name, without its URL; the sync's outcome is the run's own.
    expect(failed.stderr).toMatch(/alert not delivered/);
    expect(failed.stderr).toContain('broken');

    // A second failure in a row is not a new state: no alert.
    const again = await sync();
    expect(again.report.activations[0]!.status).toBe('failed');
    expect(receiver.on(SLACK_PATH)).toHaveLength(2);
    expect(receiver.on('/hook')).toHaveLength(1);

    await project.sql('alter table {schema}.customers_gone rename to customers');
    const recovered = await sync();
    expect(recovered.code, recovered.stderr).toBe(0);
    const [, , recoveredSlack] = await receiver.waitFor(SLACK_PATH, 3);
    expect((recoveredSlack!.body as SlackBody).text).toMatch(/Recovered: members_x/);
    const hooks = await receiver.waitFor('/hook', 2);
    expect((hooks[1]!.body as HookBody).event).toBe('recovered');

    // Every email turns NULL: the run is held (it would empty the audience), and that is told once.
    await project.sql('update {schema}.customers set email = null');
    const held = await sync();
    expect(held.report.activations[0]!.status).toBe('held');
    const heldSlack = await receiver.waitFor(SLACK_PATH, 4);
    expect((heldSlack[3]!.body as SlackBody).text).toMatch(/Run held: members_x: run held by a safety rule/);
    expect(((await receiver.waitFor('/hook', 3))[2]!.body as HookBody).event).toBe('run_held');
    expect(receiver.on('/broken')).toHaveLength(2); // it wants run_failed only

    // --debug logs every delivery step; the URL still never shows.
    await project.sql(`update {schema}.customers set email = 'alert' || customer_id || '@example.com'`);
    const debug = await project.cli(['sync', 'members_x', '--debug'], { env: env() });
    expect(debug.code, debug.stderr).toBe(0);
    expect(debug.stderr).toContain('alert sent');
    await receiver.waitFor(SLACK_PATH, 5);
    // The webhook URL is a secret: never in any output.
    for (const output of project.outputs) expect(output).not.toContain('s3cr3tT0k3n');
  });

  it('tailor schedule sends the failure once, then the pause, from the daemon', async () => {
    const scheduled = await createE2eProject(emulator, {
      setup: ['create table {schema}.customers (customer_id bigint primary key, email text)'],
      models: {
        broken: {
          sql: 'select customer_id, email from {schema}.no_such_table',
          yml: 'name: broken\ndescription: A model whose table is gone\nprimary_key: customer_id\n',
        },
      },
      activations: `  broken_x:
    model: broken
    destination: x
    mappings: { email: email }
    schedule: '* * * * * *'
`,
    });
    try {
      const config = join(scheduled.dir, 'tailor.yml');
      await writeFile(
        config,
        `alerts:
  ops_hook:
    type: webhook
    url: ${receiver.url}/daemon
    events: [run_failed, activation_paused]
    retry: { attempts: 2, initial_delay_ms: 5 }
${await readFile(config, 'utf8')}`,
      );
      // Every second, no backoff, paused after 3 failures in a row.
      const daemon = spawnCli(
        ['schedule', '--port', '0', '--max-failures', '3', '--backoff', '0', '--project', scheduled.dir],
        scheduled.dir,
      );
      try {
        const [failed, paused] = await receiver.waitFor('/daemon', 2, 30_000);
        expect((failed!.body as HookBody).event).toBe('run_failed');
        expect(paused!.body).toMatchObject({ event: 'activation_paused', activation: 'broken_x' });
        expect((paused!.body as HookBody).message).toMatch(/^paused after repeated failed runs/);
        // Three failed runs, two alerts: the second and third failures were no new state.
        const runs = await scheduled.sql<{ n: string }>(
          `select count(*) as n from "${scheduled.stateSchema}".runs where status = 'failed'`,
        );
        expect(Number(runs[0]!.n)).toBe(3);
      } finally {
        daemon.child.kill('SIGTERM');
        expect((await daemon.done).code).toBe(0);
      }
      expect(receiver.on('/daemon')).toHaveLength(2);
    } finally {
      await scheduled.cleanup();
    }
  });
});
