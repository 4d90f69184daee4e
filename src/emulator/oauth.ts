/**
 * OAuth 1.0a (HMAC-SHA1) verification, written independently of the client's signer on purpose: the
 * emulator exists to judge the client's protocol, so sharing code would let a shared bug pass
 * (the emulator never imports the client). Rules:
 * https://docs.x.com/fundamentals/authentication/oauth-1-0a/creating-a-signature ; RFC 5849 §3.4.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** The exactly seven parameters X's Authorization header carries. */
export const OAUTH_PARAMS = [
  'oauth_consumer_key',
  'oauth_nonce',
  'oauth_signature',
  'oauth_signature_method',
  'oauth_timestamp',
  'oauth_token',
  'oauth_version',
] as const;

/** RFC 3986 percent-encoding: everything but ALPHA / DIGIT / "-" / "." / "_" / "~". */
export function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * Characters X says must be percent-encoded in query strings and bodies (the table in
 * https://docs.x.com/x-ads-api/fundamentals/making-authenticated-requests), minus the `=` and `&`
 * separators and `+` (a space in form encoding), plus anything that is not printable ASCII.
 */
// eslint-disable-next-line no-control-regex
const RAW_RESERVED = /[!#$'()*,/:;?@[\]\s"<>\\^`{|}\u0000-\u001f\u007f-\uffff]/;
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;

export type UrlEncodedPairs = Array<[string, string]>;

/**
 * Parses `a=1&b=2` the way RFC 5849 §3.4.1.3.1 says (application/x-www-form-urlencoded: `+` is a space).
 * Returns null when the text is not valid percent-encoding, or (when `strict`) carries raw reserved
 * characters that X requires to be encoded.
 */
export function parseUrlEncoded(raw: string, strict: boolean): UrlEncodedPairs | null {
  if (raw === '') return [];
  if (BAD_PERCENT.test(raw)) return null;
  if (strict && RAW_RESERVED.test(raw)) return null;
  const pairs: UrlEncodedPairs = [];
  for (const part of raw.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawKey = eq === -1 ? part : part.slice(0, eq);
    const rawValue = eq === -1 ? '' : part.slice(eq + 1);
    try {
      pairs.push([
        decodeURIComponent(rawKey.replace(/\+/g, ' ')),
        decodeURIComponent(rawValue.replace(/\+/g, ' ')),
      ]);
    } catch {
      return null; // malformed UTF-8 in a %XX sequence
    }
  }
  return pairs;
}

/**
 * Parses `OAuth k="v", k2="v2"`. Returns null when malformed or when a key repeats (X accepts no
 * duplicate keys).
 */
export function parseAuthorizationHeader(header: string): Map<string, string> | null {
  const match = /^OAuth\s+(.*)$/is.exec(header.trim());
  if (!match) return null;
  const body = match[1] ?? '';
  const params = new Map<string, string>();
  const pair = /\s*([^=\s,]+)\s*=\s*"([^"]*)"\s*(?:,|$)/y;
  let index = 0;
  while (index < body.length) {
    pair.lastIndex = index;
    const m = pair.exec(body);
    if (!m) return null;
    index = pair.lastIndex;
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(m[1] ?? '');
      value = decodeURIComponent(m[2] ?? '');
    } catch {
      return null;
    }
    if (params.has(key)) return null;
    params.set(key, value);
  }
  return params;
}

/** `METHOD&pct(base_url)&pct(sorted, encoded k=v pairs joined by &)` (RFC 5849 §3.4.1). */
export function signatureBaseString(method: string, baseUrl: string, params: UrlEncodedPairs): string {
  const encoded = params.map(([k, v]) => [percentEncode(k), percentEncode(v)] as const);
  encoded.sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  const paramString = encoded.map(([k, v]) => `${k}=${v}`).join('&');
  return `${method.toUpperCase()}&${percentEncode(baseUrl)}&${percentEncode(paramString)}`;
}

export function hmacSha1Signature(baseString: string, consumerSecret: string, tokenSecret: string): string {
  const key = `${percentEncode(consumerSecret)}&${percentEncode(tokenSecret)}`;
  return createHmac('sha1', key).update(baseString, 'utf8').digest('base64');
}

/** Constant-time string equality (digests first, so lengths leak nothing either). */
export function constantTimeEqual(a: string, b: string): boolean {
  const da = createHash('sha256').update(a, 'utf8').digest();
  const db = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(da, db) && a.length === b.length;
}

/** Nonces seen within the timestamp window, per consumer key and token. */
export class NonceCache {
  /** Insertion order is expiry order (a key seen again is re-inserted), so purging stops early. */
  #seen = new Map<string, number>();

