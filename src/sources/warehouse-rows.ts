import type {
  ActivationStatus,
  AudienceBinding,
  DiffCounts,
  InvalidKeyRow,
  RunRecord,
  RunStatus,
} from '../diff/types.js';
import type { MemberHashRow, MemberUpsert, WarehouseDeltaRow } from './warehouse-sql.js';

/**
 * Rows as the state tables hold them (snake_case, as the warehouse sees them) and their mapping to
 * the contract types (camelCase). Each warehouse returns timestamps its own way (a Date, an ISO
 * string, epoch milliseconds), so a mapping takes the `Ts` type and its conversion; the SQL that
 * produces the rows stays in each `<kind>-sql.ts`.
 */

/** Change kinds by the rank the delta table stores; the delta is read in this order. */
export const CHANGE_BY_RANK = ['removed', 'changed', 'refresh', 'added'] as const;

/** A driver's Date, or the ISO text some drivers return instead. */
export function toDate(value: Date | string): Date {
  return value instanceof Date ? value : new Date(value);
}

/** Epoch milliseconds, as a number or the numeric text some drivers return. */
export function fromEpochMs(value: number | string): Date {
  return new Date(Number(value));
}

export interface BindingRow<Ts> {
  activation_id: string;
  destination: string;
  account_id: string;
  audience_id: string;
  audience_name: string;
  bound_at: Ts;
}

export function bindingFromRow<Ts>(row: BindingRow<Ts>, date: (value: Ts) => Date): AudienceBinding {
  return {
    activationId: row.activation_id,
    destination: row.destination,
    accountId: row.account_id,
    audienceId: row.audience_id,
    audienceName: row.audience_name,
    boundAt: date(row.bound_at),
  };
}

export interface RunRow<Ts, Cost> {
  run_id: string;
  activation_id: string;
  started_at: Ts;
  finished_at: Ts | null;
  status: RunStatus;
  rows: number | string;
  added: number | string;
  removed: number | string;
  changed: number | string;
  refreshed: number | string;
  invalid: number | string;
  rejected: number | string;
  requests: number | string;
  error: string | null;
  cost: Cost;
}

export function runFromRow<Ts, Cost>(
  row: RunRow<Ts, Cost>,
  read: { date: (value: Ts) => Date; cost: (value: Cost) => Record<string, unknown> | null },
): RunRecord {
  return {
    id: row.run_id,
    activationId: row.activation_id,
    startedAt: read.date(row.started_at),
    finishedAt: row.finished_at === null ? null : read.date(row.finished_at),
    status: row.status,
    counts: {
      rows: Number(row.rows),
      added: Number(row.added),
      removed: Number(row.removed),
      changed: Number(row.changed),
      refreshed: Number(row.refreshed),
      invalid: Number(row.invalid),
      rejected: Number(row.rejected),
      requests: Number(row.requests),
    },
    error: row.error,
    cost: read.cost(row.cost),
  };
}

/** A run's cost read back as JSON text (`'null'` is what a JSON null renders as). */
export function costFromJson(text: string | null): Record<string, unknown> | null {
  return text === null || text === 'null' ? null : (JSON.parse(text) as Record<string, unknown>);
}

export interface StatusRow<Ts> {
  activation_id: string;
  consecutive_failures: number;
  paused_at: Ts | null;
  paused_reason: string | null;
  config_fingerprint: string | null;
  updated_at: Ts;
}

export function statusFromRow<Ts>(row: StatusRow<Ts>, date: (value: Ts) => Date): ActivationStatus {
  return {
    activationId: row.activation_id,
    consecutiveFailures: Number(row.consecutive_failures),
    pausedAt: row.paused_at === null ? null : date(row.paused_at),
    pausedReason: row.paused_reason,
    configFingerprint: row.config_fingerprint,
    updatedAt: date(row.updated_at),
  };
}

