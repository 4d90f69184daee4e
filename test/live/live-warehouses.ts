import { randomBytes } from 'node:crypto';
import pino from 'pino';
import type snowflake from 'snowflake-sdk';
import { createBigqueryClient } from '../../src/sources/bigquery/bigquery-client.js';
import { bigqueryConfigSchema, type BigqueryConfig } from '../../src/sources/bigquery/bigquery-config.js';
import { BigqueryExecutor } from '../../src/sources/bigquery/bigquery-executor.js';
import { bigqueryParam } from '../../src/sources/bigquery/bigquery-params.js';
import { openBigquerySource } from '../../src/sources/bigquery/bigquery-source.js';
import { createSnowflakeConnection } from '../../src/sources/snowflake/snowflake-client.js';
import { snowflakeConfigSchema, type SnowflakeConfig } from '../../src/sources/snowflake/snowflake-config.js';
import { SnowflakeExecutor } from '../../src/sources/snowflake/snowflake-executor.js';
import { openSnowflakeSource } from '../../src/sources/snowflake/snowflake-source.js';
import type { Source } from '../../src/sources/source.js';
import type { ContractWarehouse, SeedRow } from '../contract/source-contract.js';

/**
 * Live warehouses for the contract suite, configured from the environment (docs/warehouses.md,
 * "Live tests"). Each test gets its own data and state datasets/schemas, dropped afterwards.
 */

const logger = pino({ level: process.env.TAILOR_LIVE_LOG_LEVEL ?? 'silent' });
const unique = (prefix: string) => `${prefix}_${randomBytes(5).toString('hex')}`;

/** The BigQuery config from TAILOR_LIVE_BIGQUERY_*, or undefined when the live test is not enabled. */
export function liveBigqueryConfig(env: NodeJS.ProcessEnv = process.env): BigqueryConfig | undefined {
  const project = env.TAILOR_LIVE_BIGQUERY_PROJECT;
  if (!project) return undefined;
  const hasCredentials =
    env.TAILOR_LIVE_BIGQUERY_KEY_JSON ||
    env.TAILOR_LIVE_BIGQUERY_KEY_FILE ||
    env.GOOGLE_APPLICATION_CREDENTIALS;
  if (!hasCredentials) return undefined;
  return bigqueryConfigSchema.parse({
    type: 'bigquery',
    project_id: project,
    location: env.TAILOR_LIVE_BIGQUERY_LOCATION ?? 'US',
    ...(env.TAILOR_LIVE_BIGQUERY_KEY_JSON ? { key_json: env.TAILOR_LIVE_BIGQUERY_KEY_JSON } : {}),
    ...(env.TAILOR_LIVE_BIGQUERY_KEY_FILE ? { key_file: env.TAILOR_LIVE_BIGQUERY_KEY_FILE } : {}),
  });
}

/** The Snowflake config from TAILOR_LIVE_SNOWFLAKE_*, or undefined when the live test is not enabled. */
export function liveSnowflakeConfig(env: NodeJS.ProcessEnv = process.env): SnowflakeConfig | undefined {
  const account = env.TAILOR_LIVE_SNOWFLAKE_ACCOUNT;
  const username = env.TAILOR_LIVE_SNOWFLAKE_USERNAME;
  const credentials =
    env.TAILOR_LIVE_SNOWFLAKE_PRIVATE_KEY_PATH ||
    env.TAILOR_LIVE_SNOWFLAKE_PRIVATE_KEY ||
    env.TAILOR_LIVE_SNOWFLAKE_PASSWORD;
  if (!account || !username || !credentials) return undefined;
  const optional = (key: string, value: string | undefined) => (value ? { [key]: value } : {});
  return snowflakeConfigSchema.parse({
    type: 'snowflake',
    account,
    username,
    warehouse: env.TAILOR_LIVE_SNOWFLAKE_WAREHOUSE,
    database: env.TAILOR_LIVE_SNOWFLAKE_DATABASE,
    ...optional('role', env.TAILOR_LIVE_SNOWFLAKE_ROLE),
    ...optional('private_key_path', env.TAILOR_LIVE_SNOWFLAKE_PRIVATE_KEY_PATH),
    ...optional('private_key', env.TAILOR_LIVE_SNOWFLAKE_PRIVATE_KEY),
    ...optional('private_key_passphrase', env.TAILOR_LIVE_SNOWFLAKE_PRIVATE_KEY_PASSPHRASE),
    ...(env.TAILOR_LIVE_SNOWFLAKE_PRIVATE_KEY_PATH || env.TAILOR_LIVE_SNOWFLAKE_PRIVATE_KEY
      ? {}
      : optional('password', env.TAILOR_LIVE_SNOWFLAKE_PASSWORD)),
  });
}

