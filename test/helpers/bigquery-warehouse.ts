import { tmpdir } from 'node:os';
import { createBigqueryClient } from '../../src/sources/bigquery/bigquery-client.js';
import { bigqueryConfigSchema } from '../../src/sources/bigquery/bigquery-config.js';
import { BigqueryExecutor } from '../../src/sources/bigquery/bigquery-executor.js';
import { bigqueryParam } from '../../src/sources/bigquery/bigquery-params.js';
import { openBigquerySource } from '../../src/sources/bigquery/bigquery-source.js';
import type { Source } from '../../src/sources/source.js';
import type { ContractWarehouse, SeedRow } from '../contract/source-contract.js';
import { fakeBigqueryAuth, type Bqemulator } from './bqemulator.js';
import { silentLogger, uniqueName } from './warehouse.js';

const LOCATION = 'US';
const id = (name: string) => `\`${name.replaceAll('`', '\\`')}\``;

/** JSON of a decoded row; INT64 beyond 2^53 comes back as bigint. */
const json = (row: unknown) =>
  JSON.stringify(row, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v));

/**
 * A contract warehouse on bqemulator, through the real @google-cloud/bigquery client (`api_endpoint` and
 * an auth client with a fake token): the test's seed tables in their own dataset, its state in another,
 * both dropped by `cleanup`.
 */
export async function bigqueryContractWarehouse(emulator: Bqemulator): Promise<ContractWarehouse> {
  const config = bigqueryConfigSchema.parse({
    type: 'bigquery',
    project_id: emulator.project,
    location: LOCATION,
    api_endpoint: emulator.url,
  });
  const projectDir = tmpdir();
  const admin = new BigqueryExecutor(
    createBigqueryClient(config, { projectDir, authClient: fakeBigqueryAuth() }),
    LOCATION,
  );
  const data = uniqueName('tdata');
  const stateSchema = uniqueName('tstate');
  const sources: Source[] = [];
  const open = async () => {
    const source = await openBigquerySource(config, {
      projectDir,
      logger: silentLogger,
      authClient: fakeBigqueryAuth(),
    });
    sources.push(source);
    return source;
  };
  await admin.all(`CREATE SCHEMA ${id(data)} OPTIONS (location = '${LOCATION}')`);
  const source = await open();
  return {
    source,
    stateSchema,
    table: (name) => `${id(data)}.${id(name)}`,
    async load(name: string, keyType: 'int' | 'text', rows: readonly SeedRow[]) {
      const type = keyType === 'int' ? 'INT64' : 'STRING';
      const table = `${id(data)}.${id(name)}`;
      await admin.all(`CREATE OR REPLACE TABLE ${table} (id ${type}, email STRING, phone STRING)`);
      for (let i = 0; i < rows.length; i += 5000) {
        const chunk = rows.slice(i, i + 5000).map((r) => ({
          id: r.id === null ? null : keyType === 'int' ? Number(r.id) : String(r.id),
          email: r.email,
          phone: r.phone,
        }));
        await admin.all(
          `INSERT INTO ${table} (id, email, phone) SELECT r.id, r.email, r.phone FROM UNNEST(?) AS r`,
          [bigqueryParam(chunk, [{ id: type, email: 'STRING', phone: 'STRING' }])],
        );
      }
    },
    async dumpState() {
      // tables.list of the state dataset (REST), then every row of each table.
      const [tables] = await admin.client.dataset(stateSchema).getTables();
      const parts: string[] = [];
      for (const table of tables.map((t) => t.id ?? '').sort()) {
        const { rows } = await admin.all(`SELECT * FROM ${id(stateSchema)}.${id(table)}`);
        parts.push(`${table}:`, ...rows.map(json));
      }
      return parts.join('\n');
    },
    reopen: open,
    async cleanup() {
      for (const s of sources) await s.close();
      for (const dataset of [data, stateSchema]) {
        await admin.all(`DROP SCHEMA IF EXISTS ${id(dataset)} CASCADE`);
      }
    },
  };
}
