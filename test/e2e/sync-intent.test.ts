/**
 * The sync's delivery protocol when X's answer and Tailor's record of it come apart (CLI subprocess,
 * Postgres, emulator over HTTP). Every test ends on the membership invariant: after clean runs the
 * audience holds exactly the hashes of the segment's current valid rows. Nothing here waits a fixed
 * time: the kill happens inside the emulator's `onUsersAnswered` listener, and X's late apply when the
 * test calls `admin.applyHeld()`.
 *
 * Written before the fix ("intent before send": hashes recorded as pending before the request that adds
 * them, removed only once a Delete is acknowledged, Deletes of unknown-outcome hashes repeated for a
 * window). On the protocol that records only what X acknowledged and Tailor committed, three fail:
 * "members who leave…", "members removed by the killed run…" and "members who left…"; the others are
 * guards that pass before and must still pass after.
 *
 * SIGKILL right after X answered 200 (X applied the request; Tailor never recorded the answer):
 * - "members who leave…": proves Tailor must remember what it is about to send before it sends it.
 *   Members 11-30 are added by a request X applies and answers 200; `tailor sync` is SIGKILLed in that
 *   instant. Then 11-15 leave the segment and 16-20 change their email. Recording only what X
 *   acknowledged (and Tailor committed) leaves those hashes unknown to state, so no later run ever
 *   deletes them: the audience keeps people who left the segment and old addresses.
 * - "…unchanged segment": the same kill with the segment left alone; a clean run re-sends and the
 *   audience equals the segment. A guard that the fix does not over-delete.
 * - "members removed by the killed run…": the same kill after a Delete. Members 11-20 leave the segment;
 *   X applies and answers the Delete; `tailor sync` is SIGKILLed; then 11-20 come back. State, never told
 *   of the Delete, still says X holds them, so no later run sends them again. This one goes beyond
 *   pending adds: a hash whose Delete was sent but not acknowledged is neither surely held nor surely
 *   gone, so it must be re-sent (Update) if wanted, not trusted as held.
 *
 * A request that times out at Tailor and that X applies late (after a following run):
 * - "members who left…": proves a Delete of hashes whose Update had an unknown outcome must be repeated
 *   by later runs. Run 1's Update of members 11-30 is held by the emulator past Tailor's timeout; before
 *   X applies it, 11-15 leave the segment, 16-20 change their email and run 2 completes; then X applies
 *   run 1's Update. Clean runs must take those hashes back out; today no run knows they were ever sent.
 * - "…still wanted": the same late apply with the segment unchanged (run 2 re-sends); the audience must
 *   still equal the segment (the repeated Deletes must not remove members who are wanted).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { XIdentifierType } from '../../src/destinations/x-ads/identifier-types.js';
import type { RunningEmulator, UsersAnswer } from '../../src/emulator/index.js';
import {
  createE2eProject,
  type E2eOptions,
  type E2eProject,
  type JsonReport,
  normalizeHeld,
  spawnCli,
  startTestEmulator,
} from '../helpers/e2e.js';

const MAPPINGS: Record<string, XIdentifierType> = { email: 'email' };

let emulator: RunningEmulator;
const projects: E2eProject[] = [];

beforeAll(async () => {
  emulator = await startTestEmulator();
});

afterAll(async () => {
  emulator?.admin.clearFaults();
  emulator?.admin.discardHeld();
  for (const project of projects) await project.cleanup();
  await emulator?.close();
});

/** A project whose segment is people 1..10, already synced by one clean run. */
async function syncedProject(limits?: E2eOptions['limits']) {
  const project = await createE2eProject(emulator, {
    setup: [
      'create table {schema}.people (person_id int primary key, email text)',
      `insert into {schema}.people select i, 'person' || i || '@example.com' from generate_series(1, 10) i`,
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
    max_removal_share: 0.9
`,
    ...(limits ? { limits } : {}),
  });
  projects.push(project);

  const sync = async () => {
    const { result, body } = await project.json<JsonReport>(['sync', 'people_x']);
    if (!body.activations)
      throw new Error(`no report (exit ${result.code}): ${result.stdout}\n${result.stderr}`);
    return { result, report: body.activations[0]! };
  };
  const expected = () => project.expected('people', MAPPINGS);
  const first = await sync();
  expect(first.result.code, first.result.stderr).toBe(0);
  const audienceId = first.report.audience_id!;
  const held = () => normalizeHeld(project.held(audienceId));
  expect(held()).toEqual(await expected());

  /** Clean runs, each succeeding and each leaving the audience equal to the segment. */
  const cleanRuns = async (n: number) => {
    for (let i = 1; i <= n; i++) {
      const { result, report } = await sync();
      expect(result.code, `clean run ${i}: ${result.stderr}`).toBe(0);
      expect(report.status).toBe('succeeded');
      expect(held(), `membership after clean run ${i}`).toEqual(await expected());
    }
  };
  return { project, sync, held, expected, cleanRuns };
}

const addNewcomers = (project: E2eProject) =>
  project.sql(
    `insert into {schema}.people select i, 'person' || i || '@example.com' from generate_series(11, 30) i`,
  );

/** 11-15 leave the segment; 16-20 change their email. */
async function churnNewcomers(project: E2eProject) {
  await project.sql('delete from {schema}.people where person_id between 11 and 15');
  await project.sql(
    "update {schema}.people set email = 'moved' || person_id || '@example.org' where person_id between 16 and 20",
  );
}

/**
 * Spawns `tailor sync` and SIGKILLs it inside the emulator's listener, right after the emulator has
 * applied a users request and written its 200. The signal follows the write within one synchronous
 * call, while recording the answer takes the child a round trip to Postgres: it may have read the 200,
 * but it cannot have committed it.
 */
async function syncKilledAtFirstAnswer(project: E2eProject): Promise<UsersAnswer> {
  const run = spawnCli(['sync', 'people_x', '--project', project.dir], project.dir);
  let answered: UsersAnswer | undefined;
  const off = emulator.admin.onUsersAnswered((answer) => {
    // Delivered: an answer this run read, not one to an earlier run's request that X applied late.
    if (answered || answer.status !== 200 || !answer.applied || !answer.delivered) return;
    answered = answer;
    run.child.kill('SIGKILL');
  });
  try {
    const killed = await run.done;
    project.outputs.push(killed.stdout, killed.stderr);
    expect(killed.signal, `the run ended on its own:\n${killed.stdout}\n${killed.stderr}`).toBe('SIGKILL');
  } finally {
    off();
  }
  expect(answered).toBeDefined();
  return answered!;
}

describe('tailor sync SIGKILLed right after X answered 200 (CLI, Postgres, emulator)', () => {
  it('members who leave the segment or change their email after the kill are removed from the audience', async () => {
    const { project, held, expected, cleanRuns } = await syncedProject();
    await addNewcomers(project);
    const answer = await syncKilledAtFirstAnswer(project);
    // One request carried the 20 adds, and X applied it: the audience holds people 1-30.
    expect(answer).toMatchObject({ delivered: true });
    expect(held()).toEqual(await expected());

    await churnNewcomers(project);
    await cleanRuns(2);
  });

  it('with the segment unchanged after the kill, a clean run leaves the audience equal to the segment', async () => {
    const { project, held, expected, cleanRuns } = await syncedProject();
    await addNewcomers(project);
    await syncKilledAtFirstAnswer(project);
    expect(held()).toEqual(await expected());
    await cleanRuns(2);
  });

  it('members removed by the killed run who come back to the segment are added again', async () => {
    const { project, sync, held, expected, cleanRuns } = await syncedProject();
    await addNewcomers(project);
    const second = await sync();
    expect(second.result.code, second.result.stderr).toBe(0);
    expect(held()).toEqual(await expected());

    await project.sql('delete from {schema}.people where person_id between 11 and 20');
    const answer = await syncKilledAtFirstAnswer(project);
    // X applied the Delete: the audience holds people 1-10 and 21-30.
    expect(answer).toMatchObject({ delivered: true });
    expect(held()).toEqual(await expected());

    // They come back, unchanged.
    await project.sql(
      `insert into {schema}.people select i, 'person' || i || '@example.com' from generate_series(11, 20) i`,
    );
    await cleanRuns(2);
  });
});

describe('tailor sync when X applies a timed-out Update late (CLI, Postgres, emulator)', () => {
  // A failed test must not leave a held request for the next one to apply.
  afterEach(() => {
    emulator.admin.clearFaults();
    emulator.admin.discardHeld();
  });

  // One attempt of 1.5 s per request: the held Update times out once and the run gives up on it.
  const LIMITS = { request_timeout_ms: 1500, retry_deadline_ms: 0 };

  /** Run 1 sends the adds of people 11-30; X holds the request past Tailor's timeout, unapplied. */
  async function runWhoseUpdateTimesOut(setup: Awaited<ReturnType<typeof syncedProject>>) {
    const { project, sync, held } = setup;
    const before = held();
    await addNewcomers(project);
    // Every users request of this run is held, however the client retries.
    emulator.admin.injectFaults([{ kind: 'hold', times: 100 }]);
    try {
      const { report } = await sync();
      expect(report.status).not.toBe('succeeded');
    } finally {
      emulator.admin.clearFaults();
    }
    expect(emulator.admin.heldRequests()).toBeGreaterThanOrEqual(1);
    // Not applied yet: the audience still holds people 1-10 only.
    expect(held()).toEqual(before);
  }

  it('members who left the segment before X applied their Update are removed by later runs', async () => {
    const setup = await syncedProject(LIMITS);
    const { project, sync, held, expected, cleanRuns } = setup;
    await runWhoseUpdateTimesOut(setup);

    await churnNewcomers(project);
    const second = await sync();
    expect(second.result.code, second.result.stderr).toBe(0);
    expect(held(), 'membership after run 2, before the late apply').toEqual(await expected());

    // X applies run 1's Update now, after run 2 finished.
    expect(await emulator.admin.applyHeld()).toBeGreaterThanOrEqual(1);
    expect(held(), 'the late apply brought back the people who left').not.toEqual(await expected());

    await cleanRuns(2);
  });

  it('a late apply of members still wanted leaves the audience equal to the segment', async () => {
    const setup = await syncedProject(LIMITS);
    const { sync, held, expected, cleanRuns } = setup;
    await runWhoseUpdateTimesOut(setup);

    const second = await sync();
    expect(second.result.code, second.result.stderr).toBe(0);
    expect(held()).toEqual(await expected());
    expect(await emulator.admin.applyHeld()).toBeGreaterThanOrEqual(1);
    expect(held()).toEqual(await expected());
    await cleanRuns(2);
  });

  it('never prints a raw identifier or a secret', async () => {
    for (const project of projects) {
      const everything = [...project.outputs, await project.dumpState()].join('\n');
      expect(everything).not.toMatch(/person\d+@example\.com|moved\d+@example\.org/);
      expect(everything).not.toContain('demo-consumer-secret');
    }
  });
});
