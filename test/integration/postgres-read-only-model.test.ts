import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStateStore } from '../../src/diff/state-store.js';
import { ModelSqlError } from '../../src/errors.js';
import type { Source } from '../../src/sources/source.js';
import type { ContractWarehouse } from '../contract/source-contract.js';
import { postgresContractWarehouse, silentLogger, TEST_POSTGRES_URL } from '../helpers/warehouse.js';

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
