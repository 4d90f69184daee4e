import { type FSWatcher, watch } from 'node:fs';
import { join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { AlertNotifier } from '../../alerts/alert-delivery.js';
import { withAlerts } from '../../alerts/alerting-engine.js';
import { CONFIG_FILE, type Project } from '../../config/load-project.js';
import { type ConfigIssue, errorMessage, formatConfigIssue } from '../../errors.js';
import { dbtPaths, readRunResults, selectAfterDbt } from '../../models/dbt-manifest.js';
import { SchedulerMetrics } from '../../scheduler/metrics.js';
import { type OpsServer, startOpsServer } from '../../scheduler/ops-server.js';
import { Scheduler } from '../../scheduler/scheduler.js';
import { openSyncEngine } from '../../sync/index.js';
import { type CommandContext, withExamples, withGlobalOptions } from '../context.js';
import { commandLineError, EXIT } from '../exit-codes.js';
import type { Wrap } from './index.js';
import { DEFAULT_UI_PORT, startUi, uiPort } from './ui.js';
import type { UiServer } from '../../ui/server.js';

/** The default port of `/healthz` and `/metrics` (documented in docs/scheduler.md). */
export const DEFAULT_OPS_PORT = 9464;

interface ScheduleOptions {
  concurrency: number;
  maxFailures: number;
  shutdownTimeout: number;
  backoff: number;
  backoffMax: number;
  port: number;
  host: string;
  watch: boolean;
  ui: boolean;
  uiPort: number;
  uiHost: string;
}

const integer = (min: number) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new InvalidArgumentError(`must be a whole number of at least ${min}`);
  return n;
};

const seconds = (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError('must be a number of seconds (e.g. 30 or 0.5)');
  return n;
};

const port = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535)
    throw new InvalidArgumentError('must be a port from 0 to 65535');
  return n;
};

/** Watches tailor.yml and models/ and calls `onChange` once a burst of edits settles. */
function watchProject(ctx: CommandContext, onChange: () => void): { close(): void } {
  let timer: NodeJS.Timeout | undefined;
  const changed = () => {
    clearTimeout(timer);
    // Editors write a file in several steps (truncate, write, rename); wait for the last one.
    timer = setTimeout(onChange, 300);
  };
  const watchers: FSWatcher[] = [];
  const add = (path: string, filter?: (file: string | null) => boolean) => {
    try {
      const watcher = watch(path, (_event, file) => {
        if (!filter || filter(file)) changed();
      });
      watcher.on('error', (error) =>
        ctx.logger.warn({ err: { message: errorMessage(error) } }, 'file watch failed'),
      );
      watchers.push(watcher);
    } catch (error) {
      ctx.logger.warn({ path, err: { message: errorMessage(error) } }, 'cannot watch for changes');
    }
  };
  // The folder, not the file: an editor that saves by renaming would leave a file watch behind.
  add(ctx.projectDir, (file) => file === CONFIG_FILE);
  add(join(ctx.projectDir, 'models'));
  return {
    close() {
      clearTimeout(timer);
      for (const watcher of watchers) watcher.close();
    },
  };
}

/**
 * `schedule: after dbt`: watches the dbt project's target/ for a new run_results.json and hands the
 * scheduler the activations (of that schedule) whose dbt models the run rebuilt successfully, with the
 * time dbt wrote the file: one that already ran since (here or in another worker) is skipped, so a
 * dbt run is synced once. Looked at once at start too, for a dbt run that finished while no scheduler
 * was up.
 */
