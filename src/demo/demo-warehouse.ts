import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { acquireDataDir } from '../sources/pglite/pglite-data-dir.js';
import {
  type Customer,
  generateSample,
  makeCustomer,
  makeOrders,
  type Order,
  prng,
  type Rng,
} from './sample-data.js';

/** The seed of the demo sample, and its size: big enough to look real, small enough to seed in seconds. */
export const DEMO_SEED = 20_261_122;
export const DEMO_CUSTOMERS = 30_000;

/** The little of a SQL connection seeding needs (PGlite's own API; a `pg` client fits with an adapter). */
export interface SqlConnection {
  query<T>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
  exec(sql: string): Promise<unknown>;
}

const CUSTOMER_COLUMNS = [
  'customer_id',
  'first_name',
  'last_name',
  'email',
  'phone',
  'x_handle',
  'x_user_id',
  'device_id',
  'country',
  'created_at',
] as const satisfies ReadonlyArray<keyof Customer>;
const ORDER_COLUMNS = ['order_id', 'customer_id', 'amount', 'ordered_at'] as const satisfies ReadonlyArray<
  keyof Order
>;

export const SAMPLE_DDL = `
create table customers (
  customer_id bigint primary key,
  first_name text not null,
  last_name text not null,
  email text,
  phone text,
  x_handle text,
  x_user_id text,
  device_id text,
  country text not null,
  created_at timestamptz not null
);
create table orders (
  order_id bigint primary key,
  customer_id bigint not null references customers (customer_id) on delete cascade,
  amount numeric(12, 2) not null,
  ordered_at timestamptz not null
);
create index orders_customer_id on orders (customer_id);
create table demo_meta (key text primary key, value text not null);
`;

/** Multi-row inserts, 1,000 rows a statement (PGlite and Postgres allow 65,535 parameters). */
export async function insertRows<T extends object>(
  db: SqlConnection,
  table: string,
  columns: ReadonlyArray<keyof T & string>,
  rows: readonly T[],
): Promise<void> {
  for (let start = 0; start < rows.length; start += 1000) {
    const chunk = rows.slice(start, start + 1000);
    const params: unknown[] = [];
    const tuples = chunk.map((row) => {
      const marks = columns.map((column) => {
        params.push((row as Record<string, unknown>)[column]);
        return `$${params.length}`;
      });
      return `(${marks.join(', ')})`;
    });
    await db.query(`insert into ${table} (${columns.join(', ')}) values ${tuples.join(', ')}`, params);
  }
}

/** Creates and fills the sample tables unless they exist. Returns whether it seeded. */
export async function seedSample(
  db: SqlConnection,
  options: { seed?: number; customers?: number } = {},
): Promise<{ seeded: boolean; customers: number; orders: number }> {
  const exists = await db.query<{ t: string | null }>(`select to_regclass('customers')::text as t`);
  if (exists.rows[0]?.t) return { seeded: false, customers: 0, orders: 0 };
  const sample = generateSample(options.seed ?? DEMO_SEED, options.customers ?? DEMO_CUSTOMERS);
  await db.exec('begin');
  try {
    await db.exec(SAMPLE_DDL);
    await insertRows(db, 'customers', CUSTOMER_COLUMNS, sample.customers);
    await insertRows(db, 'orders', ORDER_COLUMNS, sample.orders);
    await db.query(`insert into demo_meta (key, value) values ('churn_generation', '0')`);
    await db.exec('commit');
  } catch (error) {
    await db.exec('rollback');
    throw error;
  }
  return { seeded: true, customers: sample.customers.length, orders: sample.orders.length };
}

export interface ChurnSummary {
  generation: number;
  removed: number;
  added: number;
  identifiersChanged: number;
  caseOnly: number;
  newVips: number;
}

function sampleIds(rng: Rng, ids: readonly number[], count: number, taken: Set<number>): number[] {
  const out: number[] = [];
  for (let tries = 0; out.length < count && tries < count * 20; tries++) {
    const id = ids[Math.floor(rng() * ids.length)]!;
    if (taken.has(id)) continue;
    taken.add(id);
    out.push(id);
  }
  return out;
}

/**
 * Changes the sample the way a week of business would, deterministically per generation: some
 * customers leave, new ones arrive, some change their email, phone or device, some only retype their
 * email in capitals (which must send nothing), and a few place a big order (joining the VIPs). New
 * orders never fall after the latest order on record, so the lapsed window stays where it was.
 */
