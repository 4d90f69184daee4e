import { sql, type CompiledQuery, type CreateTableBuilder, type Kysely, type RawBuilder } from 'kysely';
import type { Logger } from 'pino';
import { WarehouseError } from '../errors.js';
import { distinctRows } from './diff-run.js';
import {
  toDate,
  type ColumnType,
  type MemberHashRow,
  type StateBackend,
  type WarehouseHooks,
} from '../sources/warehouse-hooks.js';
import type {
  ActivationStatus,
  AudienceBinding,
  RejectionRecord,
  RunRejections,
  RunFinish,
  RunRecord,
  RunStatus,
} from './types.js';

/**
 * The state schema's statements, written once for every warehouse (docs/state.md): migrations,
 * bindings, members and their hashes, the run log, rejections and scheduler bookkeeping. Kysely's
 * query and schema builders write them where they can (each dialect's compiler quotes names and
 * maps the Postgres-flavoured column types); the commit's bulk statements are `sql` templates over
 * the warehouse's bulk row input. What a warehouse does differently comes from its hooks
 * (src/sources/warehouse-hooks.ts). Statements receive keys, fingerprints and hashes, never raw
 * identifiers.
 */

/** The state tables as the query builder sees them (timestamps are written as Dates). */
interface StateTables {
  tailor_migrations: { version: number; name: string; applied_at: Date };
  state_identity: { state_id: string; created_at: Date };
  bindings: {
    activation_id: string;
    destination: string;
    account_id: string;
    audience_id: string;
    audience_name: string;
    bound_at: Date;
  };
  members: {
    activation_id: string;
    member_key: string;
    fingerprint: string;
    last_sent_at: Date | null;
    updated_at: Date;
  };
  member_hashes: { activation_id: string; member_key: string; id_type: string; hash: string };
  member_intents: {
    activation_id: string;
    member_key: string;
    intent_id: string;
    id_type: string;
    hash: string;
    recorded_at: Date;
    until: Date;
  };
  runs: {
    run_id: string;
    activation_id: string;
    started_at: Date;
    finished_at: Date | null;
    status: string;
    rows: number;
    added: number;
    removed: number;
    changed: number;
    refreshed: number;
    invalid: number;
    rejected: number;
    requests: number;
    suppressed: number;
    error: string | null;
    cost: string | null;
    audience_size: number | null;
    members_sent: number | null;
    audience_processed_at: Date | null;
  };
  rejections: {
    run_id: string;
    activation_id: string;
    member_key: string | null;
    identifier_type: string | null;
    reason: string;
    recorded_at: Date;
  };
  activation_status: {
    activation_id: string;
    consecutive_failures: number;
    paused_at: Date | null;
    paused_reason: string | null;
    config_fingerprint: string | null;
    updated_at: Date;
  };
}

// --- migrations ------------------------------------------------------------------------------------

interface SchemaContext {
  db: Kysely<unknown>;
  stateSchema: string;
  hooks: WarehouseHooks;
}

/**
 * The state schema's versioned migrations, one list for every warehouse. Append only: a released
 * migration is never edited; a change is a new entry. Each statement is idempotent (IF NOT EXISTS)
 * and runs once per schema, recorded in `tailor_migrations`; a warehouse adds its own statements to
 * a version through `hooks.migrationExtras` (Postgres' indexes, the lease warehouses' `locks`).
 * Versions 2 and 5 hold only Postgres indexes: BigQuery and Snowflake record them and run nothing.
 */
export interface StateMigration {
  version: number;
  name: string;
  statements(ctx: SchemaContext): CompiledQuery[];
}

type ColumnDef = readonly [name: string, type: ColumnType, notNull?: 'not null'];

function createTable(
  ctx: SchemaContext,
  table: string,
  columns: readonly ColumnDef[],
  primaryKey?: readonly string[],
): CompiledQuery {
  let builder = ctx.db.schema
    .withSchema(ctx.stateSchema)
    .createTable(table)
    .ifNotExists() as CreateTableBuilder<string, string>;
  for (const [name, type, notNull] of columns) {
    builder = builder.addColumn(name, type, (column) => (notNull ? column.notNull() : column));
  }
  return ctx.hooks.table(builder, table, primaryKey).compile();
}

/** `alter table … add column if not exists` (one column a statement: Snowflake takes one at a time). */
function addColumn(ctx: SchemaContext, table: string, name: string, type: ColumnType): CompiledQuery {
  return ctx.db.schema
    .withSchema(ctx.stateSchema)
    .alterTable(table)
    .addColumn(name, type, (column) => column.ifNotExists())
    .compile();
}

/** The run log's counts as migration 1 created them (a released migration is never edited). */
const V1_COUNT_COLUMNS = [
  'rows',
  'added',
  'removed',
  'changed',
  'refreshed',
  'invalid',
  'rejected',
  'requests',
] as const;

/** Every count of the run log: migration 6 added `suppressed`. */
const COUNT_COLUMNS = [...V1_COUNT_COLUMNS, 'suppressed'] as const;

