/**
 * The benchmark's segment: a realistic `people` table generated inside the warehouse from
 * deterministic expressions of the key (so generation is one fast INSERT ... SELECT over
 * generate_series, and every run sees the same rows), and the 1% added / 1% removed / 1% changed
 * edits applied to it by plain SQL, forward and back.
 *
 * The values look like what analysts' tables hold, mess included: mixed-case emails, some with a
 * leading space; US phones in three formats (E.164, national with punctuation, bare digits); handles
 * with and without `@`; IDFAs in upper and lower case and Android ids; missing values where a real
 * CRM has them. Every value is valid for its identifier type, so the audience holds every row.
 */

/** The SQL runner both pg (`client.query`) and PGlite (`db.exec`) provide. */
export type ExecSql = (sql: string) => Promise<unknown>;

export const PEOPLE_TABLE = 'people';

/** The model the benchmark activates: the whole table, the mapped columns and the key. */
export const PEOPLE_MODEL_SQL = `select person_id, email, phone, x_handle, device_id from ${PEOPLE_TABLE}`;
export const PEOPLE_KEY = 'person_id';
/** Column -> X identifier type, as tailor.yml maps them. */
export const PEOPLE_MAPPINGS = {
  email: 'email',
  phone: 'phone_number',
  x_handle: 'handle',
  device_id: 'device_id',
} as const;

// Real US area codes, so libphonenumber's full metadata accepts every number.
const AREA_CODES = [212, 213, 305, 312, 415, 503, 617, 646, 702, 718, 773, 808, 917, 972];
const DOMAINS = ['gmail.com', 'yahoo.com', 'outlook.com', 'icloud.com', 'example.org'];

const sqlArray = (values: readonly (string | number)[]) =>
  `array[${values.map((v) => (typeof v === 'number' ? String(v) : `'${v}'`)).join(',')}]`;

/** The email of member `k` before any edit. */
const baseEmail = (k: string) =>
  `(case when ${k} % 11 = 0 then ' ' else '' end) || (case when ${k} % 4 = 0 then 'Person.' else 'person.' end)` +
  ` || ${k} || '@' || (${sqlArray(DOMAINS)})[1 + (${k} % ${DOMAINS.length})]`;

/** The email of member `k` after the "changed" edit. */
const changedEmail = (k: string) => `'person.' || ${k} || '.moved@example.net'`;

/**
 * The select list of one generated person, from a column `k` (bigint). Unique per key up to
 * 8M x 14 keys: (area code, exchange, line) is a bijection of k there.
 */
function personColumns(k: string): string {
  const area = `(${sqlArray(AREA_CODES)})[1 + ((${k} / 8000000) % ${AREA_CODES.length})]`;
  const exchange = `(200 + (${k} / 10000) % 800)`;
  const line = `lpad((${k} % 10000)::text, 4, '0')`;
  const uuid = (h: string) =>
    `substr(${h},1,8)||'-'||substr(${h},9,4)||'-'||substr(${h},13,4)||'-'||substr(${h},17,4)||'-'||substr(${h},21,12)`;
  const hash = `md5('device-' || ${k})`;
  return [
    `${k} as person_id`,
    `${baseEmail(k)} as email`,
    `case ${k} % 7 when 3 then null` +
      ` when 0 then '+1' || ${area} || ${exchange} || ${line}` +
      ` when 1 then '(' || ${area} || ') ' || ${exchange} || '-' || ${line}` +
      ` else ${area} || '.' || ${exchange} || '.' || ${line} end as phone`,
    `case when ${k} % 5 in (1, 2) then null` +
      ` else (case when ${k} % 2 = 0 then '@' else '' end) || 'user_' || ${k} end as x_handle`,
    `case ${k} % 6 when 0 then null when 2 then null when 4 then null` +
      ` when 1 then upper(${uuid(hash)})` +
      ` when 3 then substr(${hash}, 1, 16)` +
      ` else ${uuid(hash)} end as device_id`,
    `date '2020-01-01' + (${k} % 1800)::int as created_at`,
    `round(((${k} * 7919) % 100000) / 100.0, 2) as lifetime_value`,
  ].join(',\n    ');
}

/** Creates `people` with `rows` members, keys 1..rows, and its primary key. */
export async function createPeople(exec: ExecSql, rows: number): Promise<void> {
  await exec(`drop table if exists ${PEOPLE_TABLE}`);
  await exec(
    `create table ${PEOPLE_TABLE} as select\n    ${personColumns('g.k')}\n` +
      `  from generate_series(1::bigint, ${rows}::bigint) as g(k)`,
  );
  await exec(`alter table ${PEOPLE_TABLE} add primary key (person_id)`);
  await exec(`vacuum analyze ${PEOPLE_TABLE}`);
}

/** How many members each edit touches at `rows` (1% each, exactly when rows is a multiple of 100). */
export function editCounts(rows: number): { added: number; removed: number; changed: number } {
  const share = (residue: number) => Math.floor((rows - residue) / 100) + (rows >= residue ? 1 : 0);
  return { added: Math.floor(rows / 100), removed: share(1), changed: share(2) };
}

/**
 * The incremental case's edits: 1% of members leave (key % 100 = 1), 1% join (new keys after
 * `rows`), 1% change their email (key % 100 = 2). `back` undoes them exactly, which is itself a
 * 1% / 1% / 1% change: so an incremental run can be repeated without reloading the segment.
 */
export async function applyEdits(exec: ExecSql, rows: number, direction: 'forward' | 'back'): Promise<void> {
  const added = Math.floor(rows / 100);
  if (direction === 'forward') {
    await exec(`delete from ${PEOPLE_TABLE} where person_id % 100 = 1 and person_id <= ${rows}`);
    await exec(
      `insert into ${PEOPLE_TABLE} select\n    ${personColumns('g.k')}\n` +
        `  from generate_series(${rows + 1}::bigint, ${rows + added}::bigint) as g(k)`,
    );
    await exec(
      `update ${PEOPLE_TABLE} set email = ${changedEmail('person_id')} where person_id % 100 = 2 and person_id <= ${rows}`,
    );
  } else {
    await exec(`delete from ${PEOPLE_TABLE} where person_id > ${rows}`);
    await exec(
      `insert into ${PEOPLE_TABLE} select\n    ${personColumns('g.k')}\n` +
        `  from generate_series(1::bigint, ${rows}::bigint) as g(k) where g.k % 100 = 1`,
    );
    await exec(
      `update ${PEOPLE_TABLE} set email = ${baseEmail('person_id')} where person_id % 100 = 2 and person_id <= ${rows}`,
    );
  }
  await exec(`analyze ${PEOPLE_TABLE}`);
}
