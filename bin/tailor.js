#!/usr/bin/env node
// Entry point of the `tailor` CLI. It runs the transpiled dist/ (built by `npm ci` through the
// prepare script) when that is at least as new as every file in src/, and otherwise runs src/
// through tsx's loader, so an edit to src/ is never hidden behind a stale build.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';

const root = fileURLToPath(new URL('..', import.meta.url));

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function distIsFresh() {
  if (process.env.TAILOR_FROM_SOURCE) return false;
  const stamp = join(root, 'dist', '.build-stamp');
  return existsSync(stamp) && statSync(stamp).mtimeMs >= newestMtime(join(root, 'src'));
}

// Memory: a run holds a few bounded batches (a live heap under ~100 MB whatever the segment's size),
// but V8's default heap growth lets garbage reach several times that between full collections: a
// 1M-member initial load sawed between 250 and 476 MB of RSS. Letting the heap grow 25% before the
// next full collection keeps it flat near 200-230 MB (bench/RESULTS.md), for a little more GC time.
// A heap policy given in NODE_OPTIONS wins. https://nodejs.org/api/v8.html#v8setflagsfromstringflags
if (!/--(max-old-space-size|heap-growing-percent)/.test(process.env.NODE_OPTIONS ?? '')) {
  v8.setFlagsFromString('--heap-growing-percent=25');
}

let main;
if (distIsFresh()) {
  ({ main } = await import('../dist/cli/main.js'));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
process.exitCode = await main(process.argv.slice(2));
