import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import {
  CompiledQuery,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type Driver,
  type QueryResult,
} from 'kysely';
import pg from 'pg';
import { type Logger, pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelSqlError } from '../../src/errors.js';
import type { DiffSpec } from '../../src/diff/types.js';
import { openSource } from '../../src/sources/registry.js';
import type { Source } from '../../src/sources/source.js';
import { ackOf, readDelta } from '../contract/source-contract.js';
import { silentLogger, TEST_POSTGRES_URL, uniqueName } from '../helpers/warehouse.js';
import { createStateStore } from '../../src/diff/state-store.js';
import { openDiff } from '../../src/diff/diff-sql.js';
import { vipDiff } from '../helpers/diff-input.js';
import { StateSql } from '../../src/diff/state-sql.js';
import { createPostgresHooks } from '../../src/sources/postgres/postgres-hooks.js';

/** A member's key in state: the SHA-256 hex of the key's text. */
const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest('hex');

/**
 * The Postgres SQL of the diff, on the real server: quoting of awkward names, and the fingerprint's
 * promises (null-safe, type-aware, order-defined).
 */
describe('postgres diff SQL', () => {
  const admin = new pg.Client(TEST_POSTGRES_URL);
  const data = uniqueName('tdata');
  const stateSchema = `Tailor "State" ${uniqueName('x')}`;
  let source: Source;

  beforeAll(async () => {
    await admin.connect();
    await admin.query(`create schema ${data}`);
    source = await openSource(
      { type: 'postgres', url: TEST_POSTGRES_URL, pool_size: 2, fetch_size: 1000 },
      { projectDir: '.', logger: silentLogger },
    );
  });
  afterAll(async () => {
    await source?.close();
    await admin.query(`drop schema if exists ${data} cascade`);
    await admin.query(`drop schema if exists "${stateSchema.replaceAll('"', '""')}" cascade`);
    await admin.end();
  });

  const spec = (activationId: string, modelSql: string, primaryKey: string, columns: string[]): DiffSpec => ({
    activationId,
    modelSql,
    modelName: 'm',
    primaryKey,
    columns,
    refreshBefore: null,
    fullResync: false,
  });

  async function sync(s: DiffSpec) {
    await using run = await createStateStore(source, stateSchema, { logger: silentLogger }).prepareDiff(s);
    const delta = await readDelta(run);
    await run.commit(delta.map((row) => ackOf(row)));
    return delta;
  }

  it('quotes schema, key and column names it did not choose', async () => {
    const model = `select 1 as "Primary Key", 'a@example.com' as "e-mail", 'x' as "select"
      union all select 2, null, 'y'`;
    const delta = await sync(spec('quoting', model, 'Primary Key', ['e-mail', 'select']));
    // Keys are digests, read in their order: sha256('1') = 6b86…, sha256('2') = d473….
    expect(delta.map((r) => [r.key, r.values])).toEqual([
      [digest('1'), { 'e-mail': 'a@example.com', select: 'x' }],
      [digest('2'), { 'e-mail': null, select: 'y' }],
    ]);
    expect(await sync(spec('quoting', model, 'Primary Key', ['e-mail', 'select']))).toEqual([]);
  });

  it('fingerprints null-safely, by type, in column order', async () => {
    await admin.query(`create table ${data}.f (id int, a text, b text, n int)`);
    await admin.query(`insert into ${data}.f values (1, null, 'x', 1), (2, 'x', null, 1), (3, 'null', null, 1),
      (4, null, null, 1), (5, '', null, 1), (6, '1', null, 1)`);
    const model = `select id, a, b, n from ${data}.f`;
    // The delta is ordered by the keys' digests: its rows are named by their raw key here.
    const raw = new Map(['1', '2', '3', '4', '5', '6'].map((key) => [digest(key), key]));
    const named = (rows: { change: string; key: string }[]) =>
      rows.map((r) => `${r.change}:${raw.get(r.key) ?? r.key}`).sort();
    const first = await sync(spec('fp', model, 'id', ['a', 'b']));
    expect(new Set(first.map((r) => r.fingerprint)).size).toBe(6);
    // The same values under another type: `1` (int) is not `'1'` (text).
    const typed = await sync(
      spec('fp_typed', `select id, n as a, null::text as b from ${data}.f where id = 6`, 'id', ['a', 'b']),
    );
    expect(typed[0]!.fingerprint).not.toBe(first.find((r) => r.key === digest('6'))!.fingerprint);
    // Swapping the columns' order changes every fingerprint but that of (null, null).
    const swapped = await createStateStore(source, stateSchema, { logger: silentLogger }).prepareDiff(
      spec('fp', model, 'id', ['b', 'a']),
    );
    try {
      expect(named(await readDelta(swapped))).toEqual([
        'changed:1',
        'changed:2',
        'changed:3',
        'changed:5',
        'changed:6',
      ]);
    } finally {
      await swapped[Symbol.asyncDispose]();
    }
    // A value that flips between null and the text 'null' is a change.
    await admin.query(`update ${data}.f set a = 'null', b = 'x' where id = 1`);
    expect(named(await sync(spec('fp', model, 'id', ['a', 'b'])))).toEqual(['changed:1']);
  });

  it('reads invalid keys and the delta one after the other, and refuses to nest them', async () => {
    await admin.query(`create table ${data}.inv as select g % 1500 as id, 'e' || g as email from generate_series(1, 4000) g
      union all select null, 'n' from generate_series(1, 3)
      union all select g, 'u' || g from generate_series(10000, 10299) g`);
    await using run = await createStateStore(source, stateSchema, { logger: silentLogger }).prepareDiff(
      spec('inv', `select id, email from ${data}.inv`, 'id', ['email']),
    );
    const invalid: (string | null)[] = [];
    for await (const keys of run.invalidKeys()) invalid.push(...keys.map((k) => k.key));
    let deltaRows = 0;
    for await (const batch of run.delta(100)) {
      deltaRows += batch.length;
      if (deltaRows === 100) {
        const nested = run.invalidKeys()[Symbol.asyncIterator]();
        await expect(nested.next()).rejects.toThrow(/one after the other|in progress/);
        // Commits and lookups use other connections: fine mid-read.
        await run.commit(batch.map((row) => ackOf(row)));
        expect(await run.hashesHeldByOthers(['x'], [])).toEqual(new Set());
      }
    }
    expect(deltaRows).toBe(300);
    expect(run.counts).toMatchObject({ rows: 4303, invalidKeys: 4003, added: 300 });
    expect(invalid.slice(0, 3)).toEqual([null, null, null]);
    expect(invalid).toHaveLength(1503);
    expect(new Set(invalid.slice(3)).size).toBe(1500);
    // After the delta, the invalid keys can be read again.
    let again = 0;
    for await (const keys of run.invalidKeys()) again += keys.length;
    expect(again).toBe(1503);
  });

  it('keeps values out of model errors: data exceptions are redacted, the cause carries no parameters', async () => {
    const model = `select 'jane.doe@example.com'::int as id, 'x' as email`;
    const error = await createStateStore(source, stateSchema, { logger: silentLogger })
      .prepareDiff(spec('redact', model, 'id', ['email']))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelSqlError);
    expect((error as Error).message).toMatch(/invalid input syntax for type integer/);
    expect(inspect(error, { depth: 5 })).not.toContain('jane.doe');
  });
});