export async function churnSample(db: SqlConnection, options: { seed?: number } = {}): Promise<ChurnSummary> {
  const meta = await db.query<{ value: string }>(
    `select value from demo_meta where key = 'churn_generation'`,
  );
  const generation = Number(meta.rows[0]?.value ?? 0) + 1;
  const rng = prng(((options.seed ?? DEMO_SEED) ^ Math.imul(generation, 0x9e3779b1)) >>> 0);
  const ids = (
    await db.query<{ id: string }>('select customer_id::text as id from customers order by 1')
  ).rows.map((row) => Number(row.id));
  const bounds = (
    await db.query<{ max_customer: string; max_order: string; latest: string }>(
      `select (select max(customer_id) from customers)::text as max_customer,
              (select coalesce(max(order_id), 0) from orders)::text as max_order,
              (select extract(epoch from max(ordered_at)) * 1000 from orders)::text as latest`,
    )
  ).rows[0]!;
  const latest = Number(bounds.latest);
  let orderId = Number(bounds.max_order);
  const nextOrderId = () => ++orderId;
  const taken = new Set<number>();
  const removed = sampleIds(rng, ids, Math.round(ids.length * 0.01), taken);
  const changed = sampleIds(rng, ids, Math.round(ids.length * 0.01), taken);
  const caseOnly = sampleIds(rng, ids, Math.round(ids.length * 0.005), taken);
  const vips = sampleIds(rng, ids, Math.round(ids.length * 0.004), taken);
  const addCount = Math.round(ids.length * 0.015);
  const shared: Array<string | null> = [];
  const clamp = (order: Order): Order =>
    Date.parse(order.ordered_at) > latest ? { ...order, ordered_at: new Date(latest).toISOString() } : order;

  await db.exec('begin');
  try {
    if (removed.length > 0)
      await db.query('delete from customers where customer_id = any($1::bigint[])', [removed]);
    for (const id of changed) {
      const fresh = makeCustomer(rng, id, shared);
      const which = rng();
      const column = which < 0.45 ? 'email' : which < 0.8 ? 'phone' : 'device_id';
      await db.query(`update customers set ${column} = $2 where customer_id = $1`, [id, fresh[column]]);
    }
    if (caseOnly.length > 0)
      await db.query('update customers set email = upper(email) where customer_id = any($1::bigint[])', [
        caseOnly,
      ]);
    const bigOrders: Order[] = vips.map((id) =>
      clamp({
        order_id: nextOrderId(),
        customer_id: id,
        amount: (1000 + rng() * 3000).toFixed(2),
        ordered_at: new Date(latest - Math.floor(rng() * 30) * 86_400_000).toISOString(),
      }),
    );
    const newCustomers: Customer[] = [];
    const newOrders: Order[] = [...bigOrders];
    let customerId = Number(bounds.max_customer);
    for (let i = 0; i < addCount; i++) {
      const customer = makeCustomer(rng, ++customerId, shared);
      newCustomers.push(customer);
      newOrders.push(...makeOrders(rng, customer.customer_id, nextOrderId).map(clamp));
    }
    await insertRows(db, 'customers', CUSTOMER_COLUMNS, newCustomers);
    await insertRows(db, 'orders', ORDER_COLUMNS, newOrders);
    await db.query(`update demo_meta set value = $1 where key = 'churn_generation'`, [String(generation)]);
    await db.exec('commit');
  } catch (error) {
    await db.exec('rollback');
    throw error;
  }
  return {
    generation,
    removed: removed.length,
    added: addCount,
    identifiersChanged: changed.length,
    caseOnly: caseOnly.length,
    newVips: vips.length,
  };
}

/**
 * Opens the demo's PGlite data directory (sharing the process-wide instance and the cross-process lock
 * the PGlite source uses), runs `work`, and closes it again.
 */
export async function withPglite<T>(dataDir: string, work: (db: SqlConnection) => Promise<T>): Promise<T> {
  await mkdir(dirname(dataDir), { recursive: true });
  const lease = await acquireDataDir(dataDir, () => PGlite.create(dataDir));
  try {
    return await work(lease.db);
  } finally {
    await lease.release();
  }
}
