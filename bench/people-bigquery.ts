/**
 * The benchmark's `people` segment and its 1% / 1% / 1% edits in BigQuery's dialect (GoogleSQL), for
 * the BigQuery case on the local engine (bqemulator on DuckDB). Each expression is bench/people.ts's,
 * row for row, so the segment holds the same values as on PostgreSQL:
 *
 * - `generate_series` is `UNNEST(GENERATE_ARRAY(...))`, in chunks of 1M keys (BigQuery's limit on one
 *   array is 1,048,575 elements); `||` on numbers is `CONCAT` with `CAST(... AS STRING)`; `/` on keys is
 *   `DIV`, `%` is `MOD`; `md5(...)` (hex text) is `TO_HEX(MD5(...))`; `date + n` is `DATE_ADD`.
 * - The lists of area codes and domains are CASE expressions, not array subscripts: bqemulator 1.4.0
 *   translates `array[OFFSET(i)]` to DuckDB's 1-based subscript unchanged, so `OFFSET(0)` gives NULL
 *   and every other offset the element before the one asked for (seen on `['a','b'][OFFSET(0)]`).
 * - There is no primary key (BigQuery enforces none) and no `vacuum analyze`.
 */

/** The SQL runner of the BigQuery case (a query job through the SDK). */
export type ExecBigquery = (sql: string) => Promise<unknown>;

export const BQ_PEOPLE_DATASET = 'tailor_bench_data';
export const BQ_PEOPLE_TABLE = `${BQ_PEOPLE_DATASET}.people`;

/** bench/people.ts's PEOPLE_MODEL_SQL, reading the table from its dataset. */
export const BQ_PEOPLE_MODEL_SQL = `select person_id, email, phone, x_handle, device_id from ${BQ_PEOPLE_TABLE}`;

const AREA_CODES = [212, 213, 305, 312, 415, 503, 617, 646, 702, 718, 773, 808, 917, 972];
const DOMAINS = ['gmail.com', 'yahoo.com', 'outlook.com', 'icloud.com', 'example.org'];
/** The most keys one GENERATE_ARRAY produces here (BigQuery allows 1,048,575). */
const CHUNK = 1_000_000;

/** `values[index]` (0-based) as a CASE expression (see the module comment). */
const pick = (values: readonly (string | number)[], index: string) =>
  `CASE ${index} ${values.map((v, i) => `WHEN ${i} THEN '${v}'`).join(' ')} END`;

const str = (k: string) => `CAST(${k} AS STRING)`;

const baseEmail = (k: string) =>
  `CONCAT(IF(MOD(${k}, 11) = 0, ' ', ''), IF(MOD(${k}, 4) = 0, 'Person.', 'person.'), ${str(k)}, '@', ` +
  `${pick(DOMAINS, `MOD(${k}, ${DOMAINS.length})`)})`;

const changedEmail = (k: string) => `CONCAT('person.', ${str(k)}, '.moved@example.net')`;

