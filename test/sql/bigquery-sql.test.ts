import { Kysely, sql } from 'kysely';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { WarehouseError } from '../../src/errors.js';
import { BigqueryDialect } from '../../src/sources/bigquery/bigquery-dialect.js';
import type { BigqueryRunner, BigqueryStatement } from '../../src/sources/bigquery/bigquery-executor.js';
import { bigqueryParam, bigqueryParams } from '../../src/sources/bigquery/bigquery-params.js';
import { createBigqueryHooks } from '../../src/sources/bigquery/bigquery-hooks.js';
import { openDiff, type DiffInput } from '../../src/diff/diff-sql.js';
import { StateSql } from '../../src/diff/state-sql.js';
import { runCountsOf } from '../helpers/counts.js';
import { vipDiff } from '../helpers/diff-input.js';

/**
 * Compile tests: the exact GoogleSQL text and typed parameters the BigQuery dialect produces, for
 * Kysely's builders and for every WarehouseSql statement. Nothing is sent anywhere: a recording
 * runner stands where the SDK executor goes and answers the few reads the code depends on.
 */

interface Recorded {
  sql: string;
  params: unknown[];
  types: unknown[];
}

class RecordingRunner implements BigqueryRunner {
  readonly recorded: Recorded[] = [];
  constructor(private readonly answer: (sql: string) => Record<string, unknown>[] = () => []) {}

  async run(text: string, parameters: readonly unknown[]): Promise<BigqueryStatement> {
    const { params, types } = bigqueryParams(parameters);
    this.recorded.push({ sql: text.replace(/\s+/g, ' ').trim(), params, types });
    const rows = this.answer(text);
    return {
      jobId: `job_${this.recorded.length}`,
      rows,
      numAffectedRows: /^\s*(MERGE|INSERT|UPDATE|DELETE)/i.test(text) ? 1n : undefined,
      sessionId: undefined,
      async *pages() {},
    };
  }

  all(text: string, parameters: readonly unknown[] = []): Promise<BigqueryStatement> {
    return this.run(text, parameters);
  }
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
const mask = (recorded: Recorded[]) =>
  JSON.parse(JSON.stringify(recorded).replace(UUID, '<uuid>')) as Recorded[];

function setup(answer?: (sql: string) => Record<string, unknown>[]) {
  const runner = new RecordingRunner(answer);
  const db = new Kysely<unknown>({ dialect: new BigqueryDialect(runner) });
  const logger = pino({ level: 'silent' });
  const hooks = createBigqueryHooks({
    db,
    dataset: 'tailor',
    location: 'EU',
    logger: pino({ level: 'silent' }),
    retryDelayMs: 1,
    costMark: () => 0,
    costSince: () => ({
      warehouse: 'bigquery',
      jobs: 3,
      bytes_processed: 1024,
      bytes_billed: 10_485_760,
      job_ids: ['a', 'b', 'c'],
    }),
  });
  const state = new StateSql({ stateSchema: 'tailor', db, hooks }, logger);
  const warehouse = Object.assign(state, {
    tryLock: (activationId: string) => hooks.tryLock(activationId),
    openDiff: (input: DiffInput) => openDiff(state, input, logger),
  });
  return { runner, db, warehouse };
}

/** The diff's count of intents, members and members without a key hash, answered by each test as it needs. */
const PEND_COUNT = /^select count\(\*\) as `n`,[\s\S]* from `tailor`.`tailor_pend_abc123`$/;
/** Whether a table of invalid keys (by digest, or by key hash) holds a row. */
const ANY_INVALID =
  /^select count\(\*\) as `b` from \(select 1 as `one` from `tailor`.`tailor_badh?_abc123` limit 1\) as `y`$/;
/** How many key hashes two different keys share (hash mode, when some key is invalid). */
const COLLISIONS = /^select count\(\*\) as `c` from/;

/**
 * Answers the diff's probes: intents (`n`), members (`m`), members without a key hash (`u`: 1 is
 * digest mode), invalid keys (`b`) and shared key hashes (`c`); nothing for any other statement.
 */
const probes =
  (counts: { n?: number; m?: number; u?: number; b?: number; c?: number }) =>
  (text: string): Record<string, unknown>[] => {
    const statement = text.replace(/\s+/g, ' ').trim();
    if (PEND_COUNT.test(statement)) return [{ n: counts.n ?? 0, m: counts.m ?? 1, u: counts.u ?? 0 }];
    if (ANY_INVALID.test(statement)) return [{ b: counts.b ?? 0 }];
    if (COLLISIONS.test(statement)) return [{ c: counts.c ?? 0 }];
    return [];
  };

/** A CREATE TABLE ... AS of a run-scoped table, without its expiration. */
const withoutExpiration = (statement: string) =>
  statement.replace(
    ' OPTIONS (expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL 24 HOUR))',
    '',
  );

describe('BigQuery query compiler', () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- builder tests over an untyped schema
  const db = new Kysely<any>({ dialect: new BigqueryDialect(new RecordingRunner()) });

  it('quotes identifiers with backticks and binds positional ? parameters', () => {
    const query = db
      .selectFrom('tailor.members')
      .select(['member_key', 'fingerprint'])
      .where('activation_id', '=', 'vip')
      .where('last_sent_at', '<', new Date('2026-01-01T00:00:00Z'))
      .orderBy('member_key')
      .limit(10)
      .compile();
    expect(query.sql).toBe(
      'select `member_key`, `fingerprint` from `tailor`.`members` where `activation_id` = ? and `last_sent_at` < ? order by `member_key` limit ?',
    );
    expect(bigqueryParams(query.parameters)).toEqual({
      params: ['vip', new Date('2026-01-01T00:00:00Z'), 10],
      types: ['STRING', 'TIMESTAMP', 'INT64'],
    });
  });

  it('writes a bare null as the NULL literal, since BigQuery refuses untyped null parameters', () => {
    const query = db
      .updateTable('tailor.runs')
      .set({ error: null, status: 'ok' })
      .where('run_id', '=', 'r1')
      .compile();
    expect(query.sql).toBe('update `tailor`.`runs` set `error` = NULL, `status` = ? where `run_id` = ?');
    expect(query.parameters).toEqual(['ok', 'r1']);
  });

  it('sends typed nulls and typed arrays when asked, and refuses an untyped null', () => {
    const query =
      sql`select ${bigqueryParam(null, 'TIMESTAMP')}, ${bigqueryParam([], ['STRING'])}, ${[1, 2]}`.compile(
        db,
      );
    expect(query.sql).toBe('select ?, ?, ?');
    expect(bigqueryParams(query.parameters)).toEqual({
      params: [null, [], [1, 2]],
      types: ['TIMESTAMP', ['STRING'], ['INT64']],
    });
    expect(() => bigqueryParams([null])).toThrow(WarehouseError);
    expect(bigqueryParams([10n, 1.5, true, { a: 1 }])).toEqual({
      params: ['10', 1.5, true, { a: 1 }],
      types: ['INT64', 'FLOAT64', 'BOOL', 'JSON'],
    });
  });

  it('escapes backticks in identifiers and quotes/backslashes in literals with a backslash', () => {
    expect(
      sql`select ${sql.id('we`ird')} from t where x = ${sql.lit("it's a \\ path")}`.compile(db).sql,
    ).toBe("select `we\\`ird` from t where x = 'it\\'s a \\\\ path'");
  });

  it('maps Postgres-style column types of portable schema code to GoogleSQL types', () => {
    const query = db.schema
      .createTable('tailor.t')
      .ifNotExists()
      .addColumn('a', 'text')
      .addColumn('b', 'bigint')
      .addColumn('c', 'timestamptz')
      .addColumn('d', 'jsonb')
      .addColumn('e', 'boolean')
      .compile();
    expect(query.sql).toBe(
      'create table if not exists `tailor`.`t` (`a` STRING, `b` INT64, `c` TIMESTAMP, `d` JSON, `e` BOOL)',
    );
  });
});

