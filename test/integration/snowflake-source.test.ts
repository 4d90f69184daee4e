import { createPublicKey, createVerify, generateKeyPairSync } from 'node:crypto';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuthError, ModelSqlError, WarehouseError } from '../../src/errors.js';
import { redactSnowflakeMessage } from '../../src/sources/snowflake/snowflake-executor.js';
import { snowflakeConfigSchema } from '../../src/sources/snowflake/snowflake-config.js';
import {
  openSnowflakeSource,
  SESSION_SETTINGS,
  type SnowflakeSource,
} from '../../src/sources/snowflake/snowflake-source.js';
import {
  FakeSnowflake,
  type FakeColumnType,
  type FakeSnowflakeStatement,
  watchConnections,
} from '../helpers/fake-snowflake.js';
import { createStateStore } from '../../src/diff/state-store.js';
import { silentLogger } from '../helpers/warehouse.js';
import { runCountsOf } from '../helpers/counts.js';

/**
 * The real snowflake-sdk against a local fake of Snowflake's REST endpoints (login, query,
 * telemetry, logout): proves the statements and binds a full run sends without reaching Snowflake.
 */

const logger = pino({ level: 'silent' });

function head(sql: string): string {
  return sql
    .replace(/\s+/g, ' ')
    .replace(/_[0-9A-F]{16}"/g, '_<TOKEN>"')
    .trim()
    .slice(0, 72);
}

function config(url: string, auth: Record<string, string>) {
  return snowflakeConfigSchema.parse({
    type: 'snowflake',
    account: 'acme-prod',
    username: 'TAILOR_SVC',
    role: 'TAILOR_ROLE',
    warehouse: 'TAILOR_WH',
    database: 'ANALYTICS',
    schema: 'MARTS',
    access_url: url,
    ...auth,
  });
}

/**
 * The diff's count of members with intents (`N`), which also says whether the activation has any
 * member (`M`; none is a first load, which compares nothing) and whether one lacks a key hash (`U`;
 * then, or with intents, the segment is compared with state by key digest, else by key hash).
 */
const PEND_COUNT =
  /^select count\(\*\) as "N",\s+\(select count\(\*\) from \(select 1 as "ONE" from "TAILOR"."MEMBERS"/;
const pendCount = (n: number, m: number, u: number) => ({
  columns: [
    { name: 'N', type: 'fixed' as const },
    { name: 'M', type: 'fixed' as const },
    { name: 'U', type: 'fixed' as const },
  ],
  rows: [[String(n), String(m), String(u)]],
});
/** Whether the snapshot has a null or duplicated key (`B`), asked of the table of them on its own. */
const ANY_INVALID = /^select count\(\*\) as "B" from \(select 1 as "ONE" from "TAILOR"."TAILOR_BADH?_/;
const anyInvalid = (b: number) => ({ columns: [{ name: 'B', type: 'fixed' as const }], rows: [[String(b)]] });

describe('Snowflake source over snowflake-sdk and a local REST fake', () => {
  let fake: FakeSnowflake;
  let source: SnowflakeSource | undefined;
  let connections: ReturnType<typeof watchConnections>;

  beforeEach(async () => {
    connections = watchConnections();
    fake = await FakeSnowflake.start();
  });

  afterEach(async () => {
    await source?.close();
    source = undefined;
    await fake.close();
    connections.stop();
    // snowflake-sdk reached nothing but the fake: no OCSP responder, no telemetry elsewhere.
    expect(new Set(connections.hosts)).toEqual(new Set(['127.0.0.1']));
  });

  it('logs in with a key-pair JWT signed by the configured private key, then logs out', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    fake.on(/^SELECT 1 AS ok$/, { columns: [{ name: 'OK', type: 'fixed' }], rows: [['1']] });
    source = await openSnowflakeSource(config(fake.url, { private_key: privateKey }), {
      projectDir: '/tmp',
      logger,
    });
    expect(fake.requests).toHaveLength(0); // lazy: nothing until the first statement
    await source.check();
    await source.close();

    const login = fake.requests.find((r) => r.path === '/session/v1/login-request')!;
    expect(login.query).toMatchObject({
      warehouse: 'TAILOR_WH',
      databaseName: 'ANALYTICS',
      schemaName: 'MARTS',
      roleName: 'TAILOR_ROLE',
    });
    expect(fake.login).toMatchObject({
      ACCOUNT_NAME: 'acme-prod',
      LOGIN_NAME: 'TAILOR_SVC',
      AUTHENTICATOR: 'SNOWFLAKE_JWT',
    });
    expect(fake.login).not.toHaveProperty('PASSWORD');
    const token = String(fake.login!.TOKEN);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const verify = createVerify('RSA-SHA256');
    verify.update(`${header}.${payload}`);
    expect(verify.verify(createPublicKey(publicKey), Buffer.from(signature, 'base64url'))).toBe(true);
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub: string };
    expect(claims.sub).toBe('ACME-PROD.TAILOR_SVC');

    expect(fake.calls().filter((c) => !c.includes('/telemetry/'))).toEqual([
      'POST /session/v1/login-request',
      'POST /queries/v1/query-request',
      'POST /queries/v1/query-request',
      'POST /session',
    ]);
    expect(fake.requests.at(-1)!.query.delete).toBe('true');
    // The session's formats and time zone are fixed first, so keys and fingerprints render stably.
    expect(fake.statements.map((st) => st.sql)).toEqual([SESSION_SETTINGS, 'SELECT 1 AS ok']);
    expect(SESSION_SETTINGS).toContain("TIMEZONE = 'UTC'");
  });

  it('logs in with a password when no key is configured', async () => {
    fake.on(/^SELECT 1 AS ok$/, { columns: [{ name: 'OK', type: 'fixed' }], rows: [['1']] });
    source = await openSnowflakeSource(config(fake.url, { password: 's3cret' }), {
      projectDir: '/tmp',
      logger,
    });
    await source.check();
    expect(fake.login).toMatchObject({ AUTHENTICATOR: 'SNOWFLAKE', PASSWORD: 's3cret' });
  });

  it('describes a model by its columns, folded back to the names the config uses', async () => {
    fake.on(/LIMIT 0$/, {
      columns: [
        { name: 'CUSTOMER_ID', type: 'fixed' },
        { name: 'EMAIL', type: 'text' },
        { name: 'Mixed Case', type: 'text' },
      ],
      rows: [],
    });
    fake.on(/no_such_table/, {
      error: {
        code: '002003',
        sqlState: '42S02',
        message: "Object 'NO_SUCH_TABLE' does not exist or not authorized.",
      },
    });
    source = await openSnowflakeSource(config(fake.url, { password: 'pw' }), { projectDir: '/tmp', logger });
    await expect(source.describeModel('vip', 'select customer_id, email from customers')).resolves.toEqual([
      { name: 'customer_id', type: 'fixed' },
      { name: 'email', type: 'text' },
      { name: 'Mixed Case', type: 'text' },
    ]);
    const error = await source.describeModel('vip', 'select * from no_such_table').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelSqlError);
  });

  it('runs a whole sync cycle with the exact statements and binds', async () => {
    let holder: unknown;
    fake.on(/^merge into "TAILOR"."LOCKS"/, (s: FakeSnowflakeStatement) => {
      holder = s.binds[1]!.value;
      return { affected: 1 };
    });
    fake.on(/^select "HOLDER"/, () => ({
      columns: [{ name: 'HOLDER', type: 'text' }],
      rows: [[String(holder)]],
    }));
    fake.on(/^select max\("VERSION"\)/, {
      error: {
        code: '002003',
        sqlState: '42S02',
        message: "Table 'TAILOR_MIGRATIONS' does not exist or not authorized.",
      },
    });
    // No member has an intent, and the activation has members, one without a key hash: the plain
    // comparison by key digest, and no read of the intents' hashes. No key is invalid (`B`).
    fake.on(PEND_COUNT, pendCount(0, 1, 1));
    fake.on(ANY_INVALID, anyInvalid(0));
    fake.on(/^select\s+\(select count\(\*\) from "TAILOR"."TAILOR_SNAP_/, {
      columns: ['ROW_COUNT', 'INVALID', 'REMOVED', 'CHANGED', 'REFRESH', 'ADDED'].map((name) => ({
        name,
        type: 'fixed' as const,
      })),
      rows: [['4', '0', '1', '1', '0', '1']],
    });
    fake.on(/^with "H" AS/, {
      columns: [...DELTA_COLUMNS, { name: 'PENDING_HASHES', type: 'text' }],
      rows: [
        ['0', '7', null, null, null, JSON.stringify([['email', 'a'.repeat(64)]]), null],
        ['1', '8', null, 'f8', 'new@example.com', JSON.stringify([['email', 'b'.repeat(64)]]), null],
        ['3', '10', null, 'f10', 'ten@example.com', null, null],
      ],
    });

    source = await openSnowflakeSource(config(fake.url, { password: 'pw' }), { projectDir: '/tmp', logger });
    const state = createStateStore(source, 'tailor', { logger: silentLogger });
    const lock = await state.lock('vip_x', { wait: false });
    const runId = await state.startRun('vip_x', new Date('2026-11-22T12:00:00Z'));
    const diff = await state.prepareDiff({
      activationId: 'vip_x',
      modelSql: 'select customer_id, email from customers',
      modelName: 'vip',
      primaryKey: 'customer_id',
      columns: ['email'],
      refreshBefore: new Date('2025-12-22T00:00:00Z'),
      fullResync: false,
    });
    expect(diff.keysCompared).toBe('digest');
    expect(diff.counts).toEqual({
      rows: 4,
      invalidKeys: 0,
      // Derived from the counts: 4 valid rows, 1 of them added, plus 1 removed.
      stateMembers: 4,
      removed: 1,
      changed: 1,
      refresh: 0,
      added: 1,
    });
    const batches = [];
    for await (const batch of diff.delta(2)) batches.push(batch);
    expect(batches.map((b) => b.length)).toEqual([2, 1]);
    // By key digest: no row carries a key hash (the diff gives members theirs after the commits).
    expect(batches.flat()).toEqual([
      {
        key: '7',
        keyHash: null,
        change: 'removed',
        values: null,
        fingerprint: null,
        previousHashes: { email: ['a'.repeat(64)] },
        pendingHashes: null,
      },
      {
        key: '8',
        keyHash: null,
        change: 'changed',
        values: { email: 'new@example.com' },
        fingerprint: 'f8',
        previousHashes: { email: ['b'.repeat(64)] },
        pendingHashes: null,
      },
      {
        key: '10',
        keyHash: null,
        change: 'added',
        values: { email: 'ten@example.com' },
        fingerprint: 'f10',
        previousHashes: null,
        pendingHashes: null,
      },
    ]);
    // Intent before send: the batch's hashes recorded in one insert, then the acks name the intent.
    const intent = {
      id: 'run1:1',
      at: new Date('2026-11-22T12:00:30Z'),
      until: new Date('2026-11-22T12:15:30Z'),
    };
    await diff.recordIntent(
      [
        { key: '7', hashes: { email: ['a'.repeat(64)] } },
        { key: '8', hashes: { email: ['b'.repeat(64), 'c'.repeat(64)] } },
        { key: '10', hashes: { email: ['d'.repeat(64)], phone_number: ['e'.repeat(64)] } },
      ],
      intent,
    );
    const sentAt = new Date('2026-11-22T12:01:00Z');
    await diff.commit([
      { key: '7', change: 'removed', fingerprint: null, hashes: null, sentAt: null, intentId: intent.id },
      {
        key: '8',
        change: 'changed',
        fingerprint: 'f8',
        hashes: { email: ['c'.repeat(64)] },
        sentAt,
        intentId: intent.id,
      },
      {
        key: '10',
        change: 'added',
        fingerprint: 'f10',
        hashes: { email: ['d'.repeat(64)], phone_number: ['e'.repeat(64)] },
        sentAt,
        intentId: intent.id,
      },
    ]);
    // After the run's commits, as the engine does: members compared by digest get their key hashes.
    await diff.settleKeyHashes();
    await diff[Symbol.asyncDispose]();
    await state.finishRun(runId, {
      status: 'succeeded',
      counts: runCountsOf({ rows: 4, added: 1, removed: 1, changed: 1, requests: 2 }),
      error: null,
      finishedAt: new Date('2026-11-22T12:02:00Z'),
    });
    await lock.release();
    await source.close();

    expect(fake.statements[0]!.sql).toBe(SESSION_SETTINGS);
    expect(fake.statements.slice(1).map((s) => head(s.sql))).toEqual(EXPECTED_RUN);
    const byStart = (prefix: string) => fake.statements.find((s) => s.sql.startsWith(prefix))!;

    // Identifiers: quoted in Snowflake's stored upper case, so the model's unquoted columns match.
    const snapshot = byStart('CREATE TEMPORARY TABLE "TAILOR"."TAILOR_SNAP_');
    // The key in state is the SHA-256 hex of the key's text (SHA2 hashes the UTF-8 bytes); by key
    // digest (a member lacked a key hash), with each key's hash beside it (null for a null key).
    expect(snapshot.sql).toContain(
      `SHA2(TO_VARCHAR("M"."CUSTOMER_ID"), 256) as "MEMBER_KEY", MD5_NUMBER_LOWER64(TO_VARCHAR("M"."CUSTOMER_ID")) as "KEY_HASH"`,
    );
    expect(snapshot.sql).toContain(`MD5(TO_JSON(OBJECT_CONSTRUCT_KEEP_NULL('v_0', "M"."EMAIL")))`);
    // The model is wrapped as `(<sql>\n)`, and its statement allows no second one.
    expect(snapshot.sql).toContain('from (select customer_id, email from customers\n) as m');
    expect(snapshot.parameters).toMatchObject({ MULTI_STATEMENT_COUNT: 1 });
    expect(snapshot.binds).toEqual([]);
    const delta = byStart('CREATE TEMPORARY TABLE "TAILOR"."TAILOR_DELTA_');
    expect(delta.sql).toContain(`"ACTIVATION_ID" = 'vip_x'`);
    expect(delta.sql).toContain(`< TO_TIMESTAMP_TZ('2025-12-22T00:00:00.000Z')`);

    // The intent, before the commit: one insert of a row per member (its hashes packed) over a bound
    // VALUES list, its stamp bound as ISO text for TO_TIMESTAMP_TZ.
    const intentInsert = byStart('insert into "TAILOR"."MEMBER_INTENTS"');
    expect(intentInsert.sql.replace(/\s+/g, ' ')).toBe(
      'insert into "TAILOR"."MEMBER_INTENTS" ("ACTIVATION_ID", "MEMBER_KEY", "INTENT_ID", "ID_TYPE", "HASH", "RECORDED_AT", "UNTIL") select ?, "U"."MEMBER_KEY", ?, ?, "U"."HASH", TO_TIMESTAMP_TZ(?), TO_TIMESTAMP_TZ(?) from (SELECT "MEMBER_KEY", "HASH" FROM (VALUES (?, ?), (?, ?), (?, ?)) AS v ("MEMBER_KEY", "HASH")) AS "U"',
    );
    const h = (c: string) => c.repeat(64);
    expect(intentInsert.binds.map((b) => b.value)).toEqual([
      'vip_x',
      'run1:1',
      '*',
      '2026-11-22T12:00:30.000Z',
      '2026-11-22T12:15:30.000Z',
      ...['7', `email:${h('a')}`],
      ...['8', `email:${h('b')};email:${h('c')}`],
      ...['10', `email:${h('d')};phone_number:${h('e')}`],
    ]);

    // The commit: one transaction, multi-row statements over bound VALUES lists: the hash rows of
    // members given without previous hashes deleted by key, the new hash rows, then the members,
    // then the acknowledged members' answered intent.
    const commitStart = fake.statements.findIndex((s) => s.sql === 'BEGIN TRANSACTION');
    const commit = fake.statements.slice(commitStart, commitStart + 6);
    expect(commit.map((s) => head(s.sql))).toEqual(EXPECTED_RUN.slice(commitStart - 1, commitStart + 5));
    expect(commit[0]!.sql).toBe('BEGIN TRANSACTION');
    expect(commit[5]!.sql).toBe('COMMIT');
    // Every member the intent recorded is acknowledged, in one chunk: cleared by its id alone.
    expect(commit[4]!.sql.replace(/\s+/g, ' ')).toBe(
      'delete from "TAILOR"."MEMBER_INTENTS" where "ACTIVATION_ID" = ? and "INTENT_ID" IN (?)',
    );
    expect(commit[4]!.binds.map((b) => b.value)).toEqual(['vip_x', 'run1:1']);
    expect(commit[1]!.binds.map((b) => b.value)).toEqual(['vip_x', '7', '8', '10']);
    // Each member's row ends with its key hash: null here, the acks carrying none (by digest).
    expect(commit[3]!.sql).toContain('FROM (VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?), (?, ?, ?, ?, ?))');
    expect(commit[3]!.binds).toEqual([
      { type: 'TEXT', value: '8' },
      { type: 'TEXT', value: 'f8' },
      { type: 'TEXT', value: '2026-11-22T12:01:00.000Z' },
      { type: 'BOOLEAN', value: 'false' },
      { type: 'TEXT', value: null },
      { type: 'TEXT', value: '10' },
      { type: 'TEXT', value: 'f10' },
      { type: 'TEXT', value: '2026-11-22T12:01:00.000Z' },
      { type: 'BOOLEAN', value: 'false' },
      { type: 'TEXT', value: null },
      { type: 'TEXT', value: '7' },
      { type: 'TEXT', value: null },
      { type: 'TEXT', value: null },
      { type: 'BOOLEAN', value: 'true' },
      { type: 'TEXT', value: null },
      { type: 'TEXT', value: 'vip_x' },
      { type: 'TEXT', value: 'vip_x' },
    ]);
    // The key hashes given after the commit's transaction: one UPDATE, literals only.
    const settle = byStart('update "TAILOR"."MEMBERS" set "KEY_HASH"');
    expect(settle.sql.replace(/\s+/g, ' ').replace(/_[0-9A-F]{16}"/g, '_<TOKEN>"')).toBe(
      `update "TAILOR"."MEMBERS" set "KEY_HASH" = "U"."KEY_HASH" from (select "S"."MEMBER_KEY", "S"."KEY_HASH" from "TAILOR"."TAILOR_SNAP_<TOKEN>" as "S" where "S"."KEY_HASH" in (select "C"."KEY_HASH" from "TAILOR"."TAILOR_SNAP_<TOKEN>" as "C" group by "C"."KEY_HASH" having count(*) = 1) and not exists (select 1 from "TAILOR"."MEMBERS" as "O" where "O"."ACTIVATION_ID" = 'vip_x' and "O"."KEY_HASH" = "S"."KEY_HASH")) as "U" where "MEMBERS"."ACTIVATION_ID" = 'vip_x' and "MEMBERS"."MEMBER_KEY" = "U"."MEMBER_KEY" and "MEMBERS"."KEY_HASH" is null`,
    );
    expect(settle.binds).toEqual([]);
    expect(commit[2]!.binds.map((b) => b.value)).toEqual([
      'vip_x',
      '8',
      'email',
      'c'.repeat(64),
      '10',
      'email',
      'd'.repeat(64),
      '10',
      'phone_number',
      'e'.repeat(64),
    ]);

    // The run log carries the query ids of the run's statements.
    // Before the run starts, only this activation's runs still `running` are closed as abandoned.
    const abandon = byStart('update "TAILOR"."RUNS"');
    expect(abandon.sql.replace(/\s+/g, ' ')).toMatch(/ where "ACTIVATION_ID" = \? and "STATUS" = \?$/);
    expect(abandon.binds.slice(1, 2).map((b) => b.value)).toEqual(['abandoned']);
    expect(abandon.binds.slice(-2).map((b) => b.value)).toEqual(['vip_x', 'running']);
    // The run's end: the last update of the runs.
    const finish = fake.statements.findLast((s) => s.sql.startsWith('update "TAILOR"."RUNS"'))!;
    const costBind = finish.binds.at(-5)!.value as string;
    const cost = JSON.parse(costBind) as { warehouse: string; queries: number; query_ids: string[] };
    const first = fake.statements.findIndex((s) => s.sql.startsWith('insert into "TAILOR"."RUNS"'));
    expect(cost.warehouse).toBe('snowflake');
    expect(cost.query_ids).toEqual(
      fake.statements.slice(first, fake.statements.indexOf(finish)).map((s) => s.queryId),
    );
    expect(finish.binds.at(-1)!.value).toBe(runId);

    // Telemetry is answered locally; the session ends with a logout.
    expect(fake.calls()[0]).toBe('POST /session/v1/login-request');
    expect(fake.calls().at(-1)).toBe('POST /session');
  });

  it("migrates a version-2 schema to 3 to 8 in place: member_intents, keys digested and marked, state_identity, version 5 recorded, runs.suppressed, the match rate columns, the members' key hash", async () => {
    fake.on(/^select max\("VERSION"\)/, { columns: [{ name: 'VERSION', type: 'fixed' }], rows: [['2']] });
    fake.on(/INFORMATION_SCHEMA.SCHEMATA/, { columns: [{ name: 'N', type: 'fixed' }], rows: [['1']] });
    fake.on(/^update "TAILOR"."(MEMBERS|MEMBER_HASHES|REJECTIONS)"/, { affected: 3 });
    source = await openSnowflakeSource(config(fake.url, { password: 'pw' }), { projectDir: '/tmp', logger });
    await createStateStore(source, 'tailor', { logger: silentLogger }).migrate();
    const statements = fake.statements.slice(1);
    expect(statements.map((st) => st.sql.replace(/\s+/g, ' '))).toEqual([
      'select max("VERSION") as "VERSION" from "TAILOR"."TAILOR_MIGRATIONS"',
      expect.stringMatching(/^SELECT COUNT\(\*\) AS n FROM INFORMATION_SCHEMA.SCHEMATA/),
      expect.stringMatching(/^create table if not exists "TAILOR"."TAILOR_MIGRATIONS"/),
      'select max("VERSION") as "VERSION" from "TAILOR"."TAILOR_MIGRATIONS"',
      'create table if not exists "TAILOR"."MEMBER_INTENTS" ("ACTIVATION_ID" VARCHAR not null, "MEMBER_KEY" VARCHAR not null, "INTENT_ID" VARCHAR not null, "ID_TYPE" VARCHAR not null, "HASH" VARCHAR not null, "RECORDED_AT" TIMESTAMP_TZ not null, "UNTIL" TIMESTAMP_TZ not null)',
      // SHA2(x, 256): the lowercase hex SHA-256 of x's UTF-8 bytes. The statements run one by one
      // (the migration is not one transaction): each row is marked as it is digested, so a re-run
      // digests no key twice.
      ...['MEMBERS', 'MEMBER_HASHES', 'REJECTIONS'].flatMap((table) => [
        `alter table "TAILOR"."${table}" add column if not exists "KEY_DIGESTED" boolean`,
        `update "TAILOR"."${table}" set "MEMBER_KEY" = SHA2("MEMBER_KEY", 256), "KEY_DIGESTED" = true where "KEY_DIGESTED" is null`,
      ]),
      'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT") select ?, ?, current_timestamp from (select 1 as "ONE") as "X" where not exists (select 1 from "TAILOR"."TAILOR_MIGRATIONS" where "VERSION" = ?)',
      // Version 4: state_identity only; its one row is inserted when first read (StateSql.stateId).
      'create table if not exists "TAILOR"."STATE_IDENTITY" ("STATE_ID" VARCHAR not null, "CREATED_AT" TIMESTAMP_TZ not null)',
      'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT") select ?, ?, current_timestamp from (select 1 as "ONE") as "X" where not exists (select 1 from "TAILOR"."TAILOR_MIGRATIONS" where "VERSION" = ?)',
      // Version 5 is a Postgres index only: recorded, nothing run.
      'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT") select ?, ?, current_timestamp from (select 1 as "ONE") as "X" where not exists (select 1 from "TAILOR"."TAILOR_MIGRATIONS" where "VERSION" = ?)',
      // Version 6: the run log's suppressed count.
      'alter table "TAILOR"."RUNS" add column if not exists "SUPPRESSED" NUMBER(38,0)',
      'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT") select ?, ?, current_timestamp from (select 1 as "ONE") as "X" where not exists (select 1 from "TAILOR"."TAILOR_MIGRATIONS" where "VERSION" = ?)',
      // Version 7: the run log's match rate, one column a statement.
      'alter table "TAILOR"."RUNS" add column if not exists "AUDIENCE_SIZE" NUMBER(38,0)',
      'alter table "TAILOR"."RUNS" add column if not exists "MEMBERS_SENT" NUMBER(38,0)',
      'alter table "TAILOR"."RUNS" add column if not exists "AUDIENCE_PROCESSED_AT" TIMESTAMP_TZ',
      'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT") select ?, ?, current_timestamp from (select 1 as "ONE") as "X" where not exists (select 1 from "TAILOR"."TAILOR_MIGRATIONS" where "VERSION" = ?)',
      // Version 8: the members' key hash (HASH's signed 64-bit value); no index on Snowflake.
      'alter table "TAILOR"."MEMBERS" add column if not exists "KEY_HASH" NUMBER(38,0)',
      'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT") select ?, ?, current_timestamp from (select 1 as "ONE") as "X" where not exists (select 1 from "TAILOR"."TAILOR_MIGRATIONS" where "VERSION" = ?)',
    ]);
    for (const st of statements.slice(4, -12)) expect(st.binds).toEqual([]);
    expect(statements.at(-11)!.binds).toEqual([]);
    expect(statements.at(-9)!.binds.map((b) => b.value)).toEqual([
      '5',
      'index for clearing answered intents',
      '5',
    ]);
    expect(statements.at(-12)!.binds.map((b) => b.value)).toEqual([
      '3',
      'intents before send, and key digests',
      '3',
    ]);
    expect(statements.at(-10)!.binds.map((b) => b.value)).toEqual([
      '4',
      'state identity for audience owner marks',
      '4',
    ]);
    expect(statements.at(-8)!.binds).toEqual([]);
    expect(statements.at(-7)!.binds.map((b) => b.value)).toEqual([
      '6',
      'suppressed count in the run log',
      '6',
    ]);
    for (const at of [-6, -5, -4, -2]) expect(statements.at(at)!.binds).toEqual([]);
    expect(statements.at(-3)!.binds.map((b) => b.value)).toEqual(['7', 'match rate in the run log', '7']);
    expect(statements.at(-1)!.binds.map((b) => b.value)).toEqual(['8', 'key hashes for the diff', '8']);
  });

  it('diffs against intents when members have some: the union state side and the P CTE', async () => {
    fake.on(/^select max\("VERSION"\)/, { columns: [{ name: 'VERSION', type: 'fixed' }], rows: [['3']] });
    // Every member has a key hash, but intents name members by digest: compared by digest. No
    // invalid key (the counts' `INVALID`, the probe's `B`).
    fake.on(PEND_COUNT, pendCount(2, 1, 0));
    fake.on(ANY_INVALID, anyInvalid(0));
    fake.on(/^select\s+\(select count\(\*\) from "TAILOR"."TAILOR_SNAP_/, {
      columns: ['ROW_COUNT', 'INVALID', 'REMOVED', 'CHANGED', 'REFRESH', 'ADDED'].map((name) => ({
        name,
        type: 'fixed' as const,
      })),
      rows: [['2', '0', '1', '0', '1', '1']],
    });
    fake.on(/^with "H" AS/, {
      columns: [...DELTA_COLUMNS, { name: 'PENDING_HASHES', type: 'array' }],
      rows: [
        // An intent-only key that left the segment: removed, with no stored hashes.
        ['0', 'k9', null, null, null, null, JSON.stringify([['email', 'e'.repeat(64)]])],
        // A member with intents and unchanged values: re-sent with them.
        [
          '2',
          'k1',
          null,
          'f1',
          'one@example.com',
          JSON.stringify([['email', 'a'.repeat(64)]]),
          JSON.stringify([
            ['email', 'a'.repeat(64)],
            ['email', 'b'.repeat(64)],
          ]),
        ],
        // An intent-only key in the segment: added, with its intents.
        ['3', 'k2', null, 'f2', 'two@example.com', null, JSON.stringify([['email', 'c'.repeat(64)]])],
      ],
    });
    source = await openSnowflakeSource(config(fake.url, { password: 'pw' }), { projectDir: '/tmp', logger });
    const state = createStateStore(source, 'tailor', { logger: silentLogger });
    await using diff = await state.prepareDiff({
      activationId: 'vip_x',
      modelSql: 'select customer_id, email from customers',
      modelName: 'vip',
      primaryKey: 'customer_id',
      columns: ['email'],
      refreshBefore: null,
      fullResync: false,
    });
    expect(diff.keysCompared).toBe('digest');
    const delta = [];
    for await (const batch of diff.delta(10)) delta.push(...batch);
    expect(delta).toEqual([
      {
        key: 'k9',
        keyHash: null,
        change: 'removed',
        values: null,
        fingerprint: null,
        previousHashes: {},
        pendingHashes: { email: ['e'.repeat(64)] },
      },
      {
        key: 'k1',
        keyHash: null,
        change: 'refresh',
        values: { email: 'one@example.com' },
        fingerprint: 'f1',
        previousHashes: { email: ['a'.repeat(64)] },
        pendingHashes: { email: ['a'.repeat(64), 'b'.repeat(64)] },
      },
      {
        key: 'k2',
        keyHash: null,
        change: 'added',
        values: { email: 'two@example.com' },
        fingerprint: 'f2',
        previousHashes: null,
        pendingHashes: { email: ['c'.repeat(64)] },
      },
    ]);
    const text = (prefix: string) =>
      fake.statements
        .find((st) => st.sql.startsWith(prefix))!
        .sql.replace(/\s+/g, ' ')
        .replace(/_[0-9A-F]{16}"/g, '_<TOKEN>"');
    expect(text('CREATE TEMPORARY TABLE "TAILOR"."TAILOR_PEND_')).toBe(
      `CREATE TEMPORARY TABLE "TAILOR"."TAILOR_PEND_<TOKEN>" AS select distinct "MEMBER_KEY" from "TAILOR"."MEMBER_INTENTS" where "ACTIVATION_ID" = 'vip_x'`,
    );
    const compare = text('CREATE TEMPORARY TABLE "TAILOR"."TAILOR_DELTA_');
    expect(compare).toContain(
      `full outer join (select "SM"."MEMBER_KEY", "SM"."FINGERPRINT", "SM"."LAST_SENT_AT", case when "SP"."MEMBER_KEY" is null then 0 else 1 end as "PENDING" from "TAILOR"."MEMBERS" as "SM" left join "TAILOR"."TAILOR_PEND_<TOKEN>" as "SP" on "SP"."MEMBER_KEY" = "SM"."MEMBER_KEY" where "SM"."ACTIVATION_ID" = 'vip_x' union all select "SP"."MEMBER_KEY", CAST(NULL AS VARCHAR), CAST(NULL AS TIMESTAMP_TZ), 1 from "TAILOR"."TAILOR_PEND_<TOKEN>" as "SP" where not exists (select 1 from "TAILOR"."MEMBERS" as "SM" where "SM"."ACTIVATION_ID" = 'vip_x' and "SM"."MEMBER_KEY" = "SP"."MEMBER_KEY")) as "T"`,
    );
    expect(compare).toContain('when "T"."MEMBER_KEY" is null or "T"."FINGERPRINT" is null then 3');
    expect(compare).toContain('or "T"."PENDING" = 1 or false or');
    // No invalid key: the valid rows are those with a key, no anti-join.
    expect(compare).toContain(
      'from (select * from "TAILOR"."TAILOR_SNAP_<TOKEN>" as "S0" where "S0"."MEMBER_KEY" is not null) as "S" full outer join',
    );
    const read = text('with "H" AS');
    expect(read).toContain(
      `"P" AS ( SELECT "MEMBER_KEY", ARRAY_AGG(ARRAY_CONSTRUCT("ID_TYPE", "HASH")) WITHIN GROUP (ORDER BY "ID_TYPE", "HASH") AS "HASHES" FROM "TAILOR"."MEMBER_INTENTS" WHERE "ACTIVATION_ID" = ? AND "MEMBER_KEY" IN (SELECT "MEMBER_KEY" FROM "TAILOR"."TAILOR_DELTA_<TOKEN>") GROUP BY "MEMBER_KEY")`,
    );
    expect(read).toContain('"H"."HASHES" as "PREVIOUS_HASHES", "P"."HASHES" as "PENDING_HASHES"');
    expect(read).toContain('LEFT JOIN "P" AS "P" ON "P"."MEMBER_KEY" = "D"."MEMBER_KEY"');
    expect(fake.statements.find((st) => st.sql.startsWith('with "H" AS'))!.binds.map((b) => b.value)).toEqual(
      ['vip_x', 'vip_x'],
    );
  });

  it('reports a failing model as ModelSqlError and drops what the diff created', async () => {
    fake.on(/^select max\("VERSION"\)/, { columns: [{ name: 'VERSION', type: 'fixed' }], rows: [['8']] });
    fake.on(/^CREATE TEMPORARY TABLE "TAILOR"."TAILOR_SNAP_/, {
      error: {
        code: '000904',
        sqlState: '42000',
        message: "SQL compilation error: invalid identifier 'EMIAL'",
      },
    });
    source = await openSnowflakeSource(config(fake.url, { password: 'pw' }), { projectDir: '/tmp', logger });
    const error = await createStateStore(source, 'tailor', { logger: silentLogger })
      .prepareDiff({
        activationId: 'vip_x',
        modelSql: 'select id, emial from customers',
        modelName: 'vip',
        primaryKey: 'id',
        columns: ['emial'],
        refreshBefore: null,
        fullResync: false,
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelSqlError);
    expect((error as Error).message).toContain("invalid identifier 'EMIAL'");
    expect(fake.statements.map((s) => head(s.sql))).toEqual([
      head(SESSION_SETTINGS),
      'select max("VERSION") as "VERSION" from "TAILOR"."TAILOR_MIGRATIONS"',
      // Members with intents and the probe first: the snapshot's form depends on them.
      'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_PEND_<TOKEN>" AS select distinct',
      'select count(*) as "N", (select count(*) from (select 1 as "ONE" from "T',
      expect.stringMatching(/^CREATE TEMPORARY TABLE "TAILOR"."TAILOR_SNAP_<TOKEN>"/),
      'drop table if exists "TAILOR"."TAILOR_SNAP_<TOKEN>"',
      'drop table if exists "TAILOR"."TAILOR_PEND_<TOKEN>"',
    ]);
  });

  it('logs each statement with its query id at debug level, never its binds or credentials', async () => {
    const lines: string[] = [];
    const debug = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    fake.on(/^select count/, { columns: [{ name: 'N', type: 'fixed' }], rows: [['1']] });
    source = await openSnowflakeSource(config(fake.url, { password: 'hunter2-secret' }), {
      projectDir: '/tmp',
      logger: debug,
    });
    await createStateStore(source, 'tailor', { logger: silentLogger }).memberCount('person@example.com');
    const messages = lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
    expect(messages).toEqual(
      expect.arrayContaining([expect.stringMatching(/^snowflake query: select count\(\*\)/)]),
    );
    expect(lines.join('\n')).not.toContain('person@example.com');
    expect(lines.join('\n')).not.toContain('hunter2-secret');
    // The ALTER SESSION at login is not part of any run; every statement after it is counted.
    expect(source.cost().query_ids).toEqual(fake.statements.slice(1).map((st) => st.queryId));
  });

  it('keeps data values out of errors, but the names in compilation errors', async () => {
    fake.on(/^select max\("VERSION"\)/, { columns: [{ name: 'VERSION', type: 'fixed' }], rows: [['3']] });
    fake.on(/^select count/, {
      error: {
        code: '100038',
        sqlState: '22018',
        message: "Numeric value 'jane@example.com' is not recognized",
      },
    });
    source = await openSnowflakeSource(config(fake.url, { password: 'pw' }), { projectDir: '/tmp', logger });
    const error = await createStateStore(source, 'tailor', { logger: silentLogger })
      .memberCount('vip_x')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WarehouseError);
    const chain: unknown[] = [];
    for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) chain.push(e);
    const text = JSON.stringify(chain, ['message', 'code', 'sqlState', 'cause']);
    // Cut at the first quote, where the value may start: nothing after it is kept (src/sources/redact.ts).
    expect(text).toContain('"message":"Numeric value…"');
    expect(text).not.toContain('jane@');
    expect(redactSnowflakeMessage("invalid identifier 'EMIAL'", '42000')).toBe("invalid identifier 'EMIAL'");
  });

  it('reports refused credentials as an authentication error, never echoing the password', async () => {
    fake.loginError = { code: '390100', message: 'Incorrect username or password was specified.' };
    source = await openSnowflakeSource(config(fake.url, { password: 'hunter2-secret' }), {
      projectDir: '/tmp',
      logger,
    });
    const error = await source.check().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect((error as Error).message).toContain('Incorrect username or password');
    expect((error as Error).message).not.toContain('hunter2-secret');
    expect(fake.statements).toHaveLength(0);
  });
});

/** The delta read's columns for a one-column model, up to PREVIOUS_HASHES. */
const DELTA_COLUMNS: { name: string; type: FakeColumnType }[] = [
  { name: 'CHANGE_RANK', type: 'fixed' },
  { name: 'MEMBER_KEY', type: 'text' },
  // An added member's key hash as text (hash mode), else null.
  { name: 'KEY_HASH', type: 'text' },
  { name: 'FINGERPRINT', type: 'text' },
  { name: 'V_0', type: 'text' },
  { name: 'PREVIOUS_HASHES', type: 'array' },
];

/** The statements of one run, in order (tokens masked, first 72 characters). */
const EXPECTED_RUN = [
  'select max("VERSION") as "VERSION" from "TAILOR"."TAILOR_MIGRATIONS"',
  'SELECT COUNT(*) AS n FROM INFORMATION_SCHEMA.SCHEMATA WHERE SCHEMA_NAME ',
  'CREATE SCHEMA IF NOT EXISTS "TAILOR"',
  'create table if not exists "TAILOR"."TAILOR_MIGRATIONS" ("VERSION" NUMBE',
  'select max("VERSION") as "VERSION" from "TAILOR"."TAILOR_MIGRATIONS"',
  'create table if not exists "TAILOR"."BINDINGS" ("ACTIVATION_ID" VARCHAR ',
  'create table if not exists "TAILOR"."MEMBERS" ("ACTIVATION_ID" VARCHAR n',
  'create table if not exists "TAILOR"."MEMBER_HASHES" ("ACTIVATION_ID" VAR',
  'create table if not exists "TAILOR"."RUNS" ("RUN_ID" VARCHAR not null, "',
  'create table if not exists "TAILOR"."REJECTIONS" ("RUN_ID" VARCHAR not n',
  'create table if not exists "TAILOR"."ACTIVATION_STATUS" ("ACTIVATION_ID"',
  'create table if not exists "TAILOR"."LOCKS" ("ACTIVATION_ID" VARCHAR not',
  'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT',
  'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT',
  'create table if not exists "TAILOR"."MEMBER_INTENTS" ("ACTIVATION_ID" VA',
  'alter table "TAILOR"."MEMBERS" add column if not exists "KEY_DIGESTED" b',
  'update "TAILOR"."MEMBERS" set "MEMBER_KEY" = SHA2("MEMBER_KEY", 256), "K',
  'alter table "TAILOR"."MEMBER_HASHES" add column if not exists "KEY_DIGES',
  'update "TAILOR"."MEMBER_HASHES" set "MEMBER_KEY" = SHA2("MEMBER_KEY", 25',
  'alter table "TAILOR"."REJECTIONS" add column if not exists "KEY_DIGESTED',
  'update "TAILOR"."REJECTIONS" set "MEMBER_KEY" = SHA2("MEMBER_KEY", 256),',
  'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT',
  'create table if not exists "TAILOR"."STATE_IDENTITY" ("STATE_ID" VARCHAR',
  'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT',
  'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT',
  'alter table "TAILOR"."RUNS" add column if not exists "SUPPRESSED" NUMBER',
  'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT',
  'alter table "TAILOR"."RUNS" add column if not exists "AUDIENCE_SIZE" NUM',
  'alter table "TAILOR"."RUNS" add column if not exists "MEMBERS_SENT" NUMB',
  'alter table "TAILOR"."RUNS" add column if not exists "AUDIENCE_PROCESSED',
  'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT',
  'alter table "TAILOR"."MEMBERS" add column if not exists "KEY_HASH" NUMBE',
  'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT',
  'merge into "TAILOR"."LOCKS" as "T" using (select ? as "ACTIVATION_ID") a',
  'select "HOLDER" from "TAILOR"."LOCKS" where "ACTIVATION_ID" = ?',
  // Under the lock, a run a killed process left `running` is closed as abandoned.
  'update "TAILOR"."RUNS" set "FINISHED_AT" = TO_TIMESTAMP_TZ(?), "STATUS" ',
  'insert into "TAILOR"."RUNS" ("RUN_ID", "ACTIVATION_ID", "STARTED_AT", "S',
  'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_PEND_<TOKEN>" AS select distinct',
  // Members with intents, whether the activation has any member (else a first load: no delta
  // table), and whether one lacks a key hash (then by key digest, as here).
  'select count(*) as "N", (select count(*) from (select 1 as "ONE" from "T',
  'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_SNAP_<TOKEN>" AS select SHA2(TO_',
  'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_BAD_<TOKEN>" AS select "MEMBER_K',
  // Whether a key is invalid (one row looked for).
  'select count(*) as "B" from (select 1 as "ONE" from "TAILOR"."TAILOR_BAD',
  'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_DELTA_<TOKEN>" AS select case wh',
  'select (select count(*) from "TAILOR"."TAILOR_SNAP_<TOKEN>") as "ROW_COU',
  'with "H" AS ( SELECT "MEMBER_KEY", ARRAY_AGG(ARRAY_CONSTRUCT("ID_TYPE", ',
  'insert into "TAILOR"."MEMBER_INTENTS" ("ACTIVATION_ID", "MEMBER_KEY", "I',
  'BEGIN TRANSACTION',
  'delete from "TAILOR"."MEMBER_HASHES" where "ACTIVATION_ID" = ? and "MEMB',
  'insert into "TAILOR"."MEMBER_HASHES" ("ACTIVATION_ID", "MEMBER_KEY", "ID',
  'merge into "TAILOR"."MEMBERS" as "T" using (select "U"."MEMBER_KEY", "U"',
  'delete from "TAILOR"."MEMBER_INTENTS" where "ACTIVATION_ID" = ? and "INT',
  'COMMIT',
  // After the commits, the members compared by digest given their key hashes.
  'update "TAILOR"."MEMBERS" set "KEY_HASH" = "U"."KEY_HASH" from (select "',
  'drop table if exists "TAILOR"."TAILOR_DELTA_<TOKEN>"',
  'drop table if exists "TAILOR"."TAILOR_BAD_<TOKEN>"',
  'drop table if exists "TAILOR"."TAILOR_SNAP_<TOKEN>"',
  'drop table if exists "TAILOR"."TAILOR_PEND_<TOKEN>"',
  'update "TAILOR"."RUNS" set "FINISHED_AT" = TO_TIMESTAMP_TZ(?), "STATUS" ',
  'delete from "TAILOR"."LOCKS" where "ACTIVATION_ID" = ? and "HOLDER" = ?',
];
