import { BQ_PEOPLE_MODEL_SQL } from './people-bigquery.js';
import { type FloorResult, valueBytes } from './floor.js';

/**
 * bench/floor.ts's floor in GoogleSQL, for the BigQuery case on bqemulator: one FULL OUTER JOIN of
 * the segment (with an MD5 fingerprint of its mapped columns) against the state, materialized into a
 * table, its delta read by the client (the SDK pages through the job's results), and one MERGE of the
 * delta into the state with the SHA-256 hashes computed in SQL. BigQuery has no temp table outside a
 * session and no cursor: the delta is a table in the floor's dataset, replaced every run, and there
 * is no transaction around the three statements. Like the rest of the BigQuery case, it times DuckDB
 * behind the emulator's REST layer, not BigQuery.
 */

export type QueryRows = (sql: string) => Promise<Record<string, unknown>[]>;

export const BQ_FLOOR_DATASET = 'bench_floor';
const STATE = `${BQ_FLOOR_DATASET}.members`;
const DELTA = `${BQ_FLOOR_DATASET}.delta`;

const DIFF = `CREATE OR REPLACE TABLE ${DELTA} AS
  SELECT COALESCE(s.member_key, t.member_key) AS member_key,
         CASE WHEN t.member_key IS NULL THEN 'added' WHEN s.member_key IS NULL THEN 'removed' ELSE 'changed' END AS change,
         s.fingerprint, s.email, s.phone, s.x_handle, s.device_id,
         t.hashes AS previous_hashes
    FROM (SELECT CAST(m.person_id AS STRING) AS member_key,
                 TO_HEX(MD5(TO_JSON_STRING(STRUCT(m.email, m.phone, m.x_handle, m.device_id)))) AS fingerprint,
                 m.email, m.phone, m.x_handle, m.device_id
            FROM (${BQ_PEOPLE_MODEL_SQL}) AS m) AS s
    FULL OUTER JOIN ${STATE} AS t ON t.member_key = s.member_key
   WHERE s.member_key IS NULL OR t.member_key IS NULL OR t.fingerprint <> s.fingerprint`;

const hex = (expr: string) => `TO_HEX(SHA256(${expr}))`;

const MERGE = `MERGE ${STATE} AS t
  USING (SELECT d.*, TO_JSON_STRING(STRUCT(
           ${hex('LOWER(TRIM(d.email))')} AS email,
           ${hex(`REGEXP_REPLACE(d.phone, '[^0-9]', '')`)} AS phone_number,
           ${hex(`LOWER(LTRIM(TRIM(d.x_handle), '@'))`)} AS handle,
           ${hex('LOWER(d.device_id)')} AS device_id)) AS hashes
           FROM ${DELTA} AS d) AS d
     ON t.member_key = d.member_key
  WHEN MATCHED AND d.change = 'removed' THEN DELETE
  WHEN MATCHED THEN UPDATE SET fingerprint = d.fingerprint, hashes = d.hashes
  WHEN NOT MATCHED THEN INSERT (member_key, fingerprint, hashes) VALUES (d.member_key, d.fingerprint, d.hashes)`;

export async function resetFloorBigquery(query: QueryRows, location: string): Promise<void> {
  await query(`DROP SCHEMA IF EXISTS ${BQ_FLOOR_DATASET} CASCADE`);
  await query(`CREATE SCHEMA ${BQ_FLOOR_DATASET} OPTIONS (location = '${location}')`);
  await query(
    `CREATE TABLE ${STATE} (member_key STRING NOT NULL, fingerprint STRING NOT NULL, hashes STRING NOT NULL)`,
  );
}

/** One floor run: the diff into a table, its rows read by the client, the MERGE. */
export async function runFloorBigquery(query: QueryRows): Promise<FloorResult> {
  const started = performance.now();
  await query(DIFF);
  const rows = await query(`SELECT * FROM ${DELTA}`);
  let deltaValueBytes = 0;
  for (const row of rows) deltaValueBytes += valueBytes(row);
  const streamed = performance.now();
  await query(MERGE);
  const done = performance.now();
  return {
    ms: done - started,
    deltaRows: rows.length,
    deltaValueBytes,
    diffMs: streamed - started,
    mergeMs: done - streamed,
  };
}
