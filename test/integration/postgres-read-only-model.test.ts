import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createStateStore } from '../../src/diff/state-store.js';
import { ModelSqlError } from '../../src/errors.js';
import type { Source } from '../../src/sources/source.js';
import type { ContractWarehouse } from '../contract/source-contract.js';
import {
  pgliteContractWarehouses,
  postgresContractWarehouse,
  silentLogger,
  TEST_POSTGRES_URL,
} from '../helpers/warehouse.js';

/**
 * A model reads and writes nothing: on Postgres its snapshot's INSERT runs in a read-only
 * transaction, so a function the model calls cannot write either, whatever the role may do.
 */
describe('postgres: a model runs read-only', () => {
  let wh: ContractWarehouse;
  let admin: pg.Client;
  beforeEach(async () => {
    wh = await postgresContractWarehouse();
    admin = new pg.Client(TEST_POSTGRES_URL);
    await admin.connect();
  });
  afterEach(async () => {
    await admin.end();
    await wh.cleanup();
  });

  it('refuses a model whose function writes, and nothing is written', async () => {
    await wh.load('people', 'int', [{ id: 1, email: 'a@example.com', phone: null }]);
    await wh.load('keep', 'int', [{ id: 1, email: null, phone: null }]);
    const schema = wh.table('people').split('.')[0]!;
    await admin.query(
      `create function ${schema}.touch() returns int language sql volatile as 'delete from ${schema}."keep"; select 1'`,
    );
    const source: Source = wh.source;
    const modelSql = `select id, email, phone, ${schema}.touch() as t from ${wh.table('people')}`;
    const error = await createStateStore(source, wh.stateSchema, { logger: silentLogger })
      .prepareDiff({
        activationId: 'act_a',
        modelSql,
        modelName: 'segment',
        primaryKey: 'id',
        columns: ['email'],
        refreshBefore: null,
        fullResync: false,
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelSqlError);
    expect((error as Error).message).toMatch(/read-only transaction/);
    expect((await admin.query(`select count(*)::int as n from ${wh.table('keep')}`)).rows[0].n).toBe(1);
  });
});

/**
 * describeModel reads in a read-only transaction too. A LIMIT 0 runs no volatile function, but the
 * planner evaluates an immutable one with constant arguments: this one fails unless read-only.
 */
const RO_CHECK = `create function ro_check() returns int language plpgsql immutable as $$
  begin
    if current_setting('transaction_read_only') <> 'on' then raise exception 'not read-only'; end if;
    return 1;
  end $$`;

describe('describeModel runs read-only', () => {
  it('on Postgres', async () => {
    const wh = await postgresContractWarehouse();
    const admin = new pg.Client(TEST_POSTGRES_URL);
    await admin.connect();
    try {
      const schema = wh.table('x').split('.')[0]!;
      await admin.query(`set search_path = ${schema}`);
      await admin.query(RO_CHECK);
      const columns = await wh.source.describeModel('segment', `select ${schema}.ro_check() as id`);
      expect(columns.map((c) => c.name)).toEqual(['id']);
    } finally {
      await admin.end();
      await wh.cleanup();
    }
  });

  const pglite = pgliteContractWarehouses();
  beforeAll(() => pglite.setup());
  afterAll(() => pglite.teardown());
  it('on PGlite', async () => {
    const wh = await pglite.create();
    try {
      await (wh.source as unknown as { pglite: PGlite }).pglite.exec(RO_CHECK);
      const columns = await wh.source.describeModel('segment', 'select ro_check() as id');
      expect(columns.map((c) => c.name)).toEqual(['id']);
    } finally {
      await wh.cleanup();
    }
  });
});
