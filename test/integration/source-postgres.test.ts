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

  it('recognises a state schema created before the layer was unified (version 2) and works on it', async () => {
    // The statements of the earlier Postgres migrations 1 and 2, as they ran then.
    const schema = state();
    const t = (table: string) => `"${schema}".${table}`;
    for (const statement of [
      `create schema "${schema}"`,
      `create table ${t('tailor_migrations')} (version integer primary key, name text not null,
        applied_at timestamptz not null default now())`,
      `create table ${t('bindings')} (activation_id text primary key, destination text not null,
        account_id text not null, audience_id text not null, audience_name text not null, bound_at timestamptz not null)`,
      `create table ${t('members')} (activation_id text not null, member_key text not null, fingerprint text not null,
        last_sent_at timestamptz, updated_at timestamptz not null default now(), primary key (activation_id, member_key))`,
      `create table ${t('member_hashes')} (activation_id text not null, member_key text not null, id_type text not null,
        hash text not null)`,
      `create index member_hashes_by_member on ${t('member_hashes')} (activation_id, member_key)`,
      `create index member_hashes_by_hash_value on ${t('member_hashes')} using hash (hash)`,
      `create table ${t('runs')} (run_id text primary key, activation_id text not null, started_at timestamptz not null,
        finished_at timestamptz, status text not null, rows bigint not null default 0, added bigint not null default 0,
        removed bigint not null default 0, changed bigint not null default 0, refreshed bigint not null default 0,
        invalid bigint not null default 0, rejected bigint not null default 0, requests bigint not null default 0,
        error text, cost jsonb)`,
      `create table ${t('rejections')} (run_id text not null, activation_id text not null, member_key text,
        identifier_type text, reason text not null, recorded_at timestamptz not null default now())`,
      `create table ${t('activation_status')} (activation_id text primary key, consecutive_failures integer not null default 0,
        paused_at timestamptz, paused_reason text, config_fingerprint text, updated_at timestamptz not null)`,
      `insert into ${t('tailor_migrations')} (version, name) values (1, 'initial state tables'),
        (2, 'hash index for identifier lookups')`,
    ]) {
      await admin.query(statement);
    }
    await using source = await open(TEST_POSTGRES_URL);
    const store = createStateStore(source, schema, { logger: silentLogger });
    await store.migrate();
    const versions = await admin.query(`select version from ${t('tailor_migrations')} order by version`);
    expect(versions.rows).toEqual([{ version: 1 }, { version: 2 }]);
    const spec = {
      activationId: 'old',
      modelSql: `select id, email from ${data}.people where id <= 20`,
      modelName: 'people',
      primaryKey: 'id',
      columns: ['email'],
      refreshBefore: null,
      fullResync: false,
    };
    {
      await using run = await store.prepareDiff(spec);
      await run.commit((await readDelta(run)).map((row) => ackOf(row)));
    }
    await using again = await store.prepareDiff(spec);
    expect(again.counts).toMatchObject({ rows: 20, stateMembers: 20, added: 0, removed: 0, changed: 0 });
    const runId = await store.startRun('old', new Date());
    await store.setActivationStatus({
      activationId: 'old',
      consecutiveFailures: 1,
      pausedAt: null,
      pausedReason: null,
      configFingerprint: null,
      updatedAt: new Date(),
    });
    expect((await store.listRuns({ activationId: 'old', limit: 1 }))[0]?.id).toBe(runId);
  });

  it('names a warehouse module that does not exist yet as not available', async () => {
    const path: string = './teradata/teradata-source.js';
    const error = await loadKind('teradata', () => import(path)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WarehouseError);
    expect((error as Error).message).toMatch(/teradata warehouse is not available/);
  });
});