/** A diff's counts before it is prepared. */
export function emptyCounts(): DiffCounts {
  return { rows: 0, invalidKeys: 0, added: 0, removed: 0, changed: 0, refresh: 0, stateMembers: 0 };
}

/** The one-row result of a diff's counting query (warehouses that count every rank in one row). */
export interface CountRow {
  row_count: number;
  invalid: number;
  state: number;
  removed: number;
  changed: number;
  refresh: number;
  added: number;
}

export function countsFromRow(row: CountRow | undefined): DiffCounts {
  return {
    rows: Number(row?.row_count ?? 0),
    invalidKeys: Number(row?.invalid ?? 0),
    removed: Number(row?.removed ?? 0),
    changed: Number(row?.changed ?? 0),
    refresh: Number(row?.refresh ?? 0),
    added: Number(row?.added ?? 0),
    stateMembers: Number(row?.state ?? 0),
  };
}

/** A delta row as read back; `previous_hashes` is in each warehouse's own shape. */
export interface DeltaDbRow<Hashes> {
  change_rank: number;
  member_key: string;
  fingerprint: string | null;
  previous_hashes: Hashes;
}

/**
 * A delta row for the diff: no values or fingerprint for a removal, no previous hashes for an
 * addition (`hashes` is not called then); mapped values come from the `v_<i>` columns.
 */
export function deltaFromRow<Hashes>(
  row: DeltaDbRow<Hashes>,
  columns: readonly string[],
  hashes: (value: Hashes) => MemberHashRow[],
): WarehouseDeltaRow {
  const change = CHANGE_BY_RANK[Number(row.change_rank)]!;
  const record = row as unknown as Record<string, unknown>;
  return {
    key: row.member_key,
    change,
    values: change === 'removed' ? null : columns.map((_, i) => record[`v_${i}`] ?? null),
    fingerprint: change === 'removed' ? null : row.fingerprint,
    previousHashes: change === 'added' ? null : hashes(row.previous_hashes),
  };
}

/** The hash rows of a batch of upserts, each (member, id type, hash) once. */
export function dedupeHashes(
  upserts: readonly MemberUpsert[],
): { member_key: string; id_type: string; hash: string }[] {
  const seen = new Set<string>();
  const rows: { member_key: string; id_type: string; hash: string }[] = [];
  for (const upsert of upserts) {
    for (const h of upsert.hashes as readonly MemberHashRow[]) {
      const id = `${upsert.key}\u0000${h.idType}\u0000${h.hash}`;
      if (seen.has(id)) continue;
      seen.add(id);
      rows.push({ member_key: upsert.key, id_type: h.idType, hash: h.hash });
    }
  }
  return rows;
}

/**
 * A row of the bad-keys table (a key and how many snapshot rows carry it) as invalid-key rows: each
 * null-key row on its own, a duplicated key once with its count. Lazy: a model may hold millions of
 * null keys.
 */
export function* invalidKeysFromRow(row: {
  member_key: string | null;
  n: number | string;
}): Generator<InvalidKeyRow> {
  const n = Number(row.n);
  if (row.member_key === null) {
    for (let i = 0; i < n; i++) yield { key: null, reason: 'null_primary_key', rows: 1 };
  } else {
    yield { key: row.member_key, reason: 'duplicate_primary_key', rows: n };
  }
}

/**
 * Pages of rows as the warehouse streams them, re-cut into batches of `batchSize` items (the last
 * may be shorter), each row mapped to zero or more items. Pulls the next page only when needed.
 */
export async function* rebatch<R, T>(
  pages: AsyncIterable<R[]>,
  batchSize: number,
  map: (row: R) => Iterable<T>,
): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const rows of pages) {
    for (const row of rows) {
      for (const item of map(row)) {
        batch.push(item);
        if (batch.length >= batchSize) {
          yield batch;
          batch = [];
        }
      }
    }
  }
  if (batch.length > 0) yield batch;
}
