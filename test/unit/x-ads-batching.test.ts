import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BatchUser,
  batchUser,
  operationOverheadBytes,
  planRequests,
  userJson,
  userObject,
} from '../../src/destinations/x-ads/batching.js';
import { X_IDENTIFIER_TYPES } from '../../src/destinations/x-ads/identifier-types.js';
import { sha256Hex } from '../../src/destinations/x-ads/identifiers.js';

const h = (i: number) => sha256Hex(String(i));
const LIMITS = { maxOperations: 2500, maxRequestBytes: 4_000_000 };

/** `n` users, one per change, all of one type, each in its own operation when isolated. */
function users(n: number, type: 'Update' | 'Delete' = 'Update', isolate = false): BatchUser[] {
  return Array.from({ length: n }, (_, i) => batchUser(i, type, { email: [h(i)] }, isolate));
}

function sentIndexes(requests: ReturnType<typeof planRequests>['requests']): number[] {
  return requests.flatMap((r) => r.operations.flatMap((op) => op.indexes));
}

describe('planRequests', () => {
  it('packs users of one type into one operation and renders the documented body shape', () => {
    const { requests } = planRequests(
      [
        batchUser(0, 'Delete', { device_id: [h(1)] }),
        batchUser(1, 'Delete', { twitter_id: [h(2)] }),
        batchUser(2, 'Update', { handle: [h(3)], email: [h(4)], partner_user_id: ['crm-1'] }),
      ],
      LIMITS,
    );
    expect(requests).toHaveLength(1);
    const [request] = requests;
    expect(JSON.parse(request!.body)).toEqual([
      { operation_type: 'Delete', params: { users: [{ device_id: [h(1)] }, { twitter_id: [h(2)] }] } },
      {
        operation_type: 'Update',
        params: { users: [{ email: [h(4)], handle: [h(3)], partner_user_id: ['crm-1'] }] },
      },
    ]);
    expect(request!.users).toBe(3);
    expect(request!.operations).toEqual([
      { type: 'Delete', indexes: [0, 1] },
      { type: 'Update', indexes: [2] },
    ]);
  });

  it('leaves out empty identifier lists and keeps a fixed key order', () => {
    const user = batchUser(0, 'Update', { phone_number: [h(1)], email: [h(2)], handle: [] });
    expect(user.json).toBe(`{"email":["${h(2)}"],"phone_number":["${h(1)}"]}`);
  });

  it('2,500 isolated operations fit in one request; 2,501 split into two', () => {
    const fits = planRequests(users(2500, 'Update', true), LIMITS);
    expect(fits.requests).toHaveLength(1);
    expect(fits.requests[0]!.operations).toHaveLength(2500);

    const splits = planRequests(users(2501, 'Update', true), LIMITS);
    expect(splits.requests.map((r) => r.operations.length)).toEqual([2500, 1]);
    expect(sentIndexes(splits.requests)).toEqual(Array.from({ length: 2501 }, (_, i) => i));
  });

  it('counts operations, not users: 10,000 users share one operation', () => {
    const { requests } = planRequests(users(10_000), LIMITS);
    expect(requests).toHaveLength(1);
    expect(requests[0]!.operations).toHaveLength(1);
    expect(requests[0]!.users).toBe(10_000);
  });

  it('a body of exactly max_request_bytes fits; one byte more splits', () => {
    const batch = users(100);
    const exact = Buffer.byteLength(planRequests(batch, LIMITS).requests[0]!.body);
    const fits = planRequests(batch, { maxOperations: 2500, maxRequestBytes: exact });
    expect(fits.requests).toHaveLength(1);
    expect(fits.requests[0]!.bytes).toBe(exact);

    const tooSmall = planRequests(batch, { maxOperations: 2500, maxRequestBytes: exact - 1 });
    expect(tooSmall.requests).toHaveLength(2);
    expect(tooSmall.requests[0]!.users).toBe(99);
    for (const request of tooSmall.requests) expect(request.bytes).toBeLessThanOrEqual(exact - 1);
  });

  it('splits a 4,000,000-byte-limited load by bytes, measured exactly', () => {
    // 60,000 users of ~70 bytes is ~4.3 MB: more than one request, each at most the limit.
    const { requests } = planRequests(users(60_000), LIMITS);
    expect(requests.length).toBe(2);
    for (const request of requests) {
      expect(request.bytes).toBe(Buffer.byteLength(request.body));
      expect(request.bytes).toBeLessThanOrEqual(4_000_000);
    }
    // The first request is full: the next user would not have fitted.
    expect(requests[0]!.bytes + 1 + users(1)[0]!.bytes).toBeGreaterThan(4_000_000);
  });

  it('measures bytes of multi-byte partner ids, not characters', () => {
    const user = batchUser(0, 'Update', { partner_user_id: ['ünïcødé-😀'] });
    expect(user.bytes).toBe(Buffer.byteLength(user.json));
    expect(user.bytes).toBeGreaterThan(user.json.length);
    const exact = planRequests([user], LIMITS).requests[0]!.bytes;
    expect(planRequests([user], { ...LIMITS, maxRequestBytes: exact }).requests).toHaveLength(1);
    expect(planRequests([user], { ...LIMITS, maxRequestBytes: exact - 1 }).oversized).toEqual([0]);
  });

  it('reports a user too large for any request as oversized and sends the rest', () => {
    const big = batchUser(1, 'Update', { email: Array.from({ length: 400 }, (_, i) => h(i)) });
    const small = users(1)[0]!;
    const result = planRequests([small, big, { ...small, index: 2 }], {
      maxOperations: 2500,
      maxRequestBytes: 10_000,
    });
    expect(result.oversized).toEqual([1]);
    expect(sentIndexes(result.requests)).toEqual([0, 2]);
  });

  it('the operation overhead is what an empty operation renders to', () => {
    expect(operationOverheadBytes('Update')).toBe(
      Buffer.byteLength(JSON.stringify({ operation_type: 'Update', params: { users: [] } })),
    );
  });

  it('properties: order kept, every user sent once, limits held, body bytes exact', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            type: fc.constantFrom('Update' as const, 'Delete' as const),
            keys: fc.integer({ min: 1, max: 4 }),
            isolate: fc.boolean(),
          }),
          { maxLength: 120 },
        ),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 300, max: 3_000 }),
        (specs, maxOperations, maxRequestBytes) => {
          const batch = specs.map((spec, i) =>
            batchUser(
              i,
              spec.type,
              { email: Array.from({ length: spec.keys }, (_, k) => h(i * 10 + k)) },
              spec.isolate,
            ),
          );
          const { requests, oversized } = planRequests(batch, { maxOperations, maxRequestBytes });
          const sent = sentIndexes(requests);
          expect([...sent, ...oversized].sort((a, b) => a - b)).toEqual(batch.map((u) => u.index));
          expect(sent).toEqual([...sent].sort((a, b) => a - b));
          for (const request of requests) {
            expect(request.operations.length).toBeLessThanOrEqual(maxOperations);
            expect(request.bytes).toBe(Buffer.byteLength(request.body));
            expect(request.bytes).toBeLessThanOrEqual(maxRequestBytes);
            const parsed = JSON.parse(request.body) as Array<{
              operation_type: string;
              params: { users: unknown[] };
            }>;
            expect(parsed.map((op) => op.params.users.length)).toEqual(
              request.operations.map((op) => op.indexes.length),
            );
            expect(request.users).toBe(request.operations.reduce((n, op) => n + op.indexes.length, 0));
            for (const op of request.operations) {
              if (op.indexes.length > 1) expect(op.indexes.every((i) => !batch[i]!.isolate)).toBe(true);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('userJson', () => {
  it('writes exactly what JSON.stringify writes of the user object (property)', () => {
    // Any text (quotes, backslashes, control characters, lone surrogates), and keys outside X's list.
    const value = fc.oneof(
      fc.string({ unit: 'binary' }),
      fc.string({ unit: 'grapheme' }),
      fc.string({ unit: fc.constantFrom(...'0123456789abcdef') }),
    );
    const user = fc.dictionary(
      fc.oneof(fc.constantFrom(...X_IDENTIFIER_TYPES), fc.string()),
      fc.array(value, { maxLength: 3 }),
    );
    fc.assert(
      fc.property(user, (u) => {
        expect(userJson(u)).toBe(JSON.stringify(userObject(u)));
      }),
      { numRuns: 500 },
    );
  });
});
