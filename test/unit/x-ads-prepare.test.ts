import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { hashMember } from '../../src/destinations/x-ads/identifiers.js';
import { xAdsDestinationSchema } from '../../src/destinations/x-ads/x-ads-config.js';
import { createXAdsDestination } from '../../src/destinations/x-ads/x-ads-destination.js';

const config = (limits: Record<string, unknown> = {}) =>
  xAdsDestinationSchema.parse({
    type: 'x_ads',
    account_id: '18ce54d4x5t',
    api_url: 'http://127.0.0.1:9',
    credentials: { consumer_key: 'a', consumer_secret: 'b', access_token: 'c', access_token_secret: 'd' },
    limits,
  });

const logger = pino({ level: 'silent' });

describe('the X destination as the sync sees it', () => {
  it('prepares a member with its own normalization and hashing', () => {
    const x = createXAdsDestination('x', config(), { logger });
    const values = { mail: ' Jane@Example.com ', tel: '(415) 555-2671', bad: 'not-an-email' };
    const mappings = { mail: 'email', tel: 'phone_number', bad: 'email' };
    const options = { defaultRegion: 'US' };
    expect(x.prepare(values, mappings, options)).toEqual(
      hashMember(values, { mail: 'email', tel: 'phone_number', bad: 'email' }, options),
    );
    expect(x.prepare(values, mappings, options).invalid).toEqual([
      { column: 'bad', type: 'email', reason: 'invalid_email' },
    ]);
  });

  it('refuses an identifier type X does not have', () => {
    const x = createXAdsDestination('x', config(), { logger });
    expect(() => x.prepare({ a: '1' }, { a: 'fax' }, { defaultRegion: 'US' })).toThrow(/not an X identifier/);
  });

  it("says that X's Delete takes whole records, and how long X may apply a request late", () => {
    expect(createXAdsDestination('x', config(), { logger }).capabilities).toEqual({
      deleteRemovesSharingRecords: true,
      lateApplyWindowMs: 48 * 3_600_000,
    });
    const short = createXAdsDestination('x', config({ late_apply_window_hours: 0.5 }), { logger });
    expect(short.capabilities.lateApplyWindowMs).toBe(1_800_000);
  });
});
