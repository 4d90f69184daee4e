import fc from 'fast-check';
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { describe, expect, it } from 'vitest';
import { X_IDENTIFIER_TYPES, type XIdentifierType } from '../../src/destinations/x-ads/identifier-types.js';
import {
  hashIdentifier,
  hashMember,
  normalizeIdentifier,
  sha256Hex,
} from '../../src/destinations/x-ads/identifiers.js';

const US = { defaultRegion: 'US' };
const hash = (type: XIdentifierType, raw: unknown, region = 'US') =>
  hashIdentifier(type, raw, { defaultRegion: region });
const norm = (type: XIdentifierType, raw: unknown, region = 'US') =>
  normalizeIdentifier(type, raw, { defaultRegion: region });

// Known answers: SHA-256 (lowercase hex) of the normalized value. The first is X's own example, @AdsAPI
// hashed as "adsapi" (https://docs.x.com/x-ads-api/audiences, "Custom Audiences user data"); every one
// can be checked with `printf %s adsapi | sha256sum`.
describe('hashing vectors', () => {
  const vectors: Array<[XIdentifierType, string, string]> = [
    ['handle', 'adsapi', '49e0be2aeccfb51a8dee4c945c8a70a9ac500cf6f5cb08112575f74db9b1470d'],
    ['handle', 'twitter', '7352f353c460e74c7ae226952d04f8aa307b12329c5512ec8cb6f1a0f8f9b2cb'],
    ['email', 'abc@twitter.com', '4798b8bbdcf6f2a52e527f46a3d7a7c9aefb541afda03af79c74809ecc6376f3'],
    ['email', 'edf@twitter.com', '5bf13d5ad4200407c5bc8b9bb578e425d05ef936fd488e3799a9d0806669223c'],
    ['twitter_id', '123456', '8d969eef6ecad3c29a3a629280e686cf0c3f5d5a86aff3ca12020c923adc6c92'],
    ['email', 'support@x.com', '6afb3b8ba60b4050a492472f3c82294dede1ecc6319a9c420f776fd3bca2a381'],
    ['twitter_id', '143567', '617b8747525a154b1ecf75a42d883df00e0dd6d0f981bea57ac7bdce73e57eae'],
    [
      'device_id',
      '4b61639e-47cc-4056-a16a-c8217e029462',
      '225859d35b46df63b4fb381eb3f815b2ef4620bec0a79f2115a6a3eb71a5fa1a',
    ],
    ['device_id', 'af3802a465767e36', '38bb33cb239524887c276ca99f9a077bc7161629804b914f4fd52e19dcffe92c'],
    ['phone_number', '14155552671', '758fbf68945f21c416814c539ab578876c8d98fb69e6da692def92cd52417fe0'],
  ];
  it.each(vectors)('%s %s', (type, input, expected) => {
    expect(hash(type, input)).toEqual({ ok: true, value: expected });
  });

  it('sha256 of the raw vectors matches, including the ones X must not receive', () => {
    expect(sha256Hex('123456')).toBe('8d969eef6ecad3c29a3a629280e686cf0c3f5d5a86aff3ca12020c923adc6c92');
    expect(sha256Hex('4B61639E-47CC-4056-A16A-C8217E029462')).toBe(
      '4c8ad81b3d6ded768fff8a6f16ec67b64d2eec7cce1d3f4ffa6550d1b5dde176',
    );
    expect(sha256Hex('+14155552671')).toBe(
      'cb6880e416769253645cb9c6b8989154bf66a56a77fc14c81fb1019663cbb928',
    );
  });

  it('an uppercase IDFA hashes as its lowercase form, never as the wrong upper-case vector', () => {
    const result = hash('device_id', '4B61639E-47CC-4056-A16A-C8217E029462');
    expect(result).toEqual({
      ok: true,
      value: '225859d35b46df63b4fb381eb3f815b2ef4620bec0a79f2115a6a3eb71a5fa1a',
    });
  });

  it('a phone with + hashes as the digits-only form, never as the `+` vector', () => {
    expect(hash('phone_number', '+14155552671')).toEqual({
      ok: true,
      value: '758fbf68945f21c416814c539ab578876c8d98fb69e6da692def92cd52417fe0',
    });
  });
});

