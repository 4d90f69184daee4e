import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isSha256Hex, sha256HexToBase64url } from '../../src/emulator/sha256-hex.js';

const REFERENCE = /^[0-9a-f]{64}$/;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** Near misses of a valid value: every position replaced by characters around the hex ranges. */
function nearMisses(value: string): string[] {
  const out = ['', value.slice(1), `${value}0`, value.toUpperCase(), ` ${value.slice(1)}`];
  for (let i = 0; i < 64; i += 7) {
    for (const c of ['/', ':', '@', 'A', 'F', 'G', '`', 'g', 'z', '\u00e9', '\u0660', '\ud83d']) {
      out.push(value.slice(0, i) + c + value.slice(i + 1));
    }
  }
  out.push(value.slice(0, 63) + 'G', value.slice(0, 63) + '\u0100');
  return out;
}

describe('emulator SHA-256 hex checks and packing', () => {
  it('agrees with /^[0-9a-f]{64}$/ and Buffer base64url on hashes and near misses', () => {
    const values: string[] = [];
    for (let i = 0; i < 200; i++) values.push(sha(`v${i}`), randomBytes(32).toString('hex'));
    values.push('0'.repeat(64), 'f'.repeat(64), 'a'.repeat(64));
    for (const value of [...values, ...values.slice(0, 20).flatMap(nearMisses)]) {
      const valid = REFERENCE.test(value);
      expect(isSha256Hex(value), value).toBe(valid);
      expect(sha256HexToBase64url(value), value).toBe(
        valid ? Buffer.from(value, 'hex').toString('base64url') : undefined,
      );
    }
  });
});
