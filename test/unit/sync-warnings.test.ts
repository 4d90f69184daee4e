import { describe, expect, it } from 'vitest';
import { activationIdFor } from '../../src/sync/activate.js';
import { parseSchedule, type Schedule } from '../../src/config/schedule.js';
import { generateSample } from '../../src/demo/sample-data.js';
import { activationWarnings, shortestInterval } from '../../src/sync/warnings.js';

const schedule = (text: string) => parseSchedule(text) as Schedule;
const HOUR = 3_600_000;

describe('schedule warnings', () => {
  it('finds the shortest gap between firings', () => {
    expect(shortestInterval(schedule('manual'))).toBeNull();
    expect(shortestInterval(schedule('every 6 hours'))).toBe(6 * HOUR);
    expect(shortestInterval(schedule('0 */6 * * *'))).toBe(6 * HOUR);
    expect(shortestInterval(schedule('0 0,22 * * *'))).toBe(2 * HOUR);
    expect(shortestInterval(schedule('*/15 * * * *'))).toBe(15 * 60_000);
    expect(shortestInterval(schedule('30 3 * * 1'))).toBe(24 * HOUR);
  });

  it('warns about small segments and schedules more frequent than X processes audiences', () => {
    expect(activationWarnings({ members: 5000, schedule: schedule('every 6 hours') })).toEqual([]);
    const warnings = activationWarnings({ members: 99, schedule: schedule('0 * * * *') });
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/99 members: X does not target an audience of fewer than 100/);
    expect(warnings[1]).toMatch(/more often than every 6 hours/);
  });
});

describe('activate ids and the demo sample', () => {
  it('names an activation <model>_<destination> within the id pattern', () => {
    expect(activationIdFor('vip_customers', 'x')).toBe('vip_customers_x');
    expect(activationIdFor('vip', 'X-Ads')).toBe('vip_x_ads');
    expect(activationIdFor('a'.repeat(62), 'x')).toHaveLength(62);
  });

  it('builds the same sample from the same seed, and another from another', () => {
    const a = generateSample(42, 200);
    expect(generateSample(42, 200)).toEqual(a);
    expect(generateSample(43, 200).customers[0]).not.toEqual(a.customers[0]);
    expect(a.customers.filter((c) => c.country === 'AU').length).toBeGreaterThan(0);
    expect(a.orders.some((o) => Number(o.amount) > 1000)).toBe(true);
  });
});
