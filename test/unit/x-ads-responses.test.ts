import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  describeErrors,
  parseAccount,
  parseAudience,
  parseAudiencePermission,
  parseCollection,
  parseOperationErrors,
  parseSingle,
  parseUsersCounts,
} from '../../src/destinations/x-ads/x-ads-responses.js';
import { DestinationApiError } from '../../src/errors.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/x-ads', import.meta.url));
const load = (file: string): unknown => JSON.parse(readFileSync(join(FIXTURES, file), 'utf8'));

/** Each recorded response, through the parser of its endpoint (test/fixtures/x-ads/README.md). */
const PARSERS: Record<string, (body: unknown) => unknown> = {
  'accounts_all.json': (body) => parseCollection(body, parseAccount),
  'accounts_load.json': (body) => parseSingle(body, parseAccount),
  'custom_audiences_all.json': (body) => parseCollection(body, parseAudience),
  'custom_audiences_load.json': (body) => parseSingle(body, parseAudience),
  'custom_audiences_permissions_all.json': (body) => parseCollection(body, parseAudiencePermission),
};

describe('recorded X responses', () => {
  const files = readdirSync(FIXTURES).filter((file) => file.endsWith('.json'));

  it('has a parser for every recorded fixture', () => {
    expect(files.sort()).toEqual(Object.keys(PARSERS).sort());
  });

  it.each(files)('parses %s', (file) => {
    expect(() => PARSERS[file]!(load(file))).not.toThrow();
  });

  it('reads the custom audiences collection', () => {
    const page = parseCollection(load('custom_audiences_all.json'), parseAudience);
    expect(page.nextCursor).toBeNull();
    expect(page.totalCount).toBe(3);
    expect(page.items.map((a) => [a.id, a.name, a.targetable, a.reasonsNotTargetable])).toEqual([
      ['abc2', 'TA #2', false, ['TOO_SMALL']],
      ['abc1', 'TA #1', true, []],
      ['abc3', 'TA #3', false, ['TOO_SMALL']],
    ]);
    expect(page.items[0]).toEqual({
      id: 'abc2',
      name: 'TA #2',
      description: null,
      size: null,
      targetable: false,
      reasonsNotTargetable: ['TOO_SMALL'],
      deleted: false,
      createdAt: '2014-03-09T20:35:41Z',
      updatedAt: '2014-06-11T09:38:06Z',
    });
  });

  it('reads accounts and permissions', () => {
    expect(parseSingle(load('accounts_load.json'), parseAccount)).toMatchObject({
      id: '2iqph',
      name: 'Schuppe-Casper',
    });
    expect(parseCollection(load('accounts_all.json'), parseAccount).items).toHaveLength(5);
    expect(
      parseCollection(load('custom_audiences_permissions_all.json'), parseAudiencePermission).items,
    ).toEqual([
      {
        id: 'k',
        customAudienceId: 'abc2',
        grantedAccountId: 'pz6ec',
        permissionLevel: 'READ_ONLY',
        deleted: false,
      },
      {
        id: 'l',
        customAudienceId: 'abc2',
        grantedAccountId: 'j9ozo',
        permissionLevel: 'READ_ONLY',
        deleted: false,
      },
    ]);
  });
});

describe('tolerance', () => {
  it('needs only id and name; everything else is optional', () => {
    expect(parseAudience({ id: '1nmth', name: 'x' })).toEqual({
      id: '1nmth',
      name: 'x',
      description: null,
      size: null,
      targetable: null,
      reasonsNotTargetable: [],
      deleted: false,
      createdAt: null,
      updatedAt: null,
    });
    expect(
      parseAudience({ id: '1', name: 'y', audience_size: 1470, deleted: 'true', description: 'd' }),
    ).toMatchObject({
      size: 1470,
      deleted: true,
      description: 'd',
    });
  });

  it('fails clearly without id or name, or without data', () => {
    expect(() => parseAudience({ name: 'x' })).toThrow(DestinationApiError);
    expect(() => parseAudience({ id: 'a' })).toThrow(/name/);
    expect(() => parseCollection({ errors: [] }, parseAudience)).toThrow(DestinationApiError);
    expect(() => parseSingle('<html>', parseAudience)).toThrow(DestinationApiError);
  });

  it('reads the users endpoint counts (§6.4)', () => {
    expect(parseUsersCounts({ data: { success_count: 4, total_count: 4 } })).toEqual({
      successCount: 4,
      totalCount: 4,
    });
    expect(parseUsersCounts({ data: {} })).toBeUndefined();
    expect(parseUsersCounts(undefined)).toBeUndefined();
  });

  it('reads operation_errors in any of the plausible shapes (§6.5, §17.1)', () => {
    const body = {
      errors: [],
      operation_errors: [
        [],
        [{ code: 'MISSING_PARAMETER', parameter: 'users', message: '"users" is missing' }],
        null,
        { code: 'X' },
      ],
    };
    const parsed = parseOperationErrors(body, 4)!;
    expect(parsed.map((errors) => errors.length)).toEqual([0, 1, 0, 1]);
    expect(parseOperationErrors({ operation_errors: [[], null] }, 2)).toBeUndefined();
    expect(parseOperationErrors({ errors: [{ code: 'INVALID_PARAMETER' }] }, 1)).toBeUndefined();
    expect(parseOperationErrors({ operation_errors: ['bad'] }, 1)).toEqual([
      [{ code: null, message: null, parameter: null }],
    ]);
  });

  it('describes errors without echoing values', () => {
    const reason = describeErrors(
      [
        {
          code: 'INVALID_PARAMETER',
          parameter: 'email',
          message: `Expected a SHA-256 hash, got "${'A'.repeat(64)}" for email`,
        },
      ],
      'x',
    );
    expect(reason).toBe('INVALID_PARAMETER (email): Expected a SHA-256 hash, got "…" for email');
    expect(describeErrors([], 'fallback')).toBe('fallback');
  });
});