describe('email', () => {
  it.each([
    ['  Support@X.com ', 'support@x.com'],
    ['ABC@TWITTER.COM', 'abc@twitter.com'],
    ['first.last+tag@example.co.uk', 'first.last+tag@example.co.uk'],
    ['\tuser@Example.ORG\n', 'user@example.org'],
    ['JOSÉ@Exämple.de', 'josé@exämple.de'],
    ['josé@example.com'.normalize('NFD'), 'josé@example.com'.normalize('NFC')],
    ['用户@例子.广告', '用户@例子.广告'],
    ['user@xn--bcher-kva.example', 'user@xn--bcher-kva.example'],
  ])('%j -> %j', (input, expected) => {
    expect(norm('email', input)).toEqual({ ok: true, value: expected, preHashed: false });
  });

  it.each([
    'not-an-email',
    '@x.com',
    'user@',
    'user@localhost',
    'a b@x.com',
    'user@@x.com',
    'user@x..com',
    '.user@x.com',
    'user.@x.com',
    'user@-x.com',
    'user@x.c0m',
    '😀@x.com',
    'user@😀.com',
    'user@x.com.',
  ])('%j is invalid_email', (input) => {
    expect(norm('email', input)).toEqual({ ok: false, reason: 'invalid_email' });
  });

  it('does not strip dots or +tags (X never says to)', () => {
    expect(hash('email', 'a.b+c@gmail.com')).toEqual({ ok: true, value: sha256Hex('a.b+c@gmail.com') });
  });
});

describe('phone_number', () => {
  it.each([
    ['+1 (415) 555-2671', 'US', '14155552671'],
    ['(415) 555-2671', 'US', '14155552671'],
    ['415.555.2671', 'US', '14155552671'],
    ['4155552671', 'US', '14155552671'],
    ['1-415-555-2671', 'US', '14155552671'],
    ['0412 345 678', 'AU', '61412345678'],
    ['+61 412 345 678', 'US', '61412345678'],
    ['+44 20 7946 0958', 'US', '442079460958'],
    ['00 44 20 7946 0958', 'GB', '442079460958'],
    ['00 44 20 7946 0958', 'US', '442079460958'],
    ['011 44 20 7946 0958', 'US', '442079460958'],
    ['020 7946 0958', 'GB', '442079460958'],
    ['+33 6 12 34 56 78', 'DE', '33612345678'],
    ['415-555-2671 ext. 12', 'US', '14155552671'],
    ['  +14155552671  ', 'us', '14155552671'],
  ])('%j (%s) -> %s', (input, region, expected) => {
    expect(norm('phone_number', input, region)).toEqual({ ok: true, value: expected, preHashed: false });
  });

  it('takes numbers from the warehouse', () => {
    expect(norm('phone_number', 14155552671)).toEqual({ ok: true, value: '14155552671', preHashed: false });
    expect(norm('phone_number', 14155552671n)).toEqual({ ok: true, value: '14155552671', preHashed: false });
  });

  it.each(['123', '555-2671', 'call me', '+1 415 555 26711111', '☎️ 415 555 2671 😀x', '+999 123 456'])(
    '%j is invalid_phone',
    (input) => {
      expect(norm('phone_number', input)).toEqual({ ok: false, reason: 'invalid_phone' });
    },
  );

  it('reads `+00` (a `+` written before the 00 international prefix) like `00`, in every region', () => {
    // A country code never starts with 0, so `+00…` cannot be a number as written; the writer meant the
    // 00 prefix. It must hash the same as the 00 and `+` forms, not be refused as invalid.
    for (const region of ['US', 'GB', 'DE']) {
      const expected = { ok: true, value: '16169547888', preHashed: false };
      expect(norm('phone_number', '001 (616) 954-7888', region)).toEqual(expected);
      expect(norm('phone_number', '+001 (616) 954-7888', region)).toEqual(expected);
      expect(norm('phone_number', '+00 1 616 954 7888', region)).toEqual(expected);
      expect(norm('phone_number', '+0044 20 7946 0958', region)).toEqual({
        ok: true,
        value: '442079460958',
        preHashed: false,
      });
    }
    // Only a whole 00 prefix: `+0` followed by anything else is still no number.
    expect(norm('phone_number', '+01 616 954 7888')).toEqual({ ok: false, reason: 'invalid_phone' });
  });

  it('a national number depends on the default region', () => {
    expect(norm('phone_number', '0412 345 678', 'US')).toEqual({ ok: false, reason: 'invalid_phone' });
  });
});

