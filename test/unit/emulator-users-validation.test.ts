import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SWITCHES, type EmulatorSwitches } from '../../src/emulator/switches.js';
import {
  MAX_BODY_BYTES,
  MAX_OPERATIONS,
  thirteenMonthsAfter,
  validateUsersRequest,
} from '../../src/emulator/users-validation.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const NOW = Date.parse('2026-11-22T12:00:00Z');
const JSON_TYPE = 'application/json';

function validate(body: unknown, switches: Partial<EmulatorSwitches> = {}, contentType = JSON_TYPE) {
  const buffer = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return validateUsersRequest(contentType, buffer, buffer.length, NOW, { ...DEFAULT_SWITCHES, ...switches });
}

const update = (users: unknown[], extra: Record<string, unknown> = {}) => ({
  operation_type: 'Update',
  params: { users, ...extra },
});

/** The operation_errors of a failed validation, as [index, parameter, code] triples. */
function opErrors(result: ReturnType<typeof validate>): Array<[number, string | undefined, string]> {
  if (result.ok) throw new Error('expected a validation failure');
  expect(result.status).toBe(400);
  expect(result.errors).toEqual([]);
  return (result.operationErrors ?? []).flatMap((errors, index) =>
    (errors ?? []).map((e) => [index, e.parameter, e.code] as [number, string | undefined, string]),
  );
}

