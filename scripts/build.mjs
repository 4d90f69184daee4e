// Builds dist/ from src/ so the CLI starts without compiling TypeScript on every invocation. Run by
// `npm ci`/`npm install` (prepare) and before the tests. bin/tailor.js falls back to running src/
// through tsx whenever dist/ is missing or older than src/.
//
// One ES module bundle with code splitting (each command and each warehouse kind stays a chunk that
// loads on demand). The small pure-JS libraries on every run's path are bundled in: loading them as
// hundreds of separate ES modules cost more than the work of a small run (kysely alone 160 ms);
// measured `tailor sync --help`: 0.66-0.85 s as one file per module, 0.33-0.45 s bundled. Packages
// with native parts, workers, WASM or data files of their own (pg, pino, PGlite, the cloud SDKs) stay
// external and load from node_modules as usual.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const BUNDLED = new Set(['kysely', 'zod', 'yaml', 'libphonenumber-js', 'commander']);

rmSync(dist, { recursive: true, force: true });
const result = buildSync({
  entryPoints: { 'cli/main': join(root, 'src', 'cli', 'main.ts') },
  outdir: dist,
  bundle: true,
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: Object.keys(pkg.dependencies).filter((name) => !BUNDLED.has(name)),
  // Bundled CommonJS code may call require(); give the ES module one.
  banner: {
    js: "import { createRequire as __tailorRequire } from 'node:module';\nconst require = __tailorRequire(import.meta.url);",
  },
  sourcemap: 'linked',
  metafile: true,
  logLevel: 'warning',
});
writeFileSync(join(dist, '.build-stamp'), `${new Date().toISOString()}\n`);
const files = Object.keys(result.metafile.outputs).filter((file) => file.endsWith('.js')).length;
console.error(`built ${files} files into dist/`);