describe('handle', () => {
  it.each([
    ['@Jack', 'jack'],
    ['  @AdsAPI  ', 'adsapi'],
    ['x_user_123', 'x_user_123'],
    ['@abcdefghijklmno', 'abcdefghijklmno'],
    ['12345', '12345'],
  ])('%j -> %j', (input, expected) => {
    expect(norm('handle', input)).toEqual({ ok: true, value: expected, preHashed: false });
  });

  it('takes a numeric handle given as a number', () => {
    expect(norm('handle', 12345)).toEqual({ ok: true, value: '12345', preHashed: false });
  });

  it.each(['@@jack', '@', 'jack smith', 'abcdefghijklmnop', 'jäck', 'jack!', '😀'])(
    '%j is invalid_handle',
    (input) => {
      expect(norm('handle', input)).toEqual({ ok: false, reason: 'invalid_handle' });
    },
  );
});

describe('twitter_id', () => {
  it.each<[unknown, string]>([
    ['143567', '143567'],
    [' 00143567 ', '143567'],
    [143567, '143567'],
    [Number.MAX_SAFE_INTEGER, '9007199254740991'],
    [1234567890123456789n, '1234567890123456789'],
    ['1234567890123456789', '1234567890123456789'],
    [18446744073709551615n, '18446744073709551615'],
  ])('%s -> %s', (input, expected) => {
    expect(norm('twitter_id', input)).toEqual({ ok: true, value: expected, preHashed: false });
  });

  it.each<[unknown]>([
    [2 ** 53], // beyond 2^53 a JS number may already have lost digits: untrustworthy
    [Number('1234567890123456789')], // what a driver that reads BIGINT as a double hands over
    [1.5],
    [-5],
    [Number.NaN],
    ['12a4'],
    ['-143567'],
    ['0'],
    ['000'],
    [0],
    ['1 234'],
    [true],
    [{ id: 1 }],
  ])('%s is invalid_twitter_id', (input) => {
    expect(norm('twitter_id', input)).toEqual({ ok: false, reason: 'invalid_twitter_id' });
  });
});

describe('device_id', () => {
  it.each([
    ['4B61639E-47CC-4056-A16A-C8217E029462', '4b61639e-47cc-4056-a16a-c8217e029462'],
    [' 4b61639e-47cc-4056-a16a-c8217e029462 ', '4b61639e-47cc-4056-a16a-c8217e029462'],
    ['4B61639E47CC4056A16AC8217E029462', '4b61639e-47cc-4056-a16a-c8217e029462'],
    ['AF3802A465767E36', 'af3802a465767e36'],
  ])('%j -> %j', (input, expected) => {
    expect(norm('device_id', input)).toEqual({ ok: true, value: expected, preHashed: false });
  });

  it.each([
    '00000000-0000-0000-0000-000000000000',
    '0000000000000000',
    '2f5f5391-3e45-4d02-b645-4575a08f86e', // the docs' own malformed AdID example (11 digits at the end)
    'af3802a465767e3',
    'g4b61639e-47cc-4056-a16a-c8217e02946',
    'not a device',
    '4b61639e_47cc_4056_a16a_c8217e029462',
  ])('%j is invalid_device_id', (input) => {
    expect(norm('device_id', input)).toEqual({ ok: false, reason: 'invalid_device_id' });
  });
});

describe('partner_user_id', () => {
  it('is sent unhashed, trimmed', () => {
    expect(hash('partner_user_id', '  crm-000123 ')).toEqual({ ok: true, value: 'crm-000123' });
    expect(hash('partner_user_id', 42)).toEqual({ ok: true, value: '42' });
    expect(hash('partner_user_id', 'Ünïcode-ID')).toEqual({ ok: true, value: 'Ünïcode-ID' });
  });

  it('keeps a 64-hex partner id as the partner wrote it', () => {
    const id = 'A'.repeat(64);
    expect(hash('partner_user_id', id)).toEqual({ ok: true, value: id });
  });

  it('rejects values that are not scalars', () => {
    expect(hash('partner_user_id', { a: 1 })).toEqual({ ok: false, reason: 'invalid_partner_user_id' });
  });
});