describe('users endpoint validation, in the order docs/emulator.md gives', () => {
  it('415 unless the content type is application/json (parameters allowed)', () => {
    const body = [update([{ email: [sha('a')] }])];
    expect(validate(body, {}, 'text/plain')).toMatchObject({ ok: false, status: 415 });
    expect(validate(body, {}, 'application/x-www-form-urlencoded')).toMatchObject({ ok: false, status: 415 });
    expect(validateUsersRequest(undefined, Buffer.from('[]'), 2, NOW, DEFAULT_SWITCHES)).toMatchObject({
      status: 415,
    });
    expect(validate(body, {}, 'Application/JSON; charset=utf-8')).toMatchObject({ ok: true });
  });

  it('rejects a body over 5,000,000 bytes before parsing it (413, or 400 by switch)', () => {
    const notJson = Buffer.from('x');
    const over = validateUsersRequest(JSON_TYPE, notJson, MAX_BODY_BYTES + 1, NOW, DEFAULT_SWITCHES);
    expect(over).toMatchObject({ ok: false, status: 413 });
    expect(
      validateUsersRequest(JSON_TYPE, notJson, MAX_BODY_BYTES + 1, NOW, {
        ...DEFAULT_SWITCHES,
        oversizeStatus: 400,
      }),
    ).toMatchObject({ ok: false, status: 400 });
    // At the limit the body is parsed (and here found not to be JSON).
    expect(validateUsersRequest(JSON_TYPE, notJson, MAX_BODY_BYTES, NOW, DEFAULT_SWITCHES)).toMatchObject({
      status: 400,
      errors: [{ code: 'INVALID_PARAMETER', message: 'Request body is not valid JSON' }],
    });
  });

  it('requires a non-empty JSON array', () => {
    for (const body of ['not json', '{"operation_type":"Update"}', '[]', 'null', '"x"']) {
      const result = validate(body);
      expect(result).toMatchObject({ ok: false, status: 400, errors: [{ code: 'INVALID_PARAMETER' }] });
      expect(result.ok === false && result.operationErrors).toBeFalsy();
    }
  });

  it('accepts 2,500 operations and refuses 2,501 with a request-level error', () => {
    const op = update([{ email: [sha('a')] }]);
    const ok = validate(Array.from({ length: MAX_OPERATIONS }, () => op));
    expect(ok).toMatchObject({ ok: true, operationCount: 2500, userCount: 2500 });
    const tooMany = validate(Array.from({ length: MAX_OPERATIONS + 1 }, () => op));
    expect(tooMany).toMatchObject({
      ok: false,
      status: 400,
      errors: [{ code: 'INVALID_PARAMETER', message: 'Batch size 2501 exceeds maximum of 2500' }],
    });
    expect(tooMany.ok === false && tooMany.operationErrors).toBeFalsy();
  });

  it('collects item-level errors under operation_errors, indexed like the input', () => {
    const good = update([{ email: [sha('a')] }]);
    const result = validate([
      good,
      { operation_type: 'Add', params: { users: [{ email: [sha('b')] }] } },
      good,
      {},
    ]);
    expect(opErrors(result)).toEqual([
      [1, 'operation_type', 'INVALID_PARAMETER'],
      [3, 'operation_type', 'MISSING_PARAMETER'],
      [3, 'params', 'MISSING_PARAMETER'],
    ]);
    expect(result.ok === false && result.operationErrors?.[0]).toEqual([]);
    const nulls = validate([good, {}], { operationErrorsForValidOps: 'null' });
    expect(nulls.ok === false && nulls.operationErrors?.[0]).toBeNull();
  });

  it('checks operation_type exactly (case-insensitive by switch) and refuses non-objects', () => {
    const users = [{ email: [sha('a')] }];
    expect(opErrors(validate([{ operation_type: 'update', params: { users } }]))).toEqual([
      [0, 'operation_type', 'INVALID_PARAMETER'],
    ]);
    expect(
      validate([{ operation_type: 'update', params: { users } }], { operationTypeCaseSensitive: false }),
    ).toMatchObject({ ok: true, operations: [{ type: 'Update' }] });
    expect(opErrors(validate([{ operation_type: 7, params: { users } }]))).toEqual([
      [0, 'operation_type', 'INVALID_PARAMETER'],
    ]);
    expect(opErrors(validate(['Update']))).toEqual([[0, undefined, 'INVALID_PARAMETER']]);
    expect(opErrors(validate([{ operation_type: 'Delete', params: [] }]))).toEqual([
      [0, 'params', 'INVALID_PARAMETER'],
    ]);
  });

  it('refuses unknown keys in operations and params (strict switch)', () => {
    const op = {
      operation_type: 'Update',
      params: { users: [{ email: [sha('a')] }], audience: 'x' },
      extra: 1,
    };
    expect(opErrors(validate([op]))).toEqual([
      [0, 'extra', 'INVALID_PARAMETER'],
      [0, 'audience', 'INVALID_PARAMETER'],
    ]);
    expect(validate([op], { strictOperationKeys: false })).toMatchObject({ ok: true });
  });

  it('requires params.users to be a non-empty array of objects with at least one identifier', () => {
    expect(opErrors(validate([{ operation_type: 'Update', params: {} }]))).toEqual([
      [0, 'users', 'MISSING_PARAMETER'],
    ]);
    expect(opErrors(validate([update('x' as unknown as unknown[])]))).toEqual([
      [0, 'users', 'INVALID_PARAMETER'],
    ]);
    expect(opErrors(validate([update([])]))).toEqual([[0, 'users', 'INVALID_PARAMETER']]);
    expect(validate([update([])], { requireNonEmptyUsers: false })).toMatchObject({ ok: true, userCount: 0 });
    expect(opErrors(validate([update([{}])]))).toEqual([[0, 'users', 'INVALID_PARAMETER']]);
    expect(opErrors(validate([update(['a@b.c'])]))).toEqual([[0, 'users', 'INVALID_PARAMETER']]);
  });

  it('allows only the six documented identifier keys (no ip_address)', () => {
    const user = { email: [sha('a')], ip_address: [sha('1.2.3.4')] };
    expect(opErrors(validate([update([user])]))).toEqual([[0, 'ip_address', 'INVALID_PARAMETER']]);
    expect(validate([update([user])], { strictUserKeys: false })).toMatchObject({
      ok: true,
      operations: [{ users: [{ email: [sha('a')] }] }],
    });
    const all = {
      email: [sha('e')],
      phone_number: [sha('p')],
      handle: [sha('h')],
      twitter_id: [sha('t')],
      device_id: [sha('d')],
      partner_user_id: ['crm-000123'],
    };
    expect(validate([update([all])])).toMatchObject({ ok: true });
  });

  it('requires each value to be a non-empty array of non-empty strings', () => {
    for (const email of [sha('a'), [], [1], [''], null]) {
      expect(opErrors(validate([update([{ email }])]))).toEqual([[0, 'email', 'INVALID_PARAMETER']]);
    }
  });

  it('requires lowercase 64-hex SHA-256 values except for partner_user_id (strict switch on by default)', () => {
    const raw = { email: ['support@x.com'] };
    const upper = { handle: [sha('adsapi').toUpperCase()] };
    const short = { twitter_id: [sha('1').slice(1)] };
    expect(opErrors(validate([update([raw, upper]), update([short])]))).toEqual([
      [0, 'email', 'INVALID_PARAMETER'],
      [0, 'handle', 'INVALID_PARAMETER'],
      [1, 'twitter_id', 'INVALID_PARAMETER'],
    ]);
    expect(validate([update([{ partner_user_id: ['CRM 42 / raw'] }])])).toMatchObject({ ok: true });
    expect(validate([update([raw, upper, short])], { requireHashedIdentifiers: false })).toMatchObject({
      ok: true,
    });
  });

  it('never echoes identifier values in error messages', () => {
    const result = validate([update([{ email: ['alice@example.com'], phone_number: ['+14155552671'] }])]);
    expect(JSON.stringify(result)).not.toMatch(/alice|4155552671/);
  });

  it('parses effective_at/expires_at as ISO 8601 and requires expires_at > effective_at', () => {
    const users = [{ email: [sha('a')] }];
    const ok = validate([
      update(users, { effective_at: '2026-11-22T00:00:00Z', expires_at: '2027-01-01T07:00:00+02:00' }),
    ]);
    expect(ok).toMatchObject({
      ok: true,
      operations: [
        { effectiveAt: Date.parse('2026-11-22T00:00:00Z'), expiresAt: Date.parse('2027-01-01T05:00:00Z') },
      ],
    });
    const defaults = validate([update(users)]);
    expect(defaults).toMatchObject({
      ok: true,
      operations: [{ effectiveAt: NOW, expiresAt: thirteenMonthsAfter(NOW) }],
    });
    expect(thirteenMonthsAfter(NOW)).toBe(Date.parse('2027-12-22T12:00:00Z'));
    expect(opErrors(validate([update(users, { effective_at: 'yesterday' })]))).toEqual([
      [0, 'effective_at', 'INVALID_PARAMETER'],
    ]);
    expect(opErrors(validate([update(users, { expires_at: 1767225600 })]))).toEqual([
      [0, 'expires_at', 'INVALID_PARAMETER'],
    ]);
    expect(
      opErrors(
        validate([
          update(users, { effective_at: '2027-01-01T00:00:00Z', expires_at: '2027-01-01T00:00:00Z' }),
        ]),
      ),
    ).toEqual([[0, 'expires_at', 'INVALID_PARAMETER']]);
    // Only expires_at given, in the past: it is not after the default effective_at (now).
    expect(opErrors(validate([update(users, { expires_at: '2020-01-01T00:00:00Z' })]))).toEqual([
      [0, 'expires_at', 'INVALID_PARAMETER'],
    ]);
  });

  it('counts user objects across all operations', () => {
    const result = validate([
      update([{ email: [sha('a')], handle: [sha('h1'), sha('h2')] }, { email: [sha('b')] }]),
      {
        operation_type: 'Delete',
        params: { users: [{ device_id: [sha('d')] }, { twitter_id: [sha('t')] }] },
      },
    ]);
    expect(result).toMatchObject({ ok: true, operationCount: 2, userCount: 4 });
  });

  it('caps the errors listed per operation', () => {
    const users = Array.from({ length: 500 }, (_, i) => ({ email: [`raw${i}@example.com`] }));
    const result = validate([update(users)]);
    expect(result.ok === false && result.operationErrors?.[0]?.length).toBe(
      DEFAULT_SWITCHES.maxErrorsPerOperation,
    );
  });
});