export const STATE_MIGRATIONS: readonly StateMigration[] = [
  {
    version: 1,
    name: 'initial state tables',
    statements: (ctx) => [
      createTable(
        ctx,
        'bindings',
        [
          ['activation_id', 'text', 'not null'],
          ['destination', 'text', 'not null'],
          ['account_id', 'text', 'not null'],
          ['audience_id', 'text', 'not null'],
          ['audience_name', 'text', 'not null'],
          ['bound_at', 'timestamptz', 'not null'],
        ],
        ['activation_id'],
      ),
      // One row per member the destination acknowledged: the key and a fingerprint, never values.
      createTable(
        ctx,
        'members',
        [
          ['activation_id', 'text', 'not null'],
          ['member_key', 'text', 'not null'],
          ['fingerprint', 'text', 'not null'],
          ['last_sent_at', 'timestamptz'],
          ['updated_at', 'timestamptz', 'not null'],
        ],
        ['activation_id', 'member_key'],
      ),
      // The hashes X holds for each member, without a unique key (see the Postgres indexes).
      createTable(ctx, 'member_hashes', [
        ['activation_id', 'text', 'not null'],
        ['member_key', 'text', 'not null'],
        ['id_type', 'text', 'not null'],
        ['hash', 'text', 'not null'],
      ]),
      createTable(
        ctx,
        'runs',
        [
          ['run_id', 'text', 'not null'],
          ['activation_id', 'text', 'not null'],
          ['started_at', 'timestamptz', 'not null'],
          ['finished_at', 'timestamptz'],
          ['status', 'text', 'not null'],
          ...V1_COUNT_COLUMNS.map((c) => [c, 'bigint', 'not null'] as const),
          ['error', 'text'],
          ['cost', 'jsonb'],
        ],
        ['run_id'],
      ),
      createTable(ctx, 'rejections', [
        ['run_id', 'text', 'not null'],
        ['activation_id', 'text', 'not null'],
        ['member_key', 'text'],
        ['identifier_type', 'text'],
        ['reason', 'text', 'not null'],
        ['recorded_at', 'timestamptz', 'not null'],
      ]),
      createTable(
        ctx,
        'activation_status',
        [
          ['activation_id', 'text', 'not null'],
          ['consecutive_failures', 'integer', 'not null'],
          ['paused_at', 'timestamptz'],
          ['paused_reason', 'text'],
          ['config_fingerprint', 'text'],
          ['updated_at', 'timestamptz', 'not null'],
        ],
        ['activation_id'],
      ),
      ...ctx.hooks.migrationExtras(1, ctx.db),
    ],
  },
  {
    version: 2,
    name: 'hash index for identifier lookups',
    statements: (ctx) => ctx.hooks.migrationExtras(2, ctx.db),
  },
  {
    version: 3,
    name: 'intents before send, and key digests',
    statements: (ctx) => [
      // The hashes of requests sent and not yet acknowledged-and-committed (intent before send):
      // one row per hash per batch's intent, cleared by the commit of the member's acknowledgement.
      createTable(ctx, 'member_intents', [
        ['activation_id', 'text', 'not null'],
        ['member_key', 'text', 'not null'],
        ['intent_id', 'text', 'not null'],
        ['id_type', 'text', 'not null'],
        ['hash', 'text', 'not null'],
        ['recorded_at', 'timestamptz', 'not null'],
        ['until', 'timestamptz', 'not null'],
      ]),
      // Keys become their SHA-256 digest (state never holds a raw key, and any length fits): every
      // table that holds one, in place, so nothing known of what X holds is lost. Each row is marked
      // by the statement that digests it (`key_digested`), so the statement is idempotent where the
      // warehouse has no transaction around the migration: a re-run after a crash digests no key twice.
      // (Telling digests apart by their form would leave a raw key that is itself 64 hex, as a hashed
      // email is, undigested.) The mark is never read again.
      ...['members', 'member_hashes', 'rejections'].flatMap((table) => {
        const key = sql.id('member_key');
        const mark = sql.id('key_digested');
        return [
          addColumn(ctx, table, 'key_digested', 'boolean'),
          sql`update ${sql.id(ctx.stateSchema, table)} set ${key} = ${ctx.hooks.keyDigest(key)}, ${mark} = ${ctx.hooks.literal(true, 'boolean')}
            where ${mark} is null`.compile(ctx.db),
        ];
      }),
      ...ctx.hooks.migrationExtras(3, ctx.db),
    ],
  },
  {
    version: 4,
    name: 'state identity for audience owner marks',
    statements: (ctx) => [
      // A random id made once per state schema: with an activation id, it names who feeds an
      // audience (the owner mark in its description, src/sync/bind-audience.ts). Kept by
      // `tailor state reset`, so a project recognises its own audiences after one.
      createTable(ctx, 'state_identity', [
        ['state_id', 'text', 'not null'],
        ['created_at', 'timestamptz', 'not null'],
      ]),
      ...ctx.hooks.migrationExtras(4, ctx.db),
    ],
  },
  {
    version: 5,
    name: 'index for clearing answered intents',
    // Postgres' index only (its hooks): BigQuery and Snowflake have no such indexes; they record it.
    statements: (ctx) => ctx.hooks.migrationExtras(5, ctx.db),
  },
  {
    version: 6,
    name: 'suppressed count in the run log',
    statements: (ctx) => [
      // Members left out or removed because they are in a suppression model (docs/suppression.md).
      // Runs recorded before it read as 0.
      addColumn(ctx, 'runs', 'suppressed', 'bigint'),
      ...ctx.hooks.migrationExtras(6, ctx.db),
    ],
  },
  {
    version: 7,
    name: 'match rate in the run log',
    statements: (ctx) => [
      // X's audience size as X reported it at the end of a successful run, the members sent with at
      // least one valid identifier then, and when X last processed the audience: the run's match rate.
      // One column a statement (Snowflake takes one ADD COLUMN at a time). Older runs read as null.
      ...(
        [
          ['audience_size', 'bigint'],
          ['members_sent', 'bigint'],
          ['audience_processed_at', 'timestamptz'],
        ] as const
      ).map(([name, type]) => addColumn(ctx, 'runs', name, type)),
      ...ctx.hooks.migrationExtras(7, ctx.db),
    ],
  },
  {
    version: 8,
    name: 'key hashes for the diff',
    statements: (ctx) => [
      // A 64-bit hash of the member's key (the warehouse's keyHash): the diff joins the segment
      // with state on it instead of on the key's SHA-256, which the snapshot would otherwise compute
      // for every row. Members written before it have none, and the first diff after it gives them
      // theirs (docs/state.md, "Key hashes"). Within an activation, a key hash is never held twice.
      addColumn(ctx, 'members', 'key_hash', 'bigint'),
      ...ctx.hooks.migrationExtras(8, ctx.db),
    ],
  },
];

// --- the statements --------------------------------------------------------------------------------

/** The statements of a batch's commit, as `commit step` debug lines name them. */
export type CommitStep =
  | 'new members'
  | 'hash rows deleted by member'
  | 'hash rows deleted by pair'
  | 'hash rows inserted'
  | 'members removed'
  | 'members written'
  | 'intents cleared';

/** One member's acknowledged state, as a commit writes it. */
export interface MemberUpsert {
  key: string;
  /**
   * The key's hash (keyHash, as decimal text), written when the member is inserted and never
   * changed after; null or absent leaves it to the diff, which gives it where it is unique.
   */
  keyHash?: string | null;
  fingerprint: string;
  hashes: readonly MemberHashRow[];
  /** When an Update carrying this member was acknowledged; null keeps the stored value. */
  lastSentAt: Date | null;
  /**
   * The hash rows state held for the member when the diff was taken (empty for an added member).
   * Only the difference is written; when absent, the member's hash rows are replaced as a whole.
   */
  previousHashes?: readonly MemberHashRow[];
}

/** One member's intent rows: the hashes a request about to be sent names. */
export interface IntentRows {
  key: string;
  hashes: readonly MemberHashRow[];
}

/**
 * The `id_type` of an intent row whose `hash` holds every (type, hash) of one member's intent,
 * packed by `packIntentHashes`. Intents were recorded one row per hash until packed rows replaced
 * them; rows of the old form (any other `id_type`: one hash each) may remain from a run of an earlier
 * version, and are read as they are. One row per member instead of one per hash: at 1M members
 * with three identifiers each, a first load writes, indexes and deletes a million intent rows
 * instead of three (measured in bench/RESULTS.md).
 */
export const PACKED_INTENT = '*';

/**
 * `<type>:<value>` per hash, joined by `;`. In a value, `%` and `;` are escaped as `%25` and `%3B`
 * (hex digests hold neither; `partner_user_id` goes as the partner knows it and may hold anything).
 * Types are X's identifier names, which hold neither `:` nor `;`, so a value runs from its type's `:`.
 */
export function packIntentHashes(hashes: readonly MemberHashRow[]): string {
  let packed = '';
  for (const h of hashes) {
    packed += `${packed === '' ? '' : ';'}${h.idType}:${h.hash.replace(/[%;]/g, (c) => (c === '%' ? '%25' : '%3B'))}`;
  }
  return packed;
}

/** The hash rows of intent rows as stored: packed ones unpacked, rows of the old form as they are. */
export function unpackIntentHashes(rows: readonly MemberHashRow[]): MemberHashRow[] {
  const out: MemberHashRow[] = [];
  for (const row of rows) {
    if (row.idType !== PACKED_INTENT) {
      out.push(row);
      continue;
    }
    for (const part of row.hash.split(';')) {
      const colon = part.indexOf(':');
      if (colon <= 0) {
        throw new WarehouseError(
          'an intent row in the state table member_intents is not in its packed form',
          {
            hint: 'the row was written by something other than Tailor; `tailor state reset <activation>` forgets the state',
          },
        );
      }
      out.push({
        idType: part.slice(0, colon),
        hash: part.slice(colon + 1).replace(/%25|%3B/g, (e) => (e === '%25' ? '%' : ';')),
      });
    }
  }
  return out;
}

