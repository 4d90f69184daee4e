import { Kysely, sql } from 'kysely';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { SnowflakeDialect } from '../../src/sources/snowflake/snowflake-dialect.js';
import type { SnowflakeResult, SnowflakeRunner } from '../../src/sources/snowflake/snowflake-executor.js';
import {
  quoteSnowflakeIdentifier,
  snowflakeStoredName,
  tailorColumnName,
} from '../../src/sources/snowflake/snowflake-identifiers.js';
import { createSnowflakeHooks } from '../../src/sources/snowflake/snowflake-hooks.js';
import { openDiff, type DiffInput } from '../../src/diff/diff-sql.js';
import { vipDiff } from '../helpers/diff-input.js';
import { StateSql } from '../../src/diff/state-sql.js';
import { runCountsOf } from '../helpers/counts.js';

/**
 * Compile tests: the exact Snowflake SQL text and binds the Snowflake dialect produces, for Kysely's
 * builders and for every WarehouseSql statement. A recording runner stands where snowflake-sdk goes.
 */

interface Recorded {
  sql: string;
  binds: unknown[];
}

class RecordingRunner implements SnowflakeRunner {
  readonly recorded: Recorded[] = [];
  constructor(
    private readonly answer: (sql: string, binds: readonly unknown[]) => Record<string, unknown>[] = () => [],
  ) {}

  async all(text: string, binds: readonly unknown[] = []): Promise<SnowflakeResult> {
    this.recorded.push({ sql: text.replace(/\s+/g, ' ').trim(), binds: [...binds] });
    return {
      queryId: `q${this.recorded.length}`,
      rows: this.answer(text, binds),
      numAffectedRows: /^\s*(MERGE|INSERT|UPDATE|DELETE)/i.test(text) ? 1n : undefined,
    };
  }

  async *stream(
    text: string,
    binds: readonly unknown[],
    chunkSize: number,
  ): AsyncIterable<Record<string, unknown>[]> {
    const { rows } = await this.all(text, binds);
    for (let i = 0; i < rows.length; i += chunkSize) yield rows.slice(i, i + chunkSize);
  }
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g;
const mask = (recorded: Recorded[]) =>
  JSON.parse(JSON.stringify(recorded).replace(UUID, '<uuid>')) as Recorded[];

function setup(answer?: (sql: string, binds: readonly unknown[]) => Record<string, unknown>[]) {
  const runner = new RecordingRunner(answer);
  const db = new Kysely<unknown>({ dialect: new SnowflakeDialect(runner) });
  const logger = pino({ level: 'silent' });
  const hooks = createSnowflakeHooks({
    db,
    schema: 'tailor',
    logger,
    costMark: () => 0,
    costSince: () => ({ warehouse: 'snowflake', queries: 2, query_ids: ['01a', '01b'] }),
  });
  const state = new StateSql({ stateSchema: 'tailor', db, hooks }, logger);
  const warehouse = Object.assign(state, {
    tryLock: (activationId: string) => hooks.tryLock(activationId),
    openDiff: (input: DiffInput) => openDiff(state, input, logger),
  });
  return { runner, db, warehouse };
}

describe('Snowflake identifiers', () => {
  it('sends names that would be valid unquoted in their stored upper case, others verbatim', () => {
    // https://docs.snowflake.com/en/sql-reference/identifiers-syntax
    expect(snowflakeStoredName('customer_id')).toBe('CUSTOMER_ID');
    expect(snowflakeStoredName('CustomerId')).toBe('CUSTOMERID');
    expect(snowflakeStoredName('rows')).toBe('ROWS');
    expect(snowflakeStoredName('first name')).toBe('first name');
    expect(quoteSnowflakeIdentifier('say "hi"')).toBe('"say ""hi"""');
    expect(tailorColumnName('EMAIL')).toBe('email');
    expect(tailorColumnName('Mixed Case')).toBe('Mixed Case');
    expect(tailorColumnName('camelCase')).toBe('camelCase');
  });
});

describe('Snowflake query compiler', () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- builder tests over an untyped schema
  const db = new Kysely<any>({ dialect: new SnowflakeDialect(new RecordingRunner()) });

  it('quotes upper-cased identifiers and binds ? parameters, nulls included', () => {
    const query = db
      .selectFrom('tailor.members')
      .select(['member_key', 'fingerprint'])
      .where('activation_id', '=', 'vip')
      .where('last_sent_at', 'is', null)
      .where('fingerprint', '<>', null)
      .orderBy('member_key')
      .limit(10)
      .compile();
    expect(query.sql).toBe(
      'select "MEMBER_KEY", "FINGERPRINT" from "TAILOR"."MEMBERS" where "ACTIVATION_ID" = ? and "LAST_SENT_AT" is null and "FINGERPRINT" <> ? order by "MEMBER_KEY" limit ?',
    );
    expect(query.parameters).toEqual(['vip', null, 10]);
  });

  it('escapes quotes in identifiers by doubling, and backslashes and quotes in literals', () => {
    expect(sql`select ${sql.id('we"ird name')} where x = ${sql.lit("it's a \\ path")}`.compile(db).sql).toBe(
      `select "we""ird name" where x = 'it''s a \\\\ path'`,
    );
  });

  it('maps Postgres-style column types of portable schema code to Snowflake types', () => {
    const query = db.schema
      .createTable('tailor.t')
      .ifNotExists()
      .addColumn('a', 'text')
      .addColumn('b', 'bigint')
      .addColumn('c', 'timestamptz')
      .addColumn('d', 'jsonb')
      .compile();
    expect(query.sql).toBe(
      'create table if not exists "TAILOR"."T" ("A" VARCHAR, "B" NUMBER(38,0), "C" TIMESTAMP_TZ, "D" VARIANT)',
    );
  });
});