  /** Records the nonce; false when it was already seen and has not expired. */
  remember(key: string, expiresAtMs: number, nowMs: number): boolean {
    for (const [seenKey, expires] of this.#seen) {
      if (expires > nowMs) break;
      this.#seen.delete(seenKey);
    }
    const previous = this.#seen.get(key);
    if (previous !== undefined && previous > nowMs) return false;
    this.#seen.delete(key);
    this.#seen.set(key, expiresAtMs);
    return true;
  }
}

export interface OAuthRequest {
  method: string;
  /** scheme://host[:port]/path, no query. */
  baseUrl: string;
  authorization: string | undefined;
  /** Query pairs (already parsed) and form-body pairs (only for form-urlencoded bodies). */
  params: UrlEncodedPairs;
  nowMs: number;
}

export interface OAuthSecrets {
  consumerSecret: string;
  tokenSecret: string;
}

export type OAuthResult =
  | { ok: true; consumerKey: string; token: string; header: ReadonlyMap<string, string> }
  | { ok: false; reason: string };

/**
 * Which `oauth_*` parameters a request's header carries besides the fixed ones. API calls carry exactly
 * the seven of OAUTH_PARAMS; the sign-in endpoints differ
 * (https://docs.x.com/fundamentals/authentication/oauth-1-0a/obtaining-user-access-tokens):
 * `oauth/request_token` has no token yet and adds `oauth_callback`; `oauth/access_token` adds
 * `oauth_verifier`.
 */
export interface OAuthShape {
  token: 'required' | 'absent';
  extra: readonly string[];
}

const API_SHAPE: OAuthShape = { token: 'required', extra: [] };

export interface OAuthPolicy {
  timestampWindowSeconds: number;
  rejectReplayedNonce: boolean;
  allowRealm: boolean;
}

/** Verifies one request; `lookup` finds the secrets of a consumer key + token pair. */
export function verifyOAuth(
  request: OAuthRequest,
  lookup: (consumerKey: string, token: string) => OAuthSecrets | undefined,
  nonces: NonceCache,
  policy: OAuthPolicy,
  shape: OAuthShape = API_SHAPE,
): OAuthResult {
  if (!request.authorization) return { ok: false, reason: 'no Authorization header' };
  const header = parseAuthorizationHeader(request.authorization);
  if (!header) return { ok: false, reason: 'malformed OAuth header or duplicate parameter' };
  if (policy.allowRealm) header.delete('realm');
  const expected = [
    ...OAUTH_PARAMS.filter((key) => shape.token === 'required' || key !== 'oauth_token'),
    ...shape.extra,
  ];
  for (const key of header.keys()) {
    if (!expected.includes(key)) return { ok: false, reason: `unexpected OAuth parameter ${key}` };
  }
  for (const key of expected) {
    if (!header.get(key)) return { ok: false, reason: `missing ${key}` };
  }
  if (header.get('oauth_signature_method') !== 'HMAC-SHA1') {
    return { ok: false, reason: 'oauth_signature_method must be HMAC-SHA1' };
  }
  if (header.get('oauth_version') !== '1.0') return { ok: false, reason: 'oauth_version must be 1.0' };
  const timestamp = header.get('oauth_timestamp') ?? '';
  if (!/^\d{1,12}$/.test(timestamp)) return { ok: false, reason: 'oauth_timestamp is not a number' };
  const skew = Math.abs(Number(timestamp) * 1000 - request.nowMs);
  if (skew > policy.timestampWindowSeconds * 1000) {
    return { ok: false, reason: 'oauth_timestamp outside the accepted window' };
  }
  const consumerKey = header.get('oauth_consumer_key') ?? '';
  const token = header.get('oauth_token') ?? '';
  const secrets = lookup(consumerKey, token);
  if (!secrets) return { ok: false, reason: 'unknown consumer key or token' };

  const names = new Set<string>();
  const all: UrlEncodedPairs = [];
  for (const [k, v] of [...request.params, ...header.entries()]) {
    if (k === 'oauth_signature') continue;
    if (names.has(k)) return { ok: false, reason: `duplicate parameter ${k}` };
    names.add(k);
    all.push([k, v]);
  }
  const base = signatureBaseString(request.method, request.baseUrl, all);
  const signature = hmacSha1Signature(base, secrets.consumerSecret, secrets.tokenSecret);
  if (!constantTimeEqual(signature, header.get('oauth_signature') ?? '')) {
    return { ok: false, reason: 'signature mismatch' };
  }
  if (policy.rejectReplayedNonce) {
    const nonceKey = `${consumerKey}\u0000${token}\u0000${header.get('oauth_nonce')}`;
    const expires = request.nowMs + policy.timestampWindowSeconds * 2000;
    if (!nonces.remember(nonceKey, expires, request.nowMs)) return { ok: false, reason: 'nonce replayed' };
  }
  return { ok: true, consumerKey, token, header };
}
