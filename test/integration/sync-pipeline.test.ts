import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProject } from '../../src/config/load-project.js';
import type { XIdentifierType } from '../../src/destinations/x-ads/identifier-types.js';
import { prng } from '../../src/demo/sample-data.js';
import type { RunningEmulator } from '../../src/emulator/index.js';
import { openSyncEngine } from '../../src/sync/engine.js';
import type { SyncEngine } from '../../src/sync/types.js';
import {
  createE2eProject,
  deleteAudienceAtX,
  type E2eProject,
  normalizeHeld,
  RUN,
  startTestEmulator,
  waitFor,
} from '../helpers/e2e.js';
import { silentLogger } from '../helpers/warehouse.js';

/**
 * The engine's batch pipeline (batch n+1 hashed while n is sent and n-1 committed) with batches of
 * three members, so that every run has many batches in flight: identifiers shared between members
 * of different batches move around, and the audience must still hold exactly the segment's hashes.
 */

const MAPPINGS: Record<string, XIdentifierType> = { email: 'email', phone: 'phone_number' };
// More addresses than people: an address often has one holder, then moves to another member.
const EMAILS = Array.from({ length: 40 }, (_, i) => `p${i}@example.com`);
const PHONES = ['+1 415 555 0101', '(646) 555-0199', '+44 7911 123456', null];

let emulator: RunningEmulator;
let fixture: E2eProject;
let engine: SyncEngine;

beforeAll(async () => {
  emulator = await startTestEmulator();
  fixture = await createE2eProject(emulator, {
    setup: [
      'create table {schema}.people (person_id int primary key, email text, phone text, active boolean not null)',
      `insert into {schema}.people select i, 'p' || i || '@example.com',
         case when i % 3 = 0 then '+1 415 555 0101' end, true from generate_series(1, 30) i`,
    ],
    models: {
      people: {
        sql: 'select person_id, email, phone from {schema}.people where active',
        yml: 'name: people\ndescription: Active people\nprimary_key: person_id\n',
      },
    },
    activations: `  people_x:
    model: people
    destination: x
    audience: { name: 'Pipeline {schema}' }
    mappings: { email: email, phone: phone_number }
    schedule: manual
    max_removal_share: 1
`,
    // Each batch of three is a request of its own: the fault below hits the second batch.
    limits: { retry_deadline_ms: 4000 },
  });
  const project = await loadProject(fixture.dir, {});
  engine = await openSyncEngine(project, { logger: silentLogger, deltaBatchSize: 3 });
});

afterAll(async () => {
  emulator?.admin.clearFaults();
  await engine?.close();
  await fixture?.cleanup();
  await emulator?.close();
});

async function expectInStep(audienceId: string) {
  expect(normalizeHeld(fixture.held(audienceId))).toEqual(await fixture.expected('people', MAPPINGS));
}

describe('sync engine batch pipeline (Postgres, emulator, batches of 3)', () => {
  let audienceId: string;

  it('sends every member of a many-batch initial load', async () => {
    const report = await engine.sync('people_x', RUN);
    expect(report).toMatchObject({ status: 'succeeded', counts: { added: 30 } });
    audienceId = report.audienceId!;
    await expectInStep(audienceId);
    expect(await engine.state().memberCount('people_x')).toBe(30);
  });

  it('keeps the audience exact while shared identifiers move between members of different batches', async () => {
    const rng = prng(11);
    // Slow answers: batch n+1 is read and hashed while batch n is still being sent, uncommitted.
    emulator.admin.injectFaults([{ kind: 'latency', latencyMs: 20, times: 10_000 }]);
    for (let round = 0; round < 6; round++) {
      for (let id = 1; id <= 34; id++) {
        const r = rng();
        if (r < 0.2) {
          await fixture.sql('update {schema}.people set active = not active where person_id = $1', [id]);
        } else if (r < 0.6) {
          await fixture.sql('update {schema}.people set email = $2 where person_id = $1', [
            id,
            EMAILS[Math.floor(rng() * EMAILS.length)],
          ]);
        } else if (r < 0.8) {
          await fixture.sql('update {schema}.people set phone = $2 where person_id = $1', [
            id,
            PHONES[Math.floor(rng() * PHONES.length)],
          ]);
        }
      }
      await fixture.sql(
        `insert into {schema}.people values ($1, $2, null, true) on conflict (person_id) do nothing`,
        [31 + round, EMAILS[round]],
      );
      const report = await engine.sync('people_x', RUN);
      expect(report.status, report.error ?? '').toBe('succeeded');
      expect(report.counts.added + report.counts.removed + report.counts.changed).toBeGreaterThan(0);
      await expectInStep(audienceId);
    }
    emulator.admin.clearFaults();
  });

  it('a send that fails mid-run commits the other batches; the next run sends only what was lost', async () => {
    await fixture.sql("update {schema}.people set email = 'moved.' || person_id || '@example.org'");
    // The first users request goes through; the second is refused past the retry deadline.
    emulator.admin.injectFaults([
      { kind: 'latency', latencyMs: 1 },
      { kind: 'unavailable_503', retryAfterSeconds: 3600 },
    ]);
    // Every member's email replaced deletes every hash X holds: the safety rule would hold it.
    const forced = { ...RUN, force: true };
    const failed = await engine.sync('people_x', forced);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/did not acknowledge \d+ member/);
    const changedFirst = failed.counts.changed;
    expect(changedFirst).toBeGreaterThan(0);

    const next = await engine.sync('people_x', forced);
    expect(next.status, next.error ?? '').toBe('succeeded');
    const active = await fixture.sql<{ n: string }>('select count(*) as n from {schema}.people where active');
    expect(changedFirst + next.counts.changed).toBe(Number(active[0]!.n));
    await expectInStep(audienceId);
    expect((await engine.sync('people_x', RUN)).counts).toMatchObject({ added: 0, removed: 0, changed: 0 });
  });

  it('stops sending once a request throws (the audience deleted at X mid-run)', async () => {
    // New members only: no batch waits for earlier commits to look up shared identifiers.
    await fixture.sql(
      "insert into {schema}.people select i, 'new.' || i || '@example.org', null, true from generate_series(101, 130) i",
    );
    // Slow answers, so the audience can be deleted while the run's first request is in flight.
    emulator.admin.injectFaults([{ kind: 'latency', latencyMs: 300, times: 10_000 }]);
    emulator.admin.clearRequestLog();
    const usersRequests = () => emulator.admin.requestLog().filter((e) => e.path.endsWith('/users'));
    const run = engine.sync('people_x', RUN);
    await waitFor(() => usersRequests().length > 0, 'the first users request');
    await deleteAudienceAtX(emulator, audienceId);
    const report = await run;
    emulator.admin.clearFaults();
    expect(report.status).toBe('failed');
    expect(report.errorKind).toBe('audience_missing');
    // The request in flight may have been answered before the deletion; after the first 404, none.
    const answers = usersRequests().map((e) => e.status);
    expect(answers.filter((status) => status === 404)).toHaveLength(1);
    expect(answers.at(-1)).toBe(404);
  });
});
