import { OAuth2Client } from 'google-auth-library';
import { Kysely, sql } from 'kysely';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ModelSqlError, WarehouseError } from '../../src/errors.js';
import { createBigqueryClient } from '../../src/sources/bigquery/bigquery-client.js';
import { bigqueryConfigSchema } from '../../src/sources/bigquery/bigquery-config.js';
import { BigqueryDialect } from '../../src/sources/bigquery/bigquery-dialect.js';
import { BigqueryExecutor, redactBigqueryMessage } from '../../src/sources/bigquery/bigquery-executor.js';
import { openBigquerySource, type BigquerySource } from '../../src/sources/bigquery/bigquery-source.js';
import { FakeBigquery, type FakeBigqueryJob } from '../helpers/fake-bigquery.js';
import { watchConnections } from '../helpers/fake-snowflake.js';
import { createStateStore } from '../../src/diff/state-store.js';
import { silentLogger } from '../helpers/warehouse.js';
import { runCountsOf } from '../helpers/counts.js';

/**
 * The real @google-cloud/bigquery SDK against a local fake of the REST API: proves the requests a
 * full run sends (snapshot -> diff -> delta -> commit -> run log) without reaching Google.
 */

const logger = pino({ level: 'silent' });

function fakeAuth(): OAuth2Client {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'fake-token', expiry_date: Date.now() + 3_600_000 });
  return auth;
}