describe('pre-hashed values and absent values', () => {
  const digest = sha256Hex('support@x.com');
  it.each(X_IDENTIFIER_TYPES.filter((type) => type !== 'partner_user_id'))(
    '%s: a 64-hex value passes through lowercased, never hashed twice',
    (type) => {
      expect(norm(type, ` ${digest.toUpperCase()} `)).toEqual({ ok: true, value: digest, preHashed: true });
      expect(hash(type, digest.toUpperCase())).toEqual({ ok: true, value: digest });
    },
  );

  it.each(X_IDENTIFIER_TYPES)(
    '%s: null, undefined, empty and blank strings are `empty` (no value)',
    (type) => {
      for (const raw of [null, undefined, '', '   ', '\t\n']) {
        expect(norm(type, raw)).toEqual({ ok: false, reason: 'empty' });
      }
    },
  );
});

describe('hashMember', () => {
  it('hashes mapped columns, merges columns of one type, sorts, de-duplicates and reports invalid values', () => {
    const { hashes, invalid } = hashMember(
      {
        email: ' Support@X.com ',
        work_email: ['support@x.com', 'abc@twitter.com', 'bad-email', null],
        phone: '',
        x_handle: '@AdsAPI',
        x_user_id: 2 ** 60,
        ignored: 'not mapped',
      },
      {
        email: 'email',
        work_email: 'email',
        phone: 'phone_number',
        x_handle: 'handle',
        x_user_id: 'twitter_id',
        missing_column: 'device_id',
      },
      US,
    );
    expect(hashes).toEqual({
      email: [sha256Hex('abc@twitter.com'), sha256Hex('support@x.com')].sort(),
      handle: [sha256Hex('adsapi')],
    });
    expect(invalid).toEqual([
      { column: 'work_email', type: 'email', reason: 'invalid_email' },
      { column: 'x_user_id', type: 'twitter_id', reason: 'invalid_twitter_id' },
    ]);
    expect(JSON.stringify(invalid)).not.toContain('bad-email');
  });

  it('gives an empty object for a member with nothing to send (no empty arrays)', () => {
    expect(hashMember({ email: null, phone: '  ' }, { email: 'email', phone: 'phone_number' }, US)).toEqual({
      hashes: {},
      invalid: [],
    });
  });

  it('gives equal results for the same identifiers written differently', () => {
    const mappings = { email: 'email', phone: 'phone_number' } as const;
    const a = hashMember({ email: ['B@x.com', 'a@x.com'], phone: '+1 (415) 555-2671' }, mappings, US);
    const b = hashMember({ email: ['a@x.com ', 'b@X.COM', 'A@x.com'], phone: '4155552671' }, mappings, US);
    expect(a).toEqual(b);
  });
});

