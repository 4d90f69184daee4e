import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EmulatorStore } from '../../src/emulator/store.js';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const NOW = Date.parse('2026-11-22T12:00:00Z');
const LATER = NOW + 86_400_000;

function newAudience() {
  const store = new EmulatorStore('k');
  store.seed({ accounts: [{ id: 'abc' }] }, NOW);
  return { store, audience: store.createAudience('abc', 'a', null, NOW) };
}

describe('emulator membership records', () => {
  it('keeps one record per identifier set; Update of the same set refreshes it', () => {
    const { store, audience } = newAudience();
    store.upsertMember(audience, { email: ['e1'], phone_number: ['p'] }, NOW, LATER);
    store.upsertMember(audience, { phone_number: ['p'], email: ['e1', 'e1'] }, NOW, LATER + 1);
    store.upsertMember(audience, { email: ['e2'], phone_number: ['p'] }, NOW, LATER);
    expect(store.membership(audience)).toEqual({
      records: [
        { email: ['e1'], phone_number: ['p'] },
        { email: ['e2'], phone_number: ['p'] },
      ],
      identifiers: { email: ['e1', 'e2'], phone_number: ['p'] },
    });
    expect([...audience.members.records()].map((r) => r.times.expiresAt).sort()).toEqual([LATER, LATER + 1]);
  });

  it('Delete by any one identifier removes the whole record, and every record sharing it', () => {
    const { store, audience } = newAudience();
    store.upsertMember(audience, { email: ['e1'], handle: ['h1', 'h2'] }, NOW, LATER);
    store.upsertMember(audience, { email: ['e2'], phone_number: ['p'] }, NOW, LATER);
    store.upsertMember(audience, { email: ['e3'], phone_number: ['p'] }, NOW, LATER);
    store.deleteMember(audience, { handle: ['h2'] });
    expect(store.membership(audience).records).toEqual([
      { email: ['e2'], phone_number: ['p'] },
      { email: ['e3'], phone_number: ['p'] },
    ]);
    store.deleteMember(audience, { email: ['e2'] });
    expect(store.membership(audience).records).toEqual([{ email: ['e3'], phone_number: ['p'] }]);
    store.deleteMember(audience, { phone_number: ['p'] });
    expect(store.membership(audience)).toEqual({ records: [], identifiers: {} });
    expect(audience.members.indexSize).toBe(0);
  });

  it('matches identifiers per key: the same value under another key is another identifier', () => {
    const { store, audience } = newAudience();
    store.upsertMember(audience, { email: ['v'] }, NOW, LATER);
    store.deleteMember(audience, { handle: ['v'] });
    expect(store.membership(audience).records).toEqual([{ email: ['v'] }]);
  });

  it('agrees with a naive model over random Update/Delete sequences', () => {
    const key = fc.constantFrom('email', 'phone_number', 'handle');
    // Raw values and SHA-256 hex values (stored packed) both round-trip.
    const value = fc.constantFrom('a', 'b', sha('c'), sha('d'), 'x\u0000y');
    const user = fc.dictionary(key, fc.uniqueArray(value, { minLength: 1, maxLength: 2 }), { minKeys: 1 });
    const op = fc.record({ type: fc.constantFrom('Update', 'Delete'), user });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), (ops) => {
        const { store, audience } = newAudience();
        let model: Array<Record<string, string[]>> = [];
        const pairs = (u: Record<string, string[]>) =>
          Object.entries(u).flatMap(([k, vs]) => vs.map((v) => `${k}=${v}`));
        const canonical = (u: Record<string, string[]>) =>
          JSON.stringify(
            Object.fromEntries(
              Object.keys(u)
                .sort()
                .map((k) => [k, [...(u[k] ?? [])].sort()]),
            ),
          );
        for (const { type, user: u } of ops) {
          if (type === 'Update') {
            store.upsertMember(audience, u, NOW, LATER);
            if (!model.some((r) => canonical(r) === canonical(u))) model.push(u);
          } else {
            store.deleteMember(audience, u);
            const doomed = new Set(pairs(u));
            model = model.filter((r) => !pairs(r).some((p) => doomed.has(p)));
          }
        }
        const expected = model.map(canonical).sort();
        expect(store.membership(audience).records.map((r) => JSON.stringify(r))).toEqual(expected);
        // The index holds one entry per identifier of each remaining record.
        expect(audience.members.indexSize).toBe(model.reduce((n, r) => n + pairs(r).length, 0));
      }),
      { numRuns: 500 },
    );
  });

  it('keeps its index right through growth and tombstone sweeps', () => {
    const { store, audience } = newAudience();
    const user = (i: number) => ({
      email: [sha(`e${i}`)],
      ...(i % 3 === 0 ? { handle: [sha(`h${i}`)] } : {}),
    });
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 6000; i++) store.upsertMember(audience, user(i), NOW, LATER);
      for (let i = 0; i < 6000; i += 2) {
        store.deleteMember(audience, i % 3 === 0 ? { handle: [sha(`h${i}`)] } : { email: [sha(`e${i}`)] });
      }
    }
    expect(audience.members.size).toBe(3000);
    expect(audience.members.indexSize).toBe(3000 + 1000);
    const emails = store.membership(audience).identifiers.email ?? [];
    expect(emails).toEqual(Array.from({ length: 3000 }, (_, k) => sha(`e${2 * k + 1}`)).sort());
    for (let i = 1; i < 6000; i += 2) store.deleteMember(audience, { email: [sha(`e${i}`)] });
    expect(audience.members.size).toBe(0);
    expect(audience.members.indexSize).toBe(0);
  });

  it('sizes only active memberships carrying an active-user identifier, when that set is seeded', () => {
    const { store, audience } = newAudience();
    for (let i = 0; i < 5; i++) store.upsertMember(audience, { email: [`e${i}`] }, NOW, LATER);
    store.upsertMember(audience, { email: ['future'] }, LATER, LATER + 1);
    store.upsertMember(audience, { email: ['expired'] }, NOW - 2, NOW);
    store.processAudiences(NOW);
    expect(audience.size).toBe(5);
    store.seed({ activeUsers: ['e1', 'e3', 'future'] }, NOW);
    store.processAudiences(NOW);
    expect(audience.size).toBe(2);
  });

  it('survives serialization with records, index and id sequence', () => {
    const { store, audience } = newAudience();
    store.upsertMember(audience, { email: ['e1'], handle: ['h'] }, NOW, LATER);
    const copy = EmulatorStore.deserialize(JSON.parse(JSON.stringify(store.serialize())));
    const restored = copy.findAudience('abc', audience.id);
    expect(restored && copy.membership(restored)).toEqual(store.membership(audience));
    expect(copy.newAudienceId()).toBe(store.newAudienceId());
    copy.deleteMember(restored!, { handle: ['h'] });
    expect(copy.membership(restored!).records).toEqual([]);
  });
});
