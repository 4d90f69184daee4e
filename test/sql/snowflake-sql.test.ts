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
import { StateSql } from '../../src/diff/state-sql.js';

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

  it('migrates a version-1 schema forward in place: records version 2, creates no table', async () => {
    const { runner, warehouse } = setup((text) =>
      /^select max\("VERSION"\)/i.test(text)
        ? [{ version: 1 }]
        : /INFORMATION_SCHEMA.SCHEMATA/.test(text)
          ? [{ n: 1 }]
          : [],
    );
    await warehouse.migrate();
    const created = runner.recorded.filter((r) => /^create/i.test(r.sql)).map((r) => r.sql.split('(')[0]);
    expect(created).toEqual([expect.stringMatching(/tailor_migrations/i)]);
    const recorded = runner.recorded.filter((r) => /^insert/i.test(r.sql));
    expect(recorded).toHaveLength(1);
    expect(recorded[0]!.binds[0]).toEqual(2);
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
    });
    expect(runner.recorded.map((r) => r.sql.slice(0, 40))).toEqual([
      'BEGIN TRANSACTION',
      'delete from "TAILOR"."MEMBER_HASHES" whe',
      'insert into "TAILOR"."MEMBER_HASHES" ("A',
      'merge into "TAILOR"."MEMBERS" as "T" usi',
      'COMMIT',
    ]);
    expect(mask(runner.recorded)).toMatchSnapshot();
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

  it('snapshots, diffs, counts, reads and drops the TEMPORARY tables', async () => {
    const { runner, warehouse } = setup((text) => {
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
          },
          { change_rank: 3, member_key: '1', fingerprint: 'f1', v_0: 'a@x.io', previous_hashes: null },
        ];
      }
      return [];
    });
    const diff = await warehouse.openDiff({
      activationId: 'vip_x',
      modelName: 'vip',
      modelSql: 'select id, email from customers',
      primaryKey: 'id',
      columns: ['email'],
      refreshBefore: null,
      fullResync: true,
      token: 'abc123',
    });
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
      },
      { key: '1', change: 'added', values: ['a@x.io'], fingerprint: 'f1', previousHashes: null },
    ]);
    for await (const batch of diff.invalidKeys(10)) expect(batch).toEqual([]);
    await diff.close();
    expect(mask(runner.recorded)).toMatchSnapshot();
    for (const statement of runner.recorded.filter((r) => r.sql.startsWith('CREATE TEMPORARY'))) {
      expect(statement.binds).toEqual([]);
    }
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
      counts: {
        rows: 3,
        added: 1,
        removed: 0,
        changed: 0,
        refreshed: 0,
        invalid: 0,
        rejected: 0,
        requests: 1,
      },
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
    expect(JSON.parse(String(runner.recorded[1]!.binds.at(-2)))).toEqual({
      warehouse: 'snowflake',
      queries: 2,
      query_ids: ['01a', '01b'],
    });
  });
});
