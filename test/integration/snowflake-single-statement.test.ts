import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStateStore } from '../../src/diff/state-store.js';
import { STATE_MIGRATIONS } from '../../src/diff/state-sql.js';
import { ModelSqlError } from '../../src/errors.js';
import { snowflakeConfigSchema } from '../../src/sources/snowflake/snowflake-config.js';
import { openSnowflakeSource, type SnowflakeSource } from '../../src/sources/snowflake/snowflake-source.js';
import { FakeSnowflake, watchConnections } from '../helpers/fake-snowflake.js';
import { silentLogger } from '../helpers/warehouse.js';

/**
 * A model runs as one statement on Snowflake: every statement Tailor sends sets MULTI_STATEMENT_COUNT
 * to 1, so an account that allows multi-statement requests by default (the fake's, 0) still refuses
 * a model that closes Tailor's wrapping subquery to add statements of its own.
 */

const logger = pino({ level: 'silent' });
const MALICIOUS =
  'select id, email from customers) as m; drop table customers; select * from (select 1 as id, 2 as email';

describe('Snowflake: one statement per request', () => {
  let fake: FakeSnowflake;
  let source: SnowflakeSource | undefined;
  let connections: ReturnType<typeof watchConnections>;

  beforeEach(async () => {
    connections = watchConnections();
    fake = await FakeSnowflake.start();
    source = await openSnowflakeSource(
      snowflakeConfigSchema.parse({
        type: 'snowflake',
        account: 'acme-prod',
        username: 'TAILOR_SVC',
        warehouse: 'TAILOR_WH',
        database: 'ANALYTICS',
        schema: 'MARTS',
        access_url: fake.url,
        password: 'pw',
      }),
      { projectDir: '/tmp', logger },
    );
  });

  afterEach(async () => {
    await source?.close();
    await fake.close();
    connections.stop();
  });

  it('refuses a model that adds statements, in describeModel and in the snapshot', async () => {
    await expect(source!.describeModel('vip', MALICIOUS)).rejects.toThrow(ModelSqlError);
    const latest = String(STATE_MIGRATIONS.at(-1)!.version);
    fake.on(/^select max\("VERSION"\)/, { columns: [{ name: 'VERSION', type: 'fixed' }], rows: [[latest]] });
    const error = await createStateStore(source!, 'tailor', { logger: silentLogger })
      .prepareDiff({
        activationId: 'vip_x',
        modelSql: MALICIOUS,
        modelName: 'vip',
        primaryKey: 'id',
        columns: ['email'],
        refreshBefore: null,
        fullResync: false,
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelSqlError);
    expect((error as Error).message).toMatch(/statement count/);
    // Nothing ran as several statements, and every statement said so itself.
    expect(fake.multiStatements).toEqual([]);
    expect(fake.statements.length).toBeGreaterThan(2);
    for (const statement of fake.statements) {
      expect(statement.parameters).toMatchObject({ MULTI_STATEMENT_COUNT: 1 });
    }
  });
});
