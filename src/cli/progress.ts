import cliProgress from 'cli-progress';
import type { SyncProgress } from '../sync/types.js';

/** Shows the progress of runs on stderr: bars on a terminal, plain lines otherwise (CI, pipes, logs). */
export interface ProgressView {
  onProgress(progress: SyncProgress): void;
  stop(): void;
}

const PHASE_LABEL: Record<SyncProgress['phase'], string> = {
  snapshot: 'diffed',
  deliver: 'sending',
  commit: 'committing',
  done: 'done',
};

/** A view that shows nothing (`--json`, or nothing to show). */
export const NO_PROGRESS: ProgressView = { onProgress: () => undefined, stop: () => undefined };

export function createProgressView(
  stderr: NodeJS.WritableStream & { isTTY?: boolean },
  activationIds: readonly string[],
): ProgressView {
  return stderr.isTTY ? barView(stderr, activationIds) : lineView(stderr);
}

function barView(stream: NodeJS.WritableStream, ids: readonly string[]): ProgressView {
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
  const bars = new Map<string, cliProgress.SingleBar>();
  return {
    onProgress(progress) {
      let bar = bars.get(progress.activationId);
      const payload = { activation: progress.activationId.padEnd(width), phase: PHASE_LABEL[progress.phase] };
      if (!bar) {
        bar = multibar.create(Math.max(progress.total, 1), 0, payload);
        bars.set(progress.activationId, bar);
      }
      bar.setTotal(Math.max(progress.total, 1));
      bar.update(progress.phase === 'done' ? Math.max(progress.total, 1) : progress.done, payload);
    },
    stop() {
      multibar.stop();
    },
  };
}

/** Plain lines: one when the delta is known, then about every 10% of it, then one at the end. */
function lineView(stream: NodeJS.WritableStream): ProgressView {
  const last = new Map<string, number>();
  const write = (text: string) => stream.write(`${text}\n`);
  return {
    onProgress({ activationId, phase, done, total }) {
      if (phase === 'snapshot') {
        last.set(activationId, 0);
        write(`${activationId}: diffed, ${total} member${total === 1 ? '' : 's'} to send`);
        return;
      }
      if (phase === 'done') {
        write(`${activationId}: done (${done}/${total})`);
        return;
      }
      const step = Math.max(1, Math.ceil(total / 10));
      const previous = last.get(activationId) ?? 0;
      if (done - previous >= step && done < total) {
        last.set(activationId, done);
        write(`${activationId}: ${PHASE_LABEL[phase]} ${done}/${total}`);
      }
    },
    stop: () => undefined,
  };
}