function watchDbtRuns(
  ctx: CommandContext,
  project: () => Project,
  runAfter: (ids: readonly string[], at: Date) => void,
): { close(): void } | undefined {
  const first = project();
  const wanted = (p: Project) =>
    Object.entries(p.config.activations).filter(([, a]) => /^after\s+dbt$/i.test(a.schedule?.trim() ?? ''));
  if (first.config.models_from !== 'dbt' || wanted(first).length === 0) return undefined;
  const log = ctx.logger.child({ watcher: 'dbt' });
  let seen = '';
  const look = async () => {
    const p = project();
    const config = p.config.dbt ?? { project_dir: '.', target_path: 'target' };
    const issues: ConfigIssue[] = [];
    const results = await readRunResults(p.dir, config, issues);
    if (!results) {
      for (const issue of issues) log.warn(formatConfigIssue(issue));
      return;
    }
    const key = `${results.invocationId} ${results.generatedAt}`;
    if (key === seen || !results.generatedAt) return;
    seen = key;
    const selection = selectAfterDbt(Object.fromEntries(wanted(p)), p.models, results);
    log.info(
      { dbtInvocation: results.invocationId, run: selection.run, skipped: selection.skipped },
      `dbt run found: ${selection.run.length} activation(s) to sync`,
    );
    runAfter(selection.run, new Date(results.generatedAt));
  };
  const check = () =>
    void look().catch((error: unknown) =>
      log.error({ err: { message: errorMessage(error) } }, 'could not read the dbt run results'),
    );
  const targetDir = dbtPaths(
    first.dir,
    first.config.dbt ?? { project_dir: '.', target_path: 'target' },
  ).targetDir;
  let timer: NodeJS.Timeout | undefined;
  let watcher: FSWatcher | undefined;
  try {
    // The folder, not the file: dbt replaces run_results.json at the end of each invocation.
    watcher = watch(targetDir, (_event, file) => {
      if (file !== 'run_results.json') return;
      clearTimeout(timer);
      timer = setTimeout(check, 300);
    });
    watcher.on('error', (error) => log.warn({ err: { message: errorMessage(error) } }, 'dbt watch failed'));
  } catch (error) {
    log.warn(
      { path: targetDir, err: { message: errorMessage(error) } },
      'cannot watch the dbt target directory (run dbt once first); `after dbt` activations will not run',
    );
  }
  check();
  return {
    close() {
      clearTimeout(timer);
      watcher?.close();
    },
  };
}

async function runSchedule(ctx: CommandContext, options: ScheduleOptions): Promise<number> {
  const project = await ctx.project();
  const logger = ctx.logger;
  const metrics = new SchedulerMetrics();
  // The alerts of the configuration generation in force (a reload brings its own).
  let notifier = new AlertNotifier(project.config.alerts, { logger });
  let current = project;
  const scheduler = new Scheduler({
    openEngine: async (p) => {
      const engine = await openSyncEngine(p, { logger, observer: metrics.observer });
      notifier = new AlertNotifier(p.config.alerts, { logger });
      current = p;
      return withAlerts(engine, notifier, {
        logger,
        onMatchRate: (id, rate) => metrics.recordMatchRate(id, rate),
      });
    },
    // A pause is a state change of its own: the tick that pauses an activation says so, once.
    onTick: (event) => {
      if ((event.outcome !== 'ran' && event.outcome !== 'error') || !event.paused) return;
      const report = event.outcome === 'ran' ? event.report : undefined;
      void notifier.notify([
        {
          kind: 'activation_paused',
          activationId: event.activationId,
          message: `paused after repeated failed runs (last: ${report?.error ?? (event.outcome === 'error' ? event.error : 'no reason given')}); it resumes after a successful \`tailor sync\` or a config change`,
          runId: report?.runId ?? null,
          audienceId: report?.audienceId ?? null,
          at: new Date(),
        },
      ]);
    },
    logger,
    metrics,
    concurrency: options.concurrency,
    maxFailures: options.maxFailures,
    shutdownTimeoutMs: options.shutdownTimeout * 1000,
    backoff: {
      initialMs: options.backoff * 1000,
      maxMs: Math.max(options.backoffMax, options.backoff) * 1000,
    },
  });

  let server: OpsServer;
  try {
    server = await startOpsServer({
      host: options.host,
      port: options.port,
      metrics,
      health: () => scheduler.health(),
      logger,
    });
  } catch (error) {
    // The address of /healthz and /metrics comes from --host and --port, never from tailor.yml.
    const code = (error as NodeJS.ErrnoException).code;
    const address = `${options.host}:${options.port}`;
    if (code === 'EADDRINUSE')
      throw commandLineError(`cannot listen on ${address}: another process already listens there`, {
        option: '--port',
        hint: 'choose another port with --port (0 picks a free one), or stop the other process',
      });
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAI_AGAIN')
      throw commandLineError(`cannot listen on ${address}: no such address on this machine`, {
        option: '--host',
        hint: 'give --host an address of this machine (127.0.0.1 by default)',
      });
    throw commandLineError(`cannot listen on ${address}: ${errorMessage(error)}`, {
      option: '--port',
      hint: 'choose another port with --port (0 picks a free one)',
    });
  }

  let stopRequests = 0;
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((resolve) => (resolveStopped = resolve));
  const stop = (why: string) => {
    stopRequests++;
    if (stopRequests === 1) {
      logger.info(
        { signal: why },
        'stopping: finishing in-flight runs (send the signal again to abort them now)',
      );
      void scheduler.stop().then(resolveStopped);
    } else {
      logger.warn({ signal: why }, 'aborting in-flight runs now');
      scheduler.abortInFlight();
    }
  };
  const reload = (why: string) => {
    if (scheduler.stopping) return;
    logger.info({ trigger: why }, 'reloading the configuration');
    void scheduler.reload(() => ctx.reloadProject());
  };
  const onTerm = () => stop('SIGTERM');
  const onInt = () => stop('SIGINT');
  const onHup = () => reload('SIGHUP');
  const onAbort = () => stop('abort');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);
  ctx.signal.addEventListener('abort', onAbort);
  const watcher = options.watch ? watchProject(ctx, () => reload('watch')) : undefined;
  let ui: UiServer | undefined;
  let dbtWatcher: { close(): void } | undefined;

  try {
    // The UI writes tailor.yml (Activate, Pause/Resume): the schedule follows at once, --watch or not.
    if (options.ui)
      ui = await startUi(ctx, {
        host: options.uiHost,
        port: options.uiPort,
        onConfigWritten: () => reload('ui'),
        optionNames: { port: '--ui-port', host: '--ui-host' },
      });
    try {
      await scheduler.start(project);
    } catch (error) {
      await scheduler.stop();
      throw error;
    }
    logger.info(
      {
        listen: server.url,
        port: server.port,
        concurrency: options.concurrency,
        maxFailures: options.maxFailures,
        watch: options.watch,
        ...(ui ? { ui: ui.url } : {}),
      },
      `scheduler running; health at ${server.url}/healthz, metrics at ${server.url}/metrics${ui ? `; web UI at ${ui.url}` : ''}`,
    );
    dbtWatcher = watchDbtRuns(
      ctx,
      () => current,
      (ids, at) => scheduler.runAfter(ids, at),
    );
    if (ctx.signal.aborted) stop('abort');
    await stopped;
    return EXIT.ok;
  } finally {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    process.off('SIGHUP', onHup);
    ctx.signal.removeEventListener('abort', onAbort);
    watcher?.close();
    await ui?.close({ abort: true });
    dbtWatcher?.close();
    await server.close();
  }
}