/** The first line of a statement, whitespace collapsed: enough to name it in an assertion. */
function head(sql: string): string {
  return sql
    .replace(/\s+/g, ' ')
    .replace(/_[0-9a-f]{16}`/g, '_<token>`')
    .trim()
    .slice(0, 72);
}

function params(job: FakeBigqueryJob): unknown[] {
  return job.parameters.map((p) => p.parameterValue);
}

/**
 * The diff's count of members with intents (`n`), which also says whether the activation has any
 * member (`m`; none is a first load, which compares nothing) and whether one lacks a key hash (`u`;
 * then, or with intents, the segment is compared with state by key digest, else by key hash).
 */
const PEND_COUNT =
  /^select count\(\*\) as `n`,\s+\(select count\(\*\) from \(select 1 as `one` from `tailor`.`members`/;
const pendCount = (n: number, m: number, u: number) => ({
  fields: [
    { name: 'n', type: 'INT64' },
    { name: 'm', type: 'INT64' },
    { name: 'u', type: 'INT64' },
  ],
  rows: [[n, m, u]],
});
/** Whether the snapshot has a null or duplicated key (`b`), asked of the table of them on its own. */
const ANY_INVALID = /^select count\(\*\) as `b` from \(select 1 as `one` from `tailor`.`tailor_badh?_/;
const anyInvalid = (b: number) => ({ fields: [{ name: 'b', type: 'INT64' }], rows: [[b]] });

describe('BigQuery source over the SDK and a local REST fake', () => {
  let fake: FakeBigquery;
  let source: BigquerySource;
  let connections: ReturnType<typeof watchConnections>;

  beforeEach(async () => {
    connections = watchConnections();
    // Nothing may probe Google: no key file, no metadata server.
    vi.stubEnv('GOOGLE_APPLICATION_CREDENTIALS', '/nonexistent/tailor-test-key.json');
    vi.stubEnv('METADATA_SERVER_DETECTION', 'none');
    fake = await FakeBigquery.start();
    const config = bigqueryConfigSchema.parse({
      type: 'bigquery',
      project_id: 'acme-analytics',
      location: 'EU',
      api_endpoint: fake.url,
    });
    source = await openBigquerySource(config, { projectDir: '/tmp', logger, authClient: fakeAuth() });
  });

  afterEach(async () => {
    await source.close();
    await fake.close();
    vi.unstubAllEnvs();
    connections.stop();
    // The SDK and its auth library reached nothing but the fake: no token endpoint, no metadata server.
    expect(connections.hosts.length).toBeGreaterThan(0);
    expect(new Set(connections.hosts)).toEqual(new Set(['127.0.0.1']));
  });

  it('checks the connection with one job, authenticated by the bearer token', async () => {
    fake.on(/^SELECT 1 AS ok$/, { fields: [{ name: 'ok', type: 'INT64' }], rows: [[1]] });
    await source.check();
    expect(fake.calls()).toEqual([
      expect.stringMatching(/^POST \/bigquery\/v2\/projects\/acme-analytics\/jobs$/),
      expect.stringMatching(/^GET \/bigquery\/v2\/projects\/acme-analytics\/queries\/tailor_/),
      expect.stringMatching(/^GET \/bigquery\/v2\/projects\/acme-analytics\/jobs\/tailor_/),
    ]);
    expect(fake.requests.every((r) => r.authorization === 'Bearer fake-token')).toBe(true);
    const insert = fake.requests[0]!.body as { jobReference: { location: string } };
    expect(insert.jobReference.location).toBe('EU');
  });

  it('describes a model with a free dry run and reports bad SQL as the model’s fault', async () => {
    fake.on(/FROM \(select email, customer_id from shop.customers\n\)/, {
      fields: [
        { name: 'email', type: 'STRING' },
        { name: 'customer_id', type: 'INT64' },
      ],
    });
    fake.on(/not_a_table/, {
      error: { code: 400, reason: 'invalidQuery', message: 'Table not_a_table was not found' },
    });
    await expect(
      source.describeModel('vip', 'select email, customer_id from shop.customers'),
    ).resolves.toEqual([
      { name: 'email', type: 'STRING' },
      { name: 'customer_id', type: 'INT64' },
    ]);
    expect(fake.jobs[0]!.dryRun).toBe(true);
    const error = await source.describeModel('vip', 'select * from not_a_table').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelSqlError);
    expect((error as Error).message).toContain('not_a_table was not found');
  });

  it('runs a whole sync cycle with the exact statements, parameters and paging', async () => {
    let holder: unknown;
    fake.on(/^merge into `tailor`.`locks`/, (job) => {
      holder = (job.parameters[1]!.parameterValue as { value: unknown }).value;
      return { affected: 1 };
    });
    fake.on(/^select `holder` from/, () => ({
      fields: [{ name: 'holder', type: 'STRING' }],
      rows: [[holder]],
    }));
    fake.on(/^select max\(`version`\)/, {
      error: { code: 404, reason: 'notFound', message: 'Not found: Dataset acme-analytics:tailor' },
    });
    fake.on(/^CREATE TABLE `tailor`.`tailor_snap_/, { bytes: 52_428_800 });
    // No member has an intent, and the activation has members, one without a key hash: the plain
    // comparison by key digest, and no read of the intents' hashes. A key is invalid (`b`).
    fake.on(PEND_COUNT, pendCount(0, 1, 1));
    fake.on(ANY_INVALID, anyInvalid(1));
    fake.on(/^select\s+\(select count\(\*\) from `tailor`.`tailor_snap_/, {
      fields: ['row_count', 'invalid', 'removed', 'changed', 'refresh', 'added'].map((name) => ({
        name,
        type: 'INT64',
      })),
      rows: [[5, 1, 1, 1, 0, 2]],
      bytes: 1024,
    });
    fake.on(/^select\s+`d`.`change_rank`/, {
      fields: [...DELTA_FIELDS, { name: 'pending_hashes', type: 'INT64' }],
      rows: [
        [0, '7', null, null, null, [{ id_type: 'email', hash: 'a'.repeat(64) }], null],
        [1, '8', null, 'f8', 'new@example.com', [{ id_type: 'email', hash: 'b'.repeat(64) }], null],
        [3, '10', null, 'f10', 'ten@example.com', [], null],
        [3, '11', null, 'f11', 'eleven@example.com', [], null],
      ],
      bytes: 2048,
    });
    fake.on(/^select `member_key`, `n`\s+from `tailor`.`tailor_bad_/, {
      fields: [
        { name: 'member_key', type: 'STRING' },
        { name: 'n', type: 'INT64' },
      ],
      rows: [[null, 1]],
    });
    fake.on(/^update `tailor`.`runs`/, { affected: 1 });

    const state = createStateStore(source, 'tailor', { logger: silentLogger });
    const lock = await state.lock('vip_x', { wait: false });
    const runId = await state.startRun('vip_x', new Date('2026-11-22T12:00:00Z'));
    const diff = await state.prepareDiff({
      activationId: 'vip_x',
      modelSql: 'select customer_id, email from shop.customers',
      modelName: 'vip',
      primaryKey: 'customer_id',
      columns: ['email'],
      refreshBefore: null,
      fullResync: false,
    });
    expect(diff.keysCompared).toBe('digest');
    expect(diff.counts).toEqual({
      rows: 5,
      invalidKeys: 1,
      // Derived from the counts: 4 valid rows, 2 of them added, plus 1 removed.
      stateMembers: 3,
      removed: 1,
      changed: 1,
      refresh: 0,
      added: 2,
    });
    const invalid = [];
    for await (const batch of diff.invalidKeys()) invalid.push(...batch);
    expect(invalid).toEqual([{ key: null, reason: 'null_primary_key', rows: 1 }]);

    const batches = [];
    for await (const batch of diff.delta(3)) batches.push(batch);
    expect(batches.map((b) => b.length)).toEqual([3, 1]);
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
      {
        key: '11',
        keyHash: null,
        change: 'added',
        values: { email: 'eleven@example.com' },
        fingerprint: 'f11',
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
        { key: '10', hashes: { email: ['d'.repeat(64)] } },
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
        hashes: { email: ['d'.repeat(64)] },
        sentAt,
        intentId: intent.id,
      },
    ]);
    // After the run's commits, as the engine does: members compared by digest get their key hashes.
    await diff.settleKeyHashes();
    await diff[Symbol.asyncDispose]();
    await state.finishRun(runId, {
      status: 'succeeded',
      counts: runCountsOf({ rows: 5, added: 1, removed: 1, changed: 1, invalid: 1, requests: 2 }),
      error: null,
      finishedAt: new Date('2026-11-22T12:02:00Z'),
    });
    await lock.release();

    const statements = fake.jobs.map((job) => head(job.sql));
    expect(statements).toEqual(EXPECTED_RUN);

    // The snapshot is dry-run first, the same SQL, so that a model BigQuery would not take for one
    // CREATE TABLE ... AS SELECT (a script) is refused before anything runs.
    const snapshots = fake.jobs.filter((j) => j.sql.startsWith('CREATE TABLE `tailor`.`tailor_snap_'));
    expect(snapshots.map((j) => j.dryRun === true)).toEqual([true, false]);
    expect(snapshots[0]!.sql).toBe(snapshots[1]!.sql);
    // The model's SQL is wrapped, never rewritten; the fingerprint is computed in the warehouse.
    const snapshot = snapshots[1]!;
    expect(snapshot.sql).toContain('from (select customer_id, email from shop.customers\n) as m');
    expect(snapshot.sql).toContain(
      'TO_HEX(MD5(TO_JSON_STRING(STRUCT(`m`.`email` AS `v_0`)))) as `fingerprint`',
    );
    // By key digest (a member lacked a key hash), with each key's hash beside its digest.
    expect(snapshot.sql).toContain(
      'select TO_HEX(SHA256(CAST(`m`.`customer_id` AS STRING))) as `member_key`, FARM_FINGERPRINT(CAST(`m`.`customer_id` AS STRING)) as `key_hash`,',
    );
    expect(snapshot.parameters).toEqual([]);

    // The delta is read page by page: maxResults = the batch size, then pageToken.
    const deltaJob = fake.jobs.find((j) => /^select\s+`d`.`change_rank`/.test(j.sql))!;
    const pages = fake.requests.filter((r) => r.path.endsWith(`/queries/${deltaJob.jobId}`));
    expect(pages.map((r) => [r.query.maxResults, r.query.pageToken])).toEqual([
      ['3', undefined],
      ['3', '3'],
    ]);

    // The commit: the hash rows of members given without previous hashes deleted by key, the new
    // hash rows, then one MERGE of the members; each bulk input one typed ARRAY<STRUCT> parameter.
    const hashDelete = fake.jobs.find((j) => j.sql.startsWith('delete from `tailor`.`member_hashes`'))!;
    expect(params(hashDelete)).toEqual([
      { value: 'vip_x' },
      { arrayValues: [{ value: '7' }, { value: '8' }, { value: '10' }] },
    ]);
    const hashInsert = fake.jobs.find((j) => j.sql.startsWith('insert into `tailor`.`member_hashes`'))!;
    expect(hashInsert.parameters[1]).toEqual({
      parameterType: {
        type: 'ARRAY',
        arrayType: {
          type: 'STRUCT',
          structTypes: [
            { name: 'member_key', type: { type: 'STRING' } },
            { name: 'id_type', type: { type: 'STRING' } },
            { name: 'hash', type: { type: 'STRING' } },
          ],
        },
      },
      parameterValue: {
        arrayValues: [
          {
            structValues: {
              member_key: { value: '8' },
              id_type: { value: 'email' },
              hash: { value: 'c'.repeat(64) },
            },
          },
          {
            structValues: {
              member_key: { value: '10' },
              id_type: { value: 'email' },
              hash: { value: 'd'.repeat(64) },
            },
          },
        ],
      },
    });
    const memberMerge = fake.jobs.find((j) => j.sql.startsWith('merge into `tailor`.`members`'))!;
    // The members' key hash an INT64 field of the struct: null here, the acks carrying none (by digest).
    expect(memberMerge.parameters[0]!.parameterType).toEqual({
      type: 'ARRAY',
      arrayType: {
        type: 'STRUCT',
        structTypes: [
          { name: 'member_key', type: { type: 'STRING' } },
          { name: 'fingerprint', type: { type: 'STRING' } },
          { name: 'last_sent_at', type: { type: 'TIMESTAMP' } },
          { name: 'remove', type: { type: 'BOOL' } },
          { name: 'key_hash', type: { type: 'INT64' } },
        ],
      },
    });
    const memberRows = (memberMerge.parameters[0]!.parameterValue as { arrayValues: unknown[] }).arrayValues;
    expect(memberRows).toEqual([
      {
        structValues: {
          member_key: { value: '8' },
          fingerprint: { value: 'f8' },
          last_sent_at: { value: '2026-11-22T12:01:00.000Z' },
          remove: { value: false },
          key_hash: { value: null },
        },
      },
      {
        structValues: {
          member_key: { value: '10' },
          fingerprint: { value: 'f10' },
          last_sent_at: { value: '2026-11-22T12:01:00.000Z' },
          remove: { value: false },
          key_hash: { value: null },
        },
      },
      // A removal: typed nulls inside the struct, as BigQuery requires.
      {
        structValues: {
          member_key: { value: '7' },
          fingerprint: { value: null },
          last_sent_at: { value: null },
          remove: { value: true },
          key_hash: { value: null },
        },
      },
    ]);
    // The key hashes given after the commits: one UPDATE, literals only.
    const settle = fake.jobs.find((j) => j.sql.startsWith('update `tailor`.`members` set `key_hash`'))!;
    expect(settle.sql.replace(/\s+/g, ' ').replace(/_[0-9a-f]{16}`/g, '_<token>`')).toBe(
      "update `tailor`.`members` set `key_hash` = `u`.`key_hash` from (select `s`.`member_key`, `s`.`key_hash` from `tailor`.`tailor_snap_<token>` as `s` where `s`.`key_hash` in (select `c`.`key_hash` from `tailor`.`tailor_snap_<token>` as `c` group by `c`.`key_hash` having count(*) = 1) and not exists (select 1 from `tailor`.`members` as `o` where `o`.`activation_id` = 'vip_x' and `o`.`key_hash` = `s`.`key_hash`)) as `u` where `members`.`activation_id` = 'vip_x' and `members`.`member_key` = `u`.`member_key` and `members`.`key_hash` is null",
    );
    expect(settle.parameters).toEqual([]);

    // The intent: one INSERT of a row per member (its hashes packed) over one typed ARRAY<STRUCT>, with its stamp.
    const intentInsert = fake.jobs.find((j) => j.sql.startsWith('insert into `tailor`.`member_intents`'))!;
    expect(intentInsert.sql.replace(/\s+/g, ' ')).toBe(
      'insert into `tailor`.`member_intents` (`activation_id`, `member_key`, `intent_id`, `id_type`, `hash`, `recorded_at`, `until`) select ?, `u`.`member_key`, ?, ?, `u`.`hash`, ?, ? from UNNEST(?) AS `u`',
    );
    expect(intentInsert.parameters.slice(0, 5)).toEqual([
      { parameterType: { type: 'STRING' }, parameterValue: { value: 'vip_x' } },
      { parameterType: { type: 'STRING' }, parameterValue: { value: 'run1:1' } },
      { parameterType: { type: 'STRING' }, parameterValue: { value: '*' } },
      { parameterType: { type: 'TIMESTAMP' }, parameterValue: { value: '2026-11-22T12:00:30.000Z' } },
      { parameterType: { type: 'TIMESTAMP' }, parameterValue: { value: '2026-11-22T12:15:30.000Z' } },
    ]);
    const intentRows = (intentInsert.parameters[5]!.parameterValue as { arrayValues: unknown[] }).arrayValues;
    expect(intentRows).toEqual(
      [
        ['7', `email:${'a'.repeat(64)}`],
        ['8', `email:${'b'.repeat(64)};email:${'c'.repeat(64)}`],
        ['10', `email:${'d'.repeat(64)}`],
      ].map(([key, packed]) => ({
        structValues: {
          member_key: { value: key },
          hash: { value: packed },
        },
      })),
    );
    // The commit clears, last, the acknowledged members' answered intent: the diff found no older
    // ones, and every member the intent recorded is acknowledged, so by its id alone.
    const intentDelete = fake.jobs.find((j) => j.sql.startsWith('delete from `tailor`.`member_intents`'))!;
    expect(intentDelete.sql.replace(/\s+/g, ' ')).toBe(
      'delete from `tailor`.`member_intents` where `activation_id` = ? and `intent_id` IN UNNEST(?)',
    );
    expect(params(intentDelete)).toEqual([{ value: 'vip_x' }, { arrayValues: [{ value: 'run1:1' }] }]);

    // The run log carries BigQuery's cost: bytes of the run's jobs and their ids.
    // Before the run starts, only this activation's runs still `running` are closed as abandoned.
    const abandon = fake.jobs.find((j) =>
      j.sql.startsWith('update `tailor`.`runs` set `finished_at` = ?, `status` = ?, `error` = ?'),
    )!;
    expect(abandon.sql.replace(/\s+/g, ' ')).toMatch(/ where `activation_id` = \? and `status` = \?$/);
    expect(params(abandon).slice(1, 2)).toEqual([{ value: 'abandoned' }]);
    expect(params(abandon).slice(-2)).toEqual([{ value: 'vip_x' }, { value: 'running' }]);
    // (The run's end, not the update that closes abandoned runs before it starts.)
    const finish = fake.jobs.find((j) =>
      j.sql.startsWith('update `tailor`.`runs` set `finished_at` = ?, `status` = ?, `rows`'),
    )!;
    // ..., error, cost, then the match rate (typed nulls: this run's audience was not asked), run id.
    const errorParam = finish.parameters.at(-6)!;
    expect(errorParam).toEqual({ parameterType: { type: 'STRING' }, parameterValue: { value: null } });
    const costText = (finish.parameters.at(-5)!.parameterValue as { value: string }).value;
    const cost = JSON.parse(costText) as { warehouse: string; bytes_processed: number; job_ids: string[] };
    expect(cost.warehouse).toBe('bigquery');
    expect(cost.bytes_processed).toBe(52_428_800 + 1024 + 2048);
    // A dry run is neither billed nor kept by BigQuery, so its job id is not among them.
    const runJobs = fake.jobs
      .slice(
        fake.jobs.findIndex((j) => j.sql.startsWith('insert into `tailor`.`runs`')),
        fake.jobs.indexOf(finish),
      )
      .filter((j) => !j.dryRun);
    expect(cost.job_ids).toEqual(runJobs.map((j) => j.jobId));
    expect(source.cost().bytes_processed).toBe(52_428_800 + 1024 + 2048);
  });

  it("migrates a version-2 dataset to 3 to 8 in place: member_intents, keys digested and marked, state_identity, version 5 recorded, runs.suppressed, the match rate columns, the members' key hash", async () => {
    fake.on(/^select max\(`version`\)/, { fields: [{ name: 'version', type: 'INT64' }], rows: [[2]] });
    fake.on(/^update `tailor`.`(members|member_hashes|rejections)`/, { affected: 3 });
    await createStateStore(source, 'tailor', { logger: silentLogger }).migrate();
    expect(fake.jobs.map((j) => j.sql.replace(/\s+/g, ' '))).toEqual([
      'select max(`version`) as `version` from `tailor`.`tailor_migrations`',
      'create table if not exists `tailor`.`tailor_migrations` (`version` INT64 not null, `name` STRING not null, `applied_at` TIMESTAMP not null)',
      'select max(`version`) as `version` from `tailor`.`tailor_migrations`',
      'create table if not exists `tailor`.`member_intents` (`activation_id` STRING not null, `member_key` STRING not null, `intent_id` STRING not null, `id_type` STRING not null, `hash` STRING not null, `recorded_at` TIMESTAMP not null, `until` TIMESTAMP not null)',
      // No transaction on BigQuery: each row is marked by the statement that digests it, so a re-run
      // after a crash between these digests no key twice.
      ...['members', 'member_hashes', 'rejections'].flatMap((table) => [
        `alter table \`tailor\`.\`${table}\` add column if not exists \`key_digested\` BOOL`,
        `update \`tailor\`.\`${table}\` set \`member_key\` = TO_HEX(SHA256(\`member_key\`)), \`key_digested\` = true where \`key_digested\` is null`,
      ]),
      'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at`) select ?, ?, current_timestamp from (select 1 as `one`) as `x` where not exists (select 1 from `tailor`.`tailor_migrations` where `version` = ?)',
      // Version 4: state_identity only; its one row is inserted when first read (StateSql.stateId).
      'create table if not exists `tailor`.`state_identity` (`state_id` STRING not null, `created_at` TIMESTAMP not null)',
      'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at`) select ?, ?, current_timestamp from (select 1 as `one`) as `x` where not exists (select 1 from `tailor`.`tailor_migrations` where `version` = ?)',
      // Version 5 is a Postgres index only: recorded, nothing run.
      'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at`) select ?, ?, current_timestamp from (select 1 as `one`) as `x` where not exists (select 1 from `tailor`.`tailor_migrations` where `version` = ?)',
      // Version 6: the run log's suppressed count.
      'alter table `tailor`.`runs` add column if not exists `suppressed` INT64',
      'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at`) select ?, ?, current_timestamp from (select 1 as `one`) as `x` where not exists (select 1 from `tailor`.`tailor_migrations` where `version` = ?)',
      // Version 7: the run log's match rate, one column a statement.
      'alter table `tailor`.`runs` add column if not exists `audience_size` INT64',
      'alter table `tailor`.`runs` add column if not exists `members_sent` INT64',
      'alter table `tailor`.`runs` add column if not exists `audience_processed_at` TIMESTAMP',
      'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at`) select ?, ?, current_timestamp from (select 1 as `one`) as `x` where not exists (select 1 from `tailor`.`tailor_migrations` where `version` = ?)',
      // Version 8: the members' key hash (FARM_FINGERPRINT's INT64); no index on BigQuery.
      'alter table `tailor`.`members` add column if not exists `key_hash` INT64',
      'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at`) select ?, ?, current_timestamp from (select 1 as `one`) as `x` where not exists (select 1 from `tailor`.`tailor_migrations` where `version` = ?)',
    ]);
    for (const job of fake.jobs.slice(3, -12)) expect(job.parameters).toEqual([]);
    expect(fake.jobs.at(-11)!.parameters).toEqual([]);
    expect(params(fake.jobs.at(-9)!)).toEqual([
      { value: 5 },
      { value: 'index for clearing answered intents' },
      { value: 5 },
    ]);
    expect(params(fake.jobs.at(-12)!)).toEqual([
      { value: 3 },
      { value: 'intents before send, and key digests' },
      { value: 3 },
    ]);
    expect(params(fake.jobs.at(-10)!)).toEqual([
      { value: 4 },
      { value: 'state identity for audience owner marks' },
      { value: 4 },
    ]);
    expect(fake.jobs.at(-8)!.parameters).toEqual([]);
    expect(params(fake.jobs.at(-7)!)).toEqual([
      { value: 6 },
      { value: 'suppressed count in the run log' },
      { value: 6 },
    ]);
    for (const at of [-6, -5, -4, -2]) expect(fake.jobs.at(at)!.parameters).toEqual([]);
    expect(params(fake.jobs.at(-3)!)).toEqual([
      { value: 7 },
      { value: 'match rate in the run log' },
      { value: 7 },
    ]);
    expect(params(fake.jobs.at(-1)!)).toEqual([
      { value: 8 },
      { value: 'key hashes for the diff' },
      { value: 8 },
    ]);
  });

  it('diffs against intents when members have some: the union state side, then their hashes read', async () => {
    fake.on(/^select max\(`version`\)/, { fields: [{ name: 'version', type: 'INT64' }], rows: [[3]] });
    // Every member has a key hash, but intents name members by digest: compared by digest. No
    // invalid key (the counts' `invalid`, the probe's `b`).
    fake.on(PEND_COUNT, pendCount(2, 1, 0));
    fake.on(ANY_INVALID, anyInvalid(0));
    fake.on(/^select\s+\(select count\(\*\) from `tailor`.`tailor_snap_/, {
      fields: ['row_count', 'invalid', 'removed', 'changed', 'refresh', 'added'].map((name) => ({
        name,
        type: 'INT64',
      })),
      rows: [[2, 0, 1, 0, 1, 0]],
    });
    fake.on(/^select\s+`d`.`change_rank`/, {
      fields: [...DELTA_FIELDS, hashesField('pending_hashes')],
      rows: [
        // An intent-only key that left the segment: removed, with no stored hashes.
        ['k9', 0, null, null, [], [{ id_type: 'email', hash: 'e'.repeat(64) }]],
        // A member with intents and unchanged values: re-sent with them.
        [
          'k1',
          2,
          'f1',
          'one@example.com',
          [{ id_type: 'email', hash: 'a'.repeat(64) }],
          [
            { id_type: 'email', hash: 'a'.repeat(64) },
            { id_type: 'email', hash: 'b'.repeat(64) },
          ],
        ],
      ].map(([key, rank, ...rest]) => [rank, key, null, ...rest]),
    });
    const state = createStateStore(source, 'tailor', { logger: silentLogger });
    await using diff = await state.prepareDiff({
      activationId: 'vip_x',
      modelSql: 'select customer_id, email from shop.customers',
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
    ]);
    const sql = (pattern: RegExp) => fake.jobs.find((j) => pattern.test(j.sql))!.sql.replace(/\s+/g, ' ');
    expect(sql(/^CREATE TABLE `tailor`.`tailor_pend_/)).toMatch(
      /^CREATE TABLE `tailor`.`tailor_pend_[0-9a-f]{16}` OPTIONS \(expiration_timestamp = TIMESTAMP_ADD\(CURRENT_TIMESTAMP\(\), INTERVAL 24 HOUR\)\) AS select distinct `member_key` from `tailor`.`member_intents` where `activation_id` = 'vip_x'$/,
    );
    const compare = sql(/^CREATE TABLE `tailor`.`tailor_delta_/).replace(/_[0-9a-f]{16}`/g, '_<token>`');
    expect(compare).toContain(
      "full outer join (select `sm`.`member_key`, `sm`.`fingerprint`, `sm`.`last_sent_at`, case when `sp`.`member_key` is null then 0 else 1 end as `pending` from `tailor`.`members` as `sm` left join `tailor`.`tailor_pend_<token>` as `sp` on `sp`.`member_key` = `sm`.`member_key` where `sm`.`activation_id` = 'vip_x' union all select `sp`.`member_key`, CAST(NULL AS STRING), CAST(NULL AS TIMESTAMP), 1 from `tailor`.`tailor_pend_<token>` as `sp` where not exists (select 1 from `tailor`.`members` as `sm` where `sm`.`activation_id` = 'vip_x' and `sm`.`member_key` = `sp`.`member_key`)) as `t`",
    );
    expect(compare).toContain('or `t`.`pending` = 1 or false or');
    // No invalid key: the valid rows are those with a key, no anti-join.
    expect(compare).toContain(
      'from (select * from `tailor`.`tailor_snap_<token>` as `s0` where `s0`.`member_key` is not null) as `s` full outer join',
    );
    const read = fake.jobs.find((j) => /^select\s+`d`.`change_rank`/.test(j.sql))!;
    expect(read.sql.replace(/\s+/g, ' ')).toContain(
      'ARRAY(SELECT AS STRUCT h.id_type, h.`hash` FROM `tailor`.`member_intents` AS h WHERE h.activation_id = ? AND h.member_key = `d`.`member_key` ORDER BY h.id_type, h.`hash`) as `pending_hashes`',
    );
    expect(params(read)).toEqual([{ value: 'vip_x' }, { value: 'vip_x' }]);
  });

  it('reports a failing model as ModelSqlError and drops what the diff created', async () => {
    fake.on(/^select max\(`version`\)/, { fields: [{ name: 'version', type: 'INT64' }], rows: [[8]] });
    fake.on(/^CREATE TABLE `tailor`.`tailor_snap_/, {
      error: { code: 400, reason: 'invalidQuery', message: 'Unrecognized name: emial at [1:8]' },
    });
    const error = await createStateStore(source, 'tailor', { logger: silentLogger })
      .prepareDiff({
        activationId: 'vip_x',
        modelSql: 'select id, emial from shop.customers',
        modelName: 'vip',
        primaryKey: 'id',
        columns: ['emial'],
        refreshBefore: null,
        fullResync: false,
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelSqlError);
    expect((error as Error).message).toBe('model vip: Unrecognized name: emial at [1:8]');
    expect(fake.jobs.map((j) => head(j.sql))).toEqual([
      'select max(`version`) as `version` from `tailor`.`tailor_migrations`',
      // Members with intents and the probe first: the snapshot's form depends on them.
      'CREATE TABLE `tailor`.`tailor_pend_<token>` OPTIONS (expiration_timestam',
      'select count(*) as `n`, (select count(*) from (select 1 as `one` from `t',
      expect.stringMatching(/^CREATE TABLE `tailor`.`tailor_snap_<token>`/),
      'drop table if exists `tailor`.`tailor_snap_<token>`',
      'drop table if exists `tailor`.`tailor_pend_<token>`',
    ]);
  });

  it('runs a Kysely transaction inside a BigQuery session, ended after COMMIT', async () => {
    const executor = new BigqueryExecutor(
      createBigqueryClient(
        bigqueryConfigSchema.parse({
          type: 'bigquery',
          project_id: 'acme-analytics',
          location: 'EU',
          api_endpoint: fake.url,
        }),
        {
          projectDir: '/tmp',
          authClient: fakeAuth(),
        },
      ),
      'EU',
    );
    const db = new Kysely<unknown>({ dialect: new BigqueryDialect(executor) });
    fake.on(/^DELETE/, { affected: 2 });
    await db.transaction().execute(async (trx) => {
      await sql`DELETE FROM ${sql.id('tailor', 'members')} WHERE activation_id = ${'vip_x'}`.execute(trx);
      await sql`DELETE FROM ${sql.id('tailor', 'member_hashes')} WHERE activation_id = ${'vip_x'}`.execute(
        trx,
      );
    });
    await db.destroy();
    expect(fake.jobs.map((j) => j.sql)).toEqual([
      'BEGIN TRANSACTION',
      'DELETE FROM `tailor`.`members` WHERE activation_id = ?',
      'DELETE FROM `tailor`.`member_hashes` WHERE activation_id = ?',
      'COMMIT TRANSACTION',
      'CALL BQ.ABORT_SESSION()',
    ]);
    const query = (j: FakeBigqueryJob) => j.configuration.query as Record<string, unknown>;
    expect(query(fake.jobs[0]!).createSession).toBe(true);
    for (const job of fake.jobs.slice(1)) {
      expect(query(job).connectionProperties).toEqual([{ key: 'session_id', value: 'fake-session-1' }]);
    }
  });

  it('logs each job with its bytes and SQL at debug level, never its parameters', async () => {
    const lines: string[] = [];
    const debug = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const client = createBigqueryClient(
      bigqueryConfigSchema.parse({ type: 'bigquery', project_id: 'acme-analytics', api_endpoint: fake.url }),
      { projectDir: '/tmp', authClient: fakeAuth() },
    );
    fake.on(/^SELECT COUNT/, { fields: [{ name: 'n', type: 'INT64' }], rows: [[1]], bytes: 4096 });
    await new BigqueryExecutor(client, 'US', debug).all('SELECT COUNT(*) AS n FROM t WHERE email = ?', [
      'person@example.com',
    ]);
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!) as { msg: string; bytesProcessed: number; jobId: string };
    expect(entry.msg).toBe('bigquery job: SELECT COUNT(*) AS n FROM t WHERE email = ?');
    expect(entry.bytesProcessed).toBe(4096);
    expect(lines[0]).not.toContain('person@example.com');
  });

  it('keeps data values and the request out of a failed job’s error', async () => {
    fake.on(/^select max\(`version`\)/, { fields: [{ name: 'version', type: 'INT64' }], rows: [[3]] });
    fake.on(/^select count/, {
      error: {
        code: 400,
        reason: 'invalidQuery',
        message: "Bad int64 value: jane@example.com; also 'joe@example.com'",
      },
    });
    const error = await createStateStore(source, 'tailor', { logger: silentLogger })
      .memberCount('vip_x')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WarehouseError);
    const chain: unknown[] = [];
    for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) chain.push(e);
    const text = JSON.stringify(
      chain,
      Object.getOwnPropertyNames(new Error()).concat(['errors', 'code', 'cause']),
    );
    expect(text).toContain('Bad int64 value: …');
    expect(text).not.toMatch(/jane@|joe@|queryParameters|vip_x/);
    expect(redactBigqueryMessage('Unrecognized name: emial at [1:8]; table `shop`.`customers`')).toBe(
      'Unrecognized name: emial at [1:8]; table `shop`.`customers`',
    );
  });

  it('waits for a job that is still running, polling jobs.getQueryResults', async () => {
    fake.on(/^SELECT 1 AS ok$/, { fields: [{ name: 'ok', type: 'INT64' }], rows: [[1]], pendingPolls: 2 });
    await source.check();
    expect(fake.calls().filter((c) => c.includes('/queries/'))).toHaveLength(3);
  });

  it('reports a busy lock when the lease row belongs to another run', async () => {
    fake.on(/^select max\(`version`\)/, { fields: [{ name: 'version', type: 'INT64' }], rows: [[3]] });
    fake.on(/^merge into `tailor`.`locks`/, { affected: 0 });
    await expect(
      createStateStore(source, 'tailor', { logger: silentLogger }).lock('vip_x', { wait: false }),
    ).rejects.toThrow(/already running/);
  });
});
/** A member's hashes as the delta read returns them: a REPEATED RECORD of (id_type, hash). */
function hashesField(name: string) {
  return {
    name,
    type: 'RECORD',
    mode: 'REPEATED' as const,
    fields: [
      { name: 'id_type', type: 'STRING' },
      { name: 'hash', type: 'STRING' },
    ],
  };
}

