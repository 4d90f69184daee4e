import { type CompiledQuery, Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import Cursor from 'pg-cursor';
import type { Logger } from 'pino';
import { describePgFields, describeQuery, TYPE_NAMES_QUERY } from '../describe.js';
import type { ColumnInfo, Source } from '../source.js';
import type { StateBackend, WarehouseSession } from '../warehouse-hooks.js';
import { ExtendedProtocolClient } from './pg-extended.js';
import { DIFF_WORK_MEM_MB, type PostgresConfig } from './postgres-config.js';
import { createPostgresHooks, modelError, SESSION_SETTINGS, warehouseError } from './postgres-hooks.js';

/**
 * A PostgreSQL server: a `pg` pool for short statements (Kysely's Postgres dialect, streaming through
 * pg-cursor), and a dedicated connection per diff or lock, outside the pool, so that long-held
 * sessions can never starve the statements that would release them.
 */
export async function openPostgresSource(
  config: PostgresConfig,
  options: { projectDir: string; logger: Logger },
): Promise<Source> {
  return new PostgresSource(config, options.logger.child({ warehouse: 'postgres' }));
}

class PostgresSource implements Source {
  readonly kind = 'postgres' as const;
  readonly #config: PostgresConfig;
  readonly #logger: Logger;
  readonly #pool: pg.Pool;
  readonly #db: Kysely<unknown>;
  /** Open dedicated sessions (diffs, locks), closed with the source if their owners did not. */
  readonly #sessions = new Set<WarehouseSession>();
  #closed = false;

  constructor(config: PostgresConfig, logger: Logger) {
    this.#config = config;
    this.#logger = logger;
    this.#pool = this.#newPool(config.pool_size);
    this.#db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool: this.#pool, cursor: Cursor }) });
  }

  #newPool(max: number): pg.Pool {
    const pool = new pg.Pool({
      // Every statement over the extended protocol: one statement per query (pg-extended.ts).
      Client: ExtendedProtocolClient,
      connectionString: this.#config.url,
      max,
      application_name: 'tailor',
      // Idle connections close after 30 s; commands end by closing the pool, never by waiting for this.
      idleTimeoutMillis: 30_000,
    });
    // An idle client's connection dropping emits here; without a listener it would crash the process.
    pool.on('error', (error) =>
      this.#logger.warn({ err: error.message }, 'idle warehouse connection failed'),
    );
    return pool;
  }

  async check(): Promise<void> {
    try {
      await this.#pool.query('select 1');
    } catch (error) {
      throw warehouseError(error, 'connecting to Postgres');
    }
  }

  async describeModel(modelName: string, sql: string): Promise<ColumnInfo[]> {
    let fields: { name: string; dataTypeID: number }[];
    try {
      fields = await this.#readOnly(async (client) => (await client.query(describeQuery(sql))).fields);
    } catch (error) {
      throw modelError(error, modelName);
    }
    return describePgFields(fields, async (oids) => {
      try {
        const rows = (await this.#pool.query<{ oid: number; name: string }>(TYPE_NAMES_QUERY, [oids])).rows;
        return new Map(rows.map((r) => [r.oid, r.name]));
      } catch (error) {
        throw warehouseError(error, 'reading column types');
      }
    });
  }

  /**
   * Runs `read` on a pooled connection inside a read-only transaction, rolled back after: what reads
   * a model can write nothing, whatever functions it calls.
   * https://www.postgresql.org/docs/current/sql-set-transaction.html
   */
  async #readOnly<T>(read: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let discard = false;
    try {
      await client.query('begin transaction read only');
      try {
        return await read(client);
      } finally {
        await client.query('rollback').catch(() => {
          discard = true;
        });
      }
    } finally {
      // A connection that could not roll back is closed rather than reused.
      client.release(discard);
    }
  }

  stateBackend(stateSchema: string): StateBackend {
    return {
      stateSchema,
      db: this.#db,
      hooks: createPostgresHooks({
        stateSchema,
        openSession: () => this.#openSession(),
        fetchSize: this.#config.fetch_size,
        lock: { kind: 'advisory' },
        logger: this.#logger,
        cachedStatePlans: true,
      }),
    };
  }

  /**
   * A session on its own `pg.Client`, outside the pool. Kysely runs over it through a one-client
   * "pool"; the delta streams through pg-cursor directly, so that a connection lost mid-stream ends
   * the stream with an error instead of waiting forever to close the cursor on a dead socket
   * (pg-cursor's close() waits for a ReadyForQuery that never comes).
   */
  async #openSession(): Promise<WarehouseSession> {
    const client = new ExtendedProtocolClient({
      connectionString: this.#config.url,
      application_name: 'tailor',
    });
    let broken = false;
    // Without a listener, a dropped connection's 'error' event would crash the process.
    client.on('error', (error) => {
      broken = true;
      this.#logger.warn({ err: error.message }, 'warehouse session connection failed');
    });
    try {
      await client.connect();
      // Fix the settings that change how values render as text, so fingerprints and keys of one
      // model are the same whatever the server's or role's defaults.
      await client.query(SESSION_SETTINGS);
      // The diff's temp tables live in the session's local buffers (default 8 MB, then disk).
      // Measured, 300k-row snapshot: 1.66 s at 8 MB, 1.15 s at 128 MB. Allocated only as used, and
      // settable only before the session first touches a temp table.
      // https://www.postgresql.org/docs/current/runtime-config-resource.html#GUC-TEMP-BUFFERS
      await client.query(`set temp_buffers = '128MB'`);
      // The server's default work_mem (4 MB) makes the diff's hash aggregate and hash join spill to
      // disk in batches from about 30k rows. Measured at 300k rows (PG 15, loaded 2-core machine):
      // the duplicate-key count 462 -> 267 ms and the comparison with state 777 -> 410 ms with 64 MB.
      // Taken only as a hash or sort needs it, by this session alone.
      // https://www.postgresql.org/docs/current/runtime-config-resource.html#GUC-WORK-MEM
      await client.query(`set work_mem = '${this.#config.diff_work_mem_mb ?? DIFF_WORK_MEM_MB}MB'`);
    } catch (error) {
      await client.end().catch(() => {});
      throw error;
    }
    const pool = {
      connect: async () => Object.assign(client, { release: () => {} }),
      end: async () => {},
    };
    const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
    let open = true;
    const session: WarehouseSession = {
      db,
      async *stream<R>(query: CompiledQuery<R>, chunkSize: number): AsyncIterable<R[]> {
        const cursor = client.query(new Cursor<R>(query.sql, [...query.parameters]));
        let failed = false;
        try {
          for (;;) {
            const rows = await cursor.read(chunkSize);
            if (rows.length === 0) break;
            yield rows;
          }
        } catch (error) {
          failed = true;
          throw error;
        } finally {
          if (!failed && !broken) await cursor.close();
        }
      },
      close: async () => {
        if (!open) return;
        open = false;
        this.#sessions.delete(session);
        await db.destroy();
        if (broken) client.end().catch(() => {});
        else await client.end().catch(() => {});
      },
    };
    this.#sessions.add(session);
    return session;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#sessions].map((session) => session.close()));
    await this.#db.destroy();
    // Kysely ends the pool only if it ever ran a query through it (its driver takes the pool on
    // first use). `check` and `describeModel` use the pool directly: without this, their idle
    // connection kept the process alive for the pool's idle timeout after the command had finished.
    if (!this.#pool.ended) await this.#pool.end();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
