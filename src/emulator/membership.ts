/**
 * One audience's membership: records of identifiers, stored compactly because benchmarks push millions
 * of members through the emulator (a naive object-per-record layout took ~1.2 KB per member).
 *
 * An identifier (key, value) is a *token*: one letter for the key, then the value, where a lowercase
 * SHA-256 hex value is packed as `#` + base64url (43 chars instead of 64) and anything else is kept as
 * `"` + its JSON string form (so it never holds a NUL). A record's key is its sorted, distinct tokens
 * joined by NUL. The index maps each token to the record key(s) carrying it, so `Delete` can remove
 * every record sharing ANY identifier with the given user (x-ads-api.md §6.1).
 */
import type { MembershipView } from './types.js';

export interface MemberTimes {
  readonly effectiveAt: number;
  readonly expiresAt: number;
}

const KEY_CODES: Record<string, string> = {
  email: 'e',
  phone_number: 'p',
  handle: 'h',
  twitter_id: 't',
  device_id: 'd',
  partner_user_id: 'u',
};
const CODE_KEYS: Record<string, string> = Object.fromEntries(
  Object.entries(KEY_CODES).map(([k, c]) => [c, k]),
);
const SHA256_HEX = /^[0-9a-f]{64}$/;
const SEPARATOR = '\u0000';

/** The value part of a token (also how the active-users set is kept). */
export function encodeValue(value: string): string {
  return SHA256_HEX.test(value)
    ? `#${Buffer.from(value, 'hex').toString('base64url')}`
    : `"${JSON.stringify(value)}`;
}

function decodeValue(encoded: string): string {
  return encoded.startsWith('#')
    ? Buffer.from(encoded.slice(1), 'base64url').toString('hex')
    : (JSON.parse(encoded.slice(1)) as string);
}

function encodeToken(key: string, value: string): string | undefined {
  const code = KEY_CODES[key];
  return code === undefined ? undefined : code + encodeValue(value);
}

/** Splits work over 16 maps: one V8 Map holds at most 2^24 entries. */
class ShardedMap<V> {
  readonly #shards: Array<Map<string, V>> = Array.from({ length: 16 }, () => new Map<string, V>());

  #shard(key: string): Map<string, V> {
    const n = key.length;
    const h = (key.charCodeAt(n - 1) * 31 + key.charCodeAt(n - 2 >= 0 ? n - 2 : 0)) & 15;
    return this.#shards[h] as Map<string, V>;
  }

  get(key: string): V | undefined {
    return this.#shard(key).get(key);
  }

  set(key: string, value: V): void {
    this.#shard(key).set(key, value);
  }

  delete(key: string): boolean {
    return this.#shard(key).delete(key);
  }

  get size(): number {
    return this.#shards.reduce((n, m) => n + m.size, 0);
  }

  *entries(): IterableIterator<[string, V]> {
    for (const shard of this.#shards) yield* shard.entries();
  }
}

export class MembershipSet {
  readonly #records = new ShardedMap<MemberTimes>();
  readonly #index = new ShardedMap<string | string[]>();

  get size(): number {
    return this.#records.size;
  }

  /** How many identifiers the index holds (for tests of its upkeep). */
  get indexSize(): number {
    return this.#index.size;
  }

  /** `Update`: one record per distinct identifier set; the same set again refreshes its times. */
  upsert(user: Record<string, readonly string[]>, times: MemberTimes): void {
    // Most users carry one identifier: that path allocates no set, array sort or join.
    let first: string | undefined;
    let more: string[] | undefined;
    for (const key in user) {
      for (const value of user[key] ?? []) {
        const token = encodeToken(key, value);
        if (token === undefined) continue;
        if (first === undefined) first = token;
        else (more ??= [first]).push(token);
      }
    }
    if (first === undefined) return;
    const sorted = more ? [...new Set(more)].sort() : [first];
    const recordKey = sorted.length === 1 ? (sorted[0] as string) : sorted.join(SEPARATOR);
    const existing = this.#records.get(recordKey);
    this.#records.set(recordKey, times);
    if (existing) return;
    let offset = 0;
    for (const token of sorted) {
      // A slice of the record key shares its memory instead of keeping a second copy of the token.
      const shared = sorted.length === 1 ? recordKey : recordKey.slice(offset, offset + token.length);
      offset += token.length + 1;
      const holders = this.#index.get(shared);
      if (holders === undefined) this.#index.set(shared, recordKey);
      else if (typeof holders === 'string') this.#index.set(shared, [holders, recordKey]);
      else holders.push(recordKey);
    }
  }

  /** `Delete`: removes every record sharing ANY identifier with the user. */
  delete(user: Record<string, readonly string[]>): void {
    const doomed = new Set<string>();
    for (const [key, values] of Object.entries(user)) {
      for (const value of values) {
        const token = encodeToken(key, value);
        const holders = token === undefined ? undefined : this.#index.get(token);
        if (typeof holders === 'string') doomed.add(holders);
        else if (holders) for (const h of holders) doomed.add(h);
      }
    }
    for (const recordKey of doomed) {
      if (!this.#records.delete(recordKey)) continue;
      for (const token of recordKey.split(SEPARATOR)) {
        const holders = this.#index.get(token);
        if (holders === undefined) continue;
        if (typeof holders === 'string') {
          if (holders === recordKey) this.#index.delete(token);
          continue;
        }
        const rest = holders.filter((h) => h !== recordKey);
        if (rest.length === 0) this.#index.delete(token);
        else this.#index.set(token, rest.length === 1 ? (rest[0] as string) : rest);
      }
    }
  }

  /** Members active at `now` (effective_at <= now < expires_at), optionally only those matching `active`. */
  countActive(now: number, active: ReadonlySet<string> | null): number {
    let count = 0;
    for (const [recordKey, times] of this.#records.entries()) {
      if (times.effectiveAt > now || times.expiresAt <= now) continue;
      if (active === null || recordKey.split(SEPARATOR).some((token) => active.has(token.slice(1))))
        count += 1;
    }
    return count;
  }

  static decode(recordKey: string): Record<string, string[]> {
    const ids: Record<string, string[]> = {};
    for (const token of recordKey.split(SEPARATOR)) {
      const key = CODE_KEYS[token.charAt(0)] ?? 'unknown';
      (ids[key] ??= []).push(decodeValue(token.slice(1)));
    }
    const sorted: Record<string, string[]> = {};
    for (const key of Object.keys(ids).sort()) sorted[key] = (ids[key] ?? []).sort();
    return sorted;
  }

  *records(): IterableIterator<{ ids: Record<string, string[]>; times: MemberTimes }> {
    for (const [recordKey, times] of this.#records.entries()) {
      yield { ids: MembershipSet.decode(recordKey), times };
    }
  }

  view(): MembershipView {
    const records = [...this.records()].map((r) => r.ids);
    const keyed = records.map((ids) => [JSON.stringify(ids), ids] as const);
    keyed.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const union: Record<string, Set<string>> = {};
    for (const ids of records) {
      for (const [key, values] of Object.entries(ids)) {
        const set = (union[key] ??= new Set());
        for (const v of values) set.add(v);
      }
    }
    const identifiers: Record<string, string[]> = {};
    for (const key of Object.keys(union).sort()) identifiers[key] = [...(union[key] ?? [])].sort();
    return { records: keyed.map(([, ids]) => ids), identifiers };
  }
}