describe('Snowflake state and diff statements (src/diff over the Snowflake hooks)', () => {
  it('migrates: the schema only when missing, then the state tables and the version row', async () => {
    const { runner, warehouse } = setup((text) => {
      if (/^select max/i.test(text)) throw Object.assign(new Error('does not exist'), { code: '002003' });
      if (text.includes('INFORMATION_SCHEMA.SCHEMATA')) return [{ n: 0 }];
      return [];
    });
    await warehouse.migrate();
    expect(mask(runner.recorded)).toMatchSnapshot();
    expect(runner.recorded[1]!.binds).toEqual(['TAILOR']);
  });

  it('migrates a version-1 schema forward in place: records versions 2 to 7, creates only member_intents and state_identity, adds runs.suppressed and the match rate columns', async () => {
    const { runner, warehouse } = setup((text) =>
      /^select max\("VERSION"\)/i.test(text)
        ? [{ version: 1 }]
        : /INFORMATION_SCHEMA.SCHEMATA/.test(text)
          ? [{ n: 1 }]
          : [],
    );
    await warehouse.migrate();
    const created = runner.recorded.filter((r) => /^create/i.test(r.sql)).map((r) => r.sql.split('(')[0]);
    expect(created).toEqual([
      expect.stringMatching(/tailor_migrations/i),
      expect.stringMatching(/"MEMBER_INTENTS"/),
      expect.stringMatching(/"STATE_IDENTITY"/),
    ]);
    const recorded = runner.recorded.filter((r) => /^insert/i.test(r.sql));
    expect(recorded.map((r) => r.binds[0])).toEqual([2, 3, 4, 5, 6, 7]);
  });

  it('migrates a version-2 schema to 3, 4, 5, 6 and 7: member_intents, each key digested in place, each row marked as it is, then state_identity, then version 5 recorded only, then runs.suppressed (6), then the match rate columns (7)', async () => {
    const { runner, warehouse } = setup((text) =>
      /^select max\("VERSION"\)/i.test(text)
        ? [{ version: 2 }]
        : /INFORMATION_SCHEMA.SCHEMATA/.test(text)
          ? [{ n: 1 }]
          : [],
    );
    await warehouse.migrate();
    const statements = runner.recorded.map((r) => r.sql);
    // The version read, the schema looked for, the migrations table (if not exists), the version
    // read again, then version 3's statements, version 4's, and version 5's record.
    expect(statements.slice(0, 4).map((t) => t.split(' ').slice(0, 2).join(' '))).toEqual([
      'select max("VERSION")',
      'SELECT COUNT(*)',
      'create table',
      'select max("VERSION")',
    ]);
    expect(statements.slice(4)).toEqual([
      'create table if not exists "TAILOR"."MEMBER_INTENTS" ("ACTIVATION_ID" VARCHAR not null, "MEMBER_KEY" VARCHAR not null, "INTENT_ID" VARCHAR not null, "ID_TYPE" VARCHAR not null, "HASH" VARCHAR not null, "RECORDED_AT" TIMESTAMP_TZ not null, "UNTIL" TIMESTAMP_TZ not null)',
      // SHA2(x, 256) is the lowercase hex SHA-256 of x's UTF-8 bytes. Each row is marked by the
      // statement that digests it: a re-run digests no key twice.
      ...['MEMBERS', 'MEMBER_HASHES', 'REJECTIONS'].flatMap((table) => [
        `alter table "TAILOR"."${table}" add column if not exists "KEY_DIGESTED" boolean`,
        `update "TAILOR"."${table}" set "MEMBER_KEY" = SHA2("MEMBER_KEY", 256), "KEY_DIGESTED" = true where "KEY_DIGESTED" is null`,
      ]),
      'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT") select ?, ?, current_timestamp from (select 1 as "ONE") as "X" where not exists (select 1 from "TAILOR"."TAILOR_MIGRATIONS" where "VERSION" = ?)',
      // Version 4 creates state_identity only (if not exists): its one row is inserted when first
      // read (StateSql.stateId), by a statement that inserts nothing once a row is there.
      'create table if not exists "TAILOR"."STATE_IDENTITY" ("STATE_ID" VARCHAR not null, "CREATED_AT" TIMESTAMP_TZ not null)',
      'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT") select ?, ?, current_timestamp from (select 1 as "ONE") as "X" where not exists (select 1 from "TAILOR"."TAILOR_MIGRATIONS" where "VERSION" = ?)',
      // Version 5 is a Postgres index only: recorded, nothing run.
      'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT") select ?, ?, current_timestamp from (select 1 as "ONE") as "X" where not exists (select 1 from "TAILOR"."TAILOR_MIGRATIONS" where "VERSION" = ?)',
      // Version 6 adds the suppressed count to the run log.
      'alter table "TAILOR"."RUNS" add column if not exists "SUPPRESSED" NUMBER(38,0)',
      'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT") select ?, ?, current_timestamp from (select 1 as "ONE") as "X" where not exists (select 1 from "TAILOR"."TAILOR_MIGRATIONS" where "VERSION" = ?)',
      // Version 7 records the match rate in the run log, one column a statement.
      'alter table "TAILOR"."RUNS" add column if not exists "AUDIENCE_SIZE" NUMBER(38,0)',
      'alter table "TAILOR"."RUNS" add column if not exists "MEMBERS_SENT" NUMBER(38,0)',
      'alter table "TAILOR"."RUNS" add column if not exists "AUDIENCE_PROCESSED_AT" TIMESTAMP_TZ',
      'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT") select ?, ?, current_timestamp from (select 1 as "ONE") as "X" where not exists (select 1 from "TAILOR"."TAILOR_MIGRATIONS" where "VERSION" = ?)',
    ]);
    expect(runner.recorded.at(-10)!.binds).toEqual([3, 'intents before send, and key digests', 3]);
    expect(runner.recorded.at(-8)!.binds).toEqual([4, 'state identity for audience owner marks', 4]);
    expect(runner.recorded.at(-5)!.binds).toEqual([6, 'suppressed count in the run log', 6]);
    expect(runner.recorded.at(-1)!.binds).toEqual([7, 'match rate in the run log', 7]);
    // Nothing of the migrations is bound: no key, no value.
    for (const r of runner.recorded.slice(4, -10)) expect(r.binds).toEqual([]);
    expect(runner.recorded.at(-9)!.binds).toEqual([]);
    expect(runner.recorded.at(-7)!.binds).toEqual([5, 'index for clearing answered intents', 5]);
    for (const at of [-6, -4, -3, -2]) expect(runner.recorded.at(at)!.binds).toEqual([]);
  });

  it('migrates nothing on a schema already at version 7', async () => {
    const { runner, warehouse } = setup((text) =>
      /^select max\("VERSION"\)/i.test(text) ? [{ version: 7 }] : [],
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
    let holder: unknown;
    const { runner, warehouse } = setup((text, binds) => {
      if (/^merge/i.test(text)) holder = binds[1];
      return /^select "HOLDER"/i.test(text) ? [{ holder }] : [];
    });
    const lock = await warehouse.tryLock('vip_x');
    expect(lock).not.toBeNull();
    await lock!.release();
    await lock!.release();
    expect(runner.recorded).toHaveLength(3);
    expect(mask(runner.recorded)).toMatchSnapshot();
  });

  it('reads, saves and deletes bindings (timestamps in as ISO text, out as epoch milliseconds)', async () => {
    const boundAt = new Date('2026-11-22T10:00:00Z');
    const { runner, warehouse } = setup((text) =>
      /^select "ACTIVATION_ID", "DESTINATION"/i.test(text)
        ? [
            {
              activation_id: 'vip_x',
              destination: 'x',
              account_id: 'acc',
              audience_id: 'aud',
              audience_name: 'VIP',
              bound_at: boundAt.getTime(),
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
    await expect(warehouse.getBinding('vip_x')).resolves.toMatchObject({ audienceId: 'aud', boundAt });
    await warehouse.deleteBinding('vip_x');
    expect(mask(runner.recorded)).toMatchSnapshot();
    expect(runner.recorded[0]!.binds).toContain('2026-11-22T10:00:00.000Z');
  });

  it('applies acknowledged changes in one transaction of multi-row statements', async () => {
    const { runner, warehouse } = setup();
    await warehouse.applyMemberChanges('vip_x', {
      upserts: [
        {
          key: '1',
          fingerprint: 'f1',
          hashes: [{ idType: 'email', hash: 'h1' }],
          lastSentAt: new Date('2026-11-22T10:00:00Z'),
        },
        { key: '2', fingerprint: 'f2', hashes: [], lastSentAt: null },
      ],
      removals: ['3'],
      intentIds: ['i1', 'i2'],
    });
    expect(runner.recorded.map((r) => r.sql.slice(0, 40))).toEqual([
      'BEGIN TRANSACTION',
      'delete from "TAILOR"."MEMBER_HASHES" whe',
      'insert into "TAILOR"."MEMBER_HASHES" ("A',
      'merge into "TAILOR"."MEMBERS" as "T" usi',
      'delete from "TAILOR"."MEMBER_INTENTS" wh',
      'COMMIT',
    ]);
    // Intents last, inside the transaction: the acknowledged members' answered intents, and those
    // past their late-apply window (UNTIL is TIMESTAMP_TZ, compared as an instant).
    expect(runner.recorded[4]).toEqual({
      sql: 'delete from "TAILOR"."MEMBER_INTENTS" where "ACTIVATION_ID" = ? and "MEMBER_KEY" IN (?, ?, ?) and ("INTENT_ID" IN (?, ?) or "UNTIL" <= current_timestamp)',
      binds: ['vip_x', '1', '2', '3', 'i1', 'i2'],
    });
    expect(mask(runner.recorded)).toMatchSnapshot();
  });

  it('records the intent of a batch in one multi-row insert, one row per member with its hashes packed, its stamp bound as ISO text', async () => {
    const { runner, warehouse } = setup();
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
      { id: 'i1', at: new Date('2026-11-22T10:00:00Z'), until: new Date('2026-11-22T10:15:00Z') },
    );
    expect(runner.recorded).toEqual([
      {
        sql: 'insert into "TAILOR"."MEMBER_INTENTS" ("ACTIVATION_ID", "MEMBER_KEY", "INTENT_ID", "ID_TYPE", "HASH", "RECORDED_AT", "UNTIL") select ?, "U"."MEMBER_KEY", ?, ?, "U"."HASH", TO_TIMESTAMP_TZ(?), TO_TIMESTAMP_TZ(?) from (SELECT "MEMBER_KEY", "HASH" FROM (VALUES (?, ?), (?, ?)) AS v ("MEMBER_KEY", "HASH")) AS "U"',
        binds: [
          'vip_x',
          'i1',
          '*',
          '2026-11-22T10:00:00.000Z',
          '2026-11-22T10:15:00.000Z',
          'k1',
          'email:h1;phone_number:p1',
          'k2',
          'email:h2',
        ],
      },
    ]);
    // Nothing to record, no statement.
    await warehouse.recordIntents('vip_x', [{ key: 'k3', hashes: [] }], {
      id: 'i2',
      at: new Date(),
      until: new Date(),
    });
    expect(runner.recorded).toHaveLength(1);
  });

  it('gives a transaction the session: other statements wait until it commits', async () => {
    const { runner, db } = setup();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const transaction = db.transaction().execute(async (trx) => {
      await sql`DELETE FROM ${sql.id('tailor', 'members')}`.execute(trx);
      await gate;
      await sql`DELETE FROM ${sql.id('tailor', 'member_hashes')}`.execute(trx);
    });
    await new Promise((resolve) => setImmediate(resolve));
    const outside = sql`SELECT 1 AS ${sql.id('one')}`.execute(db);
    await new Promise((resolve) => setImmediate(resolve));
    expect(runner.recorded.map((r) => r.sql)).toEqual([
      'BEGIN TRANSACTION',
      'DELETE FROM "TAILOR"."MEMBERS"',
    ]);
    release();
    await Promise.all([transaction, outside]);
    expect(runner.recorded.map((r) => r.sql)).toEqual([
      'BEGIN TRANSACTION',
      'DELETE FROM "TAILOR"."MEMBERS"',
      'DELETE FROM "TAILOR"."MEMBER_HASHES"',
      'COMMIT',
      'SELECT 1 AS "ONE"',
    ]);
  });

  it('rolls the commit back when a statement fails', async () => {
    const { runner, warehouse } = setup((text) => {
      if (/^merge/i.test(text)) throw new Error('boom');
      return [];
    });
    await expect(warehouse.applyMemberChanges('vip_x', { upserts: [], removals: ['3'] })).rejects.toThrow(
      /committing acknowledged members/,
    );
    expect(runner.recorded.map((r) => r.sql.split(' ')[0])).toEqual(['BEGIN', 'delete', 'merge', 'ROLLBACK']);
  });

  it('forgets members, counts them and looks up shared hashes', async () => {
    const { runner, warehouse } = setup((text) =>
      /^select count\(\*\)/i.test(text) ? [{ n: 7 }] : /^select distinct/i.test(text) ? [{ hash: 'h1' }] : [],
    );
    await warehouse.deleteAllMembers('vip_x');
    await expect(warehouse.memberCount('vip_x')).resolves.toBe(7);
    await expect(warehouse.hashesHeldByOthers('vip_x', ['h1', 'h2'], ['1'])).resolves.toEqual(['h1']);
    await warehouse.hashesHeldByOthers('vip_x', ['h1'], []);
    expect(mask(runner.recorded)).toMatchSnapshot();
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

  it('snapshots, diffs, counts, reads and drops the TEMPORARY tables', async () => {
    const { runner, warehouse } = setup((text) => {
      if (/^select count\(\*\) as "N",[\s\S]* from "TAILOR"."TAILOR_PEND_ABC123"$/i.test(text))
        return [{ n: 0, m: 1 }];
      if (/^select\s+\(select count/i.test(text)) {
        return [{ row_count: 2, invalid: 0, state: 1, removed: 1, changed: 0, refresh: 0, added: 1 }];
      }
      if (/^with/i.test(text)) {
        return [
          {
            change_rank: 0,
            member_key: '9',
            fingerprint: null,
            v_0: null,
            previous_hashes: [['email', 'h9']],
            pending_hashes: null,
          },
          {
            change_rank: 3,
            member_key: '1',
            fingerprint: 'f1',
            v_0: 'a@x.io',
            previous_hashes: null,
            pending_hashes: null,
          },
        ];
      }
      return [];
    });
    const diff = await warehouse.openDiff(vipDiff({ fullResync: true }));
    expect(diff.counts).toMatchObject({ rows: 2, removed: 1, added: 1 });
    const delta = [];
    for await (const batch of diff.delta(1)) delta.push(...batch);
    expect(delta).toEqual([
      {
        key: '9',
        change: 'removed',
        values: null,
        fingerprint: null,
        previousHashes: [{ idType: 'email', hash: 'h9' }],
        pendingHashes: null,
      },
      {
        key: '1',
        change: 'added',
        values: ['a@x.io'],
        fingerprint: 'f1',
        previousHashes: null,
        pendingHashes: null,
      },
    ]);
    for await (const batch of diff.invalidKeys(10)) expect(batch).toEqual([]);
    await diff.close();
    expect(mask(runner.recorded)).toMatchSnapshot();
    for (const statement of runner.recorded.filter((r) => r.sql.startsWith('CREATE TEMPORARY'))) {
      expect(statement.binds).toEqual([]);
    }
    // The snapshot's key is the SHA-256 hex of the key's text, as migration 3 left stored keys.
    expect(runner.recorded[0]!.sql).toContain('select SHA2(TO_VARCHAR("M"."ID"), 256) as "MEMBER_KEY"');
    // No intents: the plain state side, and no read of member_intents beyond listing the members.
    const sqls = runner.recorded.map((r) => r.sql);
    expect(sqls.filter((t) => t.includes('"MEMBER_INTENTS"'))).toHaveLength(1);
    expect(sqls.some((t) => /union all/i.test(t))).toBe(false);
  });

  it('compares nothing on a first load: no delta table; the snapshot counted, its valid rows read by key', async () => {
    const { runner, warehouse } = setup((text) => {
      if (/^select count\(\*\) as "N",[\s\S]* from "TAILOR"."TAILOR_PEND_ABC123"$/i.test(text))
        return [{ n: 0, m: 0 }];
      if (/^select\s+\(select count/i.test(text)) return [{ row_count: 3, invalid: 1 }];
      if (/^select 3 as "CHANGE_RANK"/.test(text)) {
        return [
          { change_rank: 3, member_key: '1', fingerprint: 'f1', v_0: 'a@x.io' },
          { change_rank: 3, member_key: '2', fingerprint: 'f2', v_0: 'b@x.io' },
        ];
      }
      return [];
    });
    const diff = await warehouse.openDiff(vipDiff());
    expect(diff.counts).toEqual({
      rows: 3,
      invalidKeys: 1,
      added: 2,
      removed: 0,
      changed: 0,
      refresh: 0,
      stateMembers: 0,
    });
    const delta = [];
    for await (const batch of diff.delta(10)) delta.push(...batch);
    expect(delta.map((row) => [row.key, row.change, row.values, row.previousHashes])).toEqual([
      ['1', 'added', ['a@x.io'], null],
      ['2', 'added', ['b@x.io'], null],
    ]);
    await diff.close();
    const sqls = runner.recorded.map((r) => r.sql);
    expect(sqls.some((t) => t.includes('TAILOR_DELTA_'))).toBe(false);
    expect(sqls).toContain(
      'select (select count(*) from "TAILOR"."TAILOR_SNAP_ABC123") as "ROW_COUNT", (select coalesce(sum("N"), 0) from "TAILOR"."TAILOR_BAD_ABC123") as "INVALID" from (select 1 as "ONE") as "X"',
    );
    // Snowflake gives no order without ORDER BY: the read is ordered by key, as every delta is.
    expect(sqls.find((t) => t.startsWith('select 3 as'))).toBe(
      'select 3 as "CHANGE_RANK", "S"."MEMBER_KEY", "S"."FINGERPRINT", "S"."V_0" from "TAILOR"."TAILOR_SNAP_ABC123" as "S" where "S"."MEMBER_KEY" is not null and not exists (select 1 from "TAILOR"."TAILOR_BAD_ABC123" as "B" where "B"."MEMBER_KEY" = "S"."MEMBER_KEY") order by "S"."MEMBER_KEY"',
    );
  });

  it("diffs against intents when members have some: the union state side and the intents' hashes", async () => {
    const { runner, warehouse } = setup((text) => {
      if (/^select count\(\*\) as "N",[\s\S]* from "TAILOR"."TAILOR_PEND_ABC123"$/i.test(text))
        return [{ n: 3, m: 1 }];
      if (/^select\s+\(select count/i.test(text)) {
        return [{ row_count: 2, invalid: 0, removed: 1, changed: 0, refresh: 1, added: 1 }];
      }
      if (/^with/i.test(text)) {
        return [
          // An intent-only key no longer in the segment: removed, with no stored hashes.
          {
            change_rank: 0,
            member_key: 'k9',
            fingerprint: null,
            v_0: null,
            previous_hashes: null,
            pending_hashes: '[["email","h9"]]',
          },
          // A member with intents and unchanged values: re-sent whatever the diff says.
          {
            change_rank: 2,
            member_key: 'k1',
            fingerprint: 'f1',
            v_0: 'a@x.io',
            previous_hashes: [['email', 'h1']],
            pending_hashes: [
              ['email', 'h0'],
              ['email', 'h1'],
            ],
          },
          // An intent-only key in the segment: added, with its intents.
          {
            change_rank: 3,
            member_key: 'k2',
            fingerprint: 'f2',
            v_0: 'b@x.io',
            previous_hashes: null,
            pending_hashes: [['email', 'h2']],
          },
        ];
      }
      return [];
    });
    const diff = await warehouse.openDiff(vipDiff({ refreshBefore: new Date('2026-11-01T00:00:00Z') }));
    const delta = [];
    for await (const batch of diff.delta(10)) delta.push(...batch);
    expect(delta).toEqual([
      {
        key: 'k9',
        change: 'removed',
        values: null,
        fingerprint: null,
        previousHashes: [],
        pendingHashes: [{ idType: 'email', hash: 'h9' }],
      },
      {
        key: 'k1',
        change: 'refresh',
        values: ['a@x.io'],
        fingerprint: 'f1',
        previousHashes: [{ idType: 'email', hash: 'h1' }],
        pendingHashes: [
          { idType: 'email', hash: 'h0' },
          { idType: 'email', hash: 'h1' },
        ],
      },
      {
        key: 'k2',
        change: 'added',
        values: ['b@x.io'],
        fingerprint: 'f2',
        previousHashes: null,
        pendingHashes: [{ idType: 'email', hash: 'h2' }],
      },
    ]);
    await diff.close();
    const sqls = runner.recorded.map((r) => r.sql);
    expect(sqls[2]).toBe(
      'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_PEND_ABC123" AS select distinct "MEMBER_KEY" from "TAILOR"."MEMBER_INTENTS" where "ACTIVATION_ID" = \'vip_x\'',
    );
    expect(sqls[3]).toBe(
      'select count(*) as "N", (select count(*) from (select 1 as "ONE" from "TAILOR"."MEMBERS" where "ACTIVATION_ID" = \'vip_x\' limit 1) as "X") as "M", (select count(*) from (select 1 as "ONE" from "TAILOR"."TAILOR_BAD_ABC123" limit 1) as "Y") as "B" from "TAILOR"."TAILOR_PEND_ABC123"',
    );
    // State's side: the members, marked when they have intents, and the intent-only keys with a
    // typed null fingerprint and last_sent_at (VARCHAR, TIMESTAMP_TZ: the columns' own types).
    expect(sqls[4]).toContain(
      'full outer join (select "SM"."MEMBER_KEY", "SM"."FINGERPRINT", "SM"."LAST_SENT_AT", case when "SP"."MEMBER_KEY" is null then 0 else 1 end as "PENDING" from "TAILOR"."MEMBERS" as "SM" left join "TAILOR"."TAILOR_PEND_ABC123" as "SP" on "SP"."MEMBER_KEY" = "SM"."MEMBER_KEY" where "SM"."ACTIVATION_ID" = \'vip_x\' union all select "SP"."MEMBER_KEY", CAST(NULL AS VARCHAR), CAST(NULL AS TIMESTAMP_TZ), 1 from "TAILOR"."TAILOR_PEND_ABC123" as "SP" where not exists (select 1 from "TAILOR"."MEMBERS" as "SM" where "SM"."ACTIVATION_ID" = \'vip_x\' and "SM"."MEMBER_KEY" = "SP"."MEMBER_KEY")) as "T"',
    );
    expect(sqls[4]).toContain('when "T"."MEMBER_KEY" is null or "T"."FINGERPRINT" is null then 3');
    expect(sqls[4]).toContain(
      'or "T"."PENDING" = 1 or false or "T"."LAST_SENT_AT" < TO_TIMESTAMP_TZ(\'2026-11-01T00:00:00.000Z\')',
    );
    // The delta read: stored hashes (H) and intents' hashes (P), each aggregated in a CTE of its own.
    const read = runner.recorded.find((r) => /^with/i.test(r.sql))!;
    expect(read.binds).toEqual(['vip_x', 'vip_x']);
    expect(read.sql).toContain(
      'with "H" AS ( SELECT "MEMBER_KEY", ARRAY_AGG(ARRAY_CONSTRUCT("ID_TYPE", "HASH")) WITHIN GROUP (ORDER BY "ID_TYPE", "HASH") AS "HASHES" FROM "TAILOR"."MEMBER_HASHES" WHERE "ACTIVATION_ID" = ? AND "MEMBER_KEY" IN (SELECT "MEMBER_KEY" FROM "TAILOR"."TAILOR_DELTA_ABC123") GROUP BY "MEMBER_KEY"), "P" AS ( SELECT "MEMBER_KEY", ARRAY_AGG(ARRAY_CONSTRUCT("ID_TYPE", "HASH")) WITHIN GROUP (ORDER BY "ID_TYPE", "HASH") AS "HASHES" FROM "TAILOR"."MEMBER_INTENTS" WHERE "ACTIVATION_ID" = ? AND "MEMBER_KEY" IN (SELECT "MEMBER_KEY" FROM "TAILOR"."TAILOR_DELTA_ABC123") GROUP BY "MEMBER_KEY")',
    );
    expect(read.sql).toContain(
      '"H"."HASHES" as "PREVIOUS_HASHES", "P"."HASHES" as "PENDING_HASHES" from "TAILOR"."TAILOR_DELTA_ABC123" as "D" LEFT JOIN "H" AS "H" ON "H"."MEMBER_KEY" = "D"."MEMBER_KEY" LEFT JOIN "P" AS "P" ON "P"."MEMBER_KEY" = "D"."MEMBER_KEY" order by',
    );
    expect(sqls.filter((t) => t.startsWith('drop table'))).toEqual([
      'drop table if exists "TAILOR"."TAILOR_DELTA_ABC123"',
      'drop table if exists "TAILOR"."TAILOR_PEND_ABC123"',
      'drop table if exists "TAILOR"."TAILOR_BAD_ABC123"',
      'drop table if exists "TAILOR"."TAILOR_SNAP_ABC123"',
    ]);
    expect(mask(runner.recorded)).toMatchSnapshot();
  });

  it('logs runs with their query ids, rejections and scheduler status', async () => {
    const started = new Date('2026-11-22T10:00:00Z');
    const { runner, warehouse } = setup((text) => {
      if (/^select "RUN_ID"/i.test(text)) {
        return [
          {
            run_id: 'r1',
            activation_id: 'vip_x',
            started_at: started.getTime(),
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
            cost: null,
          },
        ];
      }
      return [];
    });
    await warehouse.insertRun({ id: 'r1', activationId: 'vip_x', startedAt: started });
    await warehouse.finishRun('r1', {
      status: 'succeeded',
      counts: runCountsOf({ rows: 3, added: 1, requests: 1 }),
      error: null,
      finishedAt: new Date('2026-11-22T10:05:00Z'),
    });
    await expect(warehouse.listRuns({ limit: 3 })).resolves.toEqual([
      expect.objectContaining({ id: 'r1', startedAt: started, finishedAt: null, cost: null }),
    ]);
    await warehouse.insertRejections('r1', 'vip_x', [
      { memberKey: '1', identifierType: 'email', reason: 'invalid_email' },
    ]);
    await warehouse.setActivationStatus({
      activationId: 'vip_x',
      consecutiveFailures: 0,
      pausedAt: new Date('2026-11-22T11:00:00Z'),
      pausedReason: 'too many failures',
      configFingerprint: null,
      updatedAt: started,
    });
    await warehouse.getActivationStatus('vip_x');
    await warehouse.listActivationStatus();
    expect(mask(runner.recorded)).toMatchSnapshot();
    expect(JSON.parse(String(runner.recorded[1]!.binds.at(-5)))).toEqual({
      warehouse: 'snowflake',
      queries: 2,
      query_ids: ['01a', '01b'],
    });
  });
});
