import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import OAuth from 'oauth-1.0a';
import { describe, expect, it } from 'vitest';
import {
  hmacSha1Signature,
  NonceCache,
  parseAuthorizationHeader,
  parseUrlEncoded,
  percentEncode,
  signatureBaseString,
  verifyOAuth,
} from '../../src/emulator/oauth.js';

const hmac = (base: string, key: string) => createHmac('sha1', key).update(base).digest('base64');

describe('emulator OAuth 1.0a verification', () => {
  it("reproduces X's worked signature example (creating-a-signature.mdx)", () => {
    const params: Array<[string, string]> = [
      ['status', 'Hello Ladies + Gentlemen, a signed OAuth request!'],
      ['include_entities', 'true'],
      ['oauth_consumer_key', 'xvz1evFS4wEEPTGEFPHBog'],
      ['oauth_nonce', 'kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg'],
      ['oauth_signature_method', 'HMAC-SHA1'],
      ['oauth_timestamp', '1318622958'],
      ['oauth_token', '370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb'],
      ['oauth_version', '1.0'],
    ];
    const base = signatureBaseString('post', 'https://api.x.com/1.1/statuses/update.json', params);
    expect(base).toBe(
      'POST&https%3A%2F%2Fapi.x.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth_version%3D1.0%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521',
    );
    expect(
      hmacSha1Signature(
        base,
        'kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw',
        'LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE',
      ),
    ).toBe('Ls93hJiZbQ3akF3HF3x1Bz8/zU4=');
  });

  it("percent-encodes with RFC 3986 (X's reserved-character table)", () => {
    expect(percentEncode("!#$&'()*+,/:;=?@[]")).toBe(
      '%21%23%24%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D',
    );
    expect(percentEncode('a-b.c_d~e f')).toBe('a-b.c_d~e%20f');
    expect(percentEncode('é')).toBe('%C3%A9');
  });

  it('parses query strings as form encoding and refuses raw reserved characters when strict', () => {
    expect(parseUrlEncoded('a=1&b=x%20y&c=p+q&d', true)).toEqual([
      ['a', '1'],
      ['b', 'x y'],
      ['c', 'p q'],
      ['d', ''],
    ]);
    expect(parseUrlEncoded('time=12:00', true)).toBeNull();
    expect(parseUrlEncoded('ids=a,b', true)).toBeNull();
    expect(parseUrlEncoded('ids=a,b', false)).toEqual([['ids', 'a,b']]);
    expect(parseUrlEncoded('bad=%zz', false)).toBeNull();
    expect(parseUrlEncoded('bad=%C3', false)).toBeNull();
  });

  it('parses the Authorization header and refuses duplicate keys', () => {
    expect(parseAuthorizationHeader('OAuth a="1", b="x%20y"')).toEqual(
      new Map([
        ['a', '1'],
        ['b', 'x y'],
      ]),
    );
    expect(parseAuthorizationHeader('OAuth a="1", a="2"')).toBeNull();
    expect(parseAuthorizationHeader('Bearer abc')).toBeNull();
    expect(parseAuthorizationHeader('OAuth a=1')).toBeNull();
  });

  it('accepts what the oauth-1.0a package signs for any query, and nothing else', () => {
    const consumer = { key: 'ck', secret: 'c&s ecret' };
    const token = { key: 'tk', secret: 't%secret' };
    const secrets = { consumerSecret: consumer.secret, tokenSecret: token.secret };
    const oauth = new OAuth({ consumer, signature_method: 'HMAC-SHA1', hash_function: hmac });
    const policy = { timestampWindowSeconds: 300, rejectReplayedNonce: true, allowRealm: false };
    fc.assert(
      fc.property(
        // Keys stay snake_case like X's parameters: oauth-1.0a does not decode keys it reads from a URL.
        fc.uniqueArray(
          fc.tuple(fc.stringMatching(/^[a-z_]{1,8}$/), fc.string({ maxLength: 12, unit: 'grapheme' })),
          {
            selector: ([k]) => k,
            maxLength: 5,
          },
        ),
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
        (pairs, method) => {
          const usable = pairs.filter(([k]) => !k.startsWith('oauth_'));
          const query = usable.map(([k, v]) => `${percentEncode(k)}=${percentEncode(v)}`).join('&');
          const url = `http://127.0.0.1:9/12/accounts/abc${query ? `?${query}` : ''}`;
          const header = oauth.toHeader(oauth.authorize({ url, method }, token)).Authorization;
          const parsed = parseUrlEncoded(query, true);
          expect(parsed).not.toBeNull();
          const request = {
            method,
            baseUrl: 'http://127.0.0.1:9/12/accounts/abc',
            authorization: header,
            params: parsed ?? [],
            nowMs: Date.now(),
          };
          const lookup = () => secrets;
          expect(verifyOAuth(request, lookup, new NonceCache(), policy)).toMatchObject({ ok: true });
          const tampered = { ...request, params: [...(parsed ?? []), ['extra', '1'] as [string, string]] };
          expect(verifyOAuth(tampered, lookup, new NonceCache(), policy)).toMatchObject({ ok: false });
          const otherPath = { ...request, baseUrl: 'http://127.0.0.1:9/12/accounts/abd' };
          expect(verifyOAuth(otherPath, lookup, new NonceCache(), policy)).toMatchObject({ ok: false });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses a replayed nonce but not the same nonce of another token', () => {
    const cache = new NonceCache();
    expect(cache.remember('ck\u0000t1\u0000n', 10_000, 0)).toBe(true);
    expect(cache.remember('ck\u0000t1\u0000n', 10_000, 5_000)).toBe(false);
    expect(cache.remember('ck\u0000t2\u0000n', 10_000, 5_000)).toBe(true);
    expect(cache.remember('ck\u0000t1\u0000n', 20_000, 10_001)).toBe(true);
  });
});
