import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface MeasuredProcess {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  wallMs: number;
  /** Peak resident set size of the process (bytes); NaN when it could not be measured. */
  peakRssBytes: number;
  /** CPU time (user + system) the process used; NaN without GNU time. On a shared machine this moves less than wall time. */
  cpuMs: number;
  /** The run was stopped (the benchmark's stop signal) before it finished. */
  stopped: boolean;
}

const GNU_TIME = '/usr/bin/time';

/** The pid whose memory to watch: the command itself, or GNU time's one child when it is wrapped. */
async function measuredPid(pid: number, wrapped: boolean): Promise<number | undefined> {
  if (!wrapped) return pid;
  try {
    const children = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8')).trim().split(/\s+/);
    return children[0] ? Number(children[0]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs a command and measures its wall time, peak RSS and CPU time. GNU time's `%M` (the kernel's
 * maximum RSS from wait4) is exact; `/proc/<pid>/status` VmHWM (the kernel's own high-water mark) is
 * sampled as well, for when GNU time is missing or the process is stopped before it reports.
 *
 * The command runs in its own process group, so stopping it (the `signal`) stops GNU time and the
 * measured process together, never leaving an orphan behind.
 */
export async function runMeasured(
  command: string,
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<MeasuredProcess> {
  const useTime = existsSync(GNU_TIME);
  const dir = useTime ? await mkdtemp(join(tmpdir(), 'tailor-bench-time-')) : undefined;
  const timeFile = dir ? join(dir, 'rss') : undefined;
  const [file, argv] = timeFile
    ? [GNU_TIME, ['-f', '%M %U %S', '-o', timeFile, command, ...args]]
    : [command, [...args]];
  const started = performance.now();
  const child = spawn(file, argv, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  let sampledHwm = Number.NaN;
  let target: number | undefined;
  const sampler = setInterval(() => {
    void (async () => {
      target ??= child.pid === undefined ? undefined : await measuredPid(child.pid, useTime);
      if (target === undefined) return;
      const status = await readFile(`/proc/${target}/status`, 'utf8');
      const kb = Number(/VmHWM:\s+(\d+)\s+kB/.exec(status)?.[1]);
      if (Number.isFinite(kb)) sampledHwm = Math.max(Number.isNaN(sampledHwm) ? 0 : sampledHwm, kb * 1024);
    })().catch(() => undefined);
  }, 50);
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => killGroup('SIGKILL'), options.timeoutMs ?? 60 * 60_000);
  // Stopping the benchmark stops the measured process too (SIGTERM: let it release its locks).
  const stop = () => killGroup('SIGTERM');
  options.signal?.addEventListener('abort', stop, { once: true });
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal }));
    },
  );
  const wallMs = performance.now() - started;
  clearTimeout(timer);
  options.signal?.removeEventListener('abort', stop);
  clearInterval(sampler);
  let peakRssBytes = sampledHwm;
  let cpuMs = Number.NaN;
  if (timeFile && dir) {
    try {
      // GNU time writes "Command exited with non-zero status N" before the figures on failure.
      const lines = (await readFile(timeFile, 'utf8')).trim().split('\n');
      const [rssKb, user, system] = lines[lines.length - 1]!.split(' ').map(Number);
      if (Number.isFinite(rssKb) && rssKb! > 0) peakRssBytes = rssKb! * 1024;
      cpuMs = (user! + system!) * 1000;
    } catch {
      // stopped before GNU time could report: keep the sampled high-water mark
    }
    await rm(dir, { recursive: true, force: true });
  }
  return {
    code,
    signal,
    stdout,
    stderr,
    wallMs,
    peakRssBytes,
    cpuMs,
    stopped: options.signal?.aborted ?? false,
  };
}
