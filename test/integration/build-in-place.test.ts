import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * Rebuilding dist/ must not pull it from under a CLI that is running it: the benchmark smoke test
 * rebuilds it while other test files run `tailor` subprocesses (scripts/build.mjs). So a rebuild of
 * the same sources leaves every file where it was (same inode, same mtime), replaces only what
 * changed, and removes only what the new build no longer produces.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DIST = join(ROOT, 'dist');

function build(): void {
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { stdio: 'pipe' });
}

describe('scripts/build.mjs', () => {
  it('rebuilds in place: unchanged files untouched, stale ones removed, the stamp renewed', () => {
    build();
    const main = join(DIST, 'cli', 'main.js');
    const before = statSync(main);
    const stale = join(DIST, 'chunks', `stale-${process.pid}.js`);
    writeFileSync(stale, 'export {};\n');
    const stampBefore = readFileSync(join(DIST, '.build-stamp'), 'utf8');

    build();

    const after = statSync(main);
    expect({ ino: after.ino, mtimeMs: after.mtimeMs }).toEqual({ ino: before.ino, mtimeMs: before.mtimeMs });
    expect(existsSync(stale)).toBe(false);
    expect(readFileSync(join(DIST, '.build-stamp'), 'utf8')).not.toBe(stampBefore);
  });
});
