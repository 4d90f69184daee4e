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

/** The diff's count of intents, members and members without a key hash, answered by each test as it needs. */
const PEND_COUNT = /^select count\(\*\) as "N",[\s\S]* from "TAILOR"."TAILOR_PEND_ABC123"$/;
/** Whether a table of invalid keys (by digest, or by key hash) holds a row. */
const ANY_INVALID =
  /^select count\(\*\) as "B" from \(select 1 as "ONE" from "TAILOR"."TAILOR_BADH?_ABC123" limit 1\) as "Y"$/;
/** How many key hashes two different keys share (hash mode, when some key is invalid). */
const COLLISIONS = /^select count\(\*\) as "C" from/;

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

  it("migrates a version-1 schema forward in place: records versions 2 to 8, creates only member_intents and state_identity, adds runs.suppressed, the match rate columns and the members' key hash", async () => {
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
    expect(recorded.map((r) => r.binds[0])).toEqual([2, 3, 4, 5, 6, 7, 8]);
  });

  it("migrates a version-2 schema to 3 to 8: member_intents, each key digested in place, each row marked as it is, then state_identity, then version 5 recorded only, then runs.suppressed (6), then the match rate columns (7), then the members' key hash (8)", async () => {
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
      // Version 8 adds the members' key hash (HASH gives a signed 64-bit value); no index on Snowflake.
      'alter table "TAILOR"."MEMBERS" add column if not exists "KEY_HASH" NUMBER(38,0)',
      'insert into "TAILOR"."TAILOR_MIGRATIONS" ("VERSION", "NAME", "APPLIED_AT") select ?, ?, current_timestamp from (select 1 as "ONE") as "X" where not exists (select 1 from "TAILOR"."TAILOR_MIGRATIONS" where "VERSION" = ?)',
    ]);
    expect(runner.recorded.at(-12)!.binds).toEqual([3, 'intents before send, and key digests', 3]);
    expect(runner.recorded.at(-10)!.binds).toEqual([4, 'state identity for audience owner marks', 4]);
    expect(runner.recorded.at(-7)!.binds).toEqual([6, 'suppressed count in the run log', 6]);
    expect(runner.recorded.at(-3)!.binds).toEqual([7, 'match rate in the run log', 7]);
    expect(runner.recorded.at(-1)!.binds).toEqual([8, 'key hashes for the diff', 8]);
    // Nothing of the migrations is bound: no key, no value.
    for (const r of runner.recorded.slice(4, -12)) expect(r.binds).toEqual([]);
    expect(runner.recorded.at(-11)!.binds).toEqual([]);
    expect(runner.recorded.at(-9)!.binds).toEqual([5, 'index for clearing answered intents', 5]);
    for (const at of [-8, -6, -5, -4, -2]) expect(runner.recorded.at(at)!.binds).toEqual([]);
  });

  it('migrates nothing on a schema already at version 8', async () => {
    const { runner, warehouse } = setup((text) =>
      /^select max\("VERSION"\)/i.test(text) ? [{ version: 8 }] : [],
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
        // An added member, with the key hash its delta row carried (decimal text).
        { key: '2', keyHash: '-4611686018427387904', fingerprint: 'f2', hashes: [], lastSentAt: null },
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
    // The members' key hash: a fifth bound value a row, its decimal text (null where the member has
    // none yet or is removed), written on insert only.
    const merge = runner.recorded[3]!;
    expect(merge.sql).toContain('FROM (VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?), (?, ?, ?, ?, ?))');
    expect(merge.binds.slice(0, 15)).toEqual([
      ...['1', 'f1', '2026-11-22T10:00:00.000Z', false, null],
      ...['2', 'f2', null, false, '-4611686018427387904'],
      ...['3', null, null, true, null],
    ]);
    expect(merge.sql).toContain(
      'when matched then update set "FINGERPRINT" = "S"."FINGERPRINT", "LAST_SENT_AT" = coalesce("S"."LAST_SENT_AT", "T"."LAST_SENT_AT"), "UPDATED_AT" = current_timestamp when not matched and not "S"."REMOVE" then insert ("ACTIVATION_ID", "MEMBER_KEY", "FINGERPRINT", "LAST_SENT_AT", "UPDATED_AT", "KEY_HASH") values (?, "S"."MEMBER_KEY", "S"."FINGERPRINT", "S"."LAST_SENT_AT", current_timestamp, "S"."KEY_HASH")',
    );
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
    // Members, one without a key hash (`u`: by digest), no intents; no invalid key (`b`).
    const answer = probes({ u: 1, b: 0 });
    const { runner, warehouse } = setup((text) => {
      if (/^select\s+\(select count/i.test(text)) {
        return [{ row_count: 2, invalid: 0, state: 1, removed: 1, changed: 0, refresh: 0, added: 1 }];
      }
      if (/^with/i.test(text)) {
        return [
          {
            change_rank: 0,
            member_key: '9',
            key_hash: null,
            fingerprint: null,
            v_0: null,
            previous_hashes: [['email', 'h9']],
            pending_hashes: null,
          },
          {
            change_rank: 3,
            member_key: '1',
            key_hash: null,
            fingerprint: 'f1',
            v_0: 'a@x.io',
            previous_hashes: null,
            pending_hashes: null,
          },
        ];
      }
      return answer(text);
    });
    const diff = await warehouse.openDiff(vipDiff({ fullResync: true }));
    expect(diff.keysCompared).toBe('digest');
    expect(diff.counts).toMatchObject({ rows: 2, removed: 1, added: 1 });
    const delta = [];
    for await (const batch of diff.delta(1)) delta.push(...batch);
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
        values: ['a@x.io'],
        fingerprint: 'f1',
        previousHashes: null,
        pendingHashes: null,
      },
    ]);
    // No invalid key (the probe said so): nothing to read.
    for await (const batch of diff.invalidKeys(10)) expect(batch).toEqual([]);
    // A member lacked a key hash: given, from the snapshot, where unique (text in a test below).
    await diff.settleKeyHashes();
    expect(runner.recorded.at(-1)!.sql).toMatch(/^update "TAILOR"."MEMBERS" set "KEY_HASH" = /);
    await diff.close();
    expect(mask(runner.recorded)).toMatchSnapshot();
    for (const statement of runner.recorded.filter((r) => r.sql.startsWith('CREATE TEMPORARY'))) {
      expect(statement.binds).toEqual([]);
    }
    const sqls = runner.recorded.map((r) => r.sql);
    expect(sqls.some((t) => t.startsWith('select "MEMBER_KEY", "N"'))).toBe(false);
    // The snapshot's key is the SHA-256 hex of the key's text, as migration 3 left stored keys, with
    // its key hash beside it.
    expect(sqls.find((t) => t.startsWith('CREATE TEMPORARY TABLE "TAILOR"."TAILOR_SNAP_ABC123"'))).toContain(
      'select SHA2(TO_VARCHAR("M"."ID"), 256) as "MEMBER_KEY", MD5_NUMBER_LOWER64(TO_VARCHAR("M"."ID")) as "KEY_HASH",',
    );
    // The read: no key hash by digest.
    expect(sqls.find((t) => t.startsWith('with'))).toContain(
      'select "D"."CHANGE_RANK", "D"."MEMBER_KEY", null as "KEY_HASH", "D"."FINGERPRINT",',
    );
    // No intents: the plain state side, and no read of member_intents beyond listing the members.
    expect(sqls.filter((t) => t.includes('"MEMBER_INTENTS"'))).toHaveLength(1);
    expect(sqls.some((t) => /union all/i.test(t))).toBe(false);
  });

  it('compares nothing on a first load: no delta table; the snapshot counted, its valid rows read by key', async () => {
    // No member and no intent for the activation (the pend count's `n` and `m`): by key hash, and
    // an invalid key, no two keys sharing a hash.
    const answer = probes({ m: 0, b: 1 });
    const { runner, warehouse } = setup((text) => {
      if (/^select\s+\(select count/i.test(text)) return [{ row_count: 3, invalid: 1 }];
      if (/^select 3 as "CHANGE_RANK"/.test(text)) {
        return [
          {
            change_rank: 3,
            member_key: '1',
            key_hash: '-4611686018427387904',
            fingerprint: 'f1',
            v_0: 'a@x.io',
          },
          { change_rank: 3, member_key: '2', key_hash: '7', fingerprint: 'f2', v_0: 'b@x.io' },
        ];
      }
      return answer(text);
    });
    const diff = await warehouse.openDiff(vipDiff());
    expect(diff.keysCompared).toBe('hash');
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
    // Every member added with its key hash, to be written with it by its commit.
    expect(delta.map((row) => [row.key, row.keyHash, row.change, row.values, row.previousHashes])).toEqual([
      ['1', '-4611686018427387904', 'added', ['a@x.io'], null],
      ['2', '7', 'added', ['b@x.io'], null],
    ]);
    await diff.settleKeyHashes();
    await diff.close();
    const sqls = runner.recorded.map((r) => r.sql);
    expect(sqls.some((t) => t.includes('TAILOR_DELTA_'))).toBe(false);
    expect(sqls.some((t) => /^update/i.test(t))).toBe(false);
    // The snapshot keeps the key as the model returns it, with its key hash; no digest.
    const snapshot = sqls.find((t) => t.startsWith('CREATE TEMPORARY TABLE "TAILOR"."TAILOR_SNAP_ABC123"'))!;
    expect(snapshot).toContain(
      'AS select "M"."ID" as "KEY_VALUE", MD5_NUMBER_LOWER64(TO_VARCHAR("M"."ID")) as "KEY_HASH",',
    );
    expect(snapshot).not.toContain('SHA2');
    // The invalid keys counted by key hash.
    expect(sqls).toContain(
      'select (select count(*) from "TAILOR"."TAILOR_SNAP_ABC123") as "ROW_COUNT", (select coalesce(sum("N"), 0) from "TAILOR"."TAILOR_BADH_ABC123") as "INVALID" from (select 1 as "ONE") as "X"',
    );
    // Snowflake gives no order without ORDER BY: the read is ordered by key (each key digested
    // once, the sort by that output column), as every delta is; the key hash read as text.
    expect(sqls.find((t) => t.startsWith('select 3 as'))).toBe(
      'select 3 as "CHANGE_RANK", SHA2(TO_VARCHAR("S"."KEY_VALUE"), 256) as "MEMBER_KEY", TO_VARCHAR("S"."KEY_HASH") as "KEY_HASH", "S"."FINGERPRINT", "S"."V_0" from "TAILOR"."TAILOR_SNAP_ABC123" as "S" where "S"."KEY_HASH" is not null and not exists (select 1 from "TAILOR"."TAILOR_BADH_ABC123" as "B" where "B"."KEY_HASH" = "S"."KEY_HASH") order by "MEMBER_KEY"',
    );
  });

  it("diffs against intents when members have some: the union state side and the intents' hashes", async () => {
    // Every member has a key hash, but intents name members by digest: compared by digest. No
    // invalid key (the counts' `invalid`, the probe's `b`).
    const answer = probes({ n: 3, u: 0, b: 0 });
    const { runner, warehouse } = setup((text) => {
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
      return answer(text);
    });
    const diff = await warehouse.openDiff(vipDiff({ refreshBefore: new Date('2026-11-01T00:00:00Z') }));
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
        keyHash: null,
        change: 'added',
        values: ['b@x.io'],
        fingerprint: 'f2',
        previousHashes: null,
        pendingHashes: [{ idType: 'email', hash: 'h2' }],
      },
    ]);
    await diff.close();
    const sqls = runner.recorded.map((r) => r.sql);
    // First the members with intents, and in one round trip whether there are any, whether the
    // activation has members, and whether one lacks a key hash: the snapshot's form depends on them.
    expect(sqls[0]).toBe(
      'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_PEND_ABC123" AS select distinct "MEMBER_KEY" from "TAILOR"."MEMBER_INTENTS" where "ACTIVATION_ID" = \'vip_x\'',
    );
    expect(sqls[1]).toBe(
      'select count(*) as "N", (select count(*) from (select 1 as "ONE" from "TAILOR"."MEMBERS" where "ACTIVATION_ID" = \'vip_x\' limit 1) as "X") as "M", (select count(*) from (select 1 as "ONE" from "TAILOR"."MEMBERS" where "ACTIVATION_ID" = \'vip_x\' and "KEY_HASH" is null limit 1) as "Y") as "U" from "TAILOR"."TAILOR_PEND_ABC123"',
    );
    // Then the snapshot by digest, its invalid keys, and whether there are any, on their own.
    expect(sqls.slice(2, 5)).toEqual([
      'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_SNAP_ABC123" AS select SHA2(TO_VARCHAR("M"."ID"), 256) as "MEMBER_KEY", MD5_NUMBER_LOWER64(TO_VARCHAR("M"."ID")) as "KEY_HASH", MD5(TO_JSON(OBJECT_CONSTRUCT_KEEP_NULL(\'v_0\', "M"."EMAIL"))) as "FINGERPRINT", "M"."EMAIL" as "V_0" from (select id, email from customers ) as m',
      'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_BAD_ABC123" AS select "MEMBER_KEY", count(*) as "N" from "TAILOR"."TAILOR_SNAP_ABC123" group by "MEMBER_KEY" having "MEMBER_KEY" is null or count(*) > 1',
      'select count(*) as "B" from (select 1 as "ONE" from "TAILOR"."TAILOR_BAD_ABC123" limit 1) as "Y"',
    ]);
    // State's side: the members, marked when they have intents, and the intent-only keys with a
    // typed null fingerprint and last_sent_at (VARCHAR, TIMESTAMP_TZ: the columns' own types).
    const comparison = sqls.find((t) =>
      t.startsWith('CREATE TEMPORARY TABLE "TAILOR"."TAILOR_DELTA_ABC123"'),
    )!;
    expect(comparison).toContain(
      'full outer join (select "SM"."MEMBER_KEY", "SM"."FINGERPRINT", "SM"."LAST_SENT_AT", case when "SP"."MEMBER_KEY" is null then 0 else 1 end as "PENDING" from "TAILOR"."MEMBERS" as "SM" left join "TAILOR"."TAILOR_PEND_ABC123" as "SP" on "SP"."MEMBER_KEY" = "SM"."MEMBER_KEY" where "SM"."ACTIVATION_ID" = \'vip_x\' union all select "SP"."MEMBER_KEY", CAST(NULL AS VARCHAR), CAST(NULL AS TIMESTAMP_TZ), 1 from "TAILOR"."TAILOR_PEND_ABC123" as "SP" where not exists (select 1 from "TAILOR"."MEMBERS" as "SM" where "SM"."ACTIVATION_ID" = \'vip_x\' and "SM"."MEMBER_KEY" = "SP"."MEMBER_KEY")) as "T"',
    );
    expect(comparison).toContain('when "T"."MEMBER_KEY" is null or "T"."FINGERPRINT" is null then 3');
    expect(comparison).toContain(
      'or "T"."PENDING" = 1 or false or "T"."LAST_SENT_AT" < TO_TIMESTAMP_TZ(\'2026-11-01T00:00:00.000Z\')',
    );
    // No invalid key: the valid rows are those with a key, no anti-join.
    expect(comparison).toContain(
      'from (select * from "TAILOR"."TAILOR_SNAP_ABC123" as "S0" where "S0"."MEMBER_KEY" is not null) as "S" full outer join',
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
      'drop table if exists "TAILOR"."TAILOR_BAD_ABC123"',
      'drop table if exists "TAILOR"."TAILOR_SNAP_ABC123"',
      'drop table if exists "TAILOR"."TAILOR_PEND_ABC123"',
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
      if (/^with/i.test(text)) {
        return [
          {
            change_rank: 1,
            member_key: 'k8',
            key_hash: null,
            fingerprint: 'f8',
            v_0: 'new@x.io',
            previous_hashes: [['email', 'h8']],
            pending_hashes: null,
          },
          // HASH's signed 64-bit value, read as text (a JS number would lose its low digits).
          {
            change_rank: 3,
            member_key: 'k1',
            key_hash: '-4611686018427387904',
            fingerprint: 'f1',
            v_0: 'a@x.io',
            previous_hashes: null,
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
    // HASH hashes NULL too: a null key's hash stays null, so that the key counts as invalid.
    const snapshot = sqls.find((t) => t.startsWith('CREATE TEMPORARY TABLE "TAILOR"."TAILOR_SNAP_ABC123"'))!;
    expect(snapshot).toContain(
      'AS select "M"."ID" as "KEY_VALUE", MD5_NUMBER_LOWER64(TO_VARCHAR("M"."ID")) as "KEY_HASH", MD5(',
    );
    expect(snapshot).not.toContain('SHA2');
    // Invalid keys by key hash; as there are some, their rows by key (with digests, for the report),
    // and whether two different keys share a key hash (none: compared by it).
    expect(sqls).toEqual(
      expect.arrayContaining([
        'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_BADH_ABC123" AS select "KEY_HASH", count(*) as "N" from "TAILOR"."TAILOR_SNAP_ABC123" group by "KEY_HASH" having "KEY_HASH" is null or count(*) > 1',
        'select count(*) as "B" from (select 1 as "ONE" from "TAILOR"."TAILOR_BADH_ABC123" limit 1) as "Y"',
        'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_BAD_ABC123" AS select "G"."KEY_HASH", SHA2("G"."KEY_TEXT", 256) as "MEMBER_KEY", "G"."N" from (select "S"."KEY_HASH", TO_VARCHAR("S"."KEY_VALUE") as "KEY_TEXT", count(*) as "N" from "TAILOR"."TAILOR_SNAP_ABC123" as "S" where "S"."KEY_HASH" in (select "B"."KEY_HASH" from "TAILOR"."TAILOR_BADH_ABC123" as "B") group by 1, 2) as "G" union all select "KEY_HASH", null, "N" from "TAILOR"."TAILOR_BADH_ABC123" where "KEY_HASH" is null',
        'select count(*) as "C" from (select "KEY_HASH" from "TAILOR"."TAILOR_BAD_ABC123" where "KEY_HASH" is not null group by "KEY_HASH" having count(*) > 1) as "Z"',
      ]),
    );
    const comparison = sqls.find((t) =>
      t.startsWith('CREATE TEMPORARY TABLE "TAILOR"."TAILOR_DELTA_ABC123"'),
    )!;
    expect(comparison).toContain(
      'case when "T"."KEY_HASH" is null then SHA2(TO_VARCHAR("S"."KEY_VALUE"), 256) else "T"."MEMBER_KEY" end as "MEMBER_KEY", case when "T"."KEY_HASH" is null then "S"."KEY_HASH" end as "KEY_HASH"',
    );
    expect(comparison).toContain(
      'from (select * from "TAILOR"."TAILOR_SNAP_ABC123" as "S0" where "S0"."KEY_HASH" is not null and not exists (select 1 from "TAILOR"."TAILOR_BADH_ABC123" as "B" where "B"."KEY_HASH" = "S0"."KEY_HASH")) as "S"',
    );
    expect(comparison).toContain('on "S"."KEY_HASH" = "T"."KEY_HASH"');
    expect(sqls.find((t) => t.startsWith('select (select count(*)'))).toContain(
      '(select coalesce(sum("N"), 0) from "TAILOR"."TAILOR_BADH_ABC123") as "INVALID"',
    );
    // The key hash read as text.
    expect(sqls.find((t) => t.startsWith('with'))).toContain(
      'select "D"."CHANGE_RANK", "D"."MEMBER_KEY", TO_VARCHAR("D"."KEY_HASH") as "KEY_HASH", "D"."FINGERPRINT",',
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
        .filter((t) => /^(CREATE TEMPORARY TABLE "TAILOR"."TAILOR_(SNAP|BADH?)_|drop table)/.test(t))
        .map((t) => t.split(' ').slice(0, 7).join(' ')),
    ).toEqual([
      'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_SNAP_ABC123" AS select "M"."ID"',
      'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_BADH_ABC123" AS select "KEY_HASH",',
      'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_BAD_ABC123" AS select "G"."KEY_HASH",',
      'drop table if exists "TAILOR"."TAILOR_BAD_ABC123"',
      'drop table if exists "TAILOR"."TAILOR_BADH_ABC123"',
      'drop table if exists "TAILOR"."TAILOR_SNAP_ABC123"',
      'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_SNAP_ABC123" AS select SHA2(TO_VARCHAR("M"."ID"),',
      'CREATE TEMPORARY TABLE "TAILOR"."TAILOR_BAD_ABC123" AS select "MEMBER_KEY",',
    ]);
    expect(sqls.find((t) => t.startsWith('CREATE TEMPORARY TABLE "TAILOR"."TAILOR_DELTA_ABC123"'))).toContain(
      'on "S"."MEMBER_KEY" = "T"."MEMBER_KEY"',
    );
    runner.recorded.length = 0;
    await diff.settleKeyHashes();
    await diff.close();
    // Each member the snapshot holds gets its key hash, where no other row of the snapshot and no
    // other member has it; before the TEMPORARY tables are dropped.
    expect(runner.recorded[0]).toEqual({
      sql: 'update "TAILOR"."MEMBERS" set "KEY_HASH" = "U"."KEY_HASH" from (select "S"."MEMBER_KEY", "S"."KEY_HASH" from "TAILOR"."TAILOR_SNAP_ABC123" as "S" where "S"."KEY_HASH" in (select "C"."KEY_HASH" from "TAILOR"."TAILOR_SNAP_ABC123" as "C" group by "C"."KEY_HASH" having count(*) = 1) and not exists (select 1 from "TAILOR"."MEMBERS" as "O" where "O"."ACTIVATION_ID" = \'vip_x\' and "O"."KEY_HASH" = "S"."KEY_HASH")) as "U" where "MEMBERS"."ACTIVATION_ID" = \'vip_x\' and "MEMBERS"."MEMBER_KEY" = "U"."MEMBER_KEY" and "MEMBERS"."KEY_HASH" is null',
      binds: [],
    });
    expect(runner.recorded.slice(1).map((r) => r.sql.split(' ')[0])).toEqual([
      'drop',
      'drop',
      'drop',
      'drop',
    ]);
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
