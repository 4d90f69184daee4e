import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Builds dist/ once before the suite, so the CLI subprocesses the tests spawn run the code under
 * test without compiling TypeScript at every start (bin/tailor.js would fall back to src/ through
 * tsx if the build were stale, which is correct but slow). Then makes the venv of the local BigQuery
 * engine if it is missing or its pins changed (about a minute the first time on a new machine,
 * nothing after), and the venv of dbt-core + dbt-postgres the dbt tests build their project with, so `npm test` works on a fresh clone as `.ci/run` does. Debian's Chromium, for the browser tests, is
 * installed the same way when missing.
 */
export default function setup(): void {
  execFileSync(process.execPath, [fileURLToPath(new URL('../scripts/build.mjs', import.meta.url))], {
    stdio: 'inherit',
  });
  execFileSync('bash', [fileURLToPath(new URL('../scripts/bqemulator-venv.sh', import.meta.url))], {
    stdio: 'inherit',
  });
  execFileSync('bash', [fileURLToPath(new URL('../scripts/dbt-venv.sh', import.meta.url))], {
    stdio: 'inherit',
  });
  execFileSync('bash', [fileURLToPath(new URL('../scripts/chromium.sh', import.meta.url))], {
    stdio: 'inherit',
  });
}
