import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/cli/logger.js';
import { colorEnabled, formatCount, formatDuration, formatInstant, Scrubber } from '../../src/cli/output.js';
import { createProgressView } from '../../src/cli/progress.js';
import type { SyncProgress } from '../../src/sync/types.js';

/** A stream that keeps what is written, and says it is a terminal when asked to. */
function capture(isTTY: boolean): Writable & { isTTY: boolean; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(String(chunk));
      callback();
    },
  }) as Writable & { isTTY: boolean; text: () => string };
  stream.isTTY = isTTY;
  stream.text = () => chunks.join('');
  return stream;
}

const ESC = '\u001b[';

describe('colour', () => {
  it('only on a terminal, and never when NO_COLOR is set or the terminal is dumb', () => {
    expect(colorEnabled({ isTTY: true }, {})).toBe(true);
    expect(colorEnabled({ isTTY: false }, {})).toBe(false);
    expect(colorEnabled({}, {})).toBe(false);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colorEnabled({ isTTY: true }, { NO_COLOR: '' })).toBe(true); // no-color.org: set and non-empty
    expect(colorEnabled({ isTTY: true }, { TERM: 'dumb' })).toBe(false);
  });

  it('log lines for people carry no escape codes unless colour is on', () => {
    for (const color of [false, true]) {
      const stderr = capture(true);
      const logger = createLogger({
        debug: false,
        format: 'pretty',
        color,
        stderr,
        scrubber: new Scrubber(),
      });
      logger.warn({ activation: 'vip_x' }, 'run held by a safety rule');
      const text = stderr.text();
      expect(text).toContain('run held by a safety rule');
      expect(text).not.toMatch(/^\{"level"/m);
      expect(text.includes(ESC)).toBe(color);
    }
  });

  it('JSON log lines when asked', () => {
    const stderr = capture(false);
    const logger = createLogger({
      debug: false,
      format: 'json',
      color: false,
      stderr,
      scrubber: new Scrubber(),
    });
    logger.warn('held');
    expect(JSON.parse(stderr.text())).toMatchObject({ level: 40, msg: 'held' });
  });
});

describe('progress', () => {
  const event = (phase: SyncProgress['phase'], done: number, total = 1000): SyncProgress => ({
    activationId: 'vip_x',
    phase,
    done,
    total,
  });

  /** Every number on every line of a line-view run, in order. */
  const numbersOf = (text: string, label: string) =>
    text
      .split('\n')
      .map((line) => new RegExp(`${label} ([\\d,]+)`).exec(line)?.[1])
      .filter((n): n is string => n !== undefined)
      .map((n) => Number(n.replaceAll(',', '')));

  it('never shows a count going backwards while commits trail sends', () => {
    const stderr = capture(false);
    const view = createProgressView(stderr, ['vip_x'], { interactive: false, dryRun: false });
    view.onProgress(event('snapshot', 0));
    for (const [phase, done] of [
      ['deliver', 400],
      ['deliver', 800],
      ['commit', 400],
      ['deliver', 1000],
      ['commit', 800],
      ['commit', 1000],
      ['done', 1000],
    ] as const)
      view.onProgress(event(phase, done));
    view.finish([{ activationId: 'vip_x', status: 'succeeded' }]);
    const text = stderr.text();
    for (const label of ['sent', 'committed']) {
      const numbers = numbersOf(text, label);
      expect(numbers.length, text).toBeGreaterThan(1);
      expect(numbers, text).toEqual([...numbers].sort((a, b) => a - b));
    }
    expect(text).toMatch(/^vip_x: done \(1,000\/1,000\)$/m);
  });

  it('says a held plan would be held, never "done"', () => {
    const stderr = capture(false);
    const view = createProgressView(stderr, ['vip_x'], { interactive: false, dryRun: true });
    view.onProgress(event('snapshot', 0, 120));
    view.onProgress(event('done', 120, 120));
    view.finish([{ activationId: 'vip_x', status: 'held' }]);
    expect(stderr.text()).not.toMatch(/done/);
    expect(stderr.text()).toMatch(/^vip_x: would be held \(120\/120 counted, nothing sent\)$/m);
  });

  it('ends a failed run with what was committed, not a full bar', () => {
    const stderr = capture(false);
    const view = createProgressView(stderr, ['vip_x'], { interactive: false, dryRun: false });
    view.onProgress(event('snapshot', 0));
    view.onProgress(event('deliver', 1000));
    view.onProgress(event('commit', 300));
    view.onProgress(event('done', 300));
    view.finish([{ activationId: 'vip_x', status: 'failed' }]);
    expect(stderr.text()).toMatch(/^vip_x: failed \(300\/1,000 committed\)$/m);
  });
});

describe('numbers and times for people', () => {
  it('formats counts, instants and durations one way everywhere', () => {
    expect(formatCount(1234567)).toBe('1,234,567');
    expect(formatCount(0)).toBe('0');
    expect(formatInstant(new Date('2026-01-01T06:00:05.123Z'))).toBe('2026-01-01 06:00:05Z');
    expect(formatInstant(null)).toBe('-');
    expect(formatDuration(400)).toBe('0.4s');
    expect(formatDuration(54_000)).toBe('54.0s');
    expect(formatDuration(725_000)).toBe('12m05s');
    expect(formatDuration(3 * 3_600_000 + 2 * 60_000)).toBe('3h02m');
  });
});