export function defineSchedule(program: Command, wrap: Wrap): void {
  withExamples(withGlobalOptions(program.command('schedule')), [
    'tailor schedule',
    'tailor schedule --concurrency 2 --port 0 --watch',
  ])
    .description(
      'run every enabled activation at its own frequency until stopped (SIGTERM/SIGINT), SIGHUP reloads',
    )
    .option('--concurrency <n>', 'activations run at once by this worker', integer(1), 4)
    .option('--max-failures <n>', 'pause an activation after this many failed runs in a row', integer(1), 5)
    .option(
      '--shutdown-timeout <seconds>',
      'on SIGTERM/SIGINT, wait this long for in-flight runs before aborting them',
      seconds,
      30,
    )
    .option(
      '--backoff <seconds>',
      'wait after a failed run before the next attempt (doubles each time)',
      seconds,
      30,
    )
    .option(
      '--backoff-max <seconds>',
      'the longest wait between attempts of a failing activation',
      seconds,
      3600,
    )
    .option('--port <port>', 'port of /healthz and /metrics (0 picks a free one)', port, DEFAULT_OPS_PORT)
    .option('--host <address>', 'address of /healthz and /metrics (loopback unless you open it)', '127.0.0.1')
    .option('--watch', 'reload when tailor.yml or models/ change', false)
    .option('--ui', 'serve the web UI too (as `tailor ui` does)', false)
    .option('--ui-port <port>', 'port of the web UI (0 picks a free one)', uiPort, DEFAULT_UI_PORT)
    .option(
      '--ui-host <address>',
      'address of the web UI (any but loopback needs TAILOR_UI_TOKEN)',
      '127.0.0.1',
    )
    .action(wrap(async (ctx, options: ScheduleOptions) => runSchedule(ctx, options)));
}
