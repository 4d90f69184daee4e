import { createRequire } from 'node:module';
import type CliProgress from 'cli-progress';
import type { SyncProgress, SyncReport } from '../sync/types.js';
import { formatCount } from './output.js';

/**
 * Shows the progress of runs on stderr: bars on a terminal, plain lines otherwise (CI, pipes, logs).
 * Every number shown only grows: members sent and members committed are counted apart (a batch is
 * committed after X answered, so the commit count trails the send count), and each is the highest
 * value seen. The last word on an activation is its run's status, from its report, so a held or
 * failed run never reads "done".
 */
export interface ProgressView {
  onProgress(progress: SyncProgress): void;
  /** Ends each activation's progress with the outcome its report gives. */
  finish(reports: readonly Pick<SyncReport, 'activationId' | 'status'>[]): void;
  stop(): void;
}

/** A view that shows nothing (`--json`, or nothing to show). */
export const NO_PROGRESS: ProgressView = {
  onProgress: () => undefined,
  finish: () => undefined,
  stop: () => undefined,
};

/** What one activation has reached so far; every field only grows. */
interface Tally {
  total: number;
  sent: number;
  committed: number;
  /** Members counted by a plan (it sends and commits nothing). */
  counted: number;
}

function members(n: number): string {
  return `${formatCount(n)} member${n === 1 ? '' : 's'}`;
}

/** Folds one progress event into the tally, never letting a count go down. */
function tallyOf(tallies: Map<string, Tally>, progress: SyncProgress, dryRun: boolean): Tally {
  const tally = tallies.get(progress.activationId) ?? { total: 0, sent: 0, committed: 0, counted: 0 };
  tallies.set(progress.activationId, tally);
  tally.total = Math.max(tally.total, progress.total);
  if (progress.phase === 'deliver') tally.sent = Math.max(tally.sent, progress.done);
  if (progress.phase === 'commit' || (progress.phase === 'done' && !dryRun)) {
    tally.committed = Math.max(tally.committed, progress.done);
    tally.sent = Math.max(tally.sent, tally.committed);
  }
  if (progress.phase === 'done' && dryRun) tally.counted = Math.max(tally.counted, progress.done);
  return tally;
}

/** How an activation ended, in a few words. */
function outcome(status: SyncReport['status'], tally: Tally, dryRun: boolean): string {
  const total = formatCount(tally.total);
  if (dryRun) {
    if (status === 'succeeded') return `planned (${formatCount(tally.counted)}/${total} counted)`;
    if (status === 'held')
      return `would be held (${formatCount(tally.counted)}/${total} counted, nothing sent)`;
    return status;
  }
  if (status === 'succeeded') return `done (${formatCount(tally.committed)}/${total})`;
  if (status === 'held') return 'held (nothing sent)';
  if (status === 'failed') return `failed (${formatCount(tally.committed)}/${total} committed)`;
  if (status === 'interrupted') return `interrupted (${formatCount(tally.committed)}/${total} committed)`;
  return status;
}

export function createProgressView(
  stderr: NodeJS.WritableStream,
  activationIds: readonly string[],
  options: { interactive: boolean; dryRun: boolean },
): ProgressView {
  return options.interactive
    ? barView(stderr, activationIds, options.dryRun)
    : lineView(stderr, options.dryRun);
}

/** Loaded for bars only: off a terminal (CI, pipes, `--json`) the module is never read. */
const load = createRequire(import.meta.url);

function barView(stream: NodeJS.WritableStream, ids: readonly string[], dryRun: boolean): ProgressView {
  const cliProgress = load('cli-progress') as typeof CliProgress;
  const width = Math.max(...ids.map((id) => id.length), 10);
  const multibar = new cliProgress.MultiBar(
    {
      stream,
      format: `{activation} [{bar}] {value}/{total} members | {phase}`,
      barsize: 30,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      fps: 8,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, CliProgress.SingleBar>();
  const tallies = new Map<string, Tally>();
  const show = (id: string, phase: string) => {
    const tally = tallies.get(id)!;
    const payload = { activation: id.padEnd(width), phase };
    let bar = bars.get(id);
    if (!bar) {
      bar = multibar.create(Math.max(tally.total, 1), 0, payload);
      bars.set(id, bar);
    }
    bar.setTotal(Math.max(tally.total, 1));
    bar.update(dryRun ? tally.counted : tally.sent, payload);
  };
  return {
    onProgress(progress) {
      const tally = tallyOf(tallies, progress, dryRun);
      const phase =
        progress.phase === 'snapshot'
          ? 'diffed'
          : progress.phase === 'done'
            ? 'finishing'
            : `sent, ${formatCount(tally.committed)} committed`;
      show(progress.activationId, phase);
    },
    finish(reports) {
      for (const report of reports) {
        const tally = tallies.get(report.activationId);
        if (tally) show(report.activationId, outcome(report.status, tally, dryRun));
      }
    },
    stop() {
      multibar.stop();
    },
  };
}

/** Plain lines: one when the delta is known, then about every 10% of it, then the outcome. */
function lineView(stream: NodeJS.WritableStream, dryRun: boolean): ProgressView {
  const tallies = new Map<string, Tally>();
  const printed = new Map<string, { sent: number; committed: number }>();
  const write = (text: string) => stream.write(`${text}\n`);
  return {
    onProgress(progress) {
      const { activationId: id, phase } = progress;
      const tally = tallyOf(tallies, progress, dryRun);
      if (phase === 'snapshot') {
        printed.set(id, { sent: 0, committed: 0 });
        write(`${id}: diffed, ${members(tally.total)} to send`);
        return;
      }
      if (phase === 'done') return; // the report says how it ended (finish)
      const last = printed.get(id) ?? { sent: 0, committed: 0 };
      const step = Math.max(1, Math.ceil(tally.total / 10));
      const moved = tally.sent - last.sent >= step || tally.committed - last.committed >= step;
      if (moved && tally.committed < tally.total) {
        printed.set(id, { sent: tally.sent, committed: tally.committed });
        write(
          `${id}: sent ${formatCount(tally.sent)}/${formatCount(tally.total)}, committed ${formatCount(tally.committed)}`,
        );
      }
    },
    finish(reports) {
      for (const report of reports) {
        const tally = tallies.get(report.activationId);
        if (tally) write(`${report.activationId}: ${outcome(report.status, tally, dryRun)}`);
      }
    },
    stop: () => undefined,
  };
}
