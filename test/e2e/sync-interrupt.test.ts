import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { XIdentifierType } from '../../src/destinations/x-ads/identifier-types.js';
import type { RunningEmulator } from '../../src/emulator/index.js';
import {
  createE2eProject,
  type E2eProject,
  type JsonReport,
  normalizeHeld,
  spawnCli,
  startTestEmulator,
} from '../helpers/e2e.js';

/**
 * Ctrl-C or SIGTERM during `tailor sync` ends the run as `interrupted` (exit 130), not `running`
 * forever; a run a SIGKILL left `running` is closed as `abandoned` by the next run of the activation;
 * and the next clean run leaves the audience equal to the segment.
 */

const MAPPINGS: Record<string, XIdentifierType> = { email: 'email' };
const MEMBERS = 600;

let emulator: RunningEmulator;
let project: E2eProject;

interface HistoryRun {
  id: string;
  status: string;
  finished_at: string | null;
  error: string | null;
}

beforeAll(async () => {
  emulator = await startTestEmulator();
  project = await createE2eProject(emulator, {
    setup: [
      'create table {schema}.people (person_id int primary key, email text)',
      `insert into {schema}.people select i, 'person' || i || '@example.com' from generate_series(1, ${MEMBERS}) i`,
    ],
    models: {
      people: {
        sql: 'select person_id, email from {schema}.people',
        yml: 'name: people\ndescription: Everyone\nprimary_key: person_id\n',
      },
    },
    activations: `  people_x:
    model: people
    destination: x
    audience: { name: 'People {schema}' }
    mappings: { email: email }
    schedule: manual
`,
    // About 120 users a request, so that a run takes several requests.
    limits: { max_request_bytes: 10_000, retry_deadline_ms: 60_000 },
  });
});

afterAll(async () => {
  emulator?.admin.clearFaults();
  await project?.cleanup();
  await emulator?.close();
});

/** Starts `tailor sync people_x` and resolves once X has answered its first users request. */
async function syncUntilFirstAnswer() {
  let off = () => {};
  const answered = new Promise<void>((resolve) => {
    off = emulator.admin.onUsersAnswered((answer) => {
      // Delivered: an answer this run read. A request of the run before (SIGTERMed while the emulator
      // held it) is still applied after that process is gone, and must not stand for this run's.
      if (answer.status === 200 && answer.applied && answer.delivered) resolve();
    });
  });
  const run = spawnCli(['sync', 'people_x', '--project', project.dir], project.dir);
  const ended = run.done.then((result) => {
    throw new Error(`sync ended before X answered (exit ${result.code}):\n${result.stderr}`);
  });
  try {
    await Promise.race([answered, ended]);
  } finally {
    off();
  }
  return run;
}

async function history(): Promise<HistoryRun[]> {
  const { body } = await project.json<{ runs: HistoryRun[] }>(['history', 'people_x']);
  return body.runs;
}

describe('tailor sync stopped by a signal (CLI, Postgres, emulator)', () => {
  it('SIGTERM mid-delivery: exit 130, the run recorded as interrupted', async () => {
    // Every users request held a little, so the run is still delivering when the signal comes.
    emulator.admin.injectFaults([{ kind: 'latency', latencyMs: 300, times: 1000 }]);
    const run = await syncUntilFirstAnswer();
    run.child.kill('SIGTERM');
    const result = await run.done;
    project.outputs.push(result.stdout, result.stderr);
    emulator.admin.clearFaults();
    expect(result.signal).toBeNull();
    expect(result.code, result.stderr).toBe(130);
    expect(result.stderr).toContain('SIGTERM: stopping');
    expect(result.stdout).toMatch(/people_x\s+interrupted/);
    const [last] = await history();
    expect(last).toMatchObject({ status: 'interrupted', finished_at: expect.any(String) });
  });

  it('a SIGKILLed run is closed as abandoned by the next run, which restores the membership', async () => {
    await project.sql(
      "update {schema}.people set email = 'moved' || person_id || '@example.org' where person_id <= 200",
    );
    emulator.admin.injectFaults([{ kind: 'latency', latencyMs: 300, times: 1000 }]);
    const run = await syncUntilFirstAnswer();
    run.child.kill('SIGKILL');
    const killed = await run.done;
    project.outputs.push(killed.stdout, killed.stderr);
    emulator.admin.clearFaults();
    expect(killed.signal).toBe('SIGKILL');
    const killedRun = (await history())[0]!;
    expect(killedRun.status).toBe('running');

    const { result, body } = await project.json<JsonReport>(['sync', 'people_x']);
    expect(result.code, result.stderr).toBe(0);
    const report = body.activations[0]!;
    expect(report.status).toBe('succeeded');
    const runs = await history();
    expect(runs.find((r) => r.id === killedRun.id)).toMatchObject({
      status: 'abandoned',
      finished_at: expect.any(String),
    });
    expect(runs.some((r) => r.status === 'running')).toBe(false);
    expect(normalizeHeld(project.held(report.audience_id!))).toEqual(
      await project.expected('people', MAPPINGS),
    );
  });

  it('status and history show the new statuses', async () => {
    const status = await project.cli(['history', 'people_x']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/abandoned/);
    expect(status.stdout).toMatch(/interrupted/);
  });

  it('never prints a raw identifier or a secret', async () => {
    const everything = [...project.outputs, await project.dumpState()].join('\n');
    expect(everything).not.toMatch(/person\d+@example\.com|moved\d+@/);
    expect(everything).not.toContain('demo-consumer-secret');
  });
});