export async function bigqueryContractWarehouse(config: BigqueryConfig): Promise<ContractWarehouse> {
  const admin = new BigqueryExecutor(
    createBigqueryClient(config, { projectDir: process.cwd() }),
    config.location,
  );
  const data = unique('tailor_live_data');
  const stateSchema = unique('tailor_live_state');
  const sources: Source[] = [];
  const open = async () => {
    const source = await openBigquerySource(config, { projectDir: process.cwd(), logger });
    sources.push(source);
    return source;
  };
  await admin.all(`CREATE SCHEMA \`${data}\` OPTIONS (location = '${config.location}')`);
  const source = await open();
  return {
    source,
    stateSchema,
    table: (name) => `\`${data}\`.\`${name}\``,
    async load(name: string, keyType: 'int' | 'text', rows: readonly SeedRow[]) {
      const type = keyType === 'int' ? 'INT64' : 'STRING';
      await admin.all(
        `CREATE OR REPLACE TABLE \`${data}\`.\`${name}\` (id ${type}, email STRING, phone STRING)`,
      );
      for (let i = 0; i < rows.length; i += 5000) {
        const chunk = rows.slice(i, i + 5000).map((r) => ({
          id: r.id === null ? null : keyType === 'int' ? Number(r.id) : String(r.id),
          email: r.email,
          phone: r.phone,
        }));
        await admin.all(
          `INSERT INTO \`${data}\`.\`${name}\` (id, email, phone) SELECT r.id, r.email, r.phone FROM UNNEST(?) AS r`,
          [bigqueryParam(chunk, [{ id: type, email: 'STRING', phone: 'STRING' }])],
        );
      }
    },
    async dumpState() {
      const tables = await admin
        .all(`SELECT table_name FROM \`${stateSchema}\`.INFORMATION_SCHEMA.TABLES`)
        .catch(() => ({ rows: [] as Record<string, unknown>[] }));
      const parts: string[] = [];
      for (const { table_name: table } of tables.rows as { table_name: string }[]) {
        const { rows } = await admin.all(
          `SELECT TO_JSON_STRING(t) AS j FROM \`${stateSchema}\`.\`${table}\` AS t`,
        );
        parts.push(...rows.map((r) => String(r.j)));
      }
      return parts.join('\n');
    },
    reopen: open,
    async cleanup() {
      for (const s of sources) await s.close();
      for (const dataset of [data, stateSchema]) {
        await admin.all(`DROP SCHEMA IF EXISTS \`${dataset}\` CASCADE`);
      }
    },
  };
}

export async function snowflakeContractWarehouse(config: SnowflakeConfig): Promise<ContractWarehouse> {
  const connection: snowflake.Connection = createSnowflakeConnection(config, { projectDir: process.cwd() });
  let connecting: Promise<void> | undefined;
  const admin = new SnowflakeExecutor(connection, () => {
    connecting ??= new Promise<void>((resolve, reject) =>
      connection.connect((error) => (error ? reject(error) : resolve())),
    );
    return connecting;
  });
  const data = unique('TAILOR_LIVE_DATA').toUpperCase();
  const stateSchema = unique('tailor_live_state');
  const sources: Source[] = [];
  const open = async () => {
    const source = await openSnowflakeSource(config, { projectDir: process.cwd(), logger });
    sources.push(source);
    return source;
  };
  await admin.all(`CREATE SCHEMA "${data}"`);
  const source = await open();
  return {
    source,
    stateSchema,
    table: (name) => `"${data}"."${name.toUpperCase()}"`,
    async load(name: string, keyType: 'int' | 'text', rows: readonly SeedRow[]) {
      const type = keyType === 'int' ? 'NUMBER(38,0)' : 'VARCHAR';
      const table = `"${data}"."${name.toUpperCase()}"`;
      await admin.all(`CREATE OR REPLACE TABLE ${table} (id ${type}, email VARCHAR, phone VARCHAR)`);
      for (let i = 0; i < rows.length; i += 1000) {
        const chunk = rows.slice(i, i + 1000);
        await admin.all(
          `INSERT INTO ${table} (id, email, phone) VALUES ${chunk.map(() => '(?, ?, ?)').join(', ')}`,
          chunk.flatMap((r) => [r.id === null ? null : String(r.id), r.email, r.phone]),
        );
      }
    },
    async dumpState() {
      const schema = stateSchema.toUpperCase();
      const { rows: tables } = await admin.all(
        `SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ?`,
        [schema],
      );
      const parts: string[] = [];
      for (const { table_name: table } of tables as { table_name: string }[]) {
        const { rows } = await admin.all(
          `SELECT TO_JSON(OBJECT_CONSTRUCT(*)) AS J FROM "${schema}"."${table}"`,
        );
        parts.push(...rows.map((r) => String(r.j)));
      }
      return parts.join('\n');
    },
    reopen: open,
    async cleanup() {
      for (const s of sources) await s.close();
      await admin.all(`DROP SCHEMA IF EXISTS "${data}" CASCADE`);
      await admin.all(`DROP SCHEMA IF EXISTS "${stateSchema.toUpperCase()}" CASCADE`);
      await new Promise<void>((resolve) => connection.destroy(() => resolve()));
    },
  };
}
