/**
 * One audience's membership: records of identifiers, stored compactly because benchmarks push millions
 * of members through the emulator (a naive object-per-record layout took ~1.2 KB per member).
 *
 * An identifier (key, value) is a *token*: one letter for the key, then the value, where a lowercase
 * SHA-256 hex value is packed as `#` + base64url (43 chars instead of 64) and anything else is kept as
 * `"` + its JSON string form (so it never holds a NUL). A record's key is its sorted, distinct tokens
 * joined by NUL. The index maps each token to the records carrying it, so `Delete` can remove every
 * record sharing ANY identifier with the given user (https://docs.x.com/x-ads-api/audiences/reference,
 * "Custom Audiences Users").
 */
import { sha256HexToBase64url } from './sha256-hex.js';
import type { MembershipView } from './types.js';

export interface MemberTimes {
  readonly effectiveAt: number;
  readonly expiresAt: number;
}

/** Identifier key -> the letter that starts its tokens. */
export const KEY_CODES: Readonly<Record<string, string>> = {
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
export const SEPARATOR = '\u0000';

/** The value part of a token (also how the active-users set is kept). */
export function encodeValue(value: string): string {
  const packed = sha256HexToBase64url(value);
  return packed !== undefined ? `#${packed}` : `"${JSON.stringify(value)}`;
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

const EMPTY = -1;
const TOMBSTONE = -2;

/** 32-bit FNV-1a of a token's UTF-16 code units. */
function hashToken(token: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < token.length; i++) {
    h ^= token.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** FNV-1a hashes (as hashToken) of a record key's tokens, into a buffer reused across calls. */
const keyHashes: number[] = [];
function hashKeyTokens(recordKey: string): number {
  let n = 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < recordKey.length; i++) {
    const c = recordKey.charCodeAt(i);
    if (c === 0) {
      keyHashes[n++] = h >>> 0;
      h = 0x811c9dc5;
    } else {
      h ^= c;
      h = Math.imul(h, 0x01000193);
    }
  }
  keyHashes[n++] = h >>> 0;
  return n;
}

/** Whether `token` is one of the NUL-separated tokens of `recordKey`. */
function hasToken(recordKey: string, token: string): boolean {
  let at = recordKey.indexOf(token);
  while (at !== -1) {
    const end = at + token.length;
    if (
      (at === 0 || recordKey.charCodeAt(at - 1) === 0) &&
      (end === recordKey.length || recordKey.charCodeAt(end) === 0)
    ) {
      return true;
    }
    at = recordKey.indexOf(token, at + 1);
  }
  return false;
}

/**
 * token -> record ids, as an open-addressing table in typed arrays (off the V8 heap, ~16 bytes per
 * identifier instead of ~55 for a Map keyed by strings). Slots hold (hash, record id); a lookup returns
 * the ids whose hash matches and the caller confirms against the record's key, so collisions are harmless.
 */
class TokenIndex {
  #hashes: Uint32Array;
  #ids: Int32Array;
  #mask: number;
  /** Live slots plus tombstones. */
  #used = 0;
  #live = 0;

  constructor(capacity = 1024) {
    this.#hashes = new Uint32Array(capacity);
    this.#ids = new Int32Array(capacity).fill(EMPTY);
    this.#mask = capacity - 1;
  }

  get size(): number {
    return this.#live;
  }

  add(hash: number, id: number): void {
    if ((this.#used + 1) * 2 > this.#ids.length) this.#rebuild();
    let i = hash & this.#mask;
    while (this.#ids[i] !== EMPTY && this.#ids[i] !== TOMBSTONE) i = (i + 1) & this.#mask;
    if (this.#ids[i] === EMPTY) this.#used += 1;
    this.#hashes[i] = hash;
    this.#ids[i] = id;
    this.#live += 1;
  }

  find(hash: number, found: (id: number) => void): void {
    for (let i = hash & this.#mask; this.#ids[i] !== EMPTY; i = (i + 1) & this.#mask) {
      const id = this.#ids[i] as number;
      if (id >= 0 && this.#hashes[i] === hash) found(id);
    }
  }

  remove(hash: number, id: number): void {
    for (let i = hash & this.#mask; this.#ids[i] !== EMPTY; i = (i + 1) & this.#mask) {
      if (this.#ids[i] === id && this.#hashes[i] === hash) {
        this.#ids[i] = TOMBSTONE;
        this.#live -= 1;
        return;
      }
    }
  }

  /** Grows when live slots fill a quarter of the table, else just sweeps the tombstones. */
  #rebuild(): void {
    const hashes = this.#hashes;
    const ids = this.#ids;
    const capacity = (this.#live + 1) * 4 > ids.length ? ids.length * 2 : ids.length;
    this.#hashes = new Uint32Array(capacity);
    this.#ids = new Int32Array(capacity).fill(EMPTY);
    this.#mask = capacity - 1;
    this.#used = 0;
    this.#live = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      if (id >= 0) this.add(hashes[i] as number, id);
    }
  }
}

/** `[...new Set(tokens)].sort()`, in place: an insertion sort (users carry a handful of identifiers). */
function sortedDistinct(tokens: string[]): string[] {
  for (let i = 1; i < tokens.length; i++) {
    const token = tokens[i] as string;
    let j = i - 1;
    while (j >= 0 && (tokens[j] as string) > token) {
      tokens[j + 1] = tokens[j] as string;
      j -= 1;
    }
    tokens[j + 1] = token;
  }
  let kept = 1;
  for (let i = 1; i < tokens.length; i++) {
    if (tokens[i] !== tokens[kept - 1]) tokens[kept++] = tokens[i] as string;
  }
  tokens.length = kept;
  return tokens;
}

export class MembershipSet {
  /** Record id -> record key (undefined: a free id). */
  readonly #keys: Array<string | undefined> = [];
  readonly #times: Array<MemberTimes | undefined> = [];
  readonly #free: number[] = [];
  readonly #index = new TokenIndex();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** How many (identifier, record) pairs the index holds (for tests of its upkeep). */
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
    const sorted = more ? sortedDistinct(more) : [first];
    this.upsertKey(sorted.length === 1 ? (sorted[0] as string) : sorted.join(SEPARATOR), times);
  }

  /** `upsert` of a record key already built (its sorted, distinct tokens joined by NUL). */
  upsertKey(recordKey: string, times: MemberTimes): void {
    const tokens = hashKeyTokens(recordKey);
    let existing = -1;
    this.#index.find(keyHashes[0] as number, (id) => {
      if (this.#keys[id] === recordKey) existing = id;
    });
    if (existing >= 0) {
      this.#times[existing] = times;
      return;
    }
    const id = this.#free.pop() ?? this.#keys.length;
    this.#keys[id] = recordKey;
    this.#times[id] = times;
    this.#size += 1;
    for (let t = 0; t < tokens; t++) this.#index.add(keyHashes[t] as number, id);
  }

  /** `Delete`: removes every record sharing ANY identifier with the user. */
  delete(user: Record<string, readonly string[]>): void {
    const tokens: string[] = [];
    for (const key in user) {
      for (const value of user[key] ?? []) {
        const token = encodeToken(key, value);
        if (token !== undefined) tokens.push(token);
      }
    }
    this.#deleteTokens(tokens);
  }

  /** `delete` of a user given as a record key (its tokens joined by NUL). */
  deleteKey(recordKey: string): void {
    this.#deleteTokens(recordKey.split(SEPARATOR));
  }

  #deleteTokens(tokens: readonly string[]): void {
    const doomed = new Set<number>();
    for (const token of tokens) {
      this.#index.find(hashToken(token), (id) => {
        const recordKey = this.#keys[id];
        if (recordKey !== undefined && hasToken(recordKey, token)) doomed.add(id);
      });
    }
    for (const id of doomed) {
      const recordKey = this.#keys[id];
      if (recordKey === undefined) continue;
      for (const token of recordKey.split(SEPARATOR)) this.#index.remove(hashToken(token), id);
      this.#keys[id] = undefined;
      this.#times[id] = undefined;
      this.#free.push(id);
      this.#size -= 1;
    }
  }

  *#entries(): IterableIterator<[string, MemberTimes]> {
    for (let id = 0; id < this.#keys.length; id++) {
      const recordKey = this.#keys[id];
      const times = this.#times[id];
      if (recordKey !== undefined && times !== undefined) yield [recordKey, times];
    }
  }

  /** Members active at `now` (effective_at <= now < expires_at), optionally only those matching `active`. */
  countActive(now: number, active: ReadonlySet<string> | null): number {
    let count = 0;
    for (const [recordKey, times] of this.#entries()) {
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
    for (const [recordKey, times] of this.#entries()) {
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
