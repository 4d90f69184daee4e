import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { checkApiUrl, isLoopbackHost } from '../../src/destinations/x-ads/api-url.js';
import { xAdsDestinationSchema } from '../../src/destinations/x-ads/x-ads-config.js';
import { createXAdsDestination } from '../../src/destinations/x-ads/x-ads-destination.js';
import { createDestination } from '../../src/destinations/registry.js';
import { ConfigError } from '../../src/errors.js';

const base = {
  type: 'x_ads',
  account_id: '18CE54D4X5T',
  credentials: { consumer_key: 'ck', consumer_secret: 'cs', access_token: 'at', access_token_secret: 'ats' },
};

describe('api_url', () => {
  it.each(['localhost', '127.0.0.1', '127.1.2.3', '::1', '[::1]', 'api.localhost'])(
    '%s is loopback',
    (host) => {
      expect(isLoopbackHost(host)).toBe(true);
    },
  );
  it.each(['10.0.0.1', '128.0.0.1', 'ads-api.x.com', '127.0.0.1.example.com', '::2', '0.0.0.0'])(
    '%s is not loopback',
    (host) => {
      expect(isLoopbackHost(host)).toBe(false);
    },
  );

  it('defaults to https://ads-api.x.com and lower-cases the account id', () => {
    const config = xAdsDestinationSchema.parse(base);
    expect(config.api_url).toBe('https://ads-api.x.com');
    expect(config.account_id).toBe('18ce54d4x5t');
    expect(config.limits).toMatchObject({ max_operations: 2500, max_request_bytes: 4_000_000 });
  });

  it.each([
    ['https://ads-api-sandbox.x.com', true],
    ['http://127.0.0.1:4010', true],
    ['http://localhost:4010', true],
    ['http://[::1]:4010', true],
    ['http://ads-api.x.com', false],
    ['http://192.168.1.5:4010', false],
    ['ftp://ads-api.x.com', false],
  ])('%s accepted: %s', (url, ok) => {
    expect(xAdsDestinationSchema.safeParse({ ...base, api_url: url }).success).toBe(ok);
    if (ok) expect(checkApiUrl(url, 'x').href).toContain(new URL(url).host);
    else expect(() => checkApiUrl(url, 'x')).toThrow(ConfigError);
  });

  it('accepts `embedded` (the CLI runs the emulator in process), and says so when the value is no URL', () => {
    expect(xAdsDestinationSchema.parse({ ...base, api_url: 'embedded' }).api_url).toBe('embedded');
    const typo = xAdsDestinationSchema.safeParse({ ...base, api_url: 'embeded' });
    expect(typo.success).toBe(false);
    expect(typo.error?.issues[0]?.message).toMatch(/or "embedded"/);
  });

  it('createXAdsDestination refuses plain http to a remote host, naming the setting', () => {
    const config = { ...xAdsDestinationSchema.parse(base), api_url: 'http://ads-api.x.com' };
    const logger = pino({ level: 'silent' });
    expect(() => createXAdsDestination('x', config, { logger })).toThrow(/destinations\.x\.api_url/);
    expect(() => createDestination('x', config, { logger })).toThrow(ConfigError);
  });
});
