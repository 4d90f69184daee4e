import type { PGlite } from '@electric-sql/pglite';
import type pg from 'pg';
import Cursor from 'pg-cursor';
import { PEOPLE_KEY, PEOPLE_MODEL_SQL } from './people.js';

/**
 * The floor: what any in-warehouse design must at least do for one run, as plain SQL against tables
 * equivalent to Tailor's. One FULL OUTER JOIN of the segment (with a fingerprint of its mapped
 * columns) against the previous state, its delta streamed to the client (the only rows that leave
 * the warehouse), and one MERGE of that delta into the state (keys, fingerprints, and the SHA-256
 * hashes a later Delete needs, computed here in SQL so the floor pays for hashing too). No locks,
 * no run log, no HTTP, no process start: the best a warehouse-native design could do.
 */

export const FLOOR_SCHEMA = 'bench_floor';
const STATE = `${FLOOR_SCHEMA}.members`;

const CREATE_STATE = [
  `create schema if not exists ${FLOOR_SCHEMA}`,
  `create table if not exists ${STATE} (
     member_key text primary key,
     fingerprint text not null,
     hashes jsonb not null
   )`,
];

const DIFF = `create temp table floor_delta on commit drop as
  select coalesce(s.member_key, t.member_key) as member_key,
         case when t.member_key is null then 'added' when s.member_key is null then 'removed' else 'changed' end as change,
         s.fingerprint, s.email, s.phone, s.x_handle, s.device_id,
         t.hashes as previous_hashes
    from (select m.${PEOPLE_KEY}::text as member_key,
                 md5(row(m.email, m.phone, m.x_handle, m.device_id)::text) as fingerprint,
                 m.email, m.phone, m.x_handle, m.device_id
            from (${PEOPLE_MODEL_SQL}) as m) as s
    full outer join ${STATE} as t on t.member_key = s.member_key
   where s.member_key is null or t.member_key is null or t.fingerprint <> s.fingerprint`;

const hex = (expr: string) => `encode(sha256(convert_to(${expr}, 'UTF8')), 'hex')`;

// The hashes are computed in the MERGE's source subquery: on PostgreSQL 15 a MERGE's USING clause is
// a plain table reference or subquery.
const MERGE = `merge into ${STATE} as t
  using (select d.*, jsonb_strip_nulls(jsonb_build_object(
           'email', ${hex('lower(trim(d.email))')},
           'phone_number', ${hex(`regexp_replace(d.phone, '[^0-9]', '', 'g')`)},
           'handle', ${hex(`lower(ltrim(trim(d.x_handle), '@'))`)},
           'device_id', ${hex('lower(d.device_id)')})) as hashes
           from floor_delta as d) as d
     on t.member_key = d.member_key
  when matched and d.change = 'removed' then delete
  when matched then update set fingerprint = d.fingerprint, hashes = d.hashes
  when not matched then insert (member_key, fingerprint, hashes) values (d.member_key, d.fingerprint, d.hashes)`;

export interface FloorResult {
  ms: number;
  deltaRows: number;
  /** UTF-8 bytes of the delta's values as the client received them. */
  deltaValueBytes: number;
  diffMs: number;
  mergeMs: number;
}

/** UTF-8 bytes of a delta row's values as the client received them (every floor counts them alike). */
export function valueBytes(row: Record<string, unknown>): number {
  let bytes = 0;
  for (const value of Object.values(row)) {
    if (value === null || value === undefined) continue;
    bytes += Buffer.byteLength(typeof value === 'string' ? value : JSON.stringify(value));
  }
  return bytes;
}

export async function resetFloorPg(client: pg.Client): Promise<void> {
  await client.query(`drop schema if exists ${FLOOR_SCHEMA} cascade`);
  for (const sql of CREATE_STATE) await client.query(sql);
}

/** One floor run on PostgreSQL; the delta is streamed with a cursor like any client would. */
export async function runFloorPg(client: pg.Client, fetchSize = 5000): Promise<FloorResult> {
  const started = performance.now();
  let deltaRows = 0;
  let deltaValueBytes = 0;
  await client.query('begin');
  try {
    await client.query(DIFF);
    const cursor = client.query(new Cursor('select * from floor_delta'));
    for (;;) {
      const rows = await cursor.read(fetchSize);
      if (rows.length === 0) break;
      deltaRows += rows.length;
      for (const row of rows) deltaValueBytes += valueBytes(row as Record<string, unknown>);
    }
    await cursor.close();
    const streamed = performance.now();
    await client.query(MERGE);
    await client.query('commit');
    const done = performance.now();
    return {
      ms: done - started,
      deltaRows,
      deltaValueBytes,
      diffMs: streamed - started,
      mergeMs: done - streamed,
    };
  } catch (error) {
    await client.query('rollback');
    throw error;
  }
}

export async function resetFloorPglite(db: PGlite): Promise<void> {
  await db.exec(`drop schema if exists ${FLOOR_SCHEMA} cascade`);
  for (const sql of CREATE_STATE) await db.exec(sql);
}

/** The same floor on PGlite (in process: the delta is read as one result, it is 3% of the rows). */
export async function runFloorPglite(db: PGlite): Promise<FloorResult> {
  const started = performance.now();
  let deltaRows = 0;
  let deltaValueBytes = 0;
  await db.exec('begin');
  try {
    await db.exec(DIFF);
    const result = await db.query<Record<string, unknown>>('select * from floor_delta');
    deltaRows = result.rows.length;
    for (const row of result.rows) deltaValueBytes += valueBytes(row);
    const streamed = performance.now();
    await db.exec(MERGE);
    await db.exec('commit');
    const done = performance.now();
    return {
      ms: done - started,
      deltaRows,
      deltaValueBytes,
      diffMs: streamed - started,
      mergeMs: done - streamed,
    };
  } catch (error) {
    await db.exec('rollback');
    throw error;
  }
}
