import { createHmac, randomBytes } from 'node:crypto';
import OAuth from 'oauth-1.0a';

/**
 * OAuth 1.0a user-context signing (HMAC-SHA1) as X's Ads API requires it
 * (https://docs.x.com/fundamentals/authentication/oauth-1-0a/creating-a-signature).
 *
 * The `oauth-1.0a` package builds the base string, signing key and header; node:crypto computes the
 * HMAC. Query parameters are handed to it as data (never parsed back out of a URL), and the query
 * string actually sent is built here from the same pairs with the same RFC 3986 encoder, so the URL on
 * the wire carries exactly the encoding that was signed (X rejects a mismatch with a 401). JSON bodies
 * are never signed (RFC 5849 §3.4.1.3.1; both official SDKs send them unsigned).
 */

export interface OAuthCredentials {
  consumerKey: string;
  consumerSecret: string;
  accessToken: string;
  accessTokenSecret: string;
}

export interface SignInput {
  method: string;
  /** Scheme, host and path: no query, no fragment. */
  baseUrl: string;
  query: Readonly<Record<string, string>>;
  /** Form-urlencoded body parameters (signed, unlike JSON bodies). */
  form?: Readonly<Record<string, string>>;
  /** Fixed only by tests reproducing a documented vector. */
  nonce?: string;
  /** Unix seconds. */
  timestamp: number;
}

export interface SignedRequest {
  /** The URL to send: `baseUrl` plus the query, encoded exactly as it was signed. */
  url: string;
  authorization: string;
  signature: string;
  baseString: string;
}

/** RFC 3986 percent-encoding: `encodeURIComponent` plus `! ' ( ) *` (§2.2 "Client rule"). */
export function percentEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** `k=v&…` with RFC 3986 encoding, in a stable (sorted) order. */
export function encodeQuery(query: Readonly<Record<string, string>>): string {
  return Object.keys(query)
    .sort()
    .map((key) => `${percentEncode(key)}=${percentEncode(query[key]!)}`)
    .join('&');
}

export class OAuthSigner {
  readonly #oauth: OAuth;
  readonly #credentials: OAuthCredentials;

  constructor(credentials: OAuthCredentials) {
    this.#credentials = credentials;
    this.#oauth = new OAuth({
      consumer: { key: credentials.consumerKey, secret: credentials.consumerSecret },
      signature_method: 'HMAC-SHA1',
      hash_function: (baseString, key) => createHmac('sha1', key).update(baseString).digest('base64'),
    });
  }

  sign(input: SignInput): SignedRequest {
    const oauthData: OAuth.Data = {
      oauth_consumer_key: this.#credentials.consumerKey,
      // X uses the nonce to spot replays: 128 random bits.
      oauth_nonce: input.nonce ?? randomBytes(16).toString('hex'),
      oauth_signature_method: 'HMAC-SHA1',
      oauth_timestamp: input.timestamp,
      oauth_token: this.#credentials.accessToken,
      oauth_version: '1.0',
    };
    const request = {
      method: input.method.toUpperCase(),
      url: input.baseUrl,
      data: { ...input.query, ...input.form },
    };
    const baseString = this.#oauth.getBaseString(request, oauthData);
    const signature = this.#oauth.getSignature(request, this.#credentials.accessTokenSecret, oauthData);
    const { Authorization } = this.#oauth.toHeader({ ...oauthData, oauth_signature: signature });
    const query = encodeQuery(input.query);
    return {
      url: query ? `${input.baseUrl}?${query}` : input.baseUrl,
      authorization: Authorization,
      signature,
      baseString,
    };
  }
}
