/**
 * A fast path for the users endpoint's most common body: read straight from the bytes, without
 * `JSON.parse`, when it is exactly what a client like Tailor sends, compact JSON of the form
 *
 *   [{"operation_type":"Update","params":{"users":[{"email":["<64 hex>"],…},…]}},…]
 *
 * (`Update` or `Delete`; each user one or more distinct known keys, each with ONE lowercase SHA-256 hex
 * value). Each user comes out already packed as its membership record key (see membership.ts).
 *
 * Benchmarks push millions of users through the emulator, and parsing each into objects and strings,
 * then checking and packing them, cost ~10 µs a user. Anything else here (whitespace, escapes,
 * other keys or casings, times, several values, a duplicate key, an empty list, too many operations)
 * returns undefined and the request takes the general path (users-validation.ts), which holds every
 * rule and error. So this path only accepts bodies the general one accepts, with the same result: the
 * unit tests compare the two on valid bodies and near misses.
 */
import { KEY_CODES } from './membership.js';

/** Membership record keys of an operation's users (tokens sorted, joined by NUL). */
export class PackedUsers {
  constructor(readonly recordKeys: readonly string[]) {}

  get length(): number {
    return this.recordKeys.length;
  }
}

export interface PackedOperation {
  type: 'Update' | 'Delete';
  users: PackedUsers;
}

const ASCII = (s: string) => Buffer.from(s, 'latin1');
const OPEN = {
  Update: ASCII('{"operation_type":"Update","params":{"users":['),
  Delete: ASCII('{"operation_type":"Delete","params":{"users":['),
};
const CLOSE = ASCII(']}}');

/** The known keys as they follow the opening quote (`email":["`), sorted by token letter. */
const KEYS = Object.entries(KEY_CODES)
  .map(([key, code]) => ({ code: code.charCodeAt(0), pattern: ASCII(`${key}":["`) }))
  .sort((a, b) => a.code - b.code);
const TOKEN_BYTES = 45; // letter, '#', 43 base64url digits

const NIBBLE = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) NIBBLE['0123456789abcdef'.charCodeAt(i)] = i;
const BASE64URL = ASCII('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');

const slots = Buffer.alloc(KEYS.length * TOKEN_BYTES);
const record = Buffer.alloc(KEYS.length * (TOKEN_BYTES + 1));

function matches(body: Buffer, at: number, pattern: Buffer): boolean {
  if (at + pattern.length > body.length) return false;
  for (let i = 0; i < pattern.length; i++) if (body[at + i] !== pattern[i]) return false;
  return true;
}

/** 64 lowercase hex digits at `at`, packed as a token's base64url digits into `slots` at `to`. */
function packHex(body: Buffer, at: number, to: number): boolean {
  if (at + 64 > body.length) return false;
  let o = to;
  for (let i = at; i < at + 63; i += 3) {
    const a = NIBBLE[body[i] as number] as number;
    const b = NIBBLE[body[i + 1] as number] as number;
    const c = NIBBLE[body[i + 2] as number] as number;
    if ((a | b | c) < 0) return false;
    const v = (a << 8) | (b << 4) | c;
    slots[o++] = BASE64URL[v >> 6] as number;
    slots[o++] = BASE64URL[v & 63] as number;
  }
  const last = NIBBLE[body[at + 63] as number] as number;
  if (last < 0) return false;
  slots[o] = BASE64URL[last << 2] as number;
  return true;
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * The operations of a body in the form above, users packed; undefined for any other body, or for more
 * than `maxOperations` operations (the general path then answers it).
 */
export function readPackedUsers(body: Buffer, maxOperations: number): PackedOperation[] | undefined {
  const end = body.length;
  if (body[0] !== OPEN_BRACKET) return undefined;
  const operations: PackedOperation[] = [];
  let at = 1;
  for (;;) {
    if (operations.length === maxOperations) return undefined;
    const type = matches(body, at, OPEN.Update)
      ? 'Update'
      : matches(body, at, OPEN.Delete)
        ? 'Delete'
        : undefined;
    if (type === undefined) return undefined;
    at += OPEN[type].length;
    const keys: string[] = [];
    for (;;) {
      // One user: {"key":["hex"],…}
      if (body[at] !== OPEN_BRACE) return undefined;
      at += 1;
      let seen = 0;
      for (;;) {
        if (body[at] !== QUOTE) return undefined;
        at += 1;
        let k = 0;
        while (k < KEYS.length && !matches(body, at, (KEYS[k] as (typeof KEYS)[number]).pattern)) k += 1;
        const key = KEYS[k];
        if (key === undefined || seen & (1 << k)) return undefined;
        seen |= 1 << k;
        at += key.pattern.length;
        const slot = k * TOKEN_BYTES;
        slots[slot] = key.code;
        slots[slot + 1] = 0x23; // '#': a packed SHA-256 value
        if (!packHex(body, at, slot + 2)) return undefined;
        at += 64;
        if (body[at] !== QUOTE || body[at + 1] !== CLOSE_BRACKET) return undefined;
        at += 2;
        if (body[at] === COMMA) at += 1;
        else if (body[at] === CLOSE_BRACE) break;
        else return undefined;
      }
      at += 1;
      // Tokens start with distinct letters, so letter order is the record key's sorted order.
      let n = 0;
      for (let k = 0; k < KEYS.length; k++) {
        if ((seen & (1 << k)) === 0) continue;
        if (n > 0) record[n++] = 0;
        slots.copy(record, n, k * TOKEN_BYTES, (k + 1) * TOKEN_BYTES);
        n += TOKEN_BYTES;
      }
      keys.push(record.toString('latin1', 0, n));
      if (body[at] === COMMA) at += 1;
      else if (body[at] === CLOSE_BRACKET) break;
      else return undefined;
    }
    if (!matches(body, at, CLOSE)) return undefined;
    at += CLOSE.length;
    operations.push({ type, users: new PackedUsers(keys) });
    if (body[at] === COMMA) at += 1;
    else if (body[at] === CLOSE_BRACKET && at + 1 === end) return operations;
    else return undefined;
  }
}
