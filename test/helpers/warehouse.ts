import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { pino } from 'pino';
import type { ContractWarehouse, SeedRow } from '../contract/source-contract.js';
import { openSource } from '../../src/sources/registry.js';

/** The Postgres server of the test environment (trust auth). */
export const TEST_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';

export const silentLogger = pino({ level: 'silent' });

/** A short unique name for schemas, activations and directories of one test. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

const quote = (name: string) => `"${name.replaceAll('"', '""')}"`;
const literal = (value: string | number | null) =>
  value === null ? 'null' : typeof value === 'number' ? String(value) : `'${value.replaceAll("'", "''")}'`;

/** `create table` + one multi-row insert of seed rows, in Postgres SQL. */
function loadStatements(table: string, keyType: 'int' | 'text', rows: readonly SeedRow[]): string[] {
  const statements = [
    `drop table if exists ${table}`,
    `create table ${table} (id ${keyType === 'int' ? 'bigint' : 'text'}, email text, phone text)`,
  ];
  if (rows.length > 0) {
    const values = rows.map((r) => `(${literal(r.id)}, ${literal(r.email)}, ${literal(r.phone)})`).join(', ');
    statements.push(`insert into ${table} (id, email, phone) values ${values}`);
  }
  return statements;
}

/** Every row of every table in a Postgres schema, as text (for the "no raw identifier" scan). */
async function dumpSchema(
  query: (sql: string) => Promise<{ rows: unknown[] }>,
  schema: string,
): Promise<string> {
  const tables = (await query(
    `select table_name from information_schema.tables where table_schema = ${literal(schema)} order by 1`,
  )) as { rows: { table_name: string }[] };
  const parts: string[] = [];
  for (const { table_name } of tables.rows) {
    const rows = (await query(`select t::text as row from ${quote(schema)}.${quote(table_name)} t`)) as {
      rows: { row: string }[];
    };
    parts.push(`${table_name}:`, ...rows.rows.map((r) => r.row));
  }
  return parts.join('\n');
}

/**
 * A contract warehouse on the Postgres server: the test's data and state each in their own schema,
 * both dropped by `cleanup`.
 */
export async function postgresContractWarehouse(): Promise<ContractWarehouse> {
  const dataSchema = uniqueName('tdata');
  const stateSchema = uniqueName('tstate');
  const admin = new pg.Client(TEST_POSTGRES_URL);
  await admin.connect();
  await admin.query(`create schema ${quote(dataSchema)}`);
  const config = { type: 'postgres', url: TEST_POSTGRES_URL, pool_size: 4, fetch_size: 1000 } as const;
  const open = () => openSource(config, { projectDir: tmpdir(), logger: silentLogger });
  const sources = [await open()];
  return {
    source: sources[0]!,
    stateSchema,
    table: (name) => `${quote(dataSchema)}.${quote(name)}`,
    async load(name, keyType, rows) {
      for (const statement of loadStatements(`${quote(dataSchema)}.${quote(name)}`, keyType, rows)) {
        await admin.query(statement);
      }
    },
    dumpState: () => dumpSchema((sql) => admin.query(sql), stateSchema),
    async reopen() {
      const source = await open();
      sources.push(source);
      return source;
    },
    async cleanup() {
      for (const source of sources) await source.close();
      await admin.query(`drop schema if exists ${quote(dataSchema)} cascade`);
      await admin.query(`drop schema if exists ${quote(stateSchema)} cascade`);
      await admin.end();
    },
  };
}

/**
 * A freshly initialized PGlite data directory to copy from, read-only. `initdb` takes 1–8 s here, so it
 * runs once per machine and PGlite version (cached under the OS temp directory; built beside it and
 * renamed into place, so concurrent test files never see a half-made one).
 */
export async function pgliteTemplateDir(): Promise<string> {
  const entry = createRequire(import.meta.url).resolve('@electric-sql/pglite');
  const version = JSON.parse(await readFile(join(dirname(entry), '..', 'package.json'), 'utf8')) as {
    version: string;
  };
  const dir = join(tmpdir(), `tailor-test-pglite-template-${version.version}`);
  try {
    await stat(join(dir, 'PG_VERSION'));
    return dir;
  } catch {
    // not built yet
  }
  const building = await mkdtemp(join(tmpdir(), 'tailor-test-pglite-building-'));
  const db = await PGlite.create(join(building, 'data'));
  await db.close();
  try {
    await rename(join(building, 'data'), dir);
  } catch {
    // Another test file won the race; its template is as good as ours.
  }
  await rm(building, { recursive: true, force: true });
  return dir;
}

/** PGlite contract warehouses: each test gets a copy of the template data directory (about 1 s). */
export function pgliteContractWarehouses(): {
  setup(): Promise<void>;
  teardown(): Promise<void>;
  create(): Promise<ContractWarehouse>;
} {
  let root: string | undefined;
  let template: string | undefined;
  return {
    async setup() {
      root = await mkdtemp(join(tmpdir(), 'tailor-pglite-'));
      template = await pgliteTemplateDir();
    },
    async teardown() {
      if (root) await rm(root, { recursive: true, force: true });
    },
    async create() {
      if (!root || !template) throw new Error('call setup() first (in beforeAll)');
      const dir = join(root, uniqueName('wh'));
      await cp(template, dir, { recursive: true });
      const config = { type: 'pglite', url: dir, fetch_size: 1000 } as const;
      const open = () => openSource(config, { projectDir: root!, logger: silentLogger });
      const sources = [await open()];
      const pglite = (sources[0] as unknown as { pglite: PGlite }).pglite;
      const stateSchema = 'tailor_state';
      return {
        source: sources[0]!,
        stateSchema,
        table: (name) => `public.${quote(name)}`,
        async load(name, keyType, rows) {
          for (const statement of loadStatements(`public.${quote(name)}`, keyType, rows)) {
            await pglite.query(statement);
          }
        },
        dumpState: () => dumpSchema((sql) => pglite.query(sql), stateSchema),
        async reopen() {
          const source = await open();
          sources.push(source);
          return source;
        },
        async cleanup() {
          for (const source of sources) await source.close();
          await rm(dir, { recursive: true, force: true });
          await rm(`${dir}.lock`, { force: true });
        },
      };
    },
  };
}
