import { mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { WarehouseError } from '../../errors.js';
import { describePgFields, describeQuery, TYPE_NAMES_QUERY } from '../describe.js';
import {
  createPostgresHooks,
  kyselyStream,
  modelError,
  SESSION_SETTINGS,
  warehouseError,
} from '../postgres/postgres-hooks.js';
import type { ColumnInfo, Source } from '../source.js';
import type { StateBackend } from '../warehouse-hooks.js';
import { acquireDataDir, type DataDirLease } from './pglite-data-dir.js';
import { PgliteDialect, readOnlyOnBackend } from './pglite-dialect.js';
import type { PgliteConfig } from './pglite-config.js';

/** The data directory of a `pglite` warehouse: `url` relative to the project, `file:` accepted. */
export function pgliteDataDir(config: PgliteConfig, projectDir: string): string {
  const path = config.url.startsWith('file:') ? config.url.slice('file:'.length) : config.url;
  return isAbsolute(path) ? path : resolve(projectDir, path);
}

/**
 * The embedded warehouse: PGlite (Postgres compiled to WASM) on a file-backed data directory, never
 * in memory (measured: 1M rows in memory took 29 s and 5.4 GB). Its SQL is Postgres', so the state
 * and the diff run with the same hooks as a Postgres server; only the lock and the session differ
 * (one backend per process: an in-process mutex, and every diff on the one backend).
 */
export async function openPgliteSource(
  config: PgliteConfig,
  options: { projectDir: string; logger: Logger },
): Promise<Source> {
  const dataDir = pgliteDataDir(config, options.projectDir);
  const logger = options.logger.child({ warehouse: 'pglite' });
  try {
    await mkdir(dirname(dataDir), { recursive: true });
  } catch (error) {
    throw new WarehouseError(`cannot create the PGlite data directory ${dataDir}`, {
      cause: error,
      hint: 'check warehouse.url in tailor.yml and the directory permissions',
    });
  }
  const lease = await acquireDataDir(dataDir, async () => {
    try {
      const db = await PGlite.create(dataDir);
      await db.query(SESSION_SETTINGS);
      return db;
    } catch (error) {
      throw new WarehouseError(`cannot open the PGlite data directory ${dataDir}`, {
        cause: error,
        hint: 'the directory may be damaged, or not a PGlite data directory',
      });
    }
  });
  return new PgliteSource(config, dataDir, lease, logger);
}

class PgliteSource implements Source {
  readonly kind = 'pglite' as const;
  readonly #config: PgliteConfig;
  readonly #dataDir: string;
  readonly #lease: DataDirLease;
  readonly #logger: Logger;
  readonly #db: Kysely<unknown>;
  #closed = false;

  constructor(config: PgliteConfig, dataDir: string, lease: DataDirLease, logger: Logger) {
    this.#config = config;
    this.#dataDir = dataDir;
    this.#lease = lease;
    this.#logger = logger;
    this.#db = new Kysely<unknown>({ dialect: new PgliteDialect(lease.db) });
  }

  /** The PGlite instance (tests seed through it). */
  get pglite(): PGlite {
    return this.#lease.db;
  }

  async check(): Promise<void> {
    try {
      await this.#lease.db.query('select 1');
    } catch (error) {
      throw warehouseError(error, `opening PGlite at ${this.#dataDir}`);
    }
  }

  async describeModel(modelName: string, sql: string): Promise<ColumnInfo[]> {
    let fields: { name: string; dataTypeID: number }[];
    try {
      // Read-only, as the snapshot is (postgres-hooks.ts readModel); PGlite's query() is the extended
      // protocol, one statement only (exec() would be the simple one).
      fields = await readOnlyOnBackend(
        this.#lease.db,
        async (db) => (await db.query(describeQuery(sql))).fields,
      );
    } catch (error) {
      throw modelError(error, modelName);
    }
    return describePgFields(fields, async (oids) => {
      try {
        const rows = (await this.#lease.db.query<{ oid: number; name: string }>(TYPE_NAMES_QUERY, [oids]))
          .rows;
        return new Map(rows.map((r) => [r.oid, r.name]));
      } catch (error) {
        throw warehouseError(error, 'reading column types');
      }
    });
  }

  stateBackend(stateSchema: string): StateBackend {
    return {
      stateSchema,
      db: this.#db,
      hooks: createPostgresHooks({
        stateSchema,
        // One backend: every session is the shared one; temp tables are named per diff.
        openSession: async () => ({
          db: this.#db,
          stream: (query, chunkSize) => kyselyStream(this.#db, query, chunkSize),
          close: async () => {},
        }),
        fetchSize: this.#config.fetch_size,
        lock: { kind: 'in_process', scope: this.#dataDir },
        logger: this.#logger,
        // Slower here than text arrays (see the option).
        packDigests: false,
      }),
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#lease.release();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
