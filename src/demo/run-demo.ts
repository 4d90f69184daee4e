import { join } from 'node:path';
import { main } from '../cli/main.js';
import type { CliIo } from '../cli/output.js';
import { loadProject, type Project } from '../config/load-project.js';
import { EMBEDDED_API_URL } from '../destinations/x-ads/x-ads-config.js';
import { type RunningEmulator, startEmulator } from '../emulator/index.js';
import { pgliteDataDir } from '../sources/pglite/pglite-source.js';
import { churnSample, seedSample, withPglite } from './demo-warehouse.js';

/**
 * The embedded demo behind `npm start`: the example project at the repository root, its PGlite
 * warehouse seeded on first use, then `tailor sync --all`, in process. Its X destination says
 * `api_url: embedded`, so the CLI runs the X Ads emulator in this process, its state kept in
 * `.tailor/emulator.json`; a project pointing at a loopback URL instead gets an emulator started here
 * on that port.
 */

export interface DemoOptions {
  projectDir: string;
  /** Extra arguments for `tailor sync --all` (e.g. `--json`). */
  args?: readonly string[];
  io?: Partial<CliIo>;
  env?: Readonly<Record<string, string | undefined>>;
  /** Customers in a fresh sample (the demo's default otherwise; tests use fewer). */
  customers?: number;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

function stderrOf(options: DemoOptions): NodeJS.WritableStream {
  return options.io?.stderr ?? process.stderr;
}

/**
 * Seeds the PGlite warehouse of the project if it is one and has no sample yet, then runs `work` with
 * the data directory still open: the PGlite source of the run shares this process's instance (opening
 * and closing PGlite costs seconds).
 */
async function withWarehouse<T>(options: DemoOptions, project: Project, work: () => Promise<T>): Promise<T> {
  const warehouse = project.config.warehouse;
  if (warehouse.type !== 'pglite') return work();
  const dataDir = pgliteDataDir(warehouse, project.dir);
  return withPglite(dataDir, async (db) => {
    const result = await seedSample(
      db,
      options.customers === undefined ? {} : { customers: options.customers },
    );
    if (result.seeded) {
      stderrOf(options).write(
        `demo: seeded the warehouse in ${dataDir} with ${result.customers} customers and ${result.orders} orders\n`,
      );
    }
    return work();
  });
}

/** Starts the emulator where the project's X destinations point, when they point at this machine. */
async function startLocalEmulators(
  projectDir: string,
  apiUrls: readonly string[],
  stderr: NodeJS.WritableStream,
): Promise<RunningEmulator[]> {
  const running: RunningEmulator[] = [];
  for (const apiUrl of new Set(apiUrls)) {
    const url = new URL(apiUrl);
    if (url.protocol !== 'http:' || !LOOPBACK.has(url.hostname)) continue;
    const port = Number(url.port || 80);
    const host = url.hostname === 'localhost' ? '127.0.0.1' : url.hostname.replace(/^\[|\]$/g, '');
    try {
      running.push(
        await startEmulator({
          port,
          host,
          statePath: join(
            projectDir,
            '.tailor',
            running.length === 0 ? 'emulator.json' : `emulator-${port}.json`,
          ),
        }),
      );
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
        stderr.write(
          `demo: ${url.host} is already in use; syncing to whatever listens there (an emulator?)\n`,
        );
        continue;
      }
      throw error;
    }
  }
  return running;
}

/** Runs the demo; returns the exit code of `tailor sync --all`. */
export async function runDemo(options: DemoOptions): Promise<number> {
  const env = options.env ?? process.env;
  const args = ['sync', '--all', '--project', options.projectDir, ...(options.args ?? [])];
  let project: Project;
  try {
    project = await loadProject(options.projectDir, env);
  } catch {
    // A broken project: let the CLI report it the way it reports everything.
    return main(args, { ...options.io, env });
  }
  return withWarehouse(options, project, async () => {
    // `api_url: embedded` (the example project's default): the CLI starts the emulator itself.
    const apiUrls = Object.values(project.config.destinations)
      .map((destination) => destination.api_url)
      .filter((apiUrl) => apiUrl !== EMBEDDED_API_URL);
    const emulators = await startLocalEmulators(project.dir, apiUrls, stderrOf(options));
    try {
      return await main(args, { ...options.io, env });
    } finally {
      for (const emulator of emulators) await emulator.close();
    }
  });
}

/** `npm run demo:churn`: changes the sample deterministically and says what it changed. */
export async function runChurn(options: Omit<DemoOptions, 'args'>): Promise<number> {
  const env = options.env ?? process.env;
  const project = await loadProject(options.projectDir, env);
  const warehouse = project.config.warehouse;
  if (warehouse.type !== 'pglite') {
    stderrOf(options).write('demo: churn only changes the embedded (pglite) sample warehouse\n');
    return 2;
  }
  const summary = await withWarehouse(options, project, () =>
    withPglite(pgliteDataDir(warehouse, project.dir), (db) => churnSample(db)),
  );
  (options.io?.stdout ?? process.stdout).write(
    `demo churn #${summary.generation}: ${summary.removed} customers left, ${summary.added} joined, ` +
      `${summary.identifiersChanged} changed an email, phone or device, ${summary.caseOnly} retyped their email in capitals, ` +
      `${summary.newVips} placed an order over $1,000.\nRun \`npm start\` to sync the changes.\n`,
  );
  return 0;
}
