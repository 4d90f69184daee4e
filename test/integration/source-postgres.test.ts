import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LockBusyError, WarehouseError } from '../../src/errors.js';
import { loadKind, openSource } from '../../src/sources/registry.js';
import type { Source } from '../../src/sources/source.js';
import { ackOf, readDelta } from '../contract/source-contract.js';
import { silentLogger, TEST_POSTGRES_URL, uniqueName } from '../helpers/warehouse.js';
import { createStateStore } from '../../src/diff/state-store.js';

const open = (url: string, poolSize = 4) =>
  openSource(
    { type: 'postgres', url, pool_size: poolSize, fetch_size: 1000 },
    { projectDir: '.', logger: silentLogger },
  );

describe('postgres source', () => {
  const admin = new pg.Client(TEST_POSTGRES_URL);
  const data = uniqueName('tdata');
  const stateSchemas: string[] = [];
  const state = () => {
    const name = uniqueName('tstate');
    stateSchemas.push(name);
    return name;
  };

  beforeAll(async () => {
    await admin.connect();
    await admin.query(`create schema ${data}`);
    await admin.query(`create table ${data}.people as select g as id, 'user' || g || '@example.com' as email,
      now() - g * interval '1 hour' as seen_at, g * 1.1::float8 as score from generate_series(1, 300) g`);
  });
  afterAll(async () => {
    for (const schema of [data, ...stateSchemas])
      await admin.query(`drop schema if exists "${schema}" cascade`);
    await admin.end();
  });

  it('reports an unreachable server as WarehouseError with a hint, never the password', async () => {
    await using source = await open('postgres://tailor:s3cret-pw@127.0.0.1:1/test');
    const error = await source.check().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WarehouseError);
    expect((error as WarehouseError).hint).toMatch(/URL|running/);
    expect(String((error as Error).message)).not.toContain('s3cret-pw');
    await expect(createStateStore(source, state(), { logger: silentLogger }).migrate()).rejects.toThrow(
      WarehouseError,
    );
  });

  it('reports missing privileges as WarehouseError with a grant hint', async () => {
    const role = uniqueName('tnoperm');
    await admin.query(`create role ${role} login`);
    try {
      await using source = await open(TEST_POSTGRES_URL.replace('postgres@', `${role}@`));
      await source.check();
      const error = await createStateStore(source, state(), { logger: silentLogger })
        .migrate()
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WarehouseError);
      expect((error as WarehouseError).hint).toMatch(/grant/);
    } finally {
      await admin.query(`drop role ${role}`);
    }
  });

  it('never starves its pool: more activations than connections lock, diff and commit in parallel', async () => {
    await using source = await open(TEST_POSTGRES_URL, 1);
    const store = createStateStore(source, state(), { logger: silentLogger });
    await Promise.all(
      ['a1', 'a2', 'a3', 'a4'].map(async (activationId) => {
        await using _lock = await store.lock(activationId, { wait: false });
        await using run = await store.prepareDiff({
          activationId,
          modelSql: `select id, email from ${data}.people`,
          modelName: 'people',
          primaryKey: 'id',
          columns: ['email'],
          refreshBefore: null,
          fullResync: false,
        });
        for await (const batch of run.delta(50)) {
          // Commits go through the pool while the delta's cursor holds its own session.
          await run.commit(batch.map((row) => ackOf(row)));
          await run.hashesHeldByOthers(['x'], []);
        }
        const runId = await store.startRun(activationId, new Date());
        await store.finishRun(runId, {
          status: 'succeeded',
          counts: {
            rows: 300,
            added: 300,
            removed: 0,
            changed: 0,
            refreshed: 0,
            invalid: 0,
            rejected: 0,
            requests: 0,
          },
          error: null,
          finishedAt: new Date(),
        });
      }),
    );
    for (const activationId of ['a1', 'a2', 'a3', 'a4'])
      expect(await store.memberCount(activationId)).toBe(300);
  });

  it('releases an advisory lock when its process goes away', async () => {
    const schema = state();
    const first = await open(TEST_POSTGRES_URL);
    await createStateStore(first, schema, { logger: silentLogger }).lock('act', { wait: false });
    await using second = await open(TEST_POSTGRES_URL);
    await expect(
      createStateStore(second, schema, { logger: silentLogger }).lock('act', { wait: false }),
    ).rejects.toThrow(LockBusyError);
    await first.close(); // without releasing: its session ends, and the lock with it
    const lock = await createStateStore(second, schema, { logger: silentLogger }).lock('act', {
      wait: false,
    });
    await lock.release();
  });

  it('renders keys and fingerprints the same whatever the session time zone and date style', async () => {
    const schema = state();
    const spec = {
      activationId: 'tz',
      modelSql: `select seen_at as id, seen_at, score from ${data}.people`,
      modelName: 'people',
      primaryKey: 'id',
      columns: ['seen_at', 'score'],
      refreshBefore: null,
      fullResync: false,
    };
    const sync = async (source: Source) => {
      await using run = await createStateStore(source, schema, { logger: silentLogger }).prepareDiff(spec);
      const delta = await readDelta(run);
      await run.commit(delta.map((row) => ackOf(row)));
      return delta;
    };
    {
      await using utc = await open(TEST_POSTGRES_URL);
      expect(await sync(utc)).toHaveLength(300);
    }
    const odd = `${TEST_POSTGRES_URL}?options=${encodeURIComponent('-c TimeZone=Asia/Kathmandu -c DateStyle=SQL,DMY -c extra_float_digits=3')}`;
    await using other = await open(odd);
    expect(await sync(other)).toEqual([]);
  });

  it('names a warehouse module that does not exist yet as not available', async () => {
    const path: string = './teradata/teradata-source.js';
    const error = await loadKind('teradata', () => import(path)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WarehouseError);
    expect((error as Error).message).toMatch(/teradata warehouse is not available/);
  });
});
