import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import Cursor from 'pg-cursor';
import { pino } from 'pino';
import type { Destination, MemberChange, MemberHashes } from '../src/destinations/destination.js';
import type { XIdentifierType } from '../src/destinations/x-ads/identifier-types.js';
import { hashMember } from '../src/destinations/x-ads/identifiers.js';
import { xAdsDestinationSchema } from '../src/destinations/x-ads/x-ads-config.js';
import { createDestination } from '../src/destinations/registry.js';

/**
 * The full-pull design, as a baseline (what Hightouch calls its "Basic" change-data-capture engine:
 * https://hightouch.com/docs/syncs/cdc): the segment and the previous snapshot are both pulled
 * whole out of the warehouse into the sync process, diffed and hashed there, the delta is sent
 * through the same X Ads client to the same emulator, and the new snapshot is written back.
 *
 * It is a fair implementation of that design, not a straw man: both reads are streamed with
 * pg-cursor, only fingerprints (not values) of the previous snapshot are held in memory, only delta
 * rows are normalized and hashed, sends overlap the scan, and the snapshot is written back in bulk
 * (`unnest` batches into a fresh table swapped in at the end) on a second connection while the
 * scan goes on. Deletes go before the Updates of changed members, as X's Delete removes any member
 * sharing any identifier (https://docs.x.com/x-ads-api/audiences/reference).
 *
 * Run as a subprocess by bench/run.ts (so its peak RSS is its own): `node --import tsx
 * bench/full-pull.ts '<json FullPullConfig>'`, printing a FullPullResult as JSON on stdout.
 */

export interface FullPullConfig {
  pgUrl: string;
  modelSql: string;
  primaryKey: string;
  mappings: Record<string, XIdentifierType>;
  phoneDefaultRegion: string;
  /** Schema holding the snapshot (key, fingerprint) and what was sent (key, hashes). */
  schema: string;
  apiUrl: string;
  accountId: string;
  credentials: {
    consumerKey: string;
    consumerSecret: string;
    accessToken: string;
    accessTokenSecret: string;
  };
  audienceName: string;
  fetchSize?: number;
  /** Member changes handed to the client per `apply` call while the scan goes on. */
  sendBatch?: number;
}

export interface FullPullResult {
  ms: number;
  /** Rows read out of the warehouse: the whole segment, the whole snapshot, the hashes of the delta. */
  rowsRead: number;
  /** UTF-8 bytes of the values read, as the client received them. */
  bytesRead: number;
  segmentRows: number;
  snapshotRows: number;
  added: number;
  removed: number;
  changed: number;
  invalid: number;
  userObjects: number;
  requests: number;
  phases: { pullSnapshotMs: number; scanAndSendMs: number; deletesMs: number; writeBackMs: number };
}

const WRITE_BATCH = 10_000;

function valueBytes(row: Record<string, unknown>): number {
  let bytes = 0;
  for (const value of Object.values(row)) {
    if (value === null || value === undefined) continue;
    bytes += Buffer.byteLength(typeof value === 'string' ? value : String(value));
  }
  return bytes;
}

/** A write left running while the scan goes on; its failure surfaces where it is next awaited. */
function background(promise: Promise<unknown>): Promise<unknown> {
  promise.catch(() => undefined);
  return promise;
}

const isEmpty = (hashes: MemberHashes) =>
  Object.values(hashes).every((values) => !values || values.length === 0);

/** The hashes in `previous` that `current` no longer carries: what a changed member must Delete. */
function dropped(previous: MemberHashes, current: MemberHashes): MemberHashes {
  const out: MemberHashes = {};
  for (const [type, values] of Object.entries(previous) as Array<[XIdentifierType, string[]]>) {
    const keep = new Set(current[type] ?? []);
    const gone = values.filter((value) => !keep.has(value));
    if (gone.length > 0) out[type] = gone;
  }
  return out;
}

