import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiffSpec } from '../../src/diff/types.js';
import { WarehouseError } from '../../src/errors.js';
import { openSource } from '../../src/sources/registry.js';
import type { Source } from '../../src/sources/source.js';
import { ackOf } from '../contract/source-contract.js';
import { silentLogger, TEST_POSTGRES_URL, uniqueName } from '../helpers/warehouse.js';
import { createStateStore } from '../../src/diff/state-store.js';

/** The diff at a moderate scale, and a warehouse failure in the middle of a run, on the Postgres server. */
describe('diff on postgres', () => {
  const admin = new pg.Client(TEST_POSTGRES_URL);
  const data = uniqueName('tdata');
  const stateSchema = uniqueName('tstate');
  let source: Source;
  const N = 50_000;

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
    await admin.query(`drop schema if exists ${stateSchema} cascade`);
    await admin.end();
  });

  const spec = (activationId: string, table: string, overrides: Partial<DiffSpec> = {}): DiffSpec => ({
    activationId,
    modelSql: `select id, email from ${data}.${table}`,
    modelName: table,
    primaryKey: 'id',
    columns: ['email'],
    refreshBefore: null,
    fullResync: false,
    ...overrides,
  });

  async function syncAll(s: DiffSpec) {
    await using run = await createStateStore(source, stateSchema, { logger: silentLogger }).prepareDiff(s);
    const seen = { added: 0, removed: 0, changed: 0, refresh: 0 };
    for await (const batch of run.delta(5000)) {
      for (const row of batch) seen[row.change] += 1;
      await run.commit(batch.map((row) => ackOf(row)));
    }
    return { counts: run.counts, seen };
  }

  it(`moves only the delta of a ${N}-row segment with 1% churn`, async () => {
    await admin.query(`create table ${data}.big as
      select g as id, 'user' || g || '@example.com' as email from generate_series(1, ${N}) g`);
    const first = await syncAll(spec('big', 'big'));
    expect(first.seen).toEqual({ added: N, removed: 0, changed: 0, refresh: 0 });
    await admin.query(`update ${data}.big set email = 'new-' || email where id % 300 = 0`);
    await admin.query(`delete from ${data}.big where id % 300 = 1`);
    await admin.query(`insert into ${data}.big select g, 'user' || g || '@example.com'
      from generate_series(${N + 1}, ${N + N / 300}) g`);
    const ids = Array.from({ length: N }, (_, i) => i + 1);
    const changed = ids.filter((id) => id % 300 === 0).length;
    const removed = ids.filter((id) => id % 300 === 1).length;
    const added = Math.floor(N / 300);
    const second = await syncAll(spec('big', 'big'));
    expect(second.seen).toEqual({ added, removed, changed, refresh: 0 });
    expect(second.counts).toMatchObject({ rows: N - removed + added, stateMembers: N, invalidKeys: 0 });
    expect((await syncAll(spec('big', 'big'))).seen).toEqual({
      added: 0,
      removed: 0,
      changed: 0,
      refresh: 0,
    });
    const members = N - removed + added;
    const resync = await syncAll(spec('big', 'big', { fullResync: true }));
    expect(resync.seen).toEqual({ added: 0, removed: 0, changed: 0, refresh: members });
    expect(await createStateStore(source, stateSchema, { logger: silentLogger }).memberCount('big')).toBe(
      members,
    );
  });

  it('survives losing the connection in the middle of reading the delta: the next diff re-emits the rest', async () => {
    await admin.query(`create table ${data}.cut as
      select g as id, 'user' || g || '@example.com' as email from generate_series(1, 12000) g`);
    const state = createStateStore(source, stateSchema, { logger: silentLogger });
    let committed = 0;
    const error = await (async () => {
      await using run = await state.prepareDiff(spec('cut', 'cut'));
      for await (const batch of run.delta(2000)) {
        await run.commit(batch.map((row) => ackOf(row)));
        committed += batch.length;
        if (committed === 4000) {
          // Kill the session that holds the delta's cursor, as a failing server or network would.
          const killed = await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity
            where application_name = 'tailor' and query like '%change_rank%'`);
          expect(killed.rowCount).toBeGreaterThan(0);
        }
      }
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WarehouseError);
    expect(committed).toBeGreaterThanOrEqual(4000);
    expect(committed).toBeLessThan(12000);
    expect(await state.memberCount('cut')).toBe(committed);
    const rest = await syncAll(spec('cut', 'cut'));
    expect(rest.seen).toEqual({ added: 12000 - committed, removed: 0, changed: 0, refresh: 0 });
    expect(await state.memberCount('cut')).toBe(12000);
  });
});
