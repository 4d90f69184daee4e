// Transpiles src/**/*.ts to dist/ (one file each, no bundling) so the CLI starts without compiling
// TypeScript on every invocation. Run by `npm ci`/`npm install` (prepare) and before the tests.
// bin/tailor.js falls back to running src/ through tsx whenever dist/ is missing or older than src/.
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const src = join(root, 'src');
const dist = join(root, 'dist');

const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? walk(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  );

rmSync(dist, { recursive: true, force: true });
const entryPoints = walk(src);
buildSync({
  entryPoints,
  outdir: dist,
  outbase: src,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  bundle: false,
  sourcemap: 'linked',
  logLevel: 'warning',
});
writeFileSync(join(dist, '.build-stamp'), `${new Date().toISOString()}\n`);
console.error(`built ${entryPoints.length} files into dist/`);