export async function runFullPull(config: FullPullConfig, destination: Destination): Promise<FullPullResult> {
  const started = performance.now();
  const fetchSize = config.fetchSize ?? 5000;
  const sendBatch = config.sendBatch ?? 25_000;
  const columns = Object.keys(config.mappings);
  const snapshot = `${config.schema}.snapshot`;
  const next = `${config.schema}.snapshot_next`;
  const sent = `${config.schema}.sent`;
  const result: FullPullResult = {
    ms: 0,
    rowsRead: 0,
    bytesRead: 0,
    segmentRows: 0,
    snapshotRows: 0,
    added: 0,
    removed: 0,
    changed: 0,
    invalid: 0,
    userObjects: 0,
    requests: 0,
    phases: { pullSnapshotMs: 0, scanAndSendMs: 0, deletesMs: 0, writeBackMs: 0 },
  };
  const reader = new pg.Client(config.pgUrl);
  const writer = new pg.Client(config.pgUrl);
  await Promise.all([reader.connect(), writer.connect()]);
  try {
    const audience =
      (await destination.findAudienceByName(config.audienceName)) ??
      (await destination.createAudience(config.audienceName, 'tailor benchmark: full pull'));

    await writer.query(`create schema if not exists ${config.schema}`);
    await writer.query(
      `create table if not exists ${snapshot} (member_key text primary key, fingerprint text not null)`,
    );
    await writer.query(
      `create table if not exists ${sent} (member_key text primary key, hashes jsonb not null)`,
    );

    // 1. The previous snapshot, whole, into memory: key -> fingerprint.
    let phase = performance.now();
    const previous = new Map<string, string>();
    {
      const cursor = reader.query(
        new Cursor<{ member_key: string; fingerprint: string }>(
          `select member_key, fingerprint from ${snapshot}`,
        ),
      );
      for (;;) {
        const rows = await cursor.read(fetchSize);
        if (rows.length === 0) break;
        for (const row of rows) {
          previous.set(row.member_key, row.fingerprint);
          result.bytesRead += row.member_key.length + row.fingerprint.length;
        }
        result.snapshotRows += rows.length;
      }
      await cursor.close();
    }
    result.phases.pullSnapshotMs = performance.now() - phase;

    // 2. The whole segment: fingerprint every row, diff against the snapshot, hash the delta, send
    //    added members as the scan goes, write the new snapshot back alongside.
    phase = performance.now();
    await writer.query(`drop table if exists ${next}`);
    await writer.query(`create table ${next} (member_key text not null, fingerprint text not null)`);
    let pendingWrite: Promise<unknown> = Promise.resolve();
    let nextKeys: string[] = [];
    let nextFingerprints: string[] = [];
    const flushSnapshot = async () => {
      if (nextKeys.length === 0) return;
      const keys = nextKeys;
      const fingerprints = nextFingerprints;
      nextKeys = [];
      nextFingerprints = [];
      await pendingWrite;
      pendingWrite = background(
        writer.query(`insert into ${next} select * from unnest($1::text[], $2::text[])`, [
          keys,
          fingerprints,
        ]),
      );
    };
    const sentRows = { keys: [] as string[], hashes: [] as string[] };
    const recordSent = async (force: boolean) => {
      if (sentRows.keys.length === 0 || (!force && sentRows.keys.length < WRITE_BATCH)) return;
      const keys = sentRows.keys.splice(0);
      const hashes = sentRows.hashes.splice(0);
      await pendingWrite;
      pendingWrite = background(
        writer.query(
          `insert into ${sent} select * from unnest($1::text[], $2::jsonb[])
           on conflict (member_key) do update set hashes = excluded.hashes`,
          [keys, hashes],
        ),
      );
    };
    const apply = async (keys: string[], changes: MemberChange[]) => {
      if (changes.length === 0) return;
      const outcome = await destination.apply(audience.id, changes);
      result.requests += outcome.requests;
      result.userObjects += changes.length;
      const failed = outcome.results.filter((r) => r.status !== 'ok').length;
      if (failed > 0)
        throw new Error(`full pull: ${failed} of ${changes.length} changes were not acknowledged`);
      for (let i = 0; i < keys.length; i++) {
        const change = changes[i]!;
        if (change.op === 'update') {
          sentRows.keys.push(keys[i]!);
          sentRows.hashes.push(JSON.stringify(change.user));
        }
      }
      await recordSent(false);
    };
    let addKeys: string[] = [];
    let addChanges: MemberChange[] = [];
    const changed: Array<{ key: string; hashes: MemberHashes }> = [];
    const options = { defaultRegion: config.phoneDefaultRegion };
    {
      const cursor = reader.query(
        new Cursor<Record<string, unknown>>(`select * from (${config.modelSql}) as m`),
      );
      for (;;) {
        const rows = await cursor.read(fetchSize);
        if (rows.length === 0) break;
        result.segmentRows += rows.length;
        for (const row of rows) {
          result.bytesRead += valueBytes(row);
          const key = String(row[config.primaryKey]);
          const fingerprint = createHash('md5')
            .update(JSON.stringify(columns.map((column) => row[column] ?? null)))
            .digest('base64');
          nextKeys.push(key);
          nextFingerprints.push(fingerprint);
          const before = previous.get(key);
          if (before !== undefined) previous.delete(key);
          if (before === fingerprint) continue;
          const { hashes, invalid } = hashMember(row, config.mappings, options);
          result.invalid += invalid.length;
          if (before === undefined) {
            result.added++;
            if (isEmpty(hashes)) continue;
            addKeys.push(key);
            addChanges.push({ op: 'update', user: hashes });
          } else {
            result.changed++;
            changed.push({ key, hashes });
          }
        }
        if (nextKeys.length >= WRITE_BATCH) await flushSnapshot();
        if (addChanges.length >= sendBatch) {
          const [keys, changes] = [addKeys, addChanges];
          addKeys = [];
          addChanges = [];
          await apply(keys, changes);
        }
      }
      await cursor.close();
      await flushSnapshot();
      await apply(addKeys, addChanges);
    }
    result.phases.scanAndSendMs = performance.now() - phase;

    // 3. What left the segment (still in the map) and what changed: fetch the hashes sent for them,
    //    Delete those no longer held, then Update the changed members.
    phase = performance.now();
    const removedKeys = [...previous.keys()];
    previous.clear();
    result.removed = removedKeys.length;
    const lookup = [...removedKeys, ...changed.map((c) => c.key)];
    const sentHashes = new Map<string, MemberHashes>();
    for (let i = 0; i < lookup.length; i += WRITE_BATCH) {
      const { rows } = await reader.query<{ member_key: string; hashes: MemberHashes }>(
        `select member_key, hashes from ${sent} where member_key = any($1::text[])`,
        [lookup.slice(i, i + WRITE_BATCH)],
      );
      result.rowsRead += rows.length;
      for (const row of rows) {
        result.bytesRead += row.member_key.length + JSON.stringify(row.hashes).length;
        sentHashes.set(row.member_key, row.hashes);
      }
    }
    const deletes: MemberChange[] = [];
    for (const key of removedKeys) {
      const hashes = sentHashes.get(key);
      if (hashes && !isEmpty(hashes)) deletes.push({ op: 'delete', user: hashes });
    }
    for (const { key, hashes } of changed) {
      const gone = dropped(sentHashes.get(key) ?? {}, hashes);
      if (!isEmpty(gone)) deletes.push({ op: 'delete', user: gone });
    }
    for (let i = 0; i < deletes.length; i += sendBatch) {
      const batch = deletes.slice(i, i + sendBatch);
      await apply(
        batch.map(() => ''),
        batch,
      );
    }
    for (let i = 0; i < changed.length; i += sendBatch) {
      const batch = changed.slice(i, i + sendBatch).filter((c) => !isEmpty(c.hashes));
      await apply(
        batch.map((c) => c.key),
        batch.map((c) => ({ op: 'update' as const, user: c.hashes })),
      );
    }
    result.phases.deletesMs = performance.now() - phase;

    // 4. The new snapshot replaces the old one; what was sent forgets the removed members.
    phase = performance.now();
    await recordSent(true);
    await pendingWrite;
    await writer.query('begin');
    for (let i = 0; i < removedKeys.length; i += WRITE_BATCH) {
      await writer.query(`delete from ${sent} where member_key = any($1::text[])`, [
        removedKeys.slice(i, i + WRITE_BATCH),
      ]);
    }
    await writer.query(`alter table ${next} add primary key (member_key)`);
    await writer.query(`drop table ${snapshot}`);
    await writer.query(`alter table ${next} rename to snapshot`);
    await writer.query('commit');
    result.phases.writeBackMs = performance.now() - phase;
    result.rowsRead += result.segmentRows + result.snapshotRows;
    result.ms = performance.now() - started;
    return result;
  } finally {
    await Promise.allSettled([reader.end(), writer.end()]);
  }
}

/** Builds the same X Ads client Tailor uses, pointed at `config.apiUrl`, with no client-side throttle. */
export function benchDestination(config: FullPullConfig): Destination {
  const destinationConfig = xAdsDestinationSchema.parse({
    type: 'x_ads',
    account_id: config.accountId,
    api_url: config.apiUrl,
    credentials: {
      consumer_key: config.credentials.consumerKey,
      consumer_secret: config.credentials.consumerSecret,
      access_token: config.credentials.accessToken,
      access_token_secret: config.credentials.accessTokenSecret,
    },
  });
  return createDestination('x', destinationConfig, {
    logger: pino({ level: process.env.BENCH_DEBUG ? 'debug' : 'warn' }, process.stderr),
  });
}

async function main(): Promise<void> {
  const config = JSON.parse(process.argv[2] ?? '') as FullPullConfig;
  const result = await runFullPull(config, benchDestination(config));
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(
      `full pull failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  });
}