describe('BigQuery state and diff statements (src/diff over the BigQuery hooks)', () => {
  it('migrates: dataset in its location when missing, then the state tables and the version row', async () => {
    let calls = 0;
    const { runner, warehouse } = setup((text) => {
      if (/^select max\(`version`\)/i.test(text)) {
        calls += 1;
        if (calls === 1) throw Object.assign(new Error('Not found: Dataset p:tailor'), { code: 404 });
        return [{ version: null }];
      }
      return [];
    });
    await warehouse.migrate();
    expect(mask(runner.recorded)).toMatchSnapshot();
  });

  it("migrates a version-1 dataset forward in place: records versions 2 to 8, creates only member_intents and state_identity, adds runs.suppressed, the match rate columns and the members' key hash", async () => {
    const { runner, warehouse } = setup((text) =>
      /^select max\(`version`\)/i.test(text) ? [{ version: 1 }] : [],
    );
    await warehouse.migrate();
    const created = runner.recorded.filter((r) => /^create/i.test(r.sql)).map((r) => r.sql.split('(')[0]);
    expect(created).toEqual([
      expect.stringMatching(/tailor_migrations/i),
      expect.stringMatching(/`member_intents`/),
      expect.stringMatching(/`state_identity`/),
    ]);
    const recorded = runner.recorded.filter((r) => /^insert/i.test(r.sql));
    expect(recorded.map((r) => r.params[0])).toEqual([2, 3, 4, 5, 6, 7, 8]);
  });

  it("migrates a version-2 dataset to 3 to 8: member_intents, each key digested in place, each row marked as it is, then state_identity, then version 5 recorded only, then runs.suppressed (6), then the match rate columns (7), then the members' key hash (8)", async () => {
    const { runner, warehouse } = setup((text) =>
      /^select max\(`version`\)/i.test(text) ? [{ version: 2 }] : [],
    );
    await warehouse.migrate();
    const statements = runner.recorded.map((r) => r.sql);
    // The version read, the migrations table (if not exists; the dataset exists), the version read
    // again, then version 3's statements, version 4's, and version 5's record.
    expect(statements.slice(0, 3).map((t) => t.split(' ').slice(0, 2).join(' '))).toEqual([
      'select max(`version`)',
      'create table',
      'select max(`version`)',
    ]);
    expect(statements.slice(3)).toEqual([
      'create table if not exists `tailor`.`member_intents` (`activation_id` STRING not null, `member_key` STRING not null, `intent_id` STRING not null, `id_type` STRING not null, `hash` STRING not null, `recorded_at` TIMESTAMP not null, `until` TIMESTAMP not null)',
      // SHA256 of a STRING hashes its UTF-8 bytes; TO_HEX is lowercase. Without transactions, each row
      // is marked by the statement that digests it: a re-run after a crash digests no key twice.
      ...['members', 'member_hashes', 'rejections'].flatMap((table) => [
        `alter table \`tailor\`.\`${table}\` add column if not exists \`key_digested\` BOOL`,
        `update \`tailor\`.\`${table}\` set \`member_key\` = TO_HEX(SHA256(\`member_key\`)), \`key_digested\` = true where \`key_digested\` is null`,
      ]),
      'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at`) select ?, ?, current_timestamp from (select 1 as `one`) as `x` where not exists (select 1 from `tailor`.`tailor_migrations` where `version` = ?)',
      // Version 4 creates state_identity only (if not exists): its one row is inserted when first
      // read (StateSql.stateId), by a statement that inserts nothing once a row is there.
      'create table if not exists `tailor`.`state_identity` (`state_id` STRING not null, `created_at` TIMESTAMP not null)',
      'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at`) select ?, ?, current_timestamp from (select 1 as `one`) as `x` where not exists (select 1 from `tailor`.`tailor_migrations` where `version` = ?)',
      // Version 5 is a Postgres index only: recorded, nothing run.
      'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at`) select ?, ?, current_timestamp from (select 1 as `one`) as `x` where not exists (select 1 from `tailor`.`tailor_migrations` where `version` = ?)',
      // Version 6 adds the suppressed count to the run log.
      'alter table `tailor`.`runs` add column if not exists `suppressed` INT64',
      'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at`) select ?, ?, current_timestamp from (select 1 as `one`) as `x` where not exists (select 1 from `tailor`.`tailor_migrations` where `version` = ?)',
      // Version 7 records the match rate in the run log, one column a statement.
      'alter table `tailor`.`runs` add column if not exists `audience_size` INT64',
      'alter table `tailor`.`runs` add column if not exists `members_sent` INT64',
      'alter table `tailor`.`runs` add column if not exists `audience_processed_at` TIMESTAMP',
      'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at`) select ?, ?, current_timestamp from (select 1 as `one`) as `x` where not exists (select 1 from `tailor`.`tailor_migrations` where `version` = ?)',
      // Version 8 adds the members' key hash (INT64, as FARM_FINGERPRINT gives it); no index on BigQuery.
      'alter table `tailor`.`members` add column if not exists `key_hash` INT64',
      'insert into `tailor`.`tailor_migrations` (`version`, `name`, `applied_at`) select ?, ?, current_timestamp from (select 1 as `one`) as `x` where not exists (select 1 from `tailor`.`tailor_migrations` where `version` = ?)',
    ]);
    expect(runner.recorded.at(-12)!.params).toEqual([3, 'intents before send, and key digests', 3]);
    expect(runner.recorded.at(-10)!.params).toEqual([4, 'state identity for audience owner marks', 4]);
    expect(runner.recorded.at(-7)!.params).toEqual([6, 'suppressed count in the run log', 6]);
    expect(runner.recorded.at(-3)!.params).toEqual([7, 'match rate in the run log', 7]);
    expect(runner.recorded.at(-1)!.params).toEqual([8, 'key hashes for the diff', 8]);
    for (const r of runner.recorded.slice(3, -12)) expect(r.params).toEqual([]);
    expect(runner.recorded.at(-11)!.params).toEqual([]);
    expect(runner.recorded.at(-9)!.params).toEqual([5, 'index for clearing answered intents', 5]);
    for (const at of [-8, -6, -5, -4, -2]) expect(runner.recorded.at(at)!.params).toEqual([]);
  });

  it('migrates nothing on a dataset already at version 8', async () => {
    const { runner, warehouse } = setup((text) =>
      /^select max\(`version`\)/i.test(text) ? [{ version: 8 }] : [],
    );
    await warehouse.migrate();
    expect(runner.recorded.map((r) => r.sql.split(' ')[0])).toEqual(['select']);
  });

  it("writes a changed member's hashes as a difference, and an added one's by key", async () => {
    const { runner, warehouse } = setup();
    await warehouse.applyMemberChanges('vip_x', {
      upserts: [
        {
          key: '1',
          fingerprint: 'f1',
          hashes: [
            { idType: 'email', hash: 'h2' },
            { idType: 'phone_number', hash: 'p1' },
          ],
          previousHashes: [
            { idType: 'email', hash: 'h1' },
            { idType: 'phone_number', hash: 'p1' },
          ],
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
      removals: [],
    });
    expect(mask(runner.recorded)).toMatchSnapshot();
  });

  it('takes, checks and releases the lease-row lock', async () => {
    let holder = '';
    const { runner, warehouse } = setup((text) => (/^select `holder`/i.test(text) ? [{ holder }] : []));
    const original = runner.run.bind(runner);
    runner.run = async (text, parameters) => {
      if (/^merge/i.test(text)) holder = String(parameters[1]);
      return original(text, parameters);
    };
    const lock = await warehouse.tryLock('vip_x');
    expect(lock).not.toBeNull();
    await lock!.release();
    await lock!.release(); // idempotent
    expect(mask(runner.recorded)).toMatchSnapshot();
    expect(runner.recorded[0]!.params).toEqual(['vip_x', expect.any(String), expect.any(String)]);
    expect(runner.recorded[0]!.params[1]).toBe(runner.recorded[0]!.params[2]);
    expect(runner.recorded[0]!.sql).toContain('INTERVAL 600 SECOND');
  });

  it('retries a statement BigQuery aborted for a concurrent update, and no other failure', async () => {
    let failures = 1;
    const { runner, warehouse } = setup((text) => {
      if (/^delete/i.test(text) && failures-- > 0) {
        throw new Error('Could not serialize access to table p:tailor.bindings due to concurrent update');
      }
      if (/^update/i.test(text)) throw new Error('Syntax error: Unexpected keyword');
      return [];
    });
    await warehouse.deleteBinding('vip_x');
    expect(runner.recorded.map((r) => r.sql.slice(0, 6))).toEqual(['delete', 'delete']);
    await expect(
      warehouse.finishRun('r1', {
        status: 'failed',
        counts: runCountsOf(),
        error: null,
        finishedAt: new Date(0),
      }),
    ).rejects.toThrow(WarehouseError);
    expect(runner.recorded).toHaveLength(3);
  });

  it('loses the lock when the lease row names another holder', async () => {
    const { warehouse } = setup((text) =>
      /^select `holder`/i.test(text) ? [{ holder: 'someone-else' }] : [],
    );
    await expect(warehouse.tryLock('vip_x')).resolves.toBeNull();
  });

  it('reads, saves and deletes bindings', async () => {
    const boundAt = new Date('2026-11-22T10:00:00Z');
    const { runner, warehouse } = setup((text) =>
      /^select `activation_id`, `destination`/i.test(text)
        ? [
            {
              activation_id: 'vip_x',
              destination: 'x',
              account_id: 'acc',
              audience_id: 'aud',
              audience_name: 'VIP',
              bound_at: boundAt,
            },
          ]
        : [],
    );
    await warehouse.saveBinding({
      activationId: 'vip_x',
      destination: 'x',
      accountId: 'acc',
      audienceId: 'aud',
      audienceName: 'VIP',
      boundAt,
    });
    await expect(warehouse.getBinding('vip_x')).resolves.toEqual({
      activationId: 'vip_x',
      destination: 'x',
      accountId: 'acc',
      audienceId: 'aud',
      audienceName: 'VIP',
      boundAt,
    });
    await warehouse.deleteBinding('vip_x');
    expect(mask(runner.recorded)).toMatchSnapshot();
  });

  it('applies acknowledged changes over typed ARRAY<STRUCT> parameters', async () => {
    const { runner, warehouse } = setup();
    const sentAt = new Date('2026-11-22T10:00:00Z');
    await warehouse.applyMemberChanges('vip_x', {
      upserts: [
        {
          key: '1',
          fingerprint: 'f1',
          hashes: [
            { idType: 'email', hash: 'h1' },
            { idType: 'email', hash: 'h1' },
          ],
          lastSentAt: sentAt,
        },
        // An added member, with the key hash its delta row carried (decimal text).
        { key: '2', keyHash: '-4611686018427387904', fingerprint: 'f2', hashes: [], lastSentAt: null },
      ],
      removals: ['3'],
      intentIds: ['i1'],
    });
    await warehouse.applyMemberChanges('vip_x', { upserts: [], removals: [] }); // nothing to do, nothing sent
    // Hashes (the added members' by key, then the new rows), then one MERGE of the members, then
    // (last, as there is no transaction) the acknowledged members' answered and expired intents.
    expect(runner.recorded.map((r) => r.sql.split(' ')[0])).toEqual(['delete', 'insert', 'merge', 'delete']);
    expect(runner.recorded[3]).toEqual({
      sql: 'delete from `tailor`.`member_intents` where `activation_id` = ? and `member_key` IN UNNEST(?) and (`intent_id` IN UNNEST(?) or `until` <= current_timestamp)',
      params: ['vip_x', ['1', '2', '3'], ['i1']],
      types: ['STRING', ['STRING'], ['STRING']],
    });
    expect(mask(runner.recorded)).toMatchSnapshot();
    const insert = runner.recorded[1]!;
    expect(insert.types).toContainEqual([{ member_key: 'STRING', id_type: 'STRING', hash: 'STRING' }]);
    expect(insert.params).toContainEqual([{ member_key: '1', id_type: 'email', hash: 'h1' }]);
    // The members' key hash: an INT64 field of the struct, bound from its decimal text; null where
    // the member has none yet (the diff gives it later) or is removed. Written on insert only.
    const merge = runner.recorded[2]!;
    expect(merge.types[0]).toEqual([
      {
        member_key: 'STRING',
        fingerprint: 'STRING',
        last_sent_at: 'TIMESTAMP',
        remove: 'BOOL',
        key_hash: 'INT64',
      },
    ]);
    expect((merge.params[0] as { key_hash: unknown }[]).map((row) => row.key_hash)).toEqual([
      null,
      '-4611686018427387904',
      null,
    ]);
    expect(merge.sql).toContain(
      'when not matched and not `s`.`remove` then insert (`activation_id`, `member_key`, `fingerprint`, `last_sent_at`, `updated_at`, `key_hash`) values (?, `s`.`member_key`, `s`.`fingerprint`, `s`.`last_sent_at`, current_timestamp, `s`.`key_hash`)',
    );
    expect(merge.sql).toContain(
      'when matched then update set `fingerprint` = `s`.`fingerprint`, `last_sent_at` = coalesce(`s`.`last_sent_at`, `t`.`last_sent_at`), `updated_at` = current_timestamp when not matched',
    );
  });

  it('records the intent of a batch in one insert over a typed ARRAY<STRUCT> parameter, one row per member with its hashes packed', async () => {
    const { runner, warehouse } = setup();
    const at = new Date('2026-11-22T10:00:00Z');
    const until = new Date('2026-11-22T10:15:00Z');
    await warehouse.recordIntents(
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
        { key: 'k3', hashes: [] },
      ],
      { id: 'i1', at, until },
    );
    expect(runner.recorded).toEqual([
      {
        sql: 'insert into `tailor`.`member_intents` (`activation_id`, `member_key`, `intent_id`, `id_type`, `hash`, `recorded_at`, `until`) select ?, `u`.`member_key`, ?, ?, `u`.`hash`, ?, ? from UNNEST(?) AS `u`',
        params: [
          'vip_x',
          'i1',
          '*',
          at,
          until,
          [
            { member_key: 'k1', hash: 'email:h1;phone_number:p1' },
            { member_key: 'k2', hash: 'email:h2' },
          ],
        ],
        types: [
          'STRING',
          'STRING',
          'STRING',
          'TIMESTAMP',
          'TIMESTAMP',
          [{ member_key: 'STRING', hash: 'STRING' }],
        ],
      },
    ]);
    // Nothing to record, no job.
    await warehouse.recordIntents('vip_x', [{ key: 'k3', hashes: [] }], { id: 'i2', at, until });
    expect(runner.recorded).toHaveLength(1);
  });

  it('compiles the suppression lookups: suppressed hashes, the members holding them, what an upsert audience has still to lose', async () => {
    const { runner, warehouse } = setup((text) =>
      /member_key/i.test(text)
        ? [{ member_key: 'k1', id_type: 'email', hash: 'h1' }]
        : [{ id_type: 'email', hash: 'h1' }],
    );
    await expect(warehouse.suppressedHashes(['suppression__optouts'], ['h1', 'h2'])).resolves.toEqual(['h1']);
    await expect(warehouse.membersHoldingSuppressed('vip_x', ['suppression__optouts'])).resolves.toEqual([
      { key: 'k1', hashes: [{ idType: 'email', hash: 'h1' }] },
    ]);
    await warehouse.suppressionToApply('suppression-applied:vip_x', ['suppression__optouts']);
    await warehouse.suppressionLifted('suppression-applied:vip_x', ['suppression__optouts']);
    expect(mask(runner.recorded)).toMatchSnapshot();
  });

  it('forgets members, counts them and looks up shared hashes with typed arrays', async () => {
    const { runner, warehouse } = setup((text) =>
      /^select count\(\*\)/i.test(text)
        ? [{ n: 42 }]
        : /^select distinct/i.test(text)
          ? [{ hash: 'h1' }]
          : [],
    );
    await warehouse.deleteAllMembers('vip_x');
    await expect(warehouse.memberCount('vip_x')).resolves.toBe(42);
    await expect(warehouse.hashesHeldByOthers('vip_x', ['h1', 'h2'], [])).resolves.toEqual(['h1']);
    await expect(warehouse.hashesHeldByOthers('vip_x', [], ['1'])).resolves.toEqual([]);
    expect(mask(runner.recorded)).toMatchSnapshot();
    expect(runner.recorded.at(-1)!.types).toEqual(['STRING', ['STRING'], ['STRING']]);
  });

  it('snapshots, diffs, counts, reads and drops the run-scoped tables', async () => {
    // Members, one without a key hash (`u`: by digest), no intents; invalid keys (`b`).
    const answer = probes({ u: 1, b: 1 });
    const { runner, warehouse } = setup((text) => {
      if (/^select\s+\(select count/i.test(text)) {
        return [{ row_count: 3, invalid: 1, state: 1, removed: 1, changed: 0, refresh: 0, added: 2 }];
      }
      if (/^select\s+`d`.`change_rank`/i.test(text)) {
        return [
          {
            change_rank: 0,
            member_key: '9',
            key_hash: null,
            fingerprint: null,
            v_0: null,
            v_1: null,
            previous_hashes: [{ id_type: 'email', hash: 'h9' }],
            pending_hashes: null,
          },
          {
            change_rank: 3,
            member_key: '1',
            key_hash: null,
            fingerprint: 'f1',
            v_0: 'a@x.io',
            v_1: null,
            previous_hashes: [],
            pending_hashes: null,
          },
        ];
      }
      if (/^select `member_key`, `n`/i.test(text))
        return [
          { member_key: null, n: 2 },
          { member_key: '5', n: 2 },
        ];
      return answer(text);
    });
    const diff = await warehouse.openDiff({
      activationId: 'vip_x',
      modelName: 'vip',
      modelSql: "select id, email, phone from shop.customers where note = 'a `b`'",
      primaryKey: 'id',
      columns: ['email', 'phone'],
      refreshBefore: new Date('2025-12-22T00:00:00Z'),
      fullResync: false,
      token: 'abc123',
    });
    expect(diff.keysCompared).toBe('digest');
    expect(diff.counts).toEqual({
      rows: 3,
      invalidKeys: 1,
      stateMembers: 1,
      removed: 1,
      changed: 0,
      refresh: 0,
      added: 2,
    });
    const invalid = [];
    for await (const batch of diff.invalidKeys(10)) invalid.push(...batch);
    expect(invalid).toEqual([
      { key: null, reason: 'null_primary_key', rows: 1 },
      { key: null, reason: 'null_primary_key', rows: 1 },
      { key: '5', reason: 'duplicate_primary_key', rows: 2 },
    ]);
    const delta = [];
    for await (const batch of diff.delta(10)) delta.push(...batch);
    // By digest, no added member has a key hash yet: settleKeyHashes gives it after the commits.
    expect(delta).toEqual([
      {
        key: '9',
        keyHash: null,
        change: 'removed',
        values: null,
        fingerprint: null,
        previousHashes: [{ idType: 'email', hash: 'h9' }],
        pendingHashes: null,
      },
      {
        key: '1',
        keyHash: null,
        change: 'added',
        values: ['a@x.io', null],
        fingerprint: 'f1',
        previousHashes: null,
        pendingHashes: null,
      },
    ]);
    // A member lacked a key hash: given, from the snapshot, where unique (text in the next test).
    await diff.settleKeyHashes();
    expect(runner.recorded.at(-1)!.sql).toMatch(/^update `tailor`.`members` set `key_hash` = /);
    await diff.close();
    await diff.close();
    expect(mask(runner.recorded)).toMatchSnapshot();
    // The CREATE ... AS SELECT jobs carry no parameters; the model SQL is wrapped unchanged.
    for (const statement of runner.recorded.filter((r) => r.sql.startsWith('CREATE TABLE'))) {
      expect(statement.params).toEqual([]);
    }
    const snapshot = runner.recorded.find((r) =>
      r.sql.startsWith('CREATE TABLE `tailor`.`tailor_snap_abc123`'),
    )!;
    // (Wrapped as `(<sql>\n)`; the recorder turns the newline into a space.)
    expect(snapshot.sql).toContain(
      "from (select id, email, phone from shop.customers where note = 'a `b`' ) as m",
    );
    // The snapshot's key is the SHA-256 hex of the key's text, as migration 3 left stored keys, with
    // its key hash beside it.
    expect(snapshot.sql).toContain(
      'select TO_HEX(SHA256(CAST(`m`.`id` AS STRING))) as `member_key`, FARM_FINGERPRINT(CAST(`m`.`id` AS STRING)) as `key_hash`,',
    );
    // The read: no key hash by digest.
    const read = runner.recorded.find((r) => /^select\s+`d`.`change_rank`/i.test(r.sql))!;
    expect(read.sql).toContain(
      'select `d`.`change_rank`, `d`.`member_key`, null as `key_hash`, `d`.`fingerprint`,',
    );
    // No intents: the plain state side, and member_intents read only to list the members with some.
    const sqls = runner.recorded.map((r) => r.sql);
    expect(sqls.filter((t) => t.includes('`member_intents`'))).toHaveLength(1);
    expect(sqls.some((t) => /union all/i.test(t))).toBe(false);
  });

  it("diffs against intents when members have some: the union state side and the intents' hashes", async () => {
    // Every member has a key hash, but intents name members by digest: compared by digest. No
    // invalid key (the counts' `invalid`, the probe's `b`).
    const answer = probes({ n: 2, u: 0, b: 0 });
    const { runner, warehouse } = setup((text) => {
      if (/^select\s+\(select count/i.test(text)) {
        return [{ row_count: 1, invalid: 0, removed: 1, changed: 0, refresh: 0, added: 1 }];
      }
      if (/^select\s+`d`.`change_rank`/i.test(text)) {
        return [
          // An intent-only key no longer in the segment: removed, with no stored hashes.
          {
            change_rank: 0,
            member_key: 'k9',
            key_hash: null,
            fingerprint: null,
            v_0: null,
            previous_hashes: [],
            pending_hashes: [{ id_type: 'email', hash: 'h9' }],
          },
          // An intent-only key in the segment: added, with its intents.
          {
            change_rank: 3,
            member_key: 'k1',
            key_hash: null,
            fingerprint: 'f1',
            v_0: 'a@x.io',
            previous_hashes: [],
            pending_hashes: [
              { id_type: 'email', hash: 'h0' },
              { id_type: 'email', hash: 'h1' },
            ],
          },
        ];
      }
      return answer(text);
    });
    const diff = await warehouse.openDiff({
      activationId: 'vip_x',
      modelName: 'vip',
      modelSql: 'select id, email from shop.customers',
      primaryKey: 'id',
      columns: ['email'],
      refreshBefore: null,
      fullResync: false,
      token: 'abc123',
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
        previousHashes: [],
        pendingHashes: [{ idType: 'email', hash: 'h9' }],
      },
      {
        key: 'k1',
        keyHash: null,
        change: 'added',
        values: ['a@x.io'],
        fingerprint: 'f1',
        previousHashes: null,
        pendingHashes: [
          { idType: 'email', hash: 'h0' },
          { idType: 'email', hash: 'h1' },
        ],
      },
    ]);
    await diff.close();
    const sqls = runner.recorded.map((r) => r.sql);
    // First the members with intents, and in one round trip whether there are any, whether the
    // activation has members, and whether one lacks a key hash: the snapshot's form depends on them.
    expect(sqls[0]).toBe(
      "CREATE TABLE `tailor`.`tailor_pend_abc123` OPTIONS (expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL 24 HOUR)) AS select distinct `member_key` from `tailor`.`member_intents` where `activation_id` = 'vip_x'",
    );
    expect(sqls[1]).toBe(
      "select count(*) as `n`, (select count(*) from (select 1 as `one` from `tailor`.`members` where `activation_id` = 'vip_x' limit 1) as `x`) as `m`, (select count(*) from (select 1 as `one` from `tailor`.`members` where `activation_id` = 'vip_x' and `key_hash` is null limit 1) as `y`) as `u` from `tailor`.`tailor_pend_abc123`",
    );
    // Then the snapshot by digest, its invalid keys, and whether there are any, on their own.
    expect(sqls.slice(2, 5).map(withoutExpiration)).toEqual([
      'CREATE TABLE `tailor`.`tailor_snap_abc123` AS select TO_HEX(SHA256(CAST(`m`.`id` AS STRING))) as `member_key`, FARM_FINGERPRINT(CAST(`m`.`id` AS STRING)) as `key_hash`, TO_HEX(MD5(TO_JSON_STRING(STRUCT(`m`.`email` AS `v_0`)))) as `fingerprint`, `m`.`email` as `v_0` from (select id, email from shop.customers ) as m',
      'CREATE TABLE `tailor`.`tailor_bad_abc123` AS select `member_key`, count(*) as `n` from `tailor`.`tailor_snap_abc123` group by `member_key` having `member_key` is null or count(*) > 1',
      'select count(*) as `b` from (select 1 as `one` from `tailor`.`tailor_bad_abc123` limit 1) as `y`',
    ]);
    // State's side: the members, marked when they have intents, and the intent-only keys with a
    // typed null fingerprint and last_sent_at (STRING, TIMESTAMP: the columns' own types).
    const comparison = sqls.find((t) => t.startsWith('CREATE TABLE `tailor`.`tailor_delta_abc123`'))!;
    expect(comparison).toContain(
      "full outer join (select `sm`.`member_key`, `sm`.`fingerprint`, `sm`.`last_sent_at`, case when `sp`.`member_key` is null then 0 else 1 end as `pending` from `tailor`.`members` as `sm` left join `tailor`.`tailor_pend_abc123` as `sp` on `sp`.`member_key` = `sm`.`member_key` where `sm`.`activation_id` = 'vip_x' union all select `sp`.`member_key`, CAST(NULL AS STRING), CAST(NULL AS TIMESTAMP), 1 from `tailor`.`tailor_pend_abc123` as `sp` where not exists (select 1 from `tailor`.`members` as `sm` where `sm`.`activation_id` = 'vip_x' and `sm`.`member_key` = `sp`.`member_key`)) as `t`",
    );
    expect(comparison).toContain('when `t`.`member_key` is null or `t`.`fingerprint` is null then 3');
    expect(comparison).toContain('or `t`.`pending` = 1 or false or');
    // No invalid key: the valid rows are those with a key, no anti-join.
    expect(comparison).toContain(
      'from (select * from `tailor`.`tailor_snap_abc123` as `s0` where `s0`.`member_key` is not null) as `s` full outer join',
    );
    // The delta read: a correlated ARRAY subquery each for the stored hashes and the intents' hashes.
    const read = runner.recorded.find((r) => /^select\s+`d`.`change_rank`/i.test(r.sql))!;
    expect(read.sql).toContain(
      'ARRAY(SELECT AS STRUCT h.id_type, h.`hash` FROM `tailor`.`member_hashes` AS h WHERE h.activation_id = ? AND h.member_key = `d`.`member_key` ORDER BY h.id_type, h.`hash`) as `previous_hashes`, ARRAY(SELECT AS STRUCT h.id_type, h.`hash` FROM `tailor`.`member_intents` AS h WHERE h.activation_id = ? AND h.member_key = `d`.`member_key` ORDER BY h.id_type, h.`hash`) as `pending_hashes`',
    );
    expect(read.params).toEqual(['vip_x', 'vip_x']);
    expect(sqls.filter((t) => t.startsWith('drop table'))).toEqual([
      'drop table if exists `tailor`.`tailor_delta_abc123`',
      'drop table if exists `tailor`.`tailor_bad_abc123`',
      'drop table if exists `tailor`.`tailor_snap_abc123`',
      'drop table if exists `tailor`.`tailor_pend_abc123`',
    ]);
    expect(mask(runner.recorded)).toMatchSnapshot();
  });

  it('compares by key hash when every member has one: the key kept as the model returns it, only added keys digested, invalid keys by hash, then by key', async () => {
    // Members, every one with a key hash, no intents; an invalid key, no two keys sharing a hash.
    const answer = probes({ b: 1 });
    const { runner, warehouse } = setup((text) => {
      if (/^select\s+\(select count/i.test(text)) {
        return [{ row_count: 4, invalid: 2, removed: 0, changed: 1, refresh: 0, added: 1 }];
      }
      if (/^select\s+`d`.`change_rank`/i.test(text)) {
        return [
          {
            change_rank: 1,
            member_key: 'k8',
            key_hash: null,
            fingerprint: 'f8',
            v_0: 'new@x.io',
            previous_hashes: [{ id_type: 'email', hash: 'h8' }],
            pending_hashes: null,
          },
          // FARM_FINGERPRINT's INT64, read as text (a JS number would lose its low digits).
          {
            change_rank: 3,
            member_key: 'k1',
            key_hash: '-4611686018427387904',
            fingerprint: 'f1',
            v_0: 'a@x.io',
            previous_hashes: [],
            pending_hashes: null,
          },
        ];
      }
      return answer(text);
    });
    const diff = await warehouse.openDiff(vipDiff({ refreshBefore: new Date('2025-12-22T00:00:00Z') }));
    expect(diff.keysCompared).toBe('hash');
    expect(diff.counts).toMatchObject({ rows: 4, invalidKeys: 2, changed: 1, added: 1, stateMembers: 1 });
    const delta = [];
    for await (const batch of diff.delta(10)) delta.push(...batch);
    // Only the added member carries its key hash, to be written with it by its commit.
    expect(delta.map((row) => [row.key, row.change, row.keyHash])).toEqual([
      ['k8', 'changed', null],
      ['k1', 'added', '-4611686018427387904'],
    ]);
    // Every member had a key hash, and each added one is written with its own: nothing to give.
    await diff.settleKeyHashes();
    await diff.close();
    expect(mask(runner.recorded)).toMatchSnapshot();
    const sqls = runner.recorded.map((r) => r.sql);
    const snapshot = sqls.find((t) => t.startsWith('CREATE TABLE `tailor`.`tailor_snap_abc123`'))!;
    expect(withoutExpiration(snapshot)).toContain(
      'AS select `m`.`id` as `key_value`, FARM_FINGERPRINT(CAST(`m`.`id` AS STRING)) as `key_hash`, TO_HEX(MD5(',
    );
    expect(snapshot).not.toContain('SHA256');
    // Invalid keys by key hash; as there are some, their rows by key (with digests, for the report),
    // and whether two different keys share a key hash (none: compared by it).
    expect(sqls.map(withoutExpiration)).toEqual(
      expect.arrayContaining([
        'CREATE TABLE `tailor`.`tailor_badh_abc123` AS select `key_hash`, count(*) as `n` from `tailor`.`tailor_snap_abc123` group by `key_hash` having `key_hash` is null or count(*) > 1',
        'select count(*) as `b` from (select 1 as `one` from `tailor`.`tailor_badh_abc123` limit 1) as `y`',
        'CREATE TABLE `tailor`.`tailor_bad_abc123` AS select `g`.`key_hash`, TO_HEX(SHA256(`g`.`key_text`)) as `member_key`, `g`.`n` from (select `s`.`key_hash`, CAST(`s`.`key_value` AS STRING) as `key_text`, count(*) as `n` from `tailor`.`tailor_snap_abc123` as `s` where `s`.`key_hash` in (select `b`.`key_hash` from `tailor`.`tailor_badh_abc123` as `b`) group by 1, 2) as `g` union all select `key_hash`, null, `n` from `tailor`.`tailor_badh_abc123` where `key_hash` is null',
        'select count(*) as `c` from (select `key_hash` from `tailor`.`tailor_bad_abc123` where `key_hash` is not null group by `key_hash` having count(*) > 1) as `z`',
      ]),
    );
    const comparison = sqls.find((t) => t.startsWith('CREATE TABLE `tailor`.`tailor_delta_abc123`'))!;
    expect(comparison).toContain(
      'case when `t`.`key_hash` is null then TO_HEX(SHA256(CAST(`s`.`key_value` AS STRING))) else `t`.`member_key` end as `member_key`, case when `t`.`key_hash` is null then `s`.`key_hash` end as `key_hash`',
    );
    expect(comparison).toContain(
      'from (select * from `tailor`.`tailor_snap_abc123` as `s0` where `s0`.`key_hash` is not null and not exists (select 1 from `tailor`.`tailor_badh_abc123` as `b` where `b`.`key_hash` = `s0`.`key_hash`)) as `s`',
    );
    expect(comparison).toContain('on `s`.`key_hash` = `t`.`key_hash`');
    expect(sqls.find((t) => t.startsWith('select (select count(*)'))).toContain(
      '(select coalesce(sum(`n`), 0) from `tailor`.`tailor_badh_abc123`) as `invalid`',
    );
    // The key hash read as text.
    expect(sqls.find((t) => t.startsWith('select `d`.`change_rank`'))).toContain(
      'select `d`.`change_rank`, `d`.`member_key`, CAST(`d`.`key_hash` AS STRING) as `key_hash`, `d`.`fingerprint`,',
    );
    expect(sqls.some((t) => /^update/i.test(t))).toBe(false);
  });

  it('compares by digest when two keys share a key hash, and gives members their key hashes after the commits', async () => {
    // An added member (the counts' `added`): after the commits, it has no key hash yet.
    const answer = probes({ b: 1, c: 1 });
    const { runner, warehouse } = setup((text) =>
      /^select\s+\(select count/i.test(text)
        ? [{ row_count: 3, invalid: 0, removed: 0, changed: 0, refresh: 0, added: 1 }]
        : answer(text),
    );
    const diff = await warehouse.openDiff(vipDiff());
    expect(diff.keysCompared).toBe('digest');
    const sqls = runner.recorded.map((r) => r.sql);
    // The snapshot by key hash, its invalid keys by hash and by key, then again with digests.
    expect(
      sqls
        .filter((t) => /^(CREATE TABLE `tailor`.`tailor_(snap|badh?)_|drop table)/.test(t))
        .map((t) => withoutExpiration(t).split(' ').slice(0, 6).join(' ')),
    ).toEqual([
      'CREATE TABLE `tailor`.`tailor_snap_abc123` AS select `m`.`id`',
      'CREATE TABLE `tailor`.`tailor_badh_abc123` AS select `key_hash`,',
      'CREATE TABLE `tailor`.`tailor_bad_abc123` AS select `g`.`key_hash`,',
      'drop table if exists `tailor`.`tailor_bad_abc123`',
      'drop table if exists `tailor`.`tailor_badh_abc123`',
      'drop table if exists `tailor`.`tailor_snap_abc123`',
      'CREATE TABLE `tailor`.`tailor_snap_abc123` AS select TO_HEX(SHA256(CAST(`m`.`id`',
      'CREATE TABLE `tailor`.`tailor_bad_abc123` AS select `member_key`,',
    ]);
    expect(sqls.find((t) => t.startsWith('CREATE TABLE `tailor`.`tailor_delta_abc123`'))).toContain(
      'on `s`.`member_key` = `t`.`member_key`',
    );
    runner.recorded.length = 0;
    await diff.settleKeyHashes();
    await diff.close();
    // Each member the snapshot holds gets its key hash, where no other row of the snapshot and no
    // other member has it; before the run-scoped tables are dropped.
    expect(runner.recorded[0]).toEqual({
      sql: "update `tailor`.`members` set `key_hash` = `u`.`key_hash` from (select `s`.`member_key`, `s`.`key_hash` from `tailor`.`tailor_snap_abc123` as `s` where `s`.`key_hash` in (select `c`.`key_hash` from `tailor`.`tailor_snap_abc123` as `c` group by `c`.`key_hash` having count(*) = 1) and not exists (select 1 from `tailor`.`members` as `o` where `o`.`activation_id` = 'vip_x' and `o`.`key_hash` = `s`.`key_hash`)) as `u` where `members`.`activation_id` = 'vip_x' and `members`.`member_key` = `u`.`member_key` and `members`.`key_hash` is null",
      params: [],
      types: [],
    });
    expect(runner.recorded.slice(1).map((r) => r.sql.split(' ')[0])).toEqual([
      'drop',
      'drop',
      'drop',
      'drop',
    ]);
  });

  it('refuses a diff token or activation id that could escape a table name or literal', async () => {
    const { warehouse } = setup();
    const input = {
      activationId: 'vip_x',
      modelName: 'vip',
      modelSql: 'select 1',
      primaryKey: 'id',
      columns: [],
      refreshBefore: null,
      fullResync: true,
      token: 'abc',
    };
    await expect(warehouse.openDiff({ ...input, token: 'x`; drop' })).rejects.toThrow(WarehouseError);
    await expect(warehouse.openDiff({ ...input, activationId: "x' or '1" })).rejects.toThrow(WarehouseError);
  });

  it('logs runs with their cost, rejections and scheduler status', async () => {
    const started = new Date('2026-11-22T10:00:00Z');
    const { runner, warehouse } = setup((text) => {
      if (/^select `run_id`/i.test(text)) {
        return [
          {
            run_id: 'r1',
            activation_id: 'vip_x',
            started_at: started,
            finished_at: null,
            status: 'running',
            rows: 0,
            added: 0,
            removed: 0,
            changed: 0,
            refreshed: 0,
            invalid: 0,
            rejected: 0,
            requests: 0,
            error: null,
            cost: '{"bytes_processed":1024}',
          },
        ];
      }
      if (/^select `activation_id`, `consecutive_failures`/i.test(text)) {
        return [
          {
            activation_id: 'vip_x',
            consecutive_failures: 2,
            paused_at: null,
            paused_reason: null,
            config_fingerprint: 'c1',
            updated_at: started,
          },
        ];
      }
      return [];
    });
    await warehouse.insertRun({ id: 'r1', activationId: 'vip_x', startedAt: started });
    await warehouse.finishRun('r1', {
      status: 'failed',
      counts: runCountsOf({ rows: 3, added: 1, invalid: 1, rejected: 1, requests: 1 }),
      error: 'X said no',
      finishedAt: new Date('2026-11-22T10:05:00Z'),
    });
    const runs = await warehouse.listRuns({ activationId: 'vip_x', limit: 5 });
    expect(runs[0]).toMatchObject({ id: 'r1', status: 'running', cost: { bytes_processed: 1024 } });
    await warehouse.listRuns({ limit: 20 });
    await warehouse.insertRejections('r1', 'vip_x', [
      { memberKey: '1', identifierType: 'email', reason: 'invalid_email' },
      { memberKey: null, identifierType: null, reason: 'null_primary_key' },
    ]);
    await warehouse.setActivationStatus({
      activationId: 'vip_x',
      consecutiveFailures: 2,
      pausedAt: null,
      pausedReason: null,
      configFingerprint: 'c1',
      updatedAt: started,
    });
    await expect(warehouse.getActivationStatus('vip_x')).resolves.toMatchObject({
      consecutiveFailures: 2,
      pausedAt: null,
    });
    await warehouse.listActivationStatus();
    expect(mask(runner.recorded)).toMatchSnapshot();
    const finish = runner.recorded[1]!;
    // The run's cost: the source's bytes and job ids.
    expect(JSON.parse(String(finish.params.at(-5)))).toEqual({
      warehouse: 'bigquery',
      jobs: 3,
      bytes_processed: 1024,
      bytes_billed: 10_485_760,
      job_ids: ['a', 'b', 'c'],
    });
    // Nullable columns travel as typed parameters.
    const status = runner.recorded.find((r) => r.sql.startsWith('merge into `tailor`.`activation_status`'))!;
    expect(status.params.slice(2, 5)).toEqual([null, null, 'c1']);
    expect(status.types.slice(2, 5)).toEqual(['TIMESTAMP', 'STRING', 'STRING']);
  });
});