/**
 * The key bound of a held-hash sample (`StateSql.heldHashCount`) covering `fraction` of the key digest
 * space: eight hex digits, compared as text with lowercase-hex digests (digits sort before a-f in
 * every warehouse's string order; were one to differ, the sample would still be a subset, so still a
 * lower bound). Undefined for the whole (a fraction of 1 or more, or none given).
 */
export function heldSampleBound(fraction: number | undefined): string | undefined {
  if (fraction === undefined || !(fraction < 1)) return undefined;
  const bound = Math.floor(Math.max(0, fraction) * 2 ** 32);
  return bound.toString(16).padStart(8, '0');
}

/**
 * The state statements of one state schema over one warehouse's connection and hooks. Callers keep
 * each call within `hooks.maxRowsPerStatement` rows (`hooks.maxHashesPerLookup` for lookups).
 */
export class StateSql {
  readonly stateSchema: string;
  readonly hooks: WarehouseHooks;
  readonly #backend: StateBackend;
  readonly #logger: Logger;
  #migrated = false;

  constructor(backend: StateBackend, logger: Logger) {
    this.#backend = backend;
    this.stateSchema = backend.stateSchema;
    this.hooks = backend.hooks;
    this.#logger = logger;
  }

  /** The query builder over the state schema. */
  #q(db: Kysely<unknown> = this.#backend.db): Kysely<StateTables> {
    return (db as unknown as Kysely<StateTables>).withSchema(this.stateSchema);
  }

  /** `schema.table` for `sql` templates. */
  table(name: string): RawBuilder<unknown> {
    return sql.id(this.stateSchema, name);
  }

  #v<T>(value: T, type: ColumnType): RawBuilder<T> {
    return this.hooks.value(value, type);
  }

  #mutate<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    return this.hooks.run(what, attempt, { mutates: true });
  }

  #read<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    return this.hooks.run(what, attempt);
  }

  /** Statements in one transaction where the warehouse has them, else one after the other. */
  async #inTransaction(what: string, work: (db: Kysely<unknown>) => Promise<void>): Promise<void> {
    if (this.hooks.transactions) {
      await this.#mutate(what, () => this.#backend.db.transaction().execute(work));
    } else {
      await work(this.#backend.db);
    }
  }

  /**
   * Runs a write, inside a transaction as is, else on its own (retried where the warehouse does); the
   * rows it affected, where the warehouse says. With `step`, its duration is a `commit step` debug
   * line (the benchmark sums them per statement: bench/tailor-case.ts).
   */
  async #exec(
    db: Kysely<unknown>,
    what: string,
    query: RawBuilder<unknown>,
    step?: CommitStep,
  ): Promise<number | undefined> {
    const started = performance.now();
    const result = this.hooks.transactions
      ? await query.execute(db)
      : await this.#mutate(what, () => query.execute(db));
    if (step && this.#logger.isLevelEnabled('debug'))
      this.#logger.debug({ step, ms: Math.round(performance.now() - started) }, 'commit step');
    return result.numAffectedRows === undefined ? undefined : Number(result.numAffectedRows);
  }

  // --- migrations ----------------------------------------------------------------------------------

  /**
   * Creates or upgrades the state schema to the latest version. Idempotent and safe when several
   * processes call it at once (Postgres serializes them; elsewhere every statement is idempotent).
   */
  async migrate(): Promise<void> {
    if (this.#migrated) return;
    const latest = STATE_MIGRATIONS.at(-1)!.version;
    const current = await this.#appliedVersion(this.#backend.db);
    if (current.version >= latest) {
      this.#migrated = true;
      return;
    }
    await this.#mutate(`migrating the state schema ${this.stateSchema}`, () =>
      this.hooks.migrationScope(this.#backend.db, async (db) => {
        await this.hooks.createSchema(db, current.missing === 'schema');
        const ctx = { db, stateSchema: this.stateSchema, hooks: this.hooks };
        await db.executeQuery(
          createTable(
            ctx,
            'tailor_migrations',
            [
              ['version', 'integer', 'not null'],
              ['name', 'text', 'not null'],
              ['applied_at', 'timestamptz', 'not null'],
            ],
            ['version'],
          ),
        );
        const applied = (await this.#appliedVersion(db)).version;
        for (const migration of STATE_MIGRATIONS) {
          if (migration.version <= applied) continue;
          for (const query of migration.statements(ctx)) {
            await db.executeQuery(query);
          }
          const version = this.#v(migration.version, 'integer');
          await sql`insert into ${this.table('tailor_migrations')} (${sql.join([sql.id('version'), sql.id('name'), sql.id('applied_at')])})
            select ${version}, ${this.#v(migration.name, 'text')}, current_timestamp from (select 1 as ${sql.id('one')}) as ${sql.id('x')}
            where not exists (select 1 from ${this.table('tailor_migrations')} where ${sql.id('version')} = ${version})`.execute(
            db,
          );
          this.#logger.info(
            { stateSchema: this.stateSchema, version: migration.version },
            `state migration ${migration.version} (${migration.name}) applied`,
          );
        }
      }),
    );
    this.#migrated = true;
  }

  async #appliedVersion(db: Kysely<unknown>): Promise<{ version: number; missing?: 'schema' | 'table' }> {
    try {
      const row = await this.#q(db)
        .selectFrom('tailor_migrations')
        .select((eb) => eb.fn.max('version').as('version'))
        .executeTakeFirst();
      return { version: Number(row?.version ?? 0) };
    } catch (error) {
      const missing = this.hooks.missingState(error);
      if (missing) return { version: 0, missing };
      return this.#read('reading the state schema version', () => Promise.reject(error));
    }
  }

  // --- the state's identity ------------------------------------------------------------------------

  /**
   * The state schema's random id, made by the first caller (`candidate`): two processes racing may
   * both insert, and both then read the smallest, so every reader gets the same one.
   */
  async stateId(candidate: string): Promise<string> {
    const read = async () => {
      const row = await this.#read('reading the state id', () =>
        this.#q()
          .selectFrom('state_identity')
          .select((eb) => eb.fn.min('state_id').as('id'))
          .executeTakeFirst(),
      );
      return (row?.id as string | null | undefined) ?? null;
    };
    const found = await read();
    if (found) return found;
    await this.#mutate('recording the state id', () =>
      sql`insert into ${this.table('state_identity')} (${sql.id('state_id')}, ${sql.id('created_at')})
        select ${this.#v(candidate, 'text')}, current_timestamp from (select 1 as ${sql.id('one')}) as ${sql.id('x')}
        where not exists (select 1 from ${this.table('state_identity')})`.execute(this.#backend.db),
    );
    return (await read()) ?? candidate;
  }

  // --- bindings ------------------------------------------------------------------------------------

  async getBinding(activationId: string): Promise<AudienceBinding | undefined> {
    const row = await this.#read('reading a binding', () =>
      this.#q()
        .selectFrom('bindings')
        .select(['activation_id', 'destination', 'account_id', 'audience_id', 'audience_name'])
        .select(this.hooks.readTimestamp('bound_at').as('bound_at'))
        .where('activation_id', '=', activationId)
        .executeTakeFirst(),
    );
    return (
      row && {
        activationId: row.activation_id,
        destination: row.destination,
        accountId: row.account_id,
        audienceId: row.audience_id,
        audienceName: row.audience_name,
        boundAt: toDate(row.bound_at),
      }
    );
  }

  async saveBinding(binding: AudienceBinding): Promise<void> {
    await this.#upsert('bindings', 'saving a binding', {
      activation_id: this.#v(binding.activationId, 'text'),
      destination: this.#v(binding.destination, 'text'),
      account_id: this.#v(binding.accountId, 'text'),
      audience_id: this.#v(binding.audienceId, 'text'),
      audience_name: this.#v(binding.audienceName, 'text'),
      bound_at: this.#v(binding.boundAt, 'timestamptz'),
    });
  }

  async deleteBinding(activationId: string): Promise<void> {
    await this.#mutate('deleting a binding', () =>
      this.#q().deleteFrom('bindings').where('activation_id', '=', activationId).execute(),
    );
  }

  /**
   * Inserts or replaces the row keyed by `activation_id`: INSERT ... ON CONFLICT (Postgres) or a
   * MERGE of a one-row source (BigQuery, Snowflake).
   */
  async #upsert(
    table: 'bindings' | 'activation_status',
    what: string,
    row: Record<string, RawBuilder<unknown>>,
  ): Promise<void> {
    const db = this.#q() as unknown as Kysely<Record<string, Record<string, unknown>>>;
    const columns = Object.keys(row);
    const others = columns.filter((c) => c !== 'activation_id');
    if (this.hooks.upsert === 'on_conflict') {
      await this.#mutate(what, () =>
        db
          .insertInto(table)
          .values(row)
          .onConflict((oc) =>
            oc
              .column('activation_id')
              .doUpdateSet((eb) => Object.fromEntries(others.map((c) => [c, eb.ref(`excluded.${c}`)]))),
          )
          .execute(),
      );
      return;
    }
    await this.#mutate(what, () =>
      db
        .mergeInto(`${table} as t`)
        .using(
          db.selectNoFrom(columns.map((c) => row[c]!.as(c))).as('s'),
          't.activation_id',
          's.activation_id',
        )
        .whenMatched()
        .thenUpdateSet((eb) => Object.fromEntries(others.map((c) => [c, eb.ref(`s.${c}`)])))
        .whenNotMatched()
        .thenInsertValues((eb) => Object.fromEntries(columns.map((c) => [c, eb.ref(`s.${c}`)])))
        .execute(),
    );
  }

  // --- member state --------------------------------------------------------------------------------

  async memberCount(activationId: string): Promise<number> {
    const row = await this.#read('counting members', () =>
      this.#q()
        .selectFrom('members')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('activation_id', '=', activationId)
        .executeTakeFirst(),
    );
    return Number(row?.n ?? 0);
  }

  /**
   * Members of the activation with at least one hash row (sent with a valid identifier). A DISTINCT
   * subquery, as heldHashCount: Postgres then reads the member index in order and counts its distinct
   * keys without sorting (measured at 1M members, 3M hash rows: 0.74 s against 2.4 s for
   * count(distinct), which sorts its input).
   */
  async identifiedMemberCount(activationId: string): Promise<number> {
    const row = await this.#read('counting members with identifiers', () =>
      this.#q()
        .selectFrom((eb) =>
          eb
            .selectFrom('member_hashes')
            .select('member_key')
            .distinct()
            .where('activation_id', '=', activationId)
            .as('m'),
        )
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirst(),
    );
    return Number(row?.n ?? 0);
  }

  /**
   * Distinct hashes state holds for the activation: what X holds for its audience, as far as state
   * knows (a hash two members share is one identifier at X). One aggregate over the activation's
   * rows, read by the safety rule only when a run may delete (src/sync/safety.ts). A DISTINCT
   * subquery rather than count(distinct): Postgres then hash-aggregates instead of sorting.
   *
   * With `keysBelow` (`heldSampleBound`), only the hashes of members whose key digest sorts below it:
   * a subset of the hashes, so a lower bound of the count. Key digests are SHA-256 in lowercase hex,
   * spread evenly, so a bound of `fraction` of the digest space picks about that share of members
   * (measured at 1M members, 3M hash rows, PostgreSQL 15: 8% counted in 0.17–0.22 s through the
   * member index, against 1.9–2.2 s for the whole).
   */
  async heldHashCount(activationId: string, keysBelow?: string): Promise<number> {
    const row = await this.#read('counting the hashes state holds', () =>
      this.#q()
        .selectFrom((eb) => {
          const rows = eb.selectFrom('member_hashes');
          const toCount = this.hooks.hashToCount;
          const held = (toCount ? rows.select(toCount(sql.ref('hash')).as('hash')) : rows.select('hash'))
            .distinct()
            .where('activation_id', '=', activationId);
          return (keysBelow === undefined ? held : held.where('member_key', '<', keysBelow)).as('h');
        })
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirst(),
    );
    return Number(row?.n ?? 0);
  }

  /** Forgets every member (its hashes and intents) of the activation; hashes and intents first. */
  async deleteAllMembers(activationId: string): Promise<void> {
    await this.#inTransaction('forgetting members', async (db) => {
      const statements = [
        this.#q(db).deleteFrom('member_hashes').where('activation_id', '=', activationId),
        this.#q(db).deleteFrom('member_intents').where('activation_id', '=', activationId),
        this.#q(db).deleteFrom('members').where('activation_id', '=', activationId),
      ];
      for (const statement of statements) {
        if (this.hooks.transactions) await statement.execute();
        else await this.#mutate('forgetting members', () => statement.execute());
      }
    });
  }

  /**
   * Records the intents of a batch before its requests are sent: one row per member, its hashes
   * packed into one value (`packIntentHashes`), with the batch's intent id, when it was recorded and
   * until when the destination may apply it late. Callers keep each call within
   * `hooks.maxRowsPerStatement` members.
   */
  async recordIntents(
    activationId: string,
    intents: readonly IntentRows[],
    stamp: { id: string; at: Date; until: Date },
  ): Promise<void> {
    const rows: (readonly [string, string])[] = [];
    for (const intent of intents) {
      if (intent.hashes.length > 0) rows.push([intent.key, packIntentHashes(intent.hashes)]);
    }
    if (rows.length === 0) return;
    const source = this.hooks.rows(
      'u',
      [
        ['member_key', 'text'],
        ['hash', 'text'],
      ],
      rows,
    );
    const columns = ['activation_id', 'member_key', 'intent_id', 'id_type', 'hash', 'recorded_at', 'until'];
    await this.#mutate('recording the intent of a batch', () =>
      sql`insert into ${this.table('member_intents')} (${sql.join(columns.map((c) => sql.id(c)))})
        select ${this.#v(activationId, 'text')}, ${sql.ref('u.member_key')}, ${this.#v(stamp.id, 'text')},
          ${this.#v(PACKED_INTENT, 'text')}, ${sql.ref('u.hash')}, ${this.#v(stamp.at, 'timestamptz')}, ${this.#v(stamp.until, 'timestamptz')}
        from ${source}`.execute(this.#backend.db),
    );
  }

  /**
   * Applies acknowledged changes with multi-row statements, never one per member: `upserts` set
   * the member's fingerprint and hashes (`lastSentAt: null` keeps the stored `last_sent_at`; a new
   * member gets null); `removals` delete the member and its hashes. Keys are distinct across both
   * lists. Idempotent: committing the same changes twice leaves the same state.
   *
   * Hash rows are written as a difference where the member's previous rows are known: a changed
   * member usually changes one identifier of several, and a refreshed one none, so rewriting them
   * all cost 2 of every 3 row writes (and a full resync rewrote every row). Rows to insert are
   * deleted first as well, so committing the same acks twice still leaves one row each.
   *
   * Order: hashes, then members. Without a transaction (BigQuery), a failure in between leaves a
   * member's old fingerprint beside its new hashes, so the next diff re-emits it and its commit
   * writes the difference again.
   *
   * A member state held no hash rows for at the diff (an added one, or one without a valid
   * identifier: `previousHashes` empty) has rows now only if this commit ran before. Where one
   * transaction writes a member's row and its hash rows together (INSERT ... ON CONFLICT: Postgres,
   * PGlite), hash rows never exist without the member's row, so such members are inserted first
   * with ON CONFLICT DO NOTHING: when every one goes in (the row count says so), none can have hash
   * rows and all skip the delete by key; when some were already there (a repeated commit), they all
   * have their rows deleted and rewritten. On a first load that is every member: measured at 300k
   * members, the delete cost 190 ms of every 10,000-member commit.
   */
  async applyMemberChanges(
    activationId: string,
    changes: {
      upserts: readonly MemberUpsert[];
      removals: readonly string[];
      /** The intents these acknowledgements answer: cleared with the members' expired ones. */
      intentIds?: readonly string[];
      /**
       * Whether the activation had intents when the diff was taken (default true). Without them,
       * only this run's intents exist: those answered are cleared by id for `intentKeys` (the
       * members that were sent something), and a batch that sent nothing clears nothing.
       */
      olderIntents?: boolean;
      intentKeys?: readonly string[];
      /**
       * Of `intentIds`, those whose every member these changes acknowledge (the caller recorded
       * them). Without older intents, when every answered intent is whole, they are cleared by id
       * alone: no list of 10,000 keys for the server to parse and probe.
       */
      wholeIntents?: ReadonlySet<string>;
      /**
       * How many of `removals` held a hash when the diff was taken (undefined: not known). With it,
       * the commit can say how it moved the number of members holding a hash (its result).
       */
      removalsIdentified?: number;
    },
  ): Promise<{ identifiedMoved: number | undefined }> {
    const { removals } = changes;
    let { upserts } = changes;
    if (upserts.length === 0 && removals.length === 0) return { identifiedMoved: 0 };
    const replaced = [...removals];
    const pairs: (readonly [string, string, string])[] = [];
    const inserts: (readonly [string, string, string])[] = [];
    const insertFirst = this.hooks.upsert === 'on_conflict' && this.hooks.transactions;
    /** Members state held no hash rows for at the diff, inserted before anything else (see above). */
    const fresh: MemberUpsert[] = [];
    /** Members that held hashes and will hold none. */
    let flips = 0;
    for (const upsert of upserts) {
      // No previous rows (an added member): delete by key, not pair by pair. Both keep a second commit
      // of the same acks harmless, but a pair costs a probe of the hash index and a key one probe of
      // the member index: for a 10,000-member batch at 1M members (Postgres), 296 ms against under 50 ms.
      if (upsert.previousHashes === undefined || upsert.previousHashes.length === 0) {
        if (insertFirst && upsert.previousHashes !== undefined) fresh.push(upsert);
        else replaced.push(upsert.key);
        for (const h of distinctRows(upsert.hashes)) inserts.push([upsert.key, h.idType, h.hash]);
        continue;
      }
      // It held hashes; one that now holds none moves the count (rare: every identifier turned invalid).
      if (upsert.hashes.length === 0) flips++;
      const before = new Set(upsert.previousHashes.map((h) => `${h.idType}:${h.hash}`));
      const after = new Set(upsert.hashes.map((h) => `${h.idType}:${h.hash}`));
      for (const h of upsert.previousHashes) {
        if (!after.has(`${h.idType}:${h.hash}`)) pairs.push([upsert.key, h.idType, h.hash]);
      }
      for (const h of upsert.hashes) {
        const id = `${h.idType}:${h.hash}`;
        if (before.has(id)) continue;
        before.add(id);
        pairs.push([upsert.key, h.idType, h.hash]);
        inserts.push([upsert.key, h.idType, h.hash]);
      }
    }
    const hooks = this.hooks;
    const hashes = this.table('member_hashes');
    const members = this.table('members');
    const aid = this.#v(activationId, 'text');
    const id = (name: string) => sql.id(name);
    const hashColumns = [
      ['member_key', 'text'],
      ['id_type', 'text'],
      ['hash', 'text'],
    ] as const;
    let allFreshInserted = true;
    let removed: number | undefined;
    await this.#inTransaction('committing acknowledged members', async (db) => {
      // Settings for deleting members by key, local to this transaction (Postgres: see the hook).
      if (removals.length > 0 && hooks.transactions && hooks.removalSetup)
        await hooks.removalSetup.execute(db);
      if (fresh.length > 0) {
        allFreshInserted = await this.#insertNewMembers(db, aid, fresh);
        if (allFreshInserted) {
          if (fresh.length === upserts.length) upserts = [];
          else {
            const inserted = new Set(fresh);
            upserts = upserts.filter((upsert) => !inserted.has(upsert));
          }
        } else {
          // Some were already there: this commit ran before. Every one of them has its rows
          // replaced like any other member's (for those just inserted, deleting no row).
          for (const upsert of fresh) replaced.push(upsert.key);
        }
      }
      if (replaced.length > 0) {
        await this.#exec(
          db,
          'committing acknowledged member hashes',
          sql`delete from ${hashes} where ${id('activation_id')} = ${aid} and ${hooks.inList(id('member_key'), replaced)}`,
          'hash rows deleted by member',
        );
      }
      if (pairs.length > 0) {
        // The member list narrows the delete to the member index; the pairs pick its rows.
        const keys = [...new Set(pairs.map((p) => p[0]))];
        const u = (column: string) => sql.ref(`u.${column}`);
        const h = (column: string) => sql.ref(`member_hashes.${column}`);
        await this.#exec(
          db,
          'committing acknowledged member hashes',
          sql`delete from ${hashes} where ${id('activation_id')} = ${aid} and ${hooks.inList(id('member_key'), keys)}
            and exists (select 1 from ${hooks.rows('u', hashColumns, pairs)}
                        where ${u('member_key')} = ${h('member_key')} and ${u('id_type')} = ${h('id_type')}
                          and ${u('hash')} = ${h('hash')})`,
          'hash rows deleted by pair',
        );
      }
      if (inserts.length > 0) {
        await this.#exec(
          db,
          'committing acknowledged member hashes',
          sql`insert into ${hashes} (${sql.join([id('activation_id'), id('member_key'), id('id_type'), id('hash')])})
            select ${aid}, ${sql.ref('u.member_key')}, ${sql.ref('u.id_type')}, ${sql.ref('u.hash')}
            from ${hooks.rows('u', hashColumns, inserts)}`,
          'hash rows inserted',
        );
      }
      removed = await this.#writeMembers(db, aid, members, upserts, removals);
      // Intents last: without a transaction, a failure before this leaves them, and the next run
      // re-sends those members (harmless); clearing them first could lose what X may hold.
      const answered = changes.intentIds ?? [];
      if (
        changes.olderIntents === false &&
        answered.length > 0 &&
        answered.every((i) => changes.wholeIntents?.has(i))
      ) {
        await this.#exec(
          db,
          'clearing answered intents',
          sql`delete from ${this.table('member_intents')} where ${id('activation_id')} = ${aid}
            and ${this.hooks.inList(id('intent_id'), answered)}`,
          'intents cleared',
        );
      } else if (changes.olderIntents === false) {
        await this.#clearIntents(db, aid, changes.intentKeys ?? [], answered, false);
      } else {
        const keys = [...changes.upserts.map((u) => u.key), ...removals];
        await this.#clearIntents(db, aid, keys, answered, true);
      }
    });
    // How the members holding a hash moved, exactly, where one transaction writes a member with its
    // hash rows (an added member then holds none) and the warehouse's own counts confirm each step:
    // a commit repeated finds its new members there, or its removed ones gone, and says it does not
    // know. A member that held hashes and now holds none, or one whose previous hashes are not
    // given, is not counted either (rare; the caller then counts state).
    const known =
      insertFirst &&
      allFreshInserted &&
      flips === 0 &&
      changes.upserts.every((upsert) => upsert.previousHashes !== undefined) &&
      (removals.length === 0 || (changes.removalsIdentified !== undefined && removed === removals.length));
    if (!known) return { identifiedMoved: undefined };
    let gained = 0;
    for (const upsert of fresh) if (upsert.hashes.length > 0) gained++;
    return { identifiedMoved: gained - (removals.length === 0 ? 0 : changes.removalsIdentified!) };
  }

  /**
   * Clears the intents of acknowledged members: the ones their acknowledgement answers, and those
   * whose late-apply window has passed (the destination can no longer apply them, and the member
   * was just acknowledged whole).
   */
  async #clearIntents(
    db: Kysely<unknown>,
    aid: RawBuilder<unknown>,
    keys: readonly string[],
    intentIds: readonly string[],
    expiredToo: boolean,
  ): Promise<void> {
    if (keys.length === 0 || (!expiredToo && intentIds.length === 0)) return;
    const id = (name: string) => sql.id(name);
    const answered = intentIds.length > 0 ? sql`${this.hooks.inList(id('intent_id'), intentIds)}` : undefined;
    const which = !expiredToo
      ? answered!
      : answered
        ? sql`(${answered} or ${id('until')} <= current_timestamp)`
        : sql`(${id('until')} <= current_timestamp)`;
    await this.#exec(
      db,
      'clearing answered intents',
      sql`delete from ${this.table('member_intents')} where ${id('activation_id')} = ${aid}
        and ${this.hooks.inList(id('member_key'), keys)} and ${which}`,
      'intents cleared',
    );
  }

  /**
   * `insert into members (...) select ... from <the upserts as rows>` (Postgres, PGlite), for the
   * caller's ON CONFLICT clause.
   */
  #insertMembers(aid: RawBuilder<unknown>, upserts: readonly MemberUpsert[]): RawBuilder<unknown> {
    const source = this.hooks.rows(
      'u',
      [
        ['member_key', 'text'],
        ['fingerprint', 'text'],
        ['last_sent_at', 'timestamptz'],
        ['key_hash', 'bigint'],
      ],
      upserts.map((u) => [u.key, u.fingerprint, u.lastSentAt, u.keyHash ?? null]),
    );
    const columns = ['activation_id', 'member_key', 'fingerprint', 'last_sent_at', 'updated_at', 'key_hash'];
    return sql`insert into ${this.table('members')} as ${sql.id('t')} (${sql.join(columns.map((c) => sql.id(c)))})
      select ${aid}, ${sql.ref('u.member_key')}, ${sql.ref('u.fingerprint')}, ${sql.ref('u.last_sent_at')}, current_timestamp, ${sql.ref('u.key_hash')}
      from ${source}`;
  }

  /**
   * Inserts members not in state yet; whether every one of them went in. A first commit (nearly
   * always) inserts them all with a plain INSERT under a savepoint, where the warehouse says which
   * errors are duplicate keys: ON CONFLICT's speculative insertion probes the primary key for each
   * row before inserting it and again when indexing it, measured (PG 15, 10,000 new members into 1M)
   * 142-300 ms against 90-200 ms plain. Meeting a key already there (this commit ran before), it goes
   * back to the savepoint and inserts with ON CONFLICT DO NOTHING.
   */
  async #insertNewMembers(
    db: Kysely<unknown>,
    aid: RawBuilder<unknown>,
    upserts: readonly MemberUpsert[],
  ): Promise<boolean> {
    const id = (name: string) => sql.id(name);
    const duplicateKey = this.hooks.duplicateKey;
    if (duplicateKey) {
      await sql`savepoint tailor_new_members`.execute(db);
      try {
        await this.#exec(
          db,
          'committing acknowledged members',
          this.#insertMembers(aid, upserts),
          'new members',
        );
        await sql`release savepoint tailor_new_members`.execute(db);
        return true;
      } catch (error) {
        if (!duplicateKey(error)) throw error;
        await sql`rollback to savepoint tailor_new_members`.execute(db);
      }
    }
    // The row count says whether every one went in, with no RETURNING of 10,000 keys for the server
    // to write and Node to parse.
    const inserted = await this.#exec(
      db,
      'committing acknowledged members',
      sql`${this.#insertMembers(aid, upserts)} on conflict (${id('activation_id')}, ${id('member_key')}) do nothing`,
      'new members',
    );
    return inserted === upserts.length;
  }

  /** Members: fingerprints upserted (keeping last_sent_at when none is given), removals deleted. */
  async #writeMembers(
    db: Kysely<unknown>,
    aid: RawBuilder<unknown>,
    members: RawBuilder<unknown>,
    upserts: readonly MemberUpsert[],
    removals: readonly string[],
  ): Promise<number | undefined> {
    const hooks = this.hooks;
    const id = (name: string) => sql.id(name);
    const s = (column: string) => sql.ref(`s.${column}`);
    const t = (column: string) => sql.ref(`t.${column}`);
    const what = 'committing acknowledged members';
    const memberColumns = sql.join(
      ['activation_id', 'member_key', 'fingerprint', 'last_sent_at', 'updated_at', 'key_hash'].map((c) =>
        id(c),
      ),
    );
    if (hooks.upsert === 'merge') {
      const rows = [
        ...upserts.map((u) => [u.key, u.fingerprint, u.lastSentAt, false, u.keyHash ?? null] as const),
        ...removals.map((key) => [key, null, null, true, null] as const),
      ];
      const source = hooks.rows(
        'u',
        [
          ['member_key', 'text'],
          ['fingerprint', 'text'],
          ['last_sent_at', 'timestamptz'],
          ['remove', 'boolean'],
          ['key_hash', 'bigint'],
        ],
        rows,
      );
      await this.#exec(
        db,
        what,
        sql`merge into ${members} as ${id('t')}
          using (select ${sql.ref('u.member_key')}, ${sql.ref('u.fingerprint')}, ${sql.ref('u.last_sent_at')}, ${sql.ref('u.remove')}, ${sql.ref('u.key_hash')}
                 from ${source}) as ${id('s')}
          on ${t('activation_id')} = ${aid} and ${t('member_key')} = ${s('member_key')}
          when matched and ${s('remove')} then delete
          when matched then update set ${id('fingerprint')} = ${s('fingerprint')},
            ${id('last_sent_at')} = coalesce(${s('last_sent_at')}, ${t('last_sent_at')}), ${id('updated_at')} = current_timestamp
          when not matched and not ${s('remove')} then insert (${memberColumns})
            values (${aid}, ${s('member_key')}, ${s('fingerprint')}, ${s('last_sent_at')}, current_timestamp, ${s('key_hash')})`,
        'members written',
      );
      return undefined;
    }
    let removed: number | undefined = 0;
    if (removals.length > 0) {
      removed = await this.#exec(
        db,
        what,
        sql`delete from ${members} where ${id('activation_id')} = ${aid} and ${hooks.inList(id('member_key'), removals)}`,
        'members removed',
      );
    }
    if (upserts.length > 0) {
      await this.#exec(
        db,
        what,
        sql`${this.#insertMembers(aid, upserts)}
          on conflict (${id('activation_id')}, ${id('member_key')}) do update set ${id('fingerprint')} = ${sql.ref('excluded.fingerprint')},
            ${id('last_sent_at')} = coalesce(${sql.ref('excluded.last_sent_at')}, ${t('last_sent_at')}),
            ${id('updated_at')} = ${sql.ref('excluded.updated_at')}`,
        'members written',
      );
    }
    return removed;
  }

  /** Of `hashes`, those held in state by a member of the activation whose key is not in `excludingKeys`. */
  async hashesHeldByOthers(
    activationId: string,
    hashes: readonly string[],
    excludingKeys: readonly string[],
  ): Promise<string[]> {
    if (hashes.length === 0) return [];
    const rows = await this.#read('looking up shared identifiers', () =>
      this.#q()
        .selectFrom('member_hashes')
        .select('hash')
        .distinct()
        .where('activation_id', '=', activationId)
        .where(() => this.hooks.inList(sql.ref('hash'), hashes) as RawBuilder<boolean>)
        .where(() => this.hooks.inList(sql.ref('member_key'), excludingKeys, true) as RawBuilder<boolean>)
        .execute(),
    );
    return rows.map((row) => row.hash);
  }

  // --- suppression ---------------------------------------------------------------------------------

  /**
   * Of `hashes`, those any of the suppression states holds (docs/suppression.md): a suppression
   * model's state is kept like an activation's, so its member_hashes rows are the suppressed set.
   */
  async suppressedHashes(stateIds: readonly string[], hashes: readonly string[]): Promise<string[]> {
    if (hashes.length === 0 || stateIds.length === 0) return [];
    const rows = await this.#read('looking up suppressed identifiers', () =>
      this.#q()
        .selectFrom('member_hashes')
        .select('hash')
        .distinct()
        .where(() => this.hooks.inList(sql.ref('activation_id'), stateIds) as RawBuilder<boolean>)
        .where(() => this.hooks.inList(sql.ref('hash'), hashes) as RawBuilder<boolean>)
        .execute(),
    );
    return rows.map((row) => row.hash);
  }

  /**
   * The members state holds for the activation of whom any hash is in a suppression state: each
   * with every hash row state holds for it (what the audience may hold of that person). Computed in
   * the warehouse as a join of hashes; only the suppressed members' rows come back.
   */
  async membersHoldingSuppressed(
    activationId: string,
    stateIds: readonly string[],
  ): Promise<{ key: string; hashes: MemberHashRow[] }[]> {
    if (stateIds.length === 0) return [];
    const rows = await this.#read('finding suppressed members', () =>
      this.#q()
        .selectFrom('member_hashes as h')
        .select(['h.member_key', 'h.id_type', 'h.hash'])
        .where('h.activation_id', '=', activationId)
        .where('h.member_key', 'in', (eb) =>
          eb
            .selectFrom('member_hashes as m')
            .innerJoin('member_hashes as s', 's.hash', 'm.hash')
            .select('m.member_key')
            .where('m.activation_id', '=', activationId)
            .where(() => this.hooks.inList(sql.ref('s.activation_id'), stateIds) as RawBuilder<boolean>),
        )
        .orderBy('h.member_key')
        .execute(),
    );
    const byKey = new Map<string, MemberHashRow[]>();
    for (const row of rows) {
      const list = byKey.get(row.member_key);
      const hash = { idType: row.id_type, hash: row.hash };
      if (list) list.push(hash);
      else byKey.set(row.member_key, [hash]);
    }
    return [...byKey].map(([key, hashes]) => ({ key, hashes }));
  }

  /**
   * Suppressed hashes not yet deleted from an audience whose state does not know every hash it holds
   * (upsert mode keeps segment leavers at X and forgets them): those of the suppression states
   * without a row under `appliedId`, the audience's record of the suppressed hashes already deleted.
   */
  async suppressionToApply(appliedId: string, stateIds: readonly string[]): Promise<MemberHashRow[]> {
    if (stateIds.length === 0) return [];
    const rows = await this.#read('finding suppressed identifiers not yet deleted', () =>
      this.#q()
        .selectFrom('member_hashes as s')
        .select(['s.id_type', 's.hash'])
        .distinct()
        .where(() => this.hooks.inList(sql.ref('s.activation_id'), stateIds) as RawBuilder<boolean>)
        .where((eb) =>
          eb.not(
            eb.exists(
              eb
                .selectFrom('member_hashes as a')
                .select('a.hash')
                .where('a.activation_id', '=', appliedId)
                .whereRef('a.hash', '=', 's.hash'),
            ),
          ),
        )
        .execute(),
    );
    return rows.map((row) => ({ idType: row.id_type, hash: row.hash }));
  }

  /** Hashes recorded under `appliedId` that no suppression state holds any more (un-opted-out). */
  async suppressionLifted(appliedId: string, stateIds: readonly string[]): Promise<string[]> {
    const rows = await this.#read('finding lifted suppressions', () =>
      this.#q()
        .selectFrom('member_hashes as a')
        .select('a.hash')
        .where('a.activation_id', '=', appliedId)
        .where((eb) =>
          stateIds.length === 0
            ? eb.lit(true)
            : eb.not(
                eb.exists(
                  eb
                    .selectFrom('member_hashes as s')
                    .select('s.hash')
                    .where(
                      () => this.hooks.inList(sql.ref('s.activation_id'), stateIds) as RawBuilder<boolean>,
                    )
                    .whereRef('s.hash', '=', 'a.hash'),
                ),
              ),
        )
        .execute(),
    );
    return rows.map((row) => row.hash);
  }

  // --- run log and rejections ----------------------------------------------------------------------

  async insertRun(run: { id: string; activationId: string; startedAt: Date }): Promise<void> {
    this.hooks.runCost?.start(run.id);
    await this.#mutate('recording a run', () =>
      this.#q()
        .insertInto('runs')
        .columns(['run_id', 'activation_id', 'started_at', 'status', ...COUNT_COLUMNS])
        .expression(
          this.#q().selectNoFrom([
            this.#v(run.id, 'text').as('run_id'),
            this.#v(run.activationId, 'text').as('activation_id'),
            this.#v(run.startedAt, 'timestamptz').as('started_at'),
            this.#v('running', 'text').as('status'),
            ...COUNT_COLUMNS.map((c) => this.#v(0, 'bigint').as(c)),
          ]),
        )
        .execute(),
    );
  }

  /**
   * Closes as `abandoned` the runs of an activation still marked `running`: their process died
   * without recording an end (SIGKILL, a crash). Called under the activation's lock, before a new
   * run is recorded, so no live run is among them. Returns how many there were.
   */
  async abandonRunningRuns(activationId: string, finishedAt: Date): Promise<number> {
    const result = await this.#mutate('closing abandoned runs', () =>
      this.#q()
        .updateTable('runs')
        .set({
          finished_at: this.#v(finishedAt, 'timestamptz'),
          status: this.#v('abandoned', 'text'),
          error: this.#v(
            'the process running it stopped without recording an end (killed, or crashed); the next run repaired what it left',
            'text',
          ),
        })
        .where('activation_id', '=', activationId)
        .where('status', '=', 'running')
        .executeTakeFirst(),
    );
    return Number(result.numUpdatedRows ?? 0);
  }

  async finishRun(runId: string, result: RunFinish): Promise<void> {
    const c = result.counts;
    // BigQuery and Snowflake record what the run's statements cost (bytes processed, query ids).
    const cost = this.hooks.runCost?.finish(runId) ?? null;
    const count = (n: number) => this.#v(n, 'bigint');
    await this.#mutate('recording the end of a run', () =>
      this.#q()
        .updateTable('runs')
        .set({
          finished_at: this.#v(result.finishedAt, 'timestamptz'),
          status: this.#v(result.status, 'text'),
          rows: count(c.rows),
          added: count(c.added),
          removed: count(c.removed),
          changed: count(c.changed),
          refreshed: count(c.refreshed),
          invalid: count(c.invalid),
          rejected: count(c.rejected),
          requests: count(c.requests),
          suppressed: count(c.suppressed),
          error: this.#v(result.error, 'text'),
          cost: this.#v(cost === null ? null : JSON.stringify(cost), 'jsonb'),
          audience_size: this.#v(result.match?.audienceSize ?? null, 'bigint'),
          members_sent: this.#v(result.match?.sent ?? null, 'bigint'),
          audience_processed_at: this.#v(result.match?.processedAt ?? null, 'timestamptz'),
        })
        .where('run_id', '=', runId)
        .execute(),
    );
  }

  /** Newest first; all activations when `activationId` is undefined. */
  async listRuns(options: { activationId?: string; limit: number }): Promise<RunRecord[]> {
    const limit = Math.max(0, Math.floor(options.limit));
    const rows = await this.#read('listing runs', () => {
      let query = this.#q()
        .selectFrom('runs')
        .select([
          'run_id',
          'activation_id',
          'status',
          ...COUNT_COLUMNS,
          'error',
          'audience_size',
          'members_sent',
        ])
        .select([
          this.hooks.readTimestamp('started_at').as('started_at'),
          this.hooks.readTimestamp('finished_at').as('finished_at'),
          this.hooks.readTimestamp('audience_processed_at').as('audience_processed_at'),
          this.hooks.readJson('cost').as('cost'),
        ])
        .orderBy('started_at', 'desc')
        .orderBy('run_id', 'desc')
        .limit(sql.lit(limit));
      if (options.activationId !== undefined) query = query.where('activation_id', '=', options.activationId);
      return query.execute();
    });
    return rows.map((row) => ({
      id: row.run_id,
      activationId: row.activation_id,
      startedAt: toDate(row.started_at),
      finishedAt: row.finished_at === null ? null : toDate(row.finished_at),
      status: row.status as RunStatus,
      counts: {
        rows: Number(row.rows),
        added: Number(row.added),
        removed: Number(row.removed),
        changed: Number(row.changed),
        refreshed: Number(row.refreshed),
        invalid: Number(row.invalid),
        rejected: Number(row.rejected),
        requests: Number(row.requests),
        // Null for runs recorded before migration 6 added the column.
        suppressed: Number(row.suppressed ?? 0),
      },
      error: row.error,
      cost: costFromJson(row.cost),
      // Recorded by successful runs since migration 7; null before, and when X could not be asked.
      match:
        row.members_sent === null || row.members_sent === undefined
          ? null
          : {
              audienceSize: row.audience_size === null ? null : Number(row.audience_size),
              sent: Number(row.members_sent),
              processedAt: row.audience_processed_at === null ? null : toDate(row.audience_processed_at),
            },
    }));
  }

  /**
   * A run's rejections and invalid values: counts by reason and identifier type, and the member keys
   * of the first `limit` of them (keys only: state never holds a raw identifier).
   */
  async listRejections(runId: string, limit: number): Promise<RunRejections> {
    const [groups, rows] = await Promise.all([
      this.#read('counting rejections', () =>
        this.#q()
          .selectFrom('rejections')
          .select(['reason', 'identifier_type'])
          .select((eb) => eb.fn.countAll().as('n'))
          .where('run_id', '=', runId)
          .groupBy(['reason', 'identifier_type'])
          .orderBy('reason')
          .orderBy('identifier_type')
          .execute(),
      ),
      this.#read('listing rejections', () =>
        this.#q()
          .selectFrom('rejections')
          .select(['member_key', 'identifier_type', 'reason'])
          .where('run_id', '=', runId)
          .orderBy('reason')
          .orderBy('member_key')
          .limit(sql.lit(Math.max(0, Math.floor(limit))))
          .execute(),
      ),
    ]);
    return {
      byReason: groups.map((g) => ({
        reason: g.reason,
        identifierType: g.identifier_type,
        count: Number(g.n),
      })),
      sample: rows.map((r) => ({
        memberKey: r.member_key,
        identifierType: r.identifier_type,
        reason: r.reason,
      })),
    };
  }

  async insertRejections(
    runId: string,
    activationId: string,
    rows: readonly RejectionRecord[],
  ): Promise<void> {
    if (rows.length === 0) return;
    const source = this.hooks.rows(
      'u',
      [
        ['member_key', 'text'],
        ['identifier_type', 'text'],
        ['reason', 'text'],
      ],
      rows.map((r) => [r.memberKey, r.identifierType, r.reason]),
    );
    const columns = ['run_id', 'activation_id', 'member_key', 'identifier_type', 'reason', 'recorded_at'];
    await this.#mutate('recording rejections', () =>
      sql`insert into ${this.table('rejections')} (${sql.join(columns.map((c) => sql.id(c)))})
        select ${this.#v(runId, 'text')}, ${this.#v(activationId, 'text')}, ${sql.ref('u.member_key')},
          ${sql.ref('u.identifier_type')}, ${sql.ref('u.reason')}, current_timestamp
        from ${source}`.execute(this.#backend.db),
    );
  }

  // --- scheduler bookkeeping -----------------------------------------------------------------------

  async getActivationStatus(activationId: string): Promise<ActivationStatus | undefined> {
    const rows = await this.#statusRows('reading activation status', activationId);
    return rows[0];
  }

  /** Inserts or replaces. */
  async setActivationStatus(status: ActivationStatus): Promise<void> {
    await this.#upsert('activation_status', 'saving activation status', {
      activation_id: this.#v(status.activationId, 'text'),
      consecutive_failures: this.#v(status.consecutiveFailures, 'integer'),
      paused_at: this.#v(status.pausedAt, 'timestamptz'),
      paused_reason: this.#v(status.pausedReason, 'text'),
      config_fingerprint: this.#v(status.configFingerprint, 'text'),
      updated_at: this.#v(status.updatedAt, 'timestamptz'),
    });
  }

  listActivationStatus(): Promise<ActivationStatus[]> {
    return this.#statusRows('listing activation status');
  }

  async #statusRows(what: string, activationId?: string): Promise<ActivationStatus[]> {
    const rows = await this.#read(what, () => {
      let query = this.#q()
        .selectFrom('activation_status')
        .select(['activation_id', 'consecutive_failures', 'paused_reason', 'config_fingerprint'])
        .select([
          this.hooks.readTimestamp('paused_at').as('paused_at'),
          this.hooks.readTimestamp('updated_at').as('updated_at'),
        ])
        .orderBy('activation_id');
      if (activationId !== undefined) query = query.where('activation_id', '=', activationId);
      return query.execute();
    });
    return rows.map((row) => ({
      activationId: row.activation_id,
      consecutiveFailures: Number(row.consecutive_failures),
      pausedAt: row.paused_at === null ? null : toDate(row.paused_at),
      pausedReason: row.paused_reason,
      configFingerprint: row.config_fingerprint,
      updatedAt: toDate(row.updated_at),
    }));
  }
}

/** A run's cost read back as JSON text (`'null'` is what a JSON null renders as). */
function costFromJson(text: unknown): Record<string, unknown> | null {
  if (text === null || text === undefined || text === 'null') return null;
  return (typeof text === 'string' ? JSON.parse(text) : text) as Record<string, unknown>;
}
