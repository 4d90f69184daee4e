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

  it('migrates a version-1 dataset forward in place: records version 2, creates no table', async () => {
    const { runner, warehouse } = setup((text) =>
      /^select max\(`version`\)/i.test(text) ? [{ version: 1 }] : [],
    );
    await warehouse.migrate();
    const created = runner.recorded.filter((r) => /^create/i.test(r.sql)).map((r) => r.sql.split('(')[0]);
    expect(created).toEqual([expect.stringMatching(/tailor_migrations/i)]);
    const recorded = runner.recorded.filter((r) => /^insert/i.test(r.sql));
    expect(recorded).toHaveLength(1);
    expect(recorded[0]!.params[0]).toEqual(2);
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
        counts: {
          rows: 0,
          added: 0,
          removed: 0,
          changed: 0,
          refreshed: 0,
          invalid: 0,
          rejected: 0,
          requests: 0,
        },
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
        { key: '2', fingerprint: 'f2', hashes: [], lastSentAt: null },
      ],
      removals: ['3'],
    });
    await warehouse.applyMemberChanges('vip_x', { upserts: [], removals: [] }); // nothing to do, nothing sent
    // Hashes (the added members' by key, then the new rows), then one MERGE of the members.
    expect(runner.recorded.map((r) => r.sql.split(' ')[0])).toEqual(['delete', 'insert', 'merge']);
    expect(mask(runner.recorded)).toMatchSnapshot();
    const insert = runner.recorded[1]!;
    expect(insert.types).toContainEqual([{ member_key: 'STRING', id_type: 'STRING', hash: 'STRING' }]);
    expect(insert.params).toContainEqual([{ member_key: '1', id_type: 'email', hash: 'h1' }]);
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
    const { runner, warehouse } = setup((text) => {
      if (/^select\s+\(select count/i.test(text)) {
        return [{ row_count: 3, invalid: 1, state: 1, removed: 1, changed: 0, refresh: 0, added: 2 }];
      }
      if (/^select\s+`d`.`change_rank`/i.test(text)) {
        return [
          {
            change_rank: 0,
            member_key: '9',
            fingerprint: null,
            v_0: null,
            v_1: null,
            previous_hashes: [{ id_type: 'email', hash: 'h9' }],
          },
          {
            change_rank: 3,
            member_key: '1',
            fingerprint: 'f1',
            v_0: 'a@x.io',
            v_1: null,
            previous_hashes: [],
          },
        ];
      }
      if (/^select `member_key`, `n`/i.test(text))
        return [
          { member_key: null, n: 2 },
          { member_key: '5', n: 2 },
        ];
      return [];
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
    expect(delta).toEqual([
      {
        key: '9',
        change: 'removed',
        values: null,
        fingerprint: null,
        previousHashes: [{ idType: 'email', hash: 'h9' }],
      },
      { key: '1', change: 'added', values: ['a@x.io', null], fingerprint: 'f1', previousHashes: null },
    ]);
    await diff.close();
    await diff.close();
    expect(mask(runner.recorded)).toMatchSnapshot();
    // The CREATE ... AS SELECT jobs carry no parameters; the model SQL is wrapped unchanged.
    for (const statement of runner.recorded.filter((r) => r.sql.startsWith('CREATE TABLE'))) {
      expect(statement.params).toEqual([]);
    }
    expect(runner.recorded[0]!.sql).toContain(
      "from (select id, email, phone from shop.customers where note = 'a `b`') as m",
    );
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
      counts: {
        rows: 3,
        added: 1,
        removed: 0,
        changed: 0,
        refreshed: 0,
        invalid: 1,
        rejected: 1,
        requests: 1,
      },
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
    expect(JSON.parse(String(finish.params.at(-2)))).toEqual({
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
