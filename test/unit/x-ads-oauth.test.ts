import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeQuery, OAuthSigner, percentEncode } from '../../src/destinations/x-ads/oauth.js';

// X's worked example: https://docs.x.com/fundamentals/authentication/oauth-1-0a/creating-a-signature
// (the signature printed on X's "Authorizing a request" page cannot be reproduced from that page's own
// inputs, so it is not used here).
const DOC = {
  credentials: {
    consumerKey: 'xvz1evFS4wEEPTGEFPHBog',
    consumerSecret: 'kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw',
    accessToken: '370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb',
    accessTokenSecret: 'LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE',
  },
  baseString:
    'POST&https%3A%2F%2Fapi.x.com%2F1.1%2Fstatuses%2Fupdate.json&include_entities%3Dtrue%26oauth_consumer_key%3Dxvz1evFS4wEEPTGEFPHBog%26oauth_nonce%3DkYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D1318622958%26oauth_token%3D370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb%26oauth_version%3D1.0%26status%3DHello%2520Ladies%2520%252B%2520Gentlemen%252C%2520a%2520signed%2520OAuth%2520request%2521',
  signature: 'Ls93hJiZbQ3akF3HF3x1Bz8/zU4=',
};

describe('OAuth 1.0a signing', () => {
  const signer = new OAuthSigner(DOC.credentials);
  const signed = signer.sign({
    method: 'post',
    baseUrl: 'https://api.x.com/1.1/statuses/update.json',
    query: { include_entities: 'true' },
    form: { status: 'Hello Ladies + Gentlemen, a signed OAuth request!' },
    nonce: 'kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg',
    timestamp: 1318622958,
  });

  it('reproduces the documented base string and signature', () => {
    expect(signed.baseString).toBe(DOC.baseString);
    expect(signed.signature).toBe(DOC.signature);
  });

  it('the documented signing key and base string give the documented value with plain node:crypto', () => {
    const key = `${DOC.credentials.consumerSecret}&${DOC.credentials.accessTokenSecret}`;
    expect(createHmac('sha1', key).update(DOC.baseString).digest('base64')).toBe(DOC.signature);
  });

  it('builds the header from exactly the seven oauth_* pairs, quoted and percent-encoded', () => {
    const pairs = signed.authorization.replace(/^OAuth /, '').split(', ');
    expect(pairs.map((pair) => pair.split('=')[0])).toEqual([
      'oauth_consumer_key',
      'oauth_nonce',
      'oauth_signature',
      'oauth_signature_method',
      'oauth_timestamp',
      'oauth_token',
      'oauth_version',
    ]);
    expect(signed.authorization).toContain(`oauth_signature="${encodeURIComponent(DOC.signature)}"`);
    expect(signed.authorization).toContain('oauth_version="1.0"');
  });

  it('sends the query with exactly the encoding it signed (reserved characters included)', () => {
    const name = "VIP: a+b, c/d (e)! it's *new* @x ?=&$ 😀";
    const out = signer.sign({
      method: 'POST',
      baseUrl: 'https://ads-api.x.com/12/accounts/18ce54d4x5t/custom_audiences',
      query: { name, description: 'CRM sync' },
      timestamp: 1700000000,
    });
    const sentQuery = out.url.split('?')[1]!;
    expect(sentQuery).toBe(`description=CRM%20sync&name=${percentEncode(name)}`);
    // Only the separators stay raw; every reserved character of the value is percent-encoded.
    expect(sentQuery.replace(/[&=]/g, '')).not.toMatch(/[!'()*+,/:;?@$ #[\]]/);
    // Every pair on the wire appears, byte for byte, inside the signed parameter string.
    const paramString = decodeURIComponent(out.baseString.split('&')[2]!);
    for (const pair of sentQuery.split('&')) expect(paramString).toContain(pair);
  });

  it('uses a fresh nonce per request', () => {
    const a = signer.sign({
      method: 'GET',
      baseUrl: 'https://ads-api.x.com/12/accounts',
      query: {},
      timestamp: 1,
    });
    const b = signer.sign({
      method: 'GET',
      baseUrl: 'https://ads-api.x.com/12/accounts',
      query: {},
      timestamp: 1,
    });
    expect(a.authorization).not.toBe(b.authorization);
  });
});

describe('percent-encoding (RFC 3986)', () => {
  it('encodes the documented reserved characters', () => {
    // https://docs.x.com/x-ads-api/fundamentals/making-authenticated-requests
    const table: Record<string, string> = {
      '!': '%21',
      '#': '%23',
      $: '%24',
      '&': '%26',
      "'": '%27',
      '(': '%28',
      ')': '%29',
      '*': '%2A',
      '+': '%2B',
      ',': '%2C',
      '/': '%2F',
      ':': '%3A',
      ';': '%3B',
      '=': '%3D',
      '?': '%3F',
      '@': '%40',
      '[': '%5B',
      ']': '%5D',
    };
    for (const [char, encoded] of Object.entries(table)) expect(percentEncode(char)).toBe(encoded);
    expect(percentEncode('a-b_c.d~e f')).toBe('a-b_c.d~e%20f');
    expect(percentEncode('é')).toBe('%C3%A9');
  });

  it('sorts the query by key', () => {
    expect(encodeQuery({ q: 'x y', count: '1000', cursor: 'c-1' })).toBe('count=1000&cursor=c-1&q=x%20y');
  });
});
