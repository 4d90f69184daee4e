import { spawn } from 'node:child_process';
import { appendFile, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dbt-core + dbt-postgres from the pinned venv that scripts/dbt-venv.sh makes (global setup runs it). */
export const DBT = fileURLToPath(new URL('../../.venv-dbt/bin/dbt', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../fixtures/dbt', import.meta.url));

/** Copies the fixture dbt project into `dir` (its own target/ and logs/ then stay out of the repo). */
export async function copyDbtProject(dir: string): Promise<string> {
  await cp(FIXTURE, dir, { recursive: true });
  return dir;
}

/** The example project with a dbt model (examples/dbt), to copy before running it. */
export const DBT_EXAMPLE = fileURLToPath(new URL('../../examples/dbt', import.meta.url));

/** Appends YAML to a file of the copied dbt project (a test's own variant of the fixture). */
export async function appendToDbtFile(dbtDir: string, file: string, text: string): Promise<void> {
  await appendFile(join(dbtDir, file), text);
}

/**
 * Runs the real dbt in `dbtDir` against the test Postgres, writing its tables into `schema`. Rejects
 * with dbt's output when it exits non-zero (unless `allowFailure`).
 */
export function runDbt(
  dbtDir: string,
  args: readonly string[],
  schema: string,
  options: { allowFailure?: boolean; env?: Record<string, string> } = {},
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(DBT, [...args, '--profiles-dir', dbtDir, '--project-dir', dbtDir], {
      cwd: dbtDir,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        TZ: 'UTC',
        TAILOR_DBT_SCHEMA: schema,
        DBT_SEND_ANONYMOUS_USAGE_STATS: 'false',
        DBT_USE_COLORS: 'false',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0 && !options.allowFailure)
        reject(new Error(`dbt ${args.join(' ')} exited ${code}:\n${output}`));
      else resolve({ code, output });
    });
  });
}
