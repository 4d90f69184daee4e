import { hash } from 'node:crypto';
// The `max` metadata validates numbers against each region's real number plans; the default `min`
// metadata only checks lengths, which lets through numbers that can never match an X account.
import { type CountryCode, type PhoneNumber, parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { appendValue, type InvalidValue, type MemberHashes } from '../destination.js';
import { X_IDENTIFIER_TYPES, type XIdentifierType } from './identifier-types.js';

/**
 * Normalization and hashing of member identifiers for X's Custom Audience users endpoint, per
 * X's own rules where it has any (https://docs.x.com/x-ads-api/audiences, "Custom
 * Audiences User Data"; Twitter's ads-platform-tools scripts where it does not).
 *
 * Absent values: `null`, `undefined` and empty or whitespace-only strings all mean "this member has no
 * value here". They are reported with reason `empty`, which `hashMember` skips without counting as
 * invalid: a warehouse column left blank is not bad data, only a missing one, and counting it would drown
 * the real problems in the run's `invalid` count.
 *
 * Nothing here logs: a value (raw or hashed) must never reach a log line.
 */

export type InvalidReason =
  | 'invalid_email'
  | 'invalid_phone'
  | 'invalid_handle'
  | 'invalid_twitter_id'
  | 'invalid_device_id'
  | 'invalid_partner_user_id'
  | 'empty';

/** `value` is a lowercase SHA-256 hex digest, or the raw (trimmed) `partner_user_id`. */
export type HashResult = { ok: true; value: string } | { ok: false; reason: InvalidReason };

export type NormalizeResult =
  { ok: true; value: string; preHashed: boolean } | { ok: false; reason: InvalidReason };

export interface NormalizeOptions {
  /** ISO 3166-1 alpha-2 region for phone numbers written without a country code, e.g. `US`. */
  defaultRegion: string;
}

const INVALID: Record<XIdentifierType, InvalidReason> = {
  email: 'invalid_email',
  phone_number: 'invalid_phone',
  handle: 'invalid_handle',
  twitter_id: 'invalid_twitter_id',
  device_id: 'invalid_device_id',
  partner_user_id: 'invalid_partner_user_id',
};

/** A SHA-256 digest already computed upstream (any case); it is lowercased and never hashed again. */
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

/** Lowercase SHA-256 hex of the UTF-8 bytes of `text` (§7.1: no salt, lowercase). */
export function sha256Hex(text: string): string {
  // One-shot `crypto.hash` (Node >= 20.12) encodes a string as UTF-8 like `Hash#update(text, 'utf8')`
  // and gives the same digest, without building a Hash object per value: about 2.5x faster on the short
  // strings hashed here (bench/hash-micro.ts).
  return hash('sha256', text, 'hex');
}

/**
 * The value as text, or `undefined` when it is absent (null, undefined, empty, whitespace) or of a
 * type no identifier can have (objects, booleans, non-finite numbers: returned as `null`).
 */
function asText(raw: unknown): string | undefined | null {
  if (raw === null || raw === undefined) return undefined;
  if (typeof raw === 'string') {
    const trimmed = raw.trim();
    return trimmed === '' ? undefined : trimmed;
  }
  if (typeof raw === 'bigint') return raw.toString();
  if (typeof raw === 'number') {
    // A JS number above 2^53 has already lost digits on its way from the warehouse (a BIGINT read as a
    // double), so it no longer names the member it came from: hashing it would silently target someone
    // else or no one. Only safe integers are trusted; drivers that keep precision give bigint or string.
    if (!Number.isSafeInteger(raw)) return null;
    return String(raw);
  }
  // Booleans, dates, buffers and objects are never identifiers; say so rather than hash "[object Object]".
  return null;
}

// Email: a sane shape, not RFC 5322 in full. The local part may hold letters of any script (SMTPUTF8
// addresses exist), digits and the atext symbols; the domain is dot-separated labels of letters, digits
// and hyphens (IDNs kept in Unicode, as the member typed them), ending in a TLD of letters or `xn--`.
const EMAIL_LOCAL = /^[\p{L}\p{N}\p{M}!#$%&'*+/=?^_`{|}~-]+(?:\.[\p{L}\p{N}\p{M}!#$%&'*+/=?^_`{|}~-]+)*$/u;
const DOMAIN_LABEL = /^[\p{L}\p{N}\p{M}](?:[\p{L}\p{N}\p{M}-]{0,61}[\p{L}\p{N}\p{M}])?$/u;
const TLD = /^(?:\p{L}[\p{L}\p{M}]+|xn--[a-z0-9-]+)$/u;

function normalizeEmail(text: string): string | undefined {
  // §7.1: trim and lowercase; no dot or +tag stripping anywhere in X's material. NFC so that an accent
  // typed as one code point or as letter + combining mark hashes the same.
  const email = text.normalize('NFC').toLowerCase();
  const at = email.lastIndexOf('@');
  if (at <= 0 || at === email.length - 1) return undefined;
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  if (local.length > 64 || domain.length > 253 || !EMAIL_LOCAL.test(local)) return undefined;
  const labels = domain.split('.');
  if (labels.length < 2 || !labels.every((label) => DOMAIN_LABEL.test(label))) return undefined;
  if (!TLD.test(labels[labels.length - 1]!)) return undefined;
  return email;
}

/** The valid number libphonenumber parses from the whole of `input`, or `undefined`. */
function parseValidPhone(input: string, region: CountryCode): PhoneNumber | undefined {
  try {
    // extract: false: the whole cell must be a phone number. Digging a number out of free text
    // ("call 415… after 5") would hash whatever digits happened to be there.
    const phone = parsePhoneNumberFromString(input, { defaultCountry: region, extract: false });
    return phone && phone.isValid() ? phone : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The `00` international prefix, also when a `+` was written before it (`+00 1 616 …`, `+0044 …`): no
 * country code starts with 0, so `+00…` is no number as written, and its writer meant the prefix.
 */
const LEADING_00 = /^\s*(?:\+\s*)?00/;

function normalizePhone(text: string, defaultRegion: string): string | undefined {
  const region = defaultRegion.toUpperCase() as CountryCode;
  // `00` is the international prefix in most of the world but not in the default region of every
  // project (the US dials 011), so `00 44 20 …` with region US is retried as `+44 20 …`; so is
  // `+00 44 20 …`, which libphonenumber refuses in every region (it reads `+0` as a country code).
  const phone =
    parseValidPhone(text, region) ??
    (LEADING_00.test(text) ? parseValidPhone(text.replace(LEADING_00, '+'), region) : undefined);
  if (!phone) return undefined;
  // §7.3: E.164 without the `+`: digits only, country code first, no trunk 0, no 00 prefix.
  return phone.number.slice(1);
}

function normalizeHandle(text: string): string | undefined {
  // §7.1: no `@`, lowercase, trimmed. X usernames are 1-15 of [A-Za-z0-9_].
  const handle = (text.startsWith('@') ? text.slice(1) : text).toLowerCase();
  return /^[a-z0-9_]{1,15}$/.test(handle) ? handle : undefined;
}

function normalizeTwitterId(text: string): string | undefined {
  // §7.2 (ads-platform-tools): digits only, leading zeros dropped. Id 0 names no account.
  if (!/^\d+$/.test(text)) return undefined;
  const id = text.replace(/^0+/, '');
  return id === '' ? undefined : id;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function normalizeDeviceId(text: string): string | undefined {
  const id = text.toLowerCase();
  // IDFA / Google AdID: lowercase with dashes (§7.3; §17.5 notes the partner-file page says keep the
  // case, but that is the HMAC file flow, not this API). Written without dashes, the 32 digits are the
  // same id, so the dashes are put back rather than losing the member.
  const uuid = /^[0-9a-f]{32}$/.test(id)
    ? `${id.slice(0, 8)}-${id.slice(8, 12)}-${id.slice(12, 16)}-${id.slice(16, 20)}-${id.slice(20)}`
    : id;
  if (UUID.test(uuid)) {
    // The all-zero IDFA is what iOS reports when the user limited ad tracking: it names nobody.
    return /^[0-]+$/.test(uuid) ? undefined : uuid;
  }
  // Android ID: 16 hex digits, lowercase, no dashes.
  if (/^[0-9a-f]{16}$/.test(id)) return /^0+$/.test(id) ? undefined : id;
  return undefined;
}

/**
 * Normalizes one raw value for an X identifier type. A hashed type's value that is already a SHA-256
 * digest (64 hex digits, any case) comes back lowercased with `preHashed: true` and must not be hashed
 * again. `empty` means "no value" (see the module comment), not bad data.
 */
export function normalizeIdentifier(
  type: XIdentifierType,
  raw: unknown,
  options: NormalizeOptions,
): NormalizeResult {
  const text = asText(raw);
  if (text === undefined) return { ok: false, reason: 'empty' };
  if (text === null) return { ok: false, reason: INVALID[type] };

  if (type === 'partner_user_id') {
    // §6.1: the one key sent unhashed, as the partner knows it (trimmed only).
    return { ok: true, value: text, preHashed: false };
  }
  if (SHA256_HEX.test(text)) return { ok: true, value: text.toLowerCase(), preHashed: true };

  let value: string | undefined;
  switch (type) {
    case 'email':
      value = normalizeEmail(text);
      break;
    case 'phone_number':
      value = normalizePhone(text, options.defaultRegion);
      break;
    case 'handle':
      value = normalizeHandle(text);
      break;
    case 'twitter_id':
      value = normalizeTwitterId(text);
      break;
    case 'device_id':
      value = normalizeDeviceId(text);
      break;
  }
  return value === undefined ? { ok: false, reason: INVALID[type] } : { ok: true, value, preHashed: false };
}

/** Normalizes and hashes one value: what X receives for it (lowercase SHA-256 hex, or the partner id). */
export function hashIdentifier(type: XIdentifierType, raw: unknown, options: NormalizeOptions): HashResult {
  const normalized = normalizeIdentifier(type, raw, options);
  if (!normalized.ok) return normalized;
  if (normalized.preHashed || type === 'partner_user_id') return { ok: true, value: normalized.value };
  return { ok: true, value: sha256Hex(normalized.value) };
}

/** The keys of a member's user object come out in this (sorted) order, so equal members compare equal. */
const TYPES_IN_ORDER = [...X_IDENTIFIER_TYPES].sort();

function addValue(
  found: MemberHashes,
  invalid: InvalidValue[],
  column: string,
  type: XIdentifierType,
  raw: unknown,
  options: NormalizeOptions,
): void {
  const result = hashIdentifier(type, raw, options);
  if (result.ok) appendValue(found, type, result.value);
  else if (result.reason !== 'empty') invalid.push({ column, type, reason: result.reason });
}

/**
 * Hashes a member's mapped columns into the user object X receives. Several columns may map to one type
 * and an array value gives several values; each key's values come back sorted and de-duplicated, so two
 * members with the same identifiers compare equal, and keys without any value are left out. Invalid
 * values are reported (column, type, reason; never the value) and the rest of the member still counts.
 */
export function hashMember(
  values: Record<string, unknown>,
  mappings: Readonly<Record<string, XIdentifierType>>,
  options: NormalizeOptions,
): { hashes: MemberHashes; invalid: InvalidValue[] } {
  // Per type, the values in the order found; most members have one value per type, so sorting and
  // de-duplicating only when there are several keeps a Map and a Set per member out of the hot path.
  const found: MemberHashes = {};
  const invalid: InvalidValue[] = [];
  for (const [column, type] of Object.entries(mappings)) {
    const value = values[column];
    if (Array.isArray(value)) for (const item of value) addValue(found, invalid, column, type, item, options);
    else addValue(found, invalid, column, type, value, options);
  }
  const hashes: MemberHashes = {};
  for (const type of TYPES_IN_ORDER) {
    const list = found[type];
    if (list)
      hashes[type] =
        list.length === 1 ? list : list.sort().filter((v, i, all) => i === 0 || v !== all[i - 1]);
  }
  return { hashes, invalid };
}
