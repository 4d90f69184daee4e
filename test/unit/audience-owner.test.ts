import { describe, expect, it } from 'vitest';
import { readOwnerMark, withOwnerMark } from '../../src/destinations/audience-owner.js';

describe('the owner mark in an audience description', () => {
  it('is read from a line of its own, wherever it is', () => {
    expect(readOwnerMark('tailor: 0a1b2c')).toBe('0a1b2c');
    expect(readOwnerMark('Customers with a big order\ntailor: 0a1b2c')).toBe('0a1b2c');
    expect(readOwnerMark('tailor: 0a1b2c  \nmore text')).toBe('0a1b2c');
    expect(readOwnerMark(null)).toBeNull();
    expect(readOwnerMark('')).toBeNull();
    expect(readOwnerMark('made by tailor: 0a1b2c')).toBeNull(); // not a line of its own
    expect(readOwnerMark('tailor: NOT-AN-ID')).toBeNull();
  });

  it('is written as the last line, keeping the user text and replacing an earlier mark', () => {
    expect(withOwnerMark('Customers with a big order', 'abc123')).toBe(
      'Customers with a big order\ntailor: abc123',
    );
    expect(withOwnerMark(null, 'abc123')).toBe('tailor: abc123');
    expect(withOwnerMark('  ', 'abc123')).toBe('tailor: abc123');
    expect(withOwnerMark('VIPs\ntailor: old999\n', 'abc123')).toBe('VIPs\ntailor: abc123');
    expect(withOwnerMark('tailor: old999\nVIPs', 'abc123')).toBe('VIPs\ntailor: abc123');
    expect(readOwnerMark(withOwnerMark('VIPs\ntailor: old999', 'abc123'))).toBe('abc123');
  });

  it('round-trips: writing an owner then reading gives it back, and writing twice changes nothing', () => {
    const once = withOwnerMark('Gold members (spend > $1,000)', 'f00d');
    expect(readOwnerMark(once)).toBe('f00d');
    expect(withOwnerMark(once, 'f00d')).toBe(once);
  });

  it('refuses an owner id that would not read back', () => {
    expect(() => withOwnerMark('x', 'Not An Id')).toThrow(TypeError);
  });
});
