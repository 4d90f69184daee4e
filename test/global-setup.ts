import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Builds dist/ once before the suite, so the CLI subprocesses the tests spawn run the code under
 * test without compiling TypeScript at every start (bin/tailor.js would fall back to src/ through
 * tsx if the build were stale, which is correct but slow).
 */
export default function setup(): void {
  execFileSync(process.execPath, [fileURLToPath(new URL('../scripts/build.mjs', import.meta.url))], {
    stdio: 'inherit',
  });
}