/**
 * Compile tests: the exact Postgres text the shared statements take with the Postgres hooks. A
 * recording driver stands where node-postgres goes.
 */
describe('Postgres state and diff statements (src/diff over the Postgres hooks)', () => {
  interface Recorded {
    sql: string;
    parameters: readonly unknown[];
  }

  /** The diff's count of intents, members and members without a key hash, answered by each test as it needs. */
  const PEND_COUNT = /^select count\(\*\) as "n",[\s\S]* from "tailor_pend_abc123"$/;
  /** Whether a table of invalid keys (by digest, or by key hash) holds a row. */
  const ANY_INVALID =
    /^select count\(\*\) as "b" from \(select 1 as "one" from "tailor_(badh?_abc123"|snap_abc123" where "key_hash" is null) limit 1\) as "y"$/;
  /** How many key hashes two different keys share (hash mode, when some key is invalid). */
  const COLLISIONS = /^select count\(\*\) as "c" from/;

  /**
   * Answers the diff's probes: intents (`n`), members (`m`), members without a key hash (`u`: 1 is
   * digest mode), invalid keys (`b`) and shared key hashes (`c`).
   */
  const probes =
    (counts: { n?: string; m?: string; u?: string; b?: string; c?: string }) =>
    (text: string): Record<string, unknown>[] => {
      if (PEND_COUNT.test(text)) return [{ n: counts.n ?? '0', m: counts.m ?? '1', u: counts.u ?? '0' }];
      if (ANY_INVALID.test(text)) return [{ b: counts.b ?? '0' }];
      if (COLLISIONS.test(text)) return [{ c: counts.c ?? '0' }];
      return [];
    };

  function setup(
    answer: (sql: string) => Record<string, unknown>[] = () => [],
    options: { cachedStatePlans?: boolean } = {},
    logger: Logger = silentLogger,
  ) {
    const recorded: Recorded[] = [];
    const connection: DatabaseConnection = {
      async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
        const text = query.sql.replace(/\s+/g, ' ').trim();
        recorded.push({ sql: text, parameters: query.parameters });
        const rows = answer(text) as R[];
        return /^(insert|update|delete|merge)/i.test(text) ? { rows, numAffectedRows: 1n } : { rows };
      },
      // eslint-disable-next-line require-yield -- nothing to stream
      async *streamQuery() {
        return;
      },
    };
    const driver: Driver = {
      init: async () => {},
      acquireConnection: async () => connection,
      // As Kysely's PostgresDriver begins one, so a transaction's access mode is recorded.
      beginTransaction: async (c, { isolationLevel, accessMode }) => {
        const start = [
          'start transaction',
          isolationLevel && `isolation level ${isolationLevel}`,
          accessMode,
        ];
        const text = isolationLevel || accessMode ? start.filter(Boolean).join(' ') : 'begin';
        await c.executeQuery(CompiledQuery.raw(text));
      },
      commitTransaction: async (c) => void (await c.executeQuery(CompiledQuery.raw('commit'))),
      rollbackTransaction: async (c) => void (await c.executeQuery(CompiledQuery.raw('rollback'))),
      releaseConnection: async () => {},
      destroy: async () => {},
    };
    const db = new Kysely<unknown>({
      dialect: {
        createAdapter: () => new PostgresAdapter(),
        createDriver: () => driver,
        createIntrospector: (k) => new PostgresIntrospector(k),
        createQueryCompiler: () => new PostgresQueryCompiler(),
      },
    });
    const hooks = createPostgresHooks({
      stateSchema: 'tailor',
      openSession: async () => ({
        db,
        // The delta's read is recorded as the cursor would receive it; it yields no rows.
        // eslint-disable-next-line require-yield -- nothing to stream
        stream: async function* (query) {
          recorded.push({ sql: query.sql.replace(/\s+/g, ' ').trim(), parameters: query.parameters });
        },
        close: async () => {},
      }),
      fetchSize: 1000,
      lock: { kind: 'in_process', scope: 'compile-test' },
      logger: silentLogger,
      ...options,
    });
    const state = new StateSql({ stateSchema: 'tailor', db, hooks }, logger);
    return { recorded, state };
  }

  it('migrates a new schema: the tables, the indexes, the hash index of version 2, then versions 3 to 8', async () => {
    let reads = 0;
    const { recorded, state } = setup((text) => {
      if (!text.startsWith('select max')) return [];
      reads += 1;
      if (reads === 1) throw Object.assign(new Error('schema "tailor" does not exist'), { code: '3F000' });
      return [{ version: null }];
    });
    await state.migrate();
    expect(recorded.map((r) => r.sql)).toMatchSnapshot();
  });

  it('migrates a version-2 schema to 3 to 8 in its transaction: member_intents, keys digested and marked, state_identity, the intents index, runs.suppressed, the match rate columns, the key hash', async () => {
    const { recorded, state } = setup((text) => (text.startsWith('select max') ? [{ version: 2 }] : []));
    await state.migrate();
    expect(recorded.map((r) => r.sql)).toEqual([
      'select max("version") as "version" from "tailor"."tailor_migrations"',
      'begin',
      'select pg_advisory_xact_lock(hashtext($1))',
      'create schema if not exists "tailor"',
      'create table if not exists "tailor"."tailor_migrations" ("version" integer not null, "name" text not null, "applied_at" timestamptz not null, constraint "tailor_migrations_pkey" primary key ("version"))',
      'select max("version") as "version" from "tailor"."tailor_migrations"',
      'create table if not exists "tailor"."member_intents" ("activation_id" text not null, "member_key" text not null, "intent_id" text not null, "id_type" text not null, "hash" text not null, "recorded_at" timestamptz not null, "until" timestamptz not null)',
      ...['members', 'member_hashes', 'rejections'].flatMap((table) => [
        `alter table "tailor"."${table}" add column if not exists "key_digested" boolean`,
        `update "tailor"."${table}" set "member_key" = encode(sha256(convert_to("member_key", 'UTF8')), 'hex'), "key_digested" = true where "key_digested" is null`,
      ]),
      'insert into "tailor"."tailor_migrations" ("version", "name", "applied_at") select cast($1 as integer), cast($2 as text), current_timestamp from (select 1 as "one") as "x" where not exists (select 1 from "tailor"."tailor_migrations" where "version" = cast($3 as integer))',
      // Version 4: state_identity only; its one row is inserted when first read (StateSql.stateId).
      'create table if not exists "tailor"."state_identity" ("state_id" text not null, "created_at" timestamptz not null)',
      'insert into "tailor"."tailor_migrations" ("version", "name", "applied_at") select cast($1 as integer), cast($2 as text), current_timestamp from (select 1 as "one") as "x" where not exists (select 1 from "tailor"."tailor_migrations" where "version" = cast($3 as integer))',
      // Version 5: the index the commit's clearing of answered intents uses.
      'create index if not exists "member_intents_by_intent" on "tailor"."member_intents" (intent_id)',
      'insert into "tailor"."tailor_migrations" ("version", "name", "applied_at") select cast($1 as integer), cast($2 as text), current_timestamp from (select 1 as "one") as "x" where not exists (select 1 from "tailor"."tailor_migrations" where "version" = cast($3 as integer))',
      // Version 6: the suppressed count of the run log.
      'alter table "tailor"."runs" add column if not exists "suppressed" bigint',
      'insert into "tailor"."tailor_migrations" ("version", "name", "applied_at") select cast($1 as integer), cast($2 as text), current_timestamp from (select 1 as "one") as "x" where not exists (select 1 from "tailor"."tailor_migrations" where "version" = cast($3 as integer))',
      // Version 7: the match rate of the run log, one column a statement.
      'alter table "tailor"."runs" add column if not exists "audience_size" bigint',
      'alter table "tailor"."runs" add column if not exists "members_sent" bigint',
      'alter table "tailor"."runs" add column if not exists "audience_processed_at" timestamptz',
      'insert into "tailor"."tailor_migrations" ("version", "name", "applied_at") select cast($1 as integer), cast($2 as text), current_timestamp from (select 1 as "one") as "x" where not exists (select 1 from "tailor"."tailor_migrations" where "version" = cast($3 as integer))',
      // Version 8: the members' key hash, and the index of members without one.
      'alter table "tailor"."members" add column if not exists "key_hash" bigint',
      'create index if not exists "members_without_key_hash" on "tailor"."members" (activation_id) where key_hash is null',
      'insert into "tailor"."tailor_migrations" ("version", "name", "applied_at") select cast($1 as integer), cast($2 as text), current_timestamp from (select 1 as "one") as "x" where not exists (select 1 from "tailor"."tailor_migrations" where "version" = cast($3 as integer))',
      'commit',
    ]);
    expect(recorded.at(-15)!.parameters).toEqual([3, 'intents before send, and key digests', 3]);
    expect(recorded.at(-13)!.parameters).toEqual([4, 'state identity for audience owner marks', 4]);
    expect(recorded.at(-11)!.parameters).toEqual([5, 'index for clearing answered intents', 5]);
    expect(recorded.at(-9)!.parameters).toEqual([6, 'suppressed count in the run log', 6]);
    expect(recorded.at(-5)!.parameters).toEqual([7, 'match rate in the run log', 7]);
    expect(recorded.at(-2)!.parameters).toEqual([8, 'key hashes for the diff', 8]);
  });

  it('records the intent of a batch in one multi-row insert over unnest, one row per member with its hashes packed', async () => {
    const { recorded, state } = setup();
    await state.recordIntents(
      'vip_x',
      [
        {
          key: 'k1',
          hashes: [
            { idType: 'email', hash: 'h1' },
            { idType: 'phone_number', hash: 'p1' },
          ],
        },
        { key: 'k2', hashes: [{ idType: 'email', hash: 'h2' }] },
      ],
      { id: 'i1', at: new Date('2026-11-22T10:00:00Z'), until: new Date('2026-11-22T10:15:00Z') },
    );
    await state.recordIntents('vip_x', [{ key: 'k3', hashes: [] }], {
      id: 'i2',
      at: new Date(),
      until: new Date(),
    }); // nothing to record, nothing sent
    expect(recorded).toHaveLength(1);
    expect(recorded[0]!.sql).toBe(
      'insert into "tailor"."member_intents" ("activation_id", "member_key", "intent_id", "id_type", "hash", "recorded_at", "until") select cast($1 as text), "u"."member_key", cast($2 as text), cast($3 as text), "u"."hash", cast($4 as timestamptz), cast($5 as timestamptz) from unnest(string_to_array(cast($6 as text), chr(10)), string_to_array(cast($7 as text), chr(10))) as "u"("member_key", "hash")',
    );
    expect(recorded[0]!.parameters.slice(0, 3)).toEqual(['vip_x', 'i1', '*']);
    expect(recorded[0]!.parameters.slice(5)).toEqual(['k1\nk2', 'email:h1;phone_number:p1\nemail:h2']);
  });

  it('commits as a difference in one transaction: hash rows by key and by pair, members by upsert', async () => {
    const { recorded, state } = setup();
    await state.applyMemberChanges('vip_x', {
      upserts: [
        {
          key: '1',
          fingerprint: 'f1',
          hashes: [{ idType: 'email', hash: 'h2' }],
          previousHashes: [{ idType: 'email', hash: 'h1' }],
          lastSentAt: new Date('2026-11-22T10:00:00Z'),
        },
        { key: '2', fingerprint: 'f2', hashes: [{ idType: 'email', hash: 'h3' }], lastSentAt: null },
      ],
      removals: ['3'],
    });
    expect(recorded).toMatchSnapshot();
    // Without the intents they answer, an acknowledgement clears only its member's expired ones.
    expect(recorded.at(-2)!.sql).toBe(
      'delete from "tailor"."member_intents" where "activation_id" = cast($1 as text) and "member_key" = any(string_to_array(cast($2 as text), chr(10))) and ("until" <= current_timestamp)',
    );
  });

  it('names each statement of a commit, with its duration, in a `commit step` debug line', async () => {
    const lines: string[] = [];
    const debug = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const { recorded, state } = setup(undefined, {}, debug);
    await state.applyMemberChanges('vip_x', {
      upserts: [
        {
          key: '1',
          fingerprint: 'f1',
          hashes: [{ idType: 'email', hash: 'h2' }],
          previousHashes: [{ idType: 'email', hash: 'h1' }],
          lastSentAt: null,
        },
        {
          key: '2',
          fingerprint: 'f2',
          hashes: [{ idType: 'email', hash: 'h3' }],
          previousHashes: [],
          lastSentAt: null,
        },
      ],
      removals: ['3'],
      intentIds: ['i1'],
    });
    const steps = lines
      .map((line) => JSON.parse(line) as { msg: string; step?: string; ms?: number })
      .filter((entry) => entry.msg === 'commit step');
    expect(steps.map((entry) => entry.step)).toEqual([
      'new members',
      'hash rows deleted by member',
      'hash rows deleted by pair',
      'hash rows inserted',
      'members removed',
      'members written',
      'intents cleared',
    ]);
    for (const entry of steps) expect(entry.ms).toBeGreaterThanOrEqual(0);
    // One line per statement the commit ran, besides its transaction's and savepoint's own.
    const statements = recorded.filter((r) => /^(insert|delete)/.test(r.sql));
    expect(statements).toHaveLength(steps.length);
  });

  it('on a server, plans a commit that deletes removed members for a state kept in memory, by a setting local to its transaction', async () => {
    const changes = {
      upserts: [{ key: '1', fingerprint: 'f1', hashes: [], lastSentAt: null }],
      removals: ['3'],
    };
    const server = setup(undefined, { cachedStatePlans: true });
    await server.state.applyMemberChanges('vip_x', changes);
    expect(server.recorded.slice(0, 2).map((r) => r.sql)).toEqual([
      'begin',
      'set local random_page_cost = 1.1',
    ]);
    expect(server.recorded.at(-1)!.sql).toBe('commit');
    // A commit without removals keeps the server's own costs (its pair delete plans better with them).
    server.recorded.length = 0;
    await server.state.applyMemberChanges('vip_x', { ...changes, removals: [] });
    expect(server.recorded.some((r) => r.sql.startsWith('set local'))).toBe(false);
    // PGlite's planner has no statistics to weigh it by: nothing set there.
    const embedded = setup();
    await embedded.state.applyMemberChanges('vip_x', changes);
    expect(embedded.recorded.some((r) => r.sql.startsWith('set local'))).toBe(false);
  });

  it("clears, last in the commit's transaction, the intents the acknowledgements answer and expired ones", async () => {
    const { recorded, state } = setup();
    await state.applyMemberChanges('vip_x', {
      upserts: [{ key: '1', fingerprint: 'f1', hashes: [], lastSentAt: null }],
      removals: ['3'],
      intentIds: ['i1', 'i2'],
    });
    expect(recorded.map((r) => r.sql.split(' ').slice(0, 3).join(' '))).toEqual([
      'begin',
      'delete from "tailor"."member_hashes"',
      'delete from "tailor"."members"',
      'insert into "tailor"."members"',
      'delete from "tailor"."member_intents"',
      'commit',
    ]);
    expect(recorded.at(-2)).toEqual({
      sql: 'delete from "tailor"."member_intents" where "activation_id" = cast($1 as text) and "member_key" = any(string_to_array(cast($2 as text), chr(10))) and ("intent_id" = any(string_to_array(cast($3 as text), chr(10))) or "until" <= current_timestamp)',
      parameters: ['vip_x', '1\n3', 'i1\ni2'],
    });
  });

  it('without older intents, clears only the answered ones by id, and nothing for a batch that sent nothing', async () => {
    const { recorded, state } = setup();
    await state.applyMemberChanges('vip_x', {
      upserts: [{ key: '1', fingerprint: 'f1', hashes: [], lastSentAt: null }],
      removals: [],
      olderIntents: false,
      intentKeys: [],
    });
    expect(recorded.some((r) => r.sql.includes('member_intents'))).toBe(false);
    recorded.length = 0;
    await state.applyMemberChanges('vip_x', {
      upserts: [{ key: '1', fingerprint: 'f1', hashes: [], lastSentAt: null }],
      removals: ['3'],
      intentIds: ['i1'],
      olderIntents: false,
      intentKeys: ['3'],
    });
    expect(recorded.at(-2)).toEqual({
      sql: 'delete from "tailor"."member_intents" where "activation_id" = cast($1 as text) and "member_key" = any(string_to_array(cast($2 as text), chr(10))) and "intent_id" = any(string_to_array(cast($3 as text), chr(10)))',
      parameters: ['vip_x', '3', 'i1'],
    });
    /** The statement that clears intents i1 and i2, when `whole` are acknowledged whole. */
    const clearing = async (whole: string[]) => {
      recorded.length = 0;
      await state.applyMemberChanges('vip_x', {
        upserts: [{ key: '1', fingerprint: 'f1', hashes: [], lastSentAt: null }],
        removals: ['3'],
        intentIds: ['i1', 'i2'],
        olderIntents: false,
        intentKeys: ['1', '3'],
        wholeIntents: new Set(whole),
      });
      return recorded.at(-2)!;
    };
    // Every answered intent acknowledged whole (the caller recorded its members): by id alone.
    expect(await clearing(['i1', 'i2'])).toEqual({
      sql: 'delete from "tailor"."member_intents" where "activation_id" = cast($1 as text) and "intent_id" = any(string_to_array(cast($2 as text), chr(10)))',
      parameters: ['vip_x', 'i1\ni2'],
    });
    // One of them not whole: by key, as before.
    expect((await clearing(['i1'])).sql).toContain('"member_key" = any(');
  });

  it('snapshots with an INSERT whose row count spares a count over the snapshot', async () => {
    // An activation with members (the pend count's `m`), one without a key hash (`u`: digest mode),
    // and an invalid key (`b`): the diff compares the valid rows with state by digest.
    const { recorded, state } = setup(probes({ u: '1', b: '1' }));
    const diff = await openDiff(
      state,
      vipDiff({ refreshBefore: new Date('2025-12-22T00:00:00Z') }),
      silentLogger,
    );
    await diff.close();
    expect(recorded.map((r) => r.sql)).toMatchSnapshot();
    // The table is created empty outside (CREATE is refused read-only); only the INSERT that reads
    // the model runs in the read-only transaction.
    expect(recorded.slice(2, 6).map((r) => r.sql.split(' ').slice(0, 3).join(' '))).toEqual([
      'create temp table',
      'start transaction read',
      'insert into "tailor_snap_abc123"',
      'commit',
    ]);
    // The model wrapped as `(<sql>\n)`, its newline recorded as a space.
    expect(recorded[4]!.sql).toContain('from (select id, email from customers ) as m');
    expect(recorded.find((r) => r.sql.startsWith('select 1 as'))!.sql).not.toContain(
      'count(*) from "tailor_snap',
    );
  });

  it('compares by key hash when every member has one: only added keys digested, invalid keys by hash, then by key', async () => {
    // Members, every one with a key hash, no intents; a duplicated key (the unique index fails), no
    // two keys sharing a hash.
    const answer = probes({ b: '1' });
    const { recorded, state } = setup((text) => {
      if (text.startsWith('create unique index'))
        throw Object.assign(new Error('could not create unique index'), { code: '23505' });
      return answer(text);
    });
    const diff = await openDiff(
      state,
      vipDiff({ refreshBefore: new Date('2025-12-22T00:00:00Z') }),
      silentLogger,
    );
    expect(diff.keysCompared).toBe('hash');
    for await (const batch of diff.delta(10)) expect(batch).toEqual([]);
    // Every member had a key hash, and each added one is written with its own: nothing to give.
    await diff.settleKeyHashes();
    await diff.close();
    const sqls = recorded.map((r) => r.sql);
    expect(sqls).toMatchSnapshot();
    const snapshot = sqls.find((t) => t.startsWith('insert into "tailor_snap_abc123"'))!;
    expect(snapshot).toContain(
      'select "m"."id" as "key_value", hashtextextended(cast("m"."id" as text), 0) as "key_hash",',
    );
    expect(snapshot).not.toContain('sha256');
    const comparison = sqls.find((t) => t.startsWith('create temp table "tailor_delta_abc123"'))!;
    expect(comparison).toContain(
      'case when "t"."key_hash" is null then encode(sha256(convert_to(cast("s"."key_value" as text), \'UTF8\')), \'hex\') else "t"."member_key" end as "member_key"',
    );
    expect(comparison).toContain('on "s"."key_hash" = "t"."key_hash"');
    expect(sqls.some((t) => t.startsWith('update'))).toBe(false);
  });

  it('compares by digest when two keys share a key hash, and gives members their key hashes after the commits', async () => {
    // An added member (the counts' `added`): after the commits, it has no key hash yet.
    const answer = probes({ b: '1', c: '1' });
    const { recorded, state } = setup((text) =>
      text.startsWith('select 1 as "row_count"') ? [{ added: '1' }] : answer(text),
    );
    const diff = await openDiff(state, vipDiff(), silentLogger);
    expect(diff.keysCompared).toBe('digest');
    const sqls = recorded.map((r) => r.sql);
    // The snapshot by key hash, its invalid keys by hash and by key, then again with digests.
    expect(
      sqls.filter((t) => /^(insert into|drop table)/.test(t)).map((t) => t.split(' ').slice(0, 5).join(' ')),
    ).toEqual([
      'insert into "tailor_snap_abc123" select "m"."id"',
      'drop table if exists "tailor_bad_abc123"',
      'drop table if exists "tailor_badh_abc123"',
      'drop table if exists "tailor_snap_abc123"',
      'insert into "tailor_snap_abc123" select encode(sha256(convert_to(cast("m"."id"',
    ]);
    recorded.length = 0;
    await diff.settleKeyHashes();
    await diff.close();
    expect(recorded[0]!.sql).toBe(
      'update "tailor"."members" set "key_hash" = "u"."key_hash" from (select "s"."member_key", "s"."key_hash" from "tailor_snap_abc123" as "s" where "s"."key_hash" in (select "c"."key_hash" from "tailor_snap_abc123" as "c" group by "c"."key_hash" having count(*) = 1) and not exists (select 1 from "tailor"."members" as "o" where "o"."activation_id" = \'vip_x\' and "o"."key_hash" = "s"."key_hash")) as "u" where "members"."activation_id" = \'vip_x\' and "members"."member_key" = "u"."member_key" and "members"."key_hash" is null',
    );
  });

  it('compares nothing on a first load: no delta table, the counts and the delta read from the snapshot', async () => {
    // No member and no intent for the activation (the pend count's `n` and `m`): by key hash, and
    // two invalid keys, no two keys sharing a hash.
    const answer = probes({ m: '0', b: '1' });
    const { recorded, state } = setup((text) =>
      text.startsWith('select 1 as "row_count"') ? [{ row_count: '5', invalid: '2' }] : answer(text),
    );
    const diff = await openDiff(state, vipDiff(), silentLogger);
    expect(diff.counts).toEqual({
      rows: 5,
      invalidKeys: 2,
      added: 3,
      removed: 0,
      changed: 0,
      refresh: 0,
      stateMembers: 0,
    });
    for await (const batch of diff.delta(10)) expect(batch).toEqual([]);
    await diff.close();
    const sqls = recorded.map((r) => r.sql);
    expect(sqls.some((t) => t.includes('tailor_delta_abc123'))).toBe(false);
    // The row count is the snapshot INSERT's (1 in this recording); the invalid keys' from their table.
    expect(sqls).toContain(
      'select 1 as "row_count", (select coalesce(sum("n"), 0) from "tailor_badh_abc123") as "invalid" from (select 1 as "one") as "x"',
    );
    // Every valid snapshot row, added, each key digested once (the sort is by that output column),
    // with its key hash: no stored hashes to look up, no intents.
    expect(sqls.find((t) => t.startsWith('select 3 as'))).toBe(
      'select 3 as "change_rank", encode(sha256(convert_to(cast("s"."key_value" as text), \'UTF8\')), \'hex\') collate "C" as "member_key", cast("s"."key_hash" as text) as "key_hash", "s"."fingerprint", "s"."v_0" from "tailor_snap_abc123" as "s" where "s"."key_hash" is not null and not exists (select 1 from "tailor_badh_abc123" as "b" where "b"."key_hash" = "s"."key_hash") order by "member_key"',
    );
    expect(sqls.slice(-4)).toEqual([
      'drop table if exists "tailor_bad_abc123"',
      'drop table if exists "tailor_badh_abc123"',
      'drop table if exists "tailor_snap_abc123"',
      'drop table if exists "tailor_pend_abc123"',
    ]);
  });

  it('leaves out the invalid-key anti-join when no key is invalid, and reads the delta sorted before its lookups', async () => {
    /** The statements of a diff whose probes answer `counts`, its delta read to the end. */
    const diffed = async (counts: Parameters<typeof probes>[0]) => {
      const { recorded, state } = setup(probes(counts));
      const diff = await openDiff(state, vipDiff(), silentLogger);
      for await (const batch of diff.delta(10)) expect(batch).toEqual([]);
      await diff.close();
      return recorded.map((r) => r.sql);
    };
    // No row in tailor_bad (no null or duplicated key); by digest (a member without a key hash).
    const sqls = await diffed({ u: '1' });
    const comparison = sqls.find((t) => t.startsWith('create temp table "tailor_delta_abc123"'))!;
    expect(comparison).toContain(
      'from (select * from "tailor_snap_abc123" as "s0" where "s0"."member_key" is not null) as "s" full outer join',
    );
    expect(comparison).not.toContain('tailor_bad_abc123');
    // Each member's stored hashes looked up over the sorted delta, so a cursor's first rows wait
    // only for their own lookups; the outer order by is the subquery's, sorted once.
    const read = sqls.find((t) => t.includes('as "previous_hashes"'))!;
    expect(read).toContain(
      'from (select * from "tailor_delta_abc123" order by "change_rank", "member_key" collate "C") as "d"',
    );
    expect(read.endsWith('order by "d"."change_rank", "d"."member_key" collate "C"')).toBe(true);

    // By key hash, the same; and a unique index on the key hash, with no null through it, stands for
    // the grouping: no table of invalid keys at all.
    const hashed = await diffed({});
    const byHash = hashed.find((t) => t.startsWith('create temp table "tailor_delta_abc123"'))!;
    expect(byHash).toContain(
      'from (select * from "tailor_snap_abc123" as "s0" where "s0"."key_hash" is not null) as "s" full outer join',
    );
    expect(byHash).not.toContain('tailor_bad');
    expect(hashed).toContain('create unique index on "tailor_snap_abc123" ("key_hash")');
    expect(hashed).toContain(
      'select count(*) as "b" from (select 1 as "one" from "tailor_snap_abc123" where "key_hash" is null limit 1) as "y"',
    );
    expect(hashed.some((t) => t.includes('tailor_badh'))).toBe(false);
    // A first load without an invalid key reads the snapshot without the anti-join either.
    const first = await diffed({ m: '0' });
    expect(first.find((t) => t.startsWith('select 3 as'))).toBe(
      'select 3 as "change_rank", encode(sha256(convert_to(cast("s"."key_value" as text), \'UTF8\')), \'hex\') collate "C" as "member_key", cast("s"."key_hash" as text) as "key_hash", "s"."fingerprint", "s"."v_0" from "tailor_snap_abc123" as "s" where "s"."key_hash" is not null order by "member_key"',
    );
  });

  it("diffs against intents when members have some: the union state side and the intents' hashes", async () => {
    const { recorded, state } = setup(probes({ n: '2' }));
    const diff = await openDiff(state, vipDiff(), silentLogger);
    for await (const batch of diff.delta(10)) expect(batch).toEqual([]);
    await diff.close();
    expect(recorded.map((r) => r.sql)).toMatchSnapshot();
    const sqls = recorded.map((r) => r.sql);
    expect(sqls).toContain(
      'create temp table "tailor_pend_abc123" as select distinct "member_key" from "tailor"."member_intents" where "activation_id" = \'vip_x\'',
    );
    const delta = sqls.find((t) => t.startsWith('create temp table "tailor_delta'))!;
    expect(delta).toContain(
      'full outer join (select "sm"."member_key", "sm"."fingerprint", "sm"."last_sent_at", case when "sp"."member_key" is null then 0 else 1 end as "pending" from "tailor"."members" as "sm" left join "tailor_pend_abc123" as "sp" on "sp"."member_key" = "sm"."member_key" where "sm"."activation_id" = \'vip_x\' union all select "sp"."member_key", cast(null as text), cast(null as timestamptz), 1 from "tailor_pend_abc123" as "sp" where not exists (select 1 from "tailor"."members" as "sm" where "sm"."activation_id" = \'vip_x\' and "sm"."member_key" = "sp"."member_key")) as "t"',
    );
    // The read: stored hashes for all but added members (a correlated lookup through the member
    // index), intents' hashes for every member (grouped once and joined: member_intents has no index).
    const read = recorded.find((r) => r.sql.startsWith('with "p" as (select "i"."member_key"'))!;
    expect(read.sql).toContain(
      'from "tailor"."member_intents" as i where "i"."activation_id" = $1 and "i"."member_key" in (select "member_key" from "tailor_delta_abc123") group by "i"."member_key")',
    );
    expect(read.sql).toContain(
      'coalesce("p"."hashes", \'[]\'::json) as "pending_hashes" from (select * from "tailor_delta_abc123" order by "change_rank", "member_key" collate "C") as "d" left join "p" on "p"."member_key" = "d"."member_key"',
    );
    expect(read.parameters).toEqual(['vip_x', 'vip_x']);
  });
});
