/**
 * Micro-benchmark of member hashing (src/destinations/x-ads/identifiers.ts): CPU per member and per
 * identifier type, on members shaped like bench/people.ts's `people` rows (same expressions of the
 * key, computed here in JS instead of SQL). No warehouse, no HTTP: only normalization and SHA-256.
 *
 *   node --import tsx bench/hash-micro.ts [members=200000] [rounds=3]
 *
 * Each figure is the best of `rounds` timed passes over all members (after one warm-up pass), in µs
 * per member; a type's figure counts every member, including those whose value is null, so the
 * per-type figures add up to roughly the whole-member one.
 */
import { createHash } from 'node:crypto';
import { hashIdentifier, hashMember } from '../src/destinations/x-ads/identifiers.js';
import { PEOPLE_MAPPINGS } from './people.js';

const AREA_CODES = [212, 213, 305, 312, 415, 503, 617, 646, 702, 718, 773, 808, 917, 972];
const DOMAINS = ['gmail.com', 'yahoo.com', 'outlook.com', 'icloud.com', 'example.org'];

type Person = { email: string; phone: string | null; x_handle: string | null; device_id: string | null };

/** Member `k` of bench/people.ts's `personColumns`, before any edit. */
function person(k: number): Person {
  const area = AREA_CODES[Math.floor(k / 8_000_000) % AREA_CODES.length]!;
  const exchange = 200 + (Math.floor(k / 10_000) % 800);
  const line = String(k % 10_000).padStart(4, '0');
  const phone =
    k % 7 === 3
      ? null
      : k % 7 === 0
        ? `+1${area}${exchange}${line}`
        : k % 7 === 1
          ? `(${area}) ${exchange}-${line}`
          : `${area}.${exchange}.${line}`;
  const md5 = createHash('md5').update(`device-${k}`).digest('hex');
  const uuid = `${md5.slice(0, 8)}-${md5.slice(8, 12)}-${md5.slice(12, 16)}-${md5.slice(16, 20)}-${md5.slice(20, 32)}`;
  const device = [null, uuid.toUpperCase(), null, md5.slice(0, 16), null, uuid][k % 6]!;
  return {
    email: `${k % 11 === 0 ? ' ' : ''}${k % 4 === 0 ? 'Person.' : 'person.'}${k}@${DOMAINS[k % DOMAINS.length]}`,
    phone,
    x_handle: k % 5 === 1 || k % 5 === 2 ? null : `${k % 2 === 0 ? '@' : ''}user_${k}`,
    device_id: device,
  };
}

const members = Number(process.argv[2] ?? 200_000);
const rounds = Number(process.argv[3] ?? 3);
const people = Array.from({ length: members }, (_, i) => person(i + 1));
const options = { defaultRegion: 'US' };

/** Best-of-`rounds` µs per member of `pass`, after one untimed warm-up pass. */
function time(pass: () => number): number {
  let sink = pass();
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    sink += pass();
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1000 / members);
  }
  if (sink < 0) console.log(sink); // keeps the work observable
  return best;
}

const rows: Array<[string, number]> = [];
for (const [column, type] of Object.entries(PEOPLE_MAPPINGS)) {
  const key = column as keyof Person;
  rows.push([
    `${type} (${column})`,
    time(() => {
      let n = 0;
      for (const p of people) if (hashIdentifier(type, p[key], options).ok) n++;
      return n;
    }),
  ]);
}
const member = time(() => {
  let n = 0;
  for (const p of people) n += Object.keys(hashMember(p, PEOPLE_MAPPINGS, options).hashes).length;
  return n;
});

console.log(`${members} members, best of ${rounds}, Node ${process.version}`);
for (const [label, us] of rows) console.log(`${label.padEnd(28)} ${us.toFixed(2).padStart(7)} µs/member`);
console.log(`${'hashMember (all four)'.padEnd(28)} ${member.toFixed(2).padStart(7)} µs/member`);
console.log(
  `${''.padEnd(28)} ${Math.round(1e6 / member)
    .toLocaleString('en-US')
    .padStart(7)} members/s`,
);
