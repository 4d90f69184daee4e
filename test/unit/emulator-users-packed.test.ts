/**
 * The users endpoint's fast path (users-packed.ts) against the general path (JSON.parse and
 * users-validation.ts): same acceptance and the same membership for every body the fast path takes.
 * A leading space sends a body down the general path (JSON allows it; the fast path does not).
 */
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EmulatorStore } from '../../src/emulator/store.js';
import { DEFAULT_SWITCHES, type EmulatorSwitches } from '../../src/emulator/switches.js';
import { readPackedUsers } from '../../src/emulator/users-packed.js';
import { MAX_OPERATIONS, validateUsersRequest } from '../../src/emulator/users-validation.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const NOW = Date.parse('2026-11-22T12:00:00Z');
const KEYS = ['email', 'phone_number', 'handle', 'twitter_id', 'device_id', 'partner_user_id'];

function validate(text: string, switches: Partial<EmulatorSwitches> = {}) {
  const body = Buffer.from(text);
  return validateUsersRequest('application/json', body, body.length, NOW, {
    ...DEFAULT_SWITCHES,
    ...switches,
  });
}

/**
 * Applies a validation's operations to a fresh audience (as api.ts does), then the general path's
 * reading of the same body again (so records either path made must be found by the other), and returns
 * what the audience holds.
 */
function applied(result: ReturnType<typeof validate>, again: ReturnType<typeof validate>) {
  if (!result.ok || !again.ok) return { result };
  const store = new EmulatorStore('k');
  store.seed({ accounts: [{ id: 'abc' }] }, NOW);
  const audience = store.createAudience('abc', 'a', null, NOW);
  // Members the operations may hit.
  store.upsertMember(audience, { email: [sha('0')], handle: [sha('1')] }, NOW, NOW + 1);
  store.upsertMember(audience, { device_id: [sha('2')], phone_number: [sha('3')] }, NOW, NOW + 1);
  for (const op of [...result.operations, ...again.operations]) {
    if (op.type === 'Update') store.upsertMembers(audience, op.users, op.effectiveAt, op.expiresAt);
    else store.deleteMembers(audience, op.users);
  }
  const times = [...audience.members.records()].map((r) => r.times).sort((a, b) => a.expiresAt - b.expiresAt);
  return {
    ok: true,
    operationCount: result.operationCount,
    userCount: result.userCount,
    types: result.operations.map((op) => [op.type, op.users.length, op.effectiveAt, op.expiresAt]),
    membership: store.membership(audience),
    times,
  };
}

/** Both paths agree; returns whether the fast path took the body. */
function expectSame(text: string, switches: Partial<EmulatorSwitches> = {}): boolean {
  const fast = readPackedUsers(Buffer.from(text), MAX_OPERATIONS) !== undefined;
  const general = validate(` ${text}`, switches);
  expect(applied(validate(text, switches), general)).toEqual(applied(general, general));
  return fast;
}

const value = fc.constantFrom(...['0', '1', '2', '3'].map(sha));
const user = fc.dictionary(
  fc.constantFrom(...KEYS),
  value.map((v) => [v]),
  { minKeys: 1 },
);
const operation = fc.record({
  operation_type: fc.constantFrom('Update', 'Delete'),
  params: fc.record({ users: fc.array(user, { minLength: 1, maxLength: 6 }) }),
});
const body = fc.array(operation, { minLength: 1, maxLength: 4 });

describe('users endpoint fast path', () => {
  it('takes compact bodies of single hashed values and stores what the general path stores', () => {
    fc.assert(
      fc.property(body, (ops) => {
        expect(expectSame(JSON.stringify(ops))).toBe(true);
        expect(expectSame(JSON.stringify(ops), { operationTypeCaseSensitive: false })).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('leaves near misses to the general path, which answers them as before', () => {
    const e = sha('e');
    const p = sha('p');
    const u = (users: string) => `[{"operation_type":"Update","params":{"users":[${users}]}}]`;
    const nearMisses = [
      u(`{"email":["${e}"]}`).replace('[{', '[ {'),
      `${u(`{"email":["${e}"]}`)} `,
      u(`{"email":["${e.toUpperCase()}"]}`),
      u(`{"email":["${e.slice(1)}"]}`),
      u(`{"email":["${e}0"]}`),
      u(`{"email":["${e}","${p}"]}`),
      u(`{"email":["${e}"],"email":["${p}"]}`),
      u(`{"email":["${e}"],"ip_address":["${p}"]}`),
      u(`{"emai":["${e}"]}`),
      u(`{"email":"${e}"}`),
      u(`{"email":[]}`),
      u(`{}`),
      u(''),
      u(`{"email":["${e}"]},`),
      u(`{"email":["\\u0030${e.slice(1)}"]}`),
      u(`{"email":["${e}"]}`).replace('Update', 'update'),
      u(`{"email":["${e}"]}`).replace('"users"', '"users","effective_at":"2026-11-22T12:00:00Z"'),
      u(`{"email":["${e}"]}`).replace('"params"', '"extra":1,"params"'),
      u(`{"email":["${e}"]}`).slice(0, -1),
      u(`{"email":["${e}"]}`).slice(0, -3),
      `\ufeff${u(`{"email":["${e}"]}`)}`,
      '[]',
      '',
    ];
    for (const text of nearMisses) {
      expect(readPackedUsers(Buffer.from(text), MAX_OPERATIONS), text).toBeUndefined();
      expectSame(text);
      expectSame(text, {
        strictUserKeys: false,
        strictOperationKeys: false,
        operationTypeCaseSensitive: false,
      });
    }
  });

  it('leaves more than 2,500 operations to the general path (a request-level error)', () => {
    const op = { operation_type: 'Delete', params: { users: [{ handle: [sha('h')] }] } };
    expect(
      readPackedUsers(Buffer.from(JSON.stringify(Array(MAX_OPERATIONS).fill(op))), MAX_OPERATIONS),
    ).toHaveLength(MAX_OPERATIONS);
    const text = JSON.stringify(Array(MAX_OPERATIONS + 1).fill(op));
    expect(readPackedUsers(Buffer.from(text), MAX_OPERATIONS)).toBeUndefined();
    expect(validate(text)).toMatchObject({ ok: false, status: 400, operationCount: MAX_OPERATIONS + 1 });
  });
});