describe('properties', () => {
  const messyEmail = fc
    .tuple(
      fc.stringMatching(/^[A-Za-z0-9_%+-]{1,20}$/),
      fc.stringMatching(/^[A-Za-z0-9]{1,10}$/),
      fc.constantFrom('com', 'ORG', 'co.uk', 'Dev'),
      fc.constantFrom('', ' ', '\t'),
    )
    .map(([local, domain, tld, pad]) => `${pad}${local}@${domain}.${tld}${pad}`);
  const phone = fc
    .tuple(fc.constantFrom('415', '212', '650', '917'), fc.integer({ min: 2000000, max: 9999999 }))
    .map(([area, rest]) => `(${area}) ${String(rest).slice(0, 3)}-${String(rest).slice(3)}`);
  const handle = fc.stringMatching(/^@?[A-Za-z0-9_]{1,15}$/);
  const twitterId = fc.oneof(
    fc.bigInt({ min: 1n, max: 2n ** 64n }),
    fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    fc.stringMatching(/^0{0,3}[1-9][0-9]{0,19}$/),
  );
  const deviceId = fc.uuid().map((id) => id.toUpperCase());
  const anything = fc.oneof(
    fc.string(),
    fc.string({ unit: 'grapheme' }),
    fc.integer(),
    fc.bigInt(),
    fc.constant(null),
  );

  const typed: Array<[XIdentifierType, fc.Arbitrary<unknown>]> = [
    ['email', fc.oneof(messyEmail, anything)],
    ['phone_number', fc.oneof(phone, anything)],
    ['handle', fc.oneof(handle, anything)],
    ['twitter_id', fc.oneof(twitterId, anything)],
    ['device_id', fc.oneof(deviceId, anything)],
    ['partner_user_id', anything],
  ];

  it.each(typed)('%s: normalization is idempotent and hashes are 64 lowercase hex', (type, arbitrary) => {
    fc.assert(
      fc.property(arbitrary, (raw) => {
        const first = norm(type, raw);
        if (!first.ok) return;
        expect(norm(type, first.value)).toEqual(first);
        const hashed = hash(type, raw);
        expect(hashed.ok).toBe(true);
        if (!hashed.ok) return;
        if (type === 'partner_user_id') {
          expect(hashed.value).toBe(first.value);
        } else {
          expect(hashed.value).toMatch(/^[0-9a-f]{64}$/);
          // Hashing the hash changes nothing: a digest is never hashed twice.
          expect(hash(type, hashed.value)).toEqual(hashed);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('hashMember gives, per type, the sorted distinct hashes of its columns, keys in sorted order', () => {
    const columns = ['a', 'b', 'c', 'd'];
    const value = fc.oneof(messyEmail, phone, handle, deviceId, fc.constant(null), fc.constant('bad value'));
    fc.assert(
      fc.property(
        fc.record(
          Object.fromEntries(columns.map((c) => [c, fc.oneof(value, fc.array(value, { maxLength: 4 }))])),
        ),
        fc.record(Object.fromEntries(columns.map((c) => [c, fc.constantFrom(...X_IDENTIFIER_TYPES)]))),
        (values, mappings) => {
          const expected = new Map<string, Set<string>>();
          for (const column of columns) {
            const type = mappings[column]!;
            for (const raw of [values[column]].flat()) {
              const result = hash(type, raw);
              if (result.ok) expected.set(type, (expected.get(type) ?? new Set()).add(result.value));
            }
          }
          const { hashes } = hashMember(values, mappings, US);
          expect(Object.keys(hashes)).toEqual([...expected.keys()].sort());
          for (const [type, set] of expected) {
            expect(hashes[type as XIdentifierType]).toEqual([...set].sort());
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('well-formed generated values are all accepted', () => {
    fc.assert(
      fc.property(messyEmail, phone, handle, twitterId, deviceId, (e, p, h, t, d) => {
        expect(norm('email', e).ok).toBe(true);
        expect(norm('phone_number', p).ok).toBe(true);
        expect(norm('handle', h).ok).toBe(true);
        expect(norm('twitter_id', t).ok).toBe(true);
        expect(norm('device_id', d).ok).toBe(true);
      }),
      { numRuns: 200 },
    );
  });
});

describe("libphonenumber-js with the project's patch (patches/, applied by npm's postinstall)", () => {
  // The library built `new RegExp('^(?:' + pattern + ')$')` on every check of a number against a
  // pattern, some of them ~900 characters, several times per number (two fifths of parsing one). The
  // patch keeps each anchored RegExp; without it (`npm ci --ignore-scripts`), parsing stays correct and
  // this test fails.
  it('builds each anchored number pattern once, not on every parse', () => {
    const inputs = ['+1415555012', '(212) 555-019', '020 7946 095', '+44 20 7946 095', '+33 1 23 45 67 8'];
    const parseAll = (lastDigit: number) => {
      for (const input of inputs) {
        parsePhoneNumberFromString(`${input}${lastDigit}`, {
          defaultCountry: 'GB',
          extract: false,
        })?.isValid();
      }
    };
    const original = globalThis.RegExp;
    let anchored = 0;
    globalThis.RegExp = new Proxy(original, {
      construct(target, args: [string, string?], newTarget) {
        if (/^\^\(\?:[\s\S]*\)\$$/.test(String(args[0]))) anchored++;
        return Reflect.construct(target, args, newTarget) as object;
      },
    });
    try {
      parseAll(1); // builds what earlier tests have not
      const built = anchored;
      parseAll(2);
      parseAll(3);
      expect(anchored).toBe(built);
      // The count sees a RegExp built as the library builds them (unpatched: 86 more above).
      new RegExp('^(?:1)$');
      expect(anchored).toBe(built + 1);
    } finally {
      globalThis.RegExp = original;
    }
  });
});
