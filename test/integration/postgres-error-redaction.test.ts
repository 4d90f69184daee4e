import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStateStore } from '../../src/diff/state-store.js';
import { ModelSqlError } from '../../src/errors.js';
import type { ContractWarehouse } from '../contract/source-contract.js';
import { everything } from '../contract/source-contract.js';
import {
  pgliteContractWarehouses,
  postgresContractWarehouse,
  silentLogger,
  TEST_POSTGRES_URL,
} from '../helpers/warehouse.js';

/**
 * A function the model calls can RAISE with any value and any SQLSTATE, and a value cast to regclass
 * fails as 42P01 quoting it: on the real engines, none of it reaches the error Tailor shows.
 */
const VALUE = `ja"ne'o\\ne@example.com`;
const FUNCTIONS = `
  create function leak(v text, code text) returns int language plpgsql as $$
    begin raise exception '%', v using errcode = code; end $$`;

async function failure(wh: ContractWarehouse, modelSql: string): Promise<unknown> {
  return createStateStore(wh.source, wh.stateSchema, { logger: silentLogger })
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
}

async function expectRedacted(wh: ContractWarehouse, prefix: string): Promise<void> {
  await wh.load('people', 'text', [{ id: '1', email: VALUE, phone: null }]);
  const people = wh.table('people');
  for (const modelSql of [
    `select id, email, ${prefix}leak(email, 'P0001') as x from ${people}`,
    `select id, email, ${prefix}leak(email, '42P01') as x from ${people}`,
    `select id, email, ${prefix}leak(email, '08006') as x from ${people}`,
    `select cast(cast(email as regclass) as text) as id, email from ${people}`,
    `select cast(email as integer) as id, email from ${people}`,
  ]) {
    const error = await failure(wh, modelSql);
    expect(error, modelSql).toBeInstanceOf(Error);
    expect(everything(error), modelSql).not.toMatch(/example\.com|ja"ne|o\\ne/);
  }
  const raised = await failure(wh, `select id, email, ${prefix}leak(email, 'P0001') as x from ${people}`);
  expect(raised).toBeInstanceOf(ModelSqlError);
  expect((raised as Error).message).toMatch(/a function the model calls raised an error \(SQLSTATE P0001\)/);
}

describe('Postgres errors of a model carry no value', () => {
  it('on Postgres', async () => {
    const wh = await postgresContractWarehouse();
    const admin = new pg.Client(TEST_POSTGRES_URL);
    await admin.connect();
    try {
      const schema = wh.table('x').split('.')[0]!;
      await admin.query(`set search_path = ${schema}`);
      await admin.query(FUNCTIONS);
      await expectRedacted(wh, `${schema}.`);
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
      await (wh.source as unknown as { pglite: PGlite }).pglite.exec(FUNCTIONS);
      await expectRedacted(wh, '');
    } finally {
      await wh.cleanup();
    }
  });
});