/** bench/people.ts's personColumns in GoogleSQL. */
function personColumns(k: string): string {
  const area = pick(AREA_CODES, `MOD(DIV(${k}, 8000000), ${AREA_CODES.length})`);
  const exchange = str(`200 + MOD(DIV(${k}, 10000), 800)`);
  const line = `LPAD(${str(`MOD(${k}, 10000)`)}, 4, '0')`;
  const hash = `TO_HEX(MD5(CONCAT('device-', ${str(k)})))`;
  const uuid = `CONCAT(SUBSTR(${hash}, 1, 8), '-', SUBSTR(${hash}, 9, 4), '-', SUBSTR(${hash}, 13, 4), '-', SUBSTR(${hash}, 17, 4), '-', SUBSTR(${hash}, 21, 12))`;
  return [
    `${k} AS person_id`,
    `${baseEmail(k)} AS email`,
    `CASE MOD(${k}, 7) WHEN 3 THEN NULL` +
      ` WHEN 0 THEN CONCAT('+1', ${area}, ${exchange}, ${line})` +
      ` WHEN 1 THEN CONCAT('(', ${area}, ') ', ${exchange}, '-', ${line})` +
      ` ELSE CONCAT(${area}, '.', ${exchange}, '.', ${line}) END AS phone`,
    `CASE WHEN MOD(${k}, 5) IN (1, 2) THEN NULL` +
      ` ELSE CONCAT(IF(MOD(${k}, 2) = 0, '@', ''), 'user_', ${str(k)}) END AS x_handle`,
    `CASE MOD(${k}, 6) WHEN 0 THEN NULL WHEN 2 THEN NULL WHEN 4 THEN NULL` +
      ` WHEN 1 THEN UPPER(${uuid})` +
      ` WHEN 3 THEN SUBSTR(${hash}, 1, 16)` +
      ` ELSE ${uuid} END AS device_id`,
    `DATE_ADD(DATE '2020-01-01', INTERVAL MOD(${k}, 1800) DAY) AS created_at`,
    `ROUND(CAST(MOD(${k} * 7919, 100000) AS NUMERIC) / 100, 2) AS lifetime_value`,
  ].join(',\n    ');
}

const COLUMNS = 'person_id, email, phone, x_handle, device_id, created_at, lifetime_value';

/** `INSERT` of the members with keys from..to (step `step`), in chunks of at most 1M keys. */
async function insertKeys(exec: ExecBigquery, from: number, to: number, step = 1): Promise<void> {
  for (let start = from; start <= to; start += CHUNK * step) {
    const end = Math.min(to, start + (CHUNK - 1) * step);
    await exec(
      `INSERT INTO ${BQ_PEOPLE_TABLE} (${COLUMNS}) SELECT\n    ${personColumns('k')}\n` +
        `  FROM UNNEST(GENERATE_ARRAY(${start}, ${end}, ${step})) AS k`,
    );
  }
}

/** Creates the dataset and `people` with `rows` members, keys 1..rows. */
export async function createPeopleBigquery(
  exec: ExecBigquery,
  rows: number,
  location: string,
): Promise<void> {
  await exec(`CREATE SCHEMA IF NOT EXISTS ${BQ_PEOPLE_DATASET} OPTIONS (location = '${location}')`);
  await exec(
    `CREATE OR REPLACE TABLE ${BQ_PEOPLE_TABLE} (person_id INT64, email STRING, phone STRING, ` +
      `x_handle STRING, device_id STRING, created_at DATE, lifetime_value NUMERIC)`,
  );
  await insertKeys(exec, 1, rows);
}

/**
 * bench/people.ts's applyEdits in GoogleSQL: forward, 1% leave (key % 100 = 1), 1% join (new keys
 * after `rows`), 1% change their email (key % 100 = 2); back undoes them exactly.
 */
export async function applyEditsBigquery(
  exec: ExecBigquery,
  rows: number,
  direction: 'forward' | 'back',
): Promise<void> {
  const added = Math.floor(rows / 100);
  if (direction === 'forward') {
    await exec(`DELETE FROM ${BQ_PEOPLE_TABLE} WHERE MOD(person_id, 100) = 1 AND person_id <= ${rows}`);
    if (added > 0) await insertKeys(exec, rows + 1, rows + added);
    await exec(
      `UPDATE ${BQ_PEOPLE_TABLE} SET email = ${changedEmail('person_id')} WHERE MOD(person_id, 100) = 2 AND person_id <= ${rows}`,
    );
  } else {
    await exec(`DELETE FROM ${BQ_PEOPLE_TABLE} WHERE person_id > ${rows}`);
    // Keys 1, 101, 201, ...: every key with key % 100 = 1.
    await insertKeys(exec, 1, rows, 100);
    await exec(
      `UPDATE ${BQ_PEOPLE_TABLE} SET email = ${baseEmail('person_id')} WHERE MOD(person_id, 100) = 2 AND person_id <= ${rows}`,
    );
  }
}
