import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadProject, type Project } from '../../src/config/load-project.js';
import type { RunningEmulator } from '../../src/emulator/index.js';
import { ConfigError } from '../../src/errors.js';
import { openSyncEngine } from '../../src/sync/engine.js';
import { syncMany } from '../../src/sync/sync-many.js';
import type { SyncEngine } from '../../src/sync/types.js';
import {
  createE2eProject,
  deleteAudienceAtX,
  type E2eProject,
  normalizeHeld,
  RUN,
  startTestEmulator,
} from '../helpers/e2e.js';
import { silentLogger } from '../helpers/warehouse.js';

/**
 * The sync engine in process, on the Postgres server and the emulator over HTTP: audience binding and
 * recreation, full resync, the refresh window, upsert mode, the lock, bounded parallel runs.
 */

const EMAIL = { email: 'email' } as const;

let emulator: RunningEmulator;
let fixture: E2eProject;
let project: Project;
let engine: SyncEngine;

beforeAll(async () => {
  emulator = await startTestEmulator();
  fixture = await createE2eProject(emulator, {
    setup: [
      'create table {schema}.people (person_id int primary key, email text, team text)',
      `insert into {schema}.people select i, 'p' || i || '@example.com', case when i % 2 = 0 then 'even' else 'odd' end
       from generate_series(1, 120) i`,
    ],
    models: {
      everyone: {
        sql: 'select person_id, email from {schema}.people',
        yml: 'name: everyone\ndescription: Everyone\nprimary_key: person_id\n',
      },
      evens: {
        sql: "select person_id, email from {schema}.people where team = 'even'",
        yml: 'name: evens\ndescription: Evens\nprimary_key: person_id\n',
      },
      broken: {
        sql: 'select person_id, email from {schema}.people',
        yml: 'name: broken\ndescription: Maps a column it lacks\nprimary_key: person_id\n',
      },
    },
    activations: `  everyone_x:
    model: everyone
    destination: x
    audience: { name: 'Everyone {schema}' }
    mappings: { email: email }
    schedule: manual
  evens_x:
    model: evens
    destination: x
    audience: { name: 'Evens {schema}' }
    mappings: { email: email }
    mode: upsert
    schedule: manual
  broken_x:
    model: broken
    destination: x
    mappings: { mobile: phone_number }
    schedule: manual
`,
  });
  project = await loadProject(fixture.dir, {});
  engine = await openSyncEngine(project, { logger: silentLogger });
});

afterAll(async () => {
  await engine?.close();
  await fixture?.cleanup();
  await emulator?.close();
});

describe('sync engine (Postgres, emulator)', () => {
  it('says clearly when the bound audience was deleted at X, and --full-resync --recreate makes a new one', async () => {
    const first = await engine.sync('everyone_x', RUN);
    expect(first).toMatchObject({ status: 'succeeded', counts: { added: 120 } });
    const oldId = first.audienceId!;
    await deleteAudienceAtX(emulator, oldId);

    const missing = await engine.sync('everyone_x', RUN);
    expect(missing.status).toBe('failed');
    expect(missing.errorKind).toBe('audience_missing');
    expect(missing.error).toMatch(/no longer exists at X/);
    expect(missing.error).toMatch(/--full-resync --recreate/);

    const recreated = await engine.sync('everyone_x', { ...RUN, fullResync: true, recreate: true });
    expect(recreated.status).toBe('succeeded');
    expect(recreated.audienceId).not.toBe(oldId);
    expect(recreated.counts.added).toBe(120);
    expect((await engine.state().getBinding('everyone_x'))?.audienceId).toBe(recreated.audienceId);
    expect(normalizeHeld(fixture.held(recreated.audienceId!))).toEqual(
      await fixture.expected('everyone', EMAIL),
    );
  });

  it('a full resync re-sends every member as an Update and changes nothing', async () => {
    const report = await engine.sync('everyone_x', { ...RUN, fullResync: true });
    expect(report).toMatchObject({ status: 'succeeded', counts: { added: 0, removed: 0, refreshed: 120 } });
    expect(normalizeHeld(fixture.held(report.audienceId!))).toEqual(
      await fixture.expected('everyone', EMAIL),
    );
  });

  it('refreshes members whose last Update is older than the refresh window', async () => {
    const later = await openSyncEngine(project, {
      logger: silentLogger,
      now: () => new Date(Date.now() + 400 * 86_400_000),
    });
    try {
      const report = await later.sync('everyone_x', RUN);
      expect(report).toMatchObject({ status: 'succeeded', counts: { refreshed: 120, added: 0 } });
      const again = await later.sync('everyone_x', RUN);
      expect(again.counts.refreshed).toBe(0);
    } finally {
      await later.close();
    }
  });

  it('upsert mode adds but never removes', async () => {
    const first = await engine.sync('evens_x', RUN);
    expect(first).toMatchObject({ status: 'succeeded', counts: { added: 60 } });
    await fixture.sql("update {schema}.people set team = 'odd' where person_id <= 20");
    const second = await engine.sync('evens_x', RUN);
    expect(second).toMatchObject({ status: 'succeeded', counts: { removed: 0, added: 0 } });
    expect(second.counts.requests).toBe(0);
    expect(fixture.held(first.audienceId!).email).toHaveLength(60);
  });

  it('skips a run whose activation lock is held, at once', async () => {
    const lock = await engine.state().lock('everyone_x', { wait: false });
    try {
      const report = await engine.sync('everyone_x', RUN);
      expect(report).toMatchObject({ status: 'skipped', errorKind: 'lock_busy', runId: null });
      expect(report.error).toMatch(/already running/);
    } finally {
      await lock.release();
    }
  });

  it('plans without sending, committing or logging anything', async () => {
    await fixture.sql(
      "update {schema}.people set email = 'moved' || person_id || '@example.org' where person_id <= 5",
    );
    const runsBefore = (await engine.state().listRuns({ activationId: 'everyone_x', limit: 100 })).length;
    const requestsBefore = emulator.admin.requestLog().length;
    const plan = await engine.sync('everyone_x', { ...RUN, dryRun: true });
    expect(plan).toMatchObject({
      status: 'succeeded',
      runId: null,
      counts: { changed: 5, added: 0, requests: 0 },
    });
    expect(emulator.admin.requestLog().length).toBe(requestsBefore);
    expect((await engine.state().listRuns({ activationId: 'everyone_x', limit: 100 })).length).toBe(
      runsBefore,
    );
    const again = await engine.sync('everyone_x', { ...RUN, dryRun: true });
    expect(again.counts.changed).toBe(5);
  });

  it('runs several activations in parallel; a configuration error fails only its own', async () => {
    await expect(engine.sync('broken_x', RUN)).rejects.toBeInstanceOf(ConfigError);
    const reports = await syncMany(engine, ['everyone_x', 'broken_x', 'evens_x'], RUN, 2);
    expect(reports.map((r) => [r.activationId, r.status])).toEqual([
      ['everyone_x', 'succeeded'],
      ['broken_x', 'failed'],
      ['evens_x', 'succeeded'],
    ]);
    expect(reports[0]!.counts.changed).toBe(5);
    expect(reports[1]).toMatchObject({ errorKind: 'config' });
    expect(reports[1]!.error).toMatch(/returns no column "mobile"/);
  });
});
