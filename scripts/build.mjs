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
//
// Other processes may be running dist/ while it is rebuilt: the test suite's CLI subprocesses while the
// benchmark smoke test rebuilds it, a scheduler while a developer runs the benchmark. So the build
// never empties dist/: it writes each file that changed through a temporary file and a rename (a
// reader sees the old file or the new one, never half of one), leaves identical files alone, and only
// then removes what the previous build left and this one no longer produces. Emptying dist/ first made
// a `tailor schedule --help` started in that window exit 1 (CI, 2026-11-22).
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const BUNDLED = new Set(['kysely', 'zod', 'yaml', 'libphonenumber-js', 'commander']);

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
  write: false,
});

/** Replaces `path` by `contents` atomically (rename), unless it already holds exactly that. */
function writeAtomically(path, contents) {
  if (existsSync(path) && readFileSync(path).equals(contents)) return;
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, contents);
  renameSync(temporary, path);
}

function filesUnder(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(dir, entry.name)) : [join(dir, entry.name)],
  );
}

const stamp = join(dist, '.build-stamp');
const produced = new Set([stamp]);
// Chunks first, entry points last: chunk names carry a content hash, so no file of the previous build
// refers to a new chunk, and a new entry point only appears once every chunk it imports is there.
const isChunk = (file) => file.path.startsWith(join(dist, 'chunks'));
const chunksFirst = [...result.outputFiles].sort((a, b) => Number(!isChunk(a)) - Number(!isChunk(b)));
for (const file of chunksFirst) {
  produced.add(file.path);
  writeAtomically(file.path, Buffer.from(file.contents));
}
for (const path of filesUnder(dist)) if (!produced.has(path)) rmSync(path, { force: true });
writeAtomically(stamp, Buffer.from(`${new Date().toISOString()}\n`));
const files = Object.keys(result.metafile.outputs).filter((file) => file.endsWith('.js')).length;
console.error(`built ${files} files into dist/`);