/** The delta read's columns for a one-column model, up to previous_hashes. */
const DELTA_FIELDS = [
  { name: 'change_rank', type: 'INT64' },
  { name: 'member_key', type: 'STRING' },
  // An added member's key hash as text (hash mode), else null.
  { name: 'key_hash', type: 'STRING' },
  { name: 'fingerprint', type: 'STRING' },
  { name: 'v_0', type: 'STRING' },
  hashesField('previous_hashes'),
];

/** The statements of one run, in order (tokens masked, first 72 characters). */
const EXPECTED_RUN = [
  'select max(`version`) as `version` from `tailor`.`tailor_migrations`',
  "CREATE SCHEMA IF NOT EXISTS `tailor` OPTIONS (location = 'EU')",
  'create table if not exists `tailor`.`tailor_migrations` (`version` INT64',
  'select max(`version`) as `version` from `tailor`.`tailor_migrations`',
  'create table if not exists `tailor`.`bindings` (`activation_id` STRING n',
  'create table if not exists `tailor`.`members` (`activation_id` STRING no',
  'create table if not exists `tailor`.`member_hashes` (`activation_id` STR',
  'create table if not exists `tailor`.`runs` (`run_id` STRING not null, `a',
  'create table if not exists `tailor`.`rejections` (`run_id` STRING not nu',
  'create table if not exists `tailor`.`activation_status` (`activation_id`',
  'create table if not exists `tailor`.`locks` (`activation_id` STRING not ',
  'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at',
  'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at',
  'create table if not exists `tailor`.`member_intents` (`activation_id` ST',
  'alter table `tailor`.`members` add column if not exists `key_digested` B',
  'update `tailor`.`members` set `member_key` = TO_HEX(SHA256(`member_key`)',
  'alter table `tailor`.`member_hashes` add column if not exists `key_diges',
  'update `tailor`.`member_hashes` set `member_key` = TO_HEX(SHA256(`member',
  'alter table `tailor`.`rejections` add column if not exists `key_digested',
  'update `tailor`.`rejections` set `member_key` = TO_HEX(SHA256(`member_ke',
  'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at',
  'create table if not exists `tailor`.`state_identity` (`state_id` STRING ',
  'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at',
  'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at',
  'alter table `tailor`.`runs` add column if not exists `suppressed` INT64',
  'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at',
  'alter table `tailor`.`runs` add column if not exists `audience_size` INT',
  'alter table `tailor`.`runs` add column if not exists `members_sent` INT6',
  'alter table `tailor`.`runs` add column if not exists `audience_processed',
  'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at',
  'alter table `tailor`.`members` add column if not exists `key_hash` INT64',
  'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at',
  'merge into `tailor`.`locks` as `t` using (select ? as `activation_id`) a',
  'select `holder` from `tailor`.`locks` where `activation_id` = ?',
  // Under the lock, a run a killed process left `running` is closed as abandoned.
  'update `tailor`.`runs` set `finished_at` = ?, `status` = ?, `error` = ? ',
  'insert into `tailor`.`runs` (`run_id`, `activation_id`, `started_at`, `s',
  'CREATE TABLE `tailor`.`tailor_pend_<token>` OPTIONS (expiration_timestam',
  // Members with intents, whether the activation has any member (else a first load: no delta
  // table), and whether one lacks a key hash (then by key digest, as here).
  'select count(*) as `n`, (select count(*) from (select 1 as `one` from `t',
  // The snapshot twice: first a dry run (its statementType checked), then the job itself.
  'CREATE TABLE `tailor`.`tailor_snap_<token>` OPTIONS (expiration_timestam',
  'CREATE TABLE `tailor`.`tailor_snap_<token>` OPTIONS (expiration_timestam',
  'CREATE TABLE `tailor`.`tailor_bad_<token>` OPTIONS (expiration_timestamp',
  // Whether a key is invalid (one row looked for).
  'select count(*) as `b` from (select 1 as `one` from `tailor`.`tailor_bad',
  'CREATE TABLE `tailor`.`tailor_delta_<token>` OPTIONS (expiration_timesta',
  'select (select count(*) from `tailor`.`tailor_snap_<token>`) as `row_cou',
  'select `member_key`, `n` from `tailor`.`tailor_bad_<token>` order by `me',
  'select `d`.`change_rank`, `d`.`member_key`, null as `key_hash`, `d`.`fin',
  'insert into `tailor`.`member_intents` (`activation_id`, `member_key`, `i',
  'delete from `tailor`.`member_hashes` where `activation_id` = ? and `memb',
  'insert into `tailor`.`member_hashes` (`activation_id`, `member_key`, `id',
  'merge into `tailor`.`members` as `t` using (select `u`.`member_key`, `u`',
  'delete from `tailor`.`member_intents` where `activation_id` = ? and `int',
  // After the commits, the members compared by digest given their key hashes.
  'update `tailor`.`members` set `key_hash` = `u`.`key_hash` from (select `',
  'drop table if exists `tailor`.`tailor_delta_<token>`',
  'drop table if exists `tailor`.`tailor_bad_<token>`',
  'drop table if exists `tailor`.`tailor_snap_<token>`',
  'drop table if exists `tailor`.`tailor_pend_<token>`',
  'update `tailor`.`runs` set `finished_at` = ?, `status` = ?, `rows` = ?, ',
  'delete from `tailor`.`locks` where `activation_id` = ? and `holder` = ?',
];
