import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEMO_ACCOUNT_ID,
  DEMO_CREDENTIALS,
  type RunningEmulator,
  startEmulator,
} from '../../src/emulator/index.js';
import { runCli } from '../helpers/cli.js';

/** `tailor status` as a subprocess against a Postgres server (own schemas) and the emulator. */

const POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';
const suffix = randomBytes(4).toString('hex');
const DATA = `status_e2e_data_${suffix}`;
const STATE = `status_e2e_state_${suffix}`;

let admin: pg.Client;
let emulator: RunningEmulator;
const dirs: string[] = [];

beforeAll(async () => {
  admin = new pg.Client(POSTGRES_URL);
  await admin.connect();
  await admin.query(`create schema ${DATA}`);
  await admin.query(`create table ${DATA}.customers (customer_id int primary key, email text)`);
  await admin.query(
    `insert into ${DATA}.customers select i, 'status' || i || '@example.net' from generate_series(1, 600) i`,
  );
  emulator = await startEmulator({ rateLimits: false });
});

afterAll(async () => {
  await emulator?.close();
  await admin?.query(`drop schema if exists ${DATA} cascade`);
  await admin?.query(`drop schema if exists ${STATE} cascade`);
  await admin?.end();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function projectDir(options: { apiUrl?: string; warehouseUrl?: string } = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tailor-status-e2e-'));
  dirs.push(dir);
  await mkdir(join(dir, 'models'));
  await writeFile(
    join(dir, 'tailor.yml'),
    `warehouse:
  type: postgres
  url: ${options.warehouseUrl ?? POSTGRES_URL}
state_schema: ${STATE}
destinations:
  x:
    type: x_ads
    account_id: ${DEMO_ACCOUNT_ID}
    api_url: ${options.apiUrl ?? emulator.url}
    credentials:
      consumer_key: ${DEMO_CREDENTIALS.consumerKey}
      consumer_secret: ${DEMO_CREDENTIALS.consumerSecret}
      access_token: ${DEMO_CREDENTIALS.accessToken}
      access_token_secret: ${DEMO_CREDENTIALS.accessTokenSecret}
    limits: { retry_deadline_ms: 500, request_timeout_ms: 1000 }
activations:
  synced_x:
    model: customers
    destination: x
    audience: { name: "status ${suffix}" }
    mappings: { email: email }
    schedule: "0 6 * * *"
    timezone: Europe/Paris
  never_x:
    model: customers
    destination: x
    audience: { name: "status never ${suffix}" }
    mappings: { email: email }
    schedule: manual
`,
  );
  await writeFile(join(dir, 'models', 'customers.sql'), `select customer_id, email from ${DATA}.customers`);
  await writeFile(join(dir, 'models', 'customers.yml'), 'name: customers\nprimary_key: customer_id\n');
  return dir;
}

interface StatusJson {
  ok: boolean;
  activations: {
    activation: string;
    enabled: boolean;
    schedule: string;
    next_run_at: string | null;
    next_run_reason: string;
    last_run: { status: string; added: number; removed: number; started_at: string } | null;
    paused: boolean;
    audience_id: string | null;
    audience: { size: number | null; targetable: boolean | null } | null;
    audience_error: string | null;
    match_rate: { processed_at: string | null } | null;
  }[];
}

describe('tailor status (CLI subprocess)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await projectDir();
    // One customer in three carries no email: 400 of the 600 rows are sent with a valid identifier.
    await admin.query(`update ${DATA}.customers set email = null where customer_id % 3 = 0`);
    const sync = await runCli(['sync', 'synced_x', '--project', dir, '--json']);
    expect(sync.code, sync.stderr).toBe(0);
    // X matches 300 of them to its users (the emulator's size job counts members who are active users).
    const active = Array.from({ length: 600 }, (_, i) => i + 1)
      .filter((i) => i % 3 !== 0)
      .slice(0, 300)
      .map((i) => createHash('sha256').update(`status${i}@example.net`).digest('hex'));
    emulator.admin.seed({ activeUsers: active });
    emulator.admin.processAudiences();
  });

  it("shows schedule, next run, last run and counts, pause state, and X's audience size", async () => {
    const json = await runCli(['status', '--project', dir, '--json']);
    expect(json.code, json.stderr).toBe(0);
    const body = JSON.parse(json.stdout) as StatusJson;
    expect(body.ok).toBe(true);
    const [synced, never] = body.activations;
    expect(synced).toMatchObject({
      activation: 'synced_x',
      enabled: true,
      schedule: '0 6 * * *',
      next_run_reason: 'scheduled',
      last_run: { status: 'succeeded', added: 400, removed: 0 },
      paused: false,
      audience: { size: 300 },
      audience_error: null,
      // Matched ÷ members sent with a valid identifier, and ÷ rows the model returned.
      match_rate: { audience_size: 300, sent: 400, rows: 600, of_sent: 0.75, of_rows: 0.5 },
    });
    expect(Date.parse(synced!.match_rate!.processed_at!)).not.toBeNaN();
    // 06:00 in Paris is 05:00 UTC in winter.
    expect(synced!.next_run_at).toMatch(/T05:00:00\.000Z$/);
    expect(never).toMatchObject({
      activation: 'never_x',
      next_run_at: null,
      next_run_reason: 'manual',
      last_run: null,
      audience_id: null,
      audience: null,
    });

    const table = await runCli(['status', '--project', dir]);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.split('\n');
    expect(lines[0]).toMatch(
      /^ACTIVATION\s+STATE\s+SCHEDULE\s+NEXT RUN\s+LAST RUN\s+LAST COUNTS\s+AUDIENCE ID\s+SIZE\s+TARGETABLE\s+MATCH SENT\/ROWS$/,
    );
    expect(lines.find((l) => l.startsWith('synced_x'))).toMatch(
      /active\s+0 6 \* \* \*.*succeeded .*\+400 -0.*\b300\b.*75\.0% \/ 50\.0%$/,
    );
    expect(table.stdout).toMatch(/synced_x: X matched 300 of 400 members sent \(600 rows\), processed /);
    expect(table.stdout).not.toContain('could not reach');
    expect(lines.find((l) => l.startsWith('never_x'))).toMatch(/active\s+manual\s+manual\s+never/);
  });

  it('still prints the rest when X cannot be reached, and fails only when the warehouse cannot be read', async () => {
    // The same state as above (synced_x ran); nothing listens on port 9 (discard) of loopback.
    const offline = await projectDir({ apiUrl: 'http://127.0.0.1:9' });
    const result = await runCli(['status', 'synced_x', '--project', offline, '--json']);
    expect(result.code, result.stderr).toBe(0);
    const activations = (JSON.parse(result.stdout) as StatusJson).activations;
    expect(activations.map((a) => a.activation)).toEqual(['synced_x']);
    const synced = activations[0]!;
    expect(synced.last_run?.status).toBe('succeeded');
    expect(synced.audience_id).not.toBeNull();
    expect(synced.audience).toBeNull();
    expect(synced.audience_error).toMatch(/^could not reach x: /);

    const noWarehouse = await projectDir({ warehouseUrl: 'postgres://postgres@127.0.0.1:9/test' });
    const failed = await runCli(['status', '--project', noWarehouse]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^error: /m);
    expect(failed.stdout).toBe('');
  });

  it("records each successful run's match rate in the run log, as X reported it then (history)", async () => {
    // The first run ended before X sized the audience; a run now (nothing changed) records 300 of 400.
    const again = await runCli(['sync', 'synced_x', '--project', dir, '--json']);
    expect(again.code, again.stderr).toBe(0);
    const history = await runCli(['history', 'synced_x', '--project', dir, '--json']);
    expect(history.code, history.stderr).toBe(0);
    const runs = (
      JSON.parse(history.stdout) as {
        runs: { status: string; match_rate: Record<string, unknown> | null }[];
      }
    ).runs;
    expect(runs).toHaveLength(2);
    expect(runs[0]!.match_rate).toMatchObject({
      audience_size: 300,
      sent: 400,
      rows: 600,
      of_sent: 0.75,
      of_rows: 0.5,
    });
    expect(Date.parse(String(runs[0]!.match_rate!['processed_at']))).not.toBeNaN();
    expect(runs[1]!.match_rate).toMatchObject({ audience_size: null, sent: 400, of_sent: null });

    const table = await runCli(['history', 'synced_x', '--project', dir]);
    expect(table.code, table.stderr).toBe(0);
    const [header, , newest, oldest] = table.stdout.split('\n');
    expect(header).toMatch(/match sent\/rows\s+error$/i);
    expect(newest).toMatch(/succeeded.*75\.0% \/ 50\.0%\s*$/);
    expect(oldest).toMatch(/succeeded.*\bpending\s*$/);
  });
});
