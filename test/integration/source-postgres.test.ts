import { createHash } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LockBusyError, WarehouseError } from '../../src/errors.js';
import { loadKind, openSource } from '../../src/sources/registry.js';
import type { Source } from '../../src/sources/source.js';
import { ackOf, readDelta } from '../contract/source-contract.js';
import type { DeltaRow } from '../../src/diff/types.js';
import { silentLogger, TEST_POSTGRES_URL, uniqueName } from '../helpers/warehouse.js';
import { createStateStore } from '../../src/diff/state-store.js';
import { runCountsOf } from '../helpers/counts.js';

/** A member's key in state from version 3: the SHA-256 hex of the key's text. */
const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');

const open = (url: string, poolSize = 4) =>
  openSource(
    { type: 'postgres', url, pool_size: poolSize, fetch_size: 1000 },
    { projectDir: '.', logger: silentLogger },
  );

/** A diff spec over a model's `id` (the key) and `email` (its one mapped column). */
const emailSpec = (activationId: string, modelSql: string) => ({
  activationId,
  modelSql,
  modelName: 'people',
  primaryKey: 'id',
  columns: ['email'],
  refreshBefore: null,
  fullResync: false,
});

/** An intent stamp's times: recorded now, applicable for an hour. */
const withinTheHour = () => {
  const at = new Date();
  return { at, until: new Date(at.getTime() + 3_600_000) };
};

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
          counts: runCountsOf({ rows: 300, added: 300 }),
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

  it('tracks the members holding a hash through its commits, from a count taken with the diff, and counts state when a commit cannot say', async () => {
    const schema = state();
    const table = `${data}.identified_${Math.random().toString(36).slice(2, 8)}`;
    const load = async (rows: [number, string | null][]) => {
      await admin.query(`drop table if exists ${table}`);
      await admin.query(`create table ${table} (id int, email text)`);
      for (const [id, email] of rows) await admin.query(`insert into ${table} values ($1, $2)`, [id, email]);
    };
    const spec = emailSpec('identified', `select id, email from ${table}`);
    await using source = await open(TEST_POSTGRES_URL);
    const store = createStateStore(source, schema, { logger: silentLogger });
    // Acks as the engine makes them: every one with its previous hashes; a member without an email
    // is committed with no hash.
    const ack = (row: DeltaRow) => {
      const email = row.values?.['email'];
      return {
        ...ackOf(row, new Date(), true),
        hashes: row.change === 'removed' ? null : email == null ? {} : { email: [digest(String(email))] },
      };
    };
    /** Writes a hash row behind the run's back: only a count of state sees it. */
    const foreign = (key: string) =>
      admin.query(
        `insert into "${schema}".member_hashes (activation_id, member_key, id_type, hash) values ('identified', $1, 'email', $2)`,
        [key, digest(key)],
      );

    /**
     * Loads the segment, runs a diff and commits its whole delta (twice when `repeat`), then writes
     * `behind` hash rows behind the run's back; the run's count after it, and state's own.
     */
    let writtenBehind = 0;
    const runOn = async (rows: [number, string | null][], { repeat = false, behind = 1 } = {}) => {
      if (writtenBehind > 0) {
        await admin.query(`delete from "${schema}".member_hashes where member_key like 'elsewhere-%'`);
      }
      await load(rows);
      await using run = await store.prepareDiff(spec);
      const acks = (await readDelta(run)).map(ack);
      await run.commit(acks);
      if (repeat) await run.commit(acks);
      for (let n = 0; n < behind; n++) await foreign(`elsewhere-${++writtenBehind}`);
      return {
        run: await run.identifiedMemberCount(),
        state: await store.identifiedMemberCount('identified'),
      };
    };

    // Three members hold a hash; the run's count moved from the one taken with the diff (0).
    expect(
      await runOn([
        [1, 'a@x.com'],
        [2, 'b@x.com'],
        [3, null],
        [4, 'd@x.com'],
      ]),
    ).toEqual({ run: 3, state: 4 });
    // 1 leaves, 3 stays without an email, 5 comes with one, 6 without: 3 - 1 + 1.
    expect(
      await runOn([
        [2, 'b@x.com'],
        [3, null],
        [4, 'd@x.com'],
        [5, 'e@x.com'],
        [6, null],
      ]),
    ).toEqual({ run: 3, state: 4 });
    // A member whose email turns null (it held a hash and holds none): the commit cannot say how
    // that moved the count, so the run counts state: 4 and 5, and the two rows written behind its back.
    const flipped: [number, string | null][] = [
      [2, null],
      [3, null],
      [4, 'd@x.com'],
      [5, 'e@x.com'],
      [6, null],
    ];
    expect(await runOn(flipped, { behind: 2 })).toEqual({ run: 4, state: 4 });
    // A commit of removals repeated: the second finds its member gone and cannot say either: 5, and
    // the two rows written behind the run's back.
    const removed = flipped.filter(([id]) => id !== 4);
    expect(await runOn(removed, { repeat: true, behind: 2 })).toEqual({ run: 3, state: 3 });
    // A commit of a new member repeated: the second finds it there: 5 and 8, and two rows more.
    expect(await runOn([...removed, [8, 'h@x.com']], { repeat: true, behind: 2 })).toEqual({
      run: 4,
      state: 4,
    });
  });

  it('clears an intent by its id once every member it recorded is acknowledged, and by key while one is not', async () => {
    const schema = state();
    const spec = emailSpec('whole', `select id, email from ${data}.people where id <= 5`);
    await using source = await open(TEST_POSTGRES_URL);
    const store = createStateStore(source, schema, { logger: silentLogger });
    const { at, until } = withinTheHour();
    const intents = async () =>
      (
        await admin.query<{ intent_id: string; n: number }>(
          `select intent_id, count(*)::int as n from "${schema}".member_intents group by 1 order by 1`,
        )
      ).rows;
    await using run = await store.prepareDiff(spec);
    const [first, second] = [...(await readDelta(run))].reduce<DeltaRow[][]>(
      (halves, row, i) => (halves[i < 3 ? 0 : 1]!.push(row), halves),
      [[], []],
    );
    const record = (rows: DeltaRow[], id: string) =>
      run.recordIntent(
        rows.map((row) => ({ key: row.key, hashes: { email: [digest(String(row.values![0]))] } })),
        { id, at, until },
      );
    await record(first!, 'r:1');
    await record(second!, 'r:2');
    // Batch 1 acknowledged whole: its intent goes (by id alone). Batch 2 but for one member: only the
    // others' rows go; the unacknowledged member's stays.
    await run.commit(first!.map((row) => ({ ...ackOf(row), intentId: 'r:1' })));
    expect(await intents()).toEqual([{ intent_id: 'r:2', n: 2 }]);
    await run.commit(second!.slice(1).map((row) => ({ ...ackOf(row), intentId: 'r:2' })));
    expect(await intents()).toEqual([{ intent_id: 'r:2', n: 1 }]);
    const { rows } = await admin.query(`select member_key from "${schema}".member_intents`);
    expect(rows).toEqual([{ member_key: second![0]!.key }]);
  });

  it('reads intent rows of the earlier form (one row per hash) beside packed ones, and clears both on acknowledgement', async () => {
    const schema = state();
    const spec = emailSpec('mixed', `select id, email from ${data}.people where id <= 3`);
    await using source = await open(TEST_POSTGRES_URL);
    const store = createStateStore(source, schema, { logger: silentLogger });
    const { at, until } = withinTheHour();
    const [a, b, c] = ['a', 'b', 'c'].map((x) => x.repeat(64));
    {
      await using run = await store.prepareDiff(spec);
      await readDelta(run);
      // This version's form: one row for member 1, both hashes packed.
      await run.recordIntent([{ key: digest('1'), hashes: { email: [a!], handle: [b!] } }], {
        id: 'r1:1',
        at,
        until,
      });
    }
    // The earlier form, as a run of an earlier version left it: one row per hash, for members 1 and 2.
    for (const [key, type, hash] of [
      [digest('1'), 'email', c],
      [digest('2'), 'partner_user_id', 'p;1%'],
    ]) {
      await admin.query(
        `insert into "${schema}".member_intents (activation_id, member_key, intent_id, id_type, hash, recorded_at, until)
         values ('mixed', $1, 'old:1', $2, $3, $4, $5)`,
        [key, type, hash, at, until],
      );
    }
    await using run = await store.prepareDiff(spec);
    const delta = await readDelta(run);
    const byKey = new Map(delta.map((row) => [row.key, row]));
    expect(byKey.get(digest('1'))!.pendingHashes).toEqual({ email: [a, c].sort(), handle: [b] });
    expect(byKey.get(digest('2'))!.pendingHashes).toEqual({ partner_user_id: ['p;1%'] });
    expect(byKey.get(digest('3'))!.pendingHashes).toBeNull();
    await run.commit(delta.map((row) => ({ ...ackOf(row), intentId: 'r2:1' })));
    // Both forms are within their window: they stay until it passes (X may still apply them late).
    const { rows } = await admin.query(
      `select id_type, count(*)::int as n from "${schema}".member_intents group by 1 order by 1`,
    );
    expect(rows).toEqual([
      { id_type: '*', n: 1 },
      { id_type: 'email', n: 1 },
      { id_type: 'partner_user_id', n: 1 },
    ]);
  });

  it('migrates a populated state schema created before the layer was unified (version 2) to 8, and syncs on it', async () => {
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
    // The state a version-2 Tailor left after syncing people 1..20 (keys as raw text, the
    // fingerprint of that version), with one rejected member and one null-key rejection.
    for (const statement of [
      `insert into ${t('bindings')} values ('old', 'x', 'acc', 'aud', 'Old', '2026-01-01T00:00:00Z')`,
      `insert into ${t('members')} (activation_id, member_key, fingerprint, last_sent_at, updated_at)
        select 'old', id::text, to_hex(hashtextextended(json_build_array(email)::text, 0)),
          '2026-01-02T00:00:00Z', '2026-01-02T00:00:00Z'
        from ${data}.people where id <= 20`,
      `insert into ${t('member_hashes')} (activation_id, member_key, id_type, hash)
        select 'old', id::text, 'email', encode(sha256(convert_to(email, 'UTF8')), 'hex')
        from ${data}.people where id <= 20`,
      `insert into ${t('runs')} (run_id, activation_id, started_at, finished_at, status, rows, added)
        values ('r_old', 'old', '2026-01-02T00:00:00Z', '2026-01-02T00:01:00Z', 'succeeded', 21, 20)`,
      `insert into ${t('rejections')} (run_id, activation_id, member_key, identifier_type, reason, recorded_at)
        values ('r_old', 'old', '21', 'email', 'invalid_email', '2026-01-02T00:00:30Z'),
               ('r_old', 'old', null, null, 'null_primary_key', '2026-01-02T00:00:30Z')`,
    ]) {
      await admin.query(statement);
    }
    const before = await admin.query<{ member_key: string; fingerprint: string; last_sent_at: Date }>(
      `select member_key, fingerprint, last_sent_at from ${t('members')} order by member_key`,
    );
    const beforeHashes = await admin.query<{ member_key: string; id_type: string; hash: string }>(
      `select member_key, id_type, hash from ${t('member_hashes')} order by member_key`,
    );
    expect(before.rows).toHaveLength(20);

    const rows = async (sql: string) => (await admin.query(sql)).rows as Record<string, unknown>[];
    const snapshot = async () => ({
      members: await rows(
        `select activation_id, member_key, fingerprint, last_sent_at, updated_at from ${t('members')} order by member_key`,
      ),
      hashes: await rows(`select * from ${t('member_hashes')} order by member_key, id_type, hash`),
      rejections: await rows(`select * from ${t('rejections')} order by member_key nulls first`),
      runs: await rows(`select * from ${t('runs')} order by run_id`),
      bindings: await rows(`select * from ${t('bindings')} order by activation_id`),
    });

    await using source = await open(TEST_POSTGRES_URL);
    const store = createStateStore(source, schema, { logger: silentLogger });
    await store.migrate();
    const versions = await admin.query(`select version from ${t('tailor_migrations')} order by version`);
    expect(versions.rows).toEqual([
      { version: 1 },
      { version: 2 },
      { version: 3 },
      { version: 4 },
      { version: 5 },
      { version: 6 },
      { version: 7 },
      { version: 8 },
    ]);
    // Version 5: the index the commit's clearing of answered intents uses.
    const indexes = await admin.query(
      `select indexname from pg_indexes where schemaname = $1 and tablename = 'member_intents'`,
      [schema],
    );
    expect(indexes.rows).toEqual([{ indexname: 'member_intents_by_intent' }]);

    // Every key is now the SHA-256 hex of its raw text; nothing else changed and nothing was lost.
    const migrated = await snapshot();
    expect(migrated.members.map((r) => [r.member_key, r.fingerprint, r.last_sent_at])).toEqual(
      before.rows
        .map((r) => [digest(r.member_key), r.fingerprint, r.last_sent_at])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    expect(migrated.hashes.map((r) => [r.member_key, r.id_type, r.hash])).toEqual(
      beforeHashes.rows
        .map((r) => [digest(r.member_key), r.id_type, r.hash])
        .sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    expect(migrated.rejections.map((r) => [r.member_key, r.reason])).toEqual([
      [null, 'null_primary_key'],
      [digest('21'), 'invalid_email'],
    ]);
    expect(migrated.runs).toEqual([expect.objectContaining({ run_id: 'r_old', rows: '21', added: '20' })]);
    expect(migrated.bindings).toEqual([
      expect.objectContaining({ activation_id: 'old', audience_id: 'aud' }),
    ]);
    // member_intents exists, empty; so does state_identity (version 4): its one row is made when
    // the id is first read, for the owner mark.
    expect(await rows(`select * from ${t('member_intents')}`)).toEqual([]);
    expect(await rows(`select * from ${t('state_identity')}`)).toEqual([]);
    const owner = await store.ownerId('old');
    const identity = await rows(`select state_id from ${t('state_identity')}`);
    expect(identity).toHaveLength(1);

    // Idempotent: a second migration finds version 8 and changes nothing; and were the migration
    // cut short after version 3's statements (versions 3 to 5 not recorded), re-running them
    // digests nothing twice and keeps the one state id.
    await createStateStore(source, schema, { logger: silentLogger }).migrate();
    expect(await snapshot()).toEqual(migrated);
    await admin.query(`delete from ${t('tailor_migrations')} where version >= 3`);
    await createStateStore(source, schema, { logger: silentLogger }).migrate();
    expect(await snapshot()).toEqual(migrated);
    expect(
      (await admin.query(`select version from ${t('tailor_migrations')} order by version`)).rows,
    ).toEqual([
      { version: 1 },
      { version: 2 },
      { version: 3 },
      { version: 4 },
      { version: 5 },
      { version: 6 },
      { version: 7 },
      { version: 8 },
    ]);
    expect(await rows(`select state_id from ${t('state_identity')}`)).toEqual(identity);
    expect(await createStateStore(source, schema, { logger: silentLogger }).ownerId('old')).toBe(owner);
    expect(await rows(`select state_id from ${t('state_identity')}`)).toEqual(identity);

    // The migrated state is recognised: the same segment diffs to nothing.
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
      expect(run.counts).toMatchObject({
        rows: 20,
        stateMembers: 20,
        added: 0,
        removed: 0,
        changed: 0,
        refresh: 0,
      });
      expect(await readDelta(run)).toEqual([]);
      // The migrated hash rows are found under the digested keys.
      const held = await admin.query<{ hash: string }>(
        `select encode(sha256(convert_to(email, 'UTF8')), 'hex') as hash from ${data}.people where id = 3`,
      );
      expect(await run.hashesHeldByOthers([held.rows[0]!.hash], [])).toEqual(new Set([held.rows[0]!.hash]));
      expect(await run.hashesHeldByOthers([held.rows[0]!.hash], [digest('3')])).toEqual(new Set());
      // Members written before key hashes have none: compared by digest, then given theirs.
      expect(run.keysCompared).toBe('digest');
      await run.settleKeyHashes();
    }
    // A member whose email changed comes back changed, with the hash stored before the migration.
    {
      await using run = await store.prepareDiff({
        ...spec,
        modelSql: `select id, case when id = 3 then 'new3@example.com' else email end as email
          from ${data}.people where id <= 20`,
      });
      expect(run.keysCompared).toBe('hash');
      const delta = await readDelta(run);
      expect(delta.map((r) => [r.key, r.change])).toEqual([[digest('3'), 'changed']]);
      expect(delta[0]!.previousHashes).toEqual({
        email: [beforeHashes.rows.find((r) => r.member_key === '3')!.hash],
      });
      expect(delta[0]!.pendingHashes).toBeNull();
    }
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
