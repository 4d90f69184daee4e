import { type RawBuilder, sql } from 'kysely';

/**
 * The state schema's versioned migrations on Postgres and PGlite (docs/state.md). Append only: a
 * released migration is never edited; a change is a new version. Each runs once, inside the
 * migration transaction that holds the schema's advisory lock, and is recorded in `tailor_migrations`.
 */
export interface PostgresMigration {
  version: number;
  name: string;
  statements(schema: string): RawBuilder<unknown>[];
}

export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    name: 'initial state tables',
    statements: (schema) => {
      const t = (table: string) => sql.id(schema, table);
      return [
        sql`create table ${t('bindings')} (
          activation_id text primary key,
          destination text not null,
          account_id text not null,
          audience_id text not null,
          audience_name text not null,
          bound_at timestamptz not null
        )`,
        // One row per member the destination acknowledged: the key and a fingerprint, never values.
        sql`create table ${t('members')} (
          activation_id text not null,
          member_key text not null,
          fingerprint text not null,
          last_sent_at timestamptz,
          updated_at timestamptz not null default now(),
          primary key (activation_id, member_key)
        )`,
        // The hashes X holds for each member, replaced as a whole by each commit (delete, then insert,
        // in one transaction), so no unique index is needed: a narrow index by member serves the
        // deletes and previous hashes, one by hash serves hashesHeldByOthers. (Measured: a primary key
        // over all four columns made inserting 5,000 hashes into 1M take 145 ms instead of 80 ms.)
        sql`create table ${t('member_hashes')} (
          activation_id text not null,
          member_key text not null,
          id_type text not null,
          hash text not null
        )`,
        sql`create index ${sql.id('member_hashes_by_member')} on ${t('member_hashes')} (activation_id, member_key)`,
        sql`create index ${sql.id('member_hashes_by_hash')} on ${t('member_hashes')} (activation_id, hash)`,
        sql`create table ${t('runs')} (
          run_id text primary key,
          activation_id text not null,
          started_at timestamptz not null,
          finished_at timestamptz,
          status text not null,
          rows bigint not null default 0,
          added bigint not null default 0,
          removed bigint not null default 0,
          changed bigint not null default 0,
          refreshed bigint not null default 0,
          invalid bigint not null default 0,
          rejected bigint not null default 0,
          requests bigint not null default 0,
          error text,
          cost jsonb
        )`,
        sql`create index ${sql.id('runs_by_activation')} on ${t('runs')} (activation_id, started_at desc)`,
        sql`create index ${sql.id('runs_by_start')} on ${t('runs')} (started_at desc)`,
        sql`create table ${t('rejections')} (
          run_id text not null,
          activation_id text not null,
          member_key text,
          identifier_type text,
          reason text not null,
          recorded_at timestamptz not null default now()
        )`,
        sql`create index ${sql.id('rejections_by_run')} on ${t('rejections')} (run_id)`,
        sql`create table ${t('activation_status')} (
          activation_id text primary key,
          consecutive_failures integer not null default 0,
          paused_at timestamptz,
          paused_reason text,
          config_fingerprint text,
          updated_at timestamptz not null
        )`,
      ];
    },
  },
  {
    version: 2,
    name: 'hash index for identifier lookups',
    // Lookups by hash are equality only (hashesHeldByOthers), and SHA-256 hex values arrive in random
    // order: a btree over 64-character text spreads its inserts over an index larger than shared
    // buffers. A hash index stores a 4-byte hash code per row. Measured at 1M members (3M hash rows,
    // PG 15, default settings): inserting 90,000 hash rows took 4.4 s with the btree, 1.4 s with the
    // hash index (81 MB); looking up 10,000 hashes 249 ms vs 59 ms.
    // https://www.postgresql.org/docs/current/hash-index.html
    statements: (schema) => {
      const t = (table: string) => sql.id(schema, table);
      return [
        sql`drop index if exists ${sql.id(schema, 'member_hashes_by_hash')}`,
        sql`create index ${sql.id('member_hashes_by_hash_value')} on ${t('member_hashes')} using hash (hash)`,
      ];
    },
  },
];
