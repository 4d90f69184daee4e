import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = fileURLToPath(new URL('../../bin/tailor.js', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI as a subprocess, the way users and other tools do. */
export function runCli(
  args: readonly string[],
  options: {
    cwd?: string;
    env?: Record<string, string | undefined>;
    timeoutMs?: number;
    input?: string;
  } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries({
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      TZ: 'UTC',
      ...options.env,
    })) {
      if (value !== undefined) env[key] = value;
    }
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

export interface RunningCli {
  /** Resolves with the first match of `pattern` in stderr so far or to come (rejects if the CLI exits first). */
  stderrMatch(pattern: RegExp): Promise<RegExpMatchArray>;
  /** Writes to the CLI's stdin (a PIN typed back). */
  write(text: string): void;
  /** The finished run. */
  done: Promise<CliResult>;
}

/** Starts the real CLI as a subprocess for a conversation: read its stderr as it comes, write its stdin. */
export function startCli(
  args: readonly string[],
  options: { cwd?: string; env?: Record<string, string | undefined>; timeoutMs?: number } = {},
): RunningCli {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries({
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    TZ: 'UTC',
    ...options.env,
  })) {
    if (value !== undefined) env[key] = value;
  }
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    for (const watch of [...watchers]) watch();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      for (const watch of [...watchers]) watch();
      resolve({ code, signal, stdout, stderr });
    });
  });
  let exited = false;
  void done.then(() => (exited = true));
  return {
    stderrMatch(pattern) {
      return new Promise((resolve, reject) => {
        const watch = () => {
          const match = pattern.exec(stderr);
          if (match) {
            watchers.delete(watch);
            resolve(match);
          } else if (exited || child.exitCode !== null) {
            watchers.delete(watch);
            reject(new Error(`the CLI exited before printing ${String(pattern)}:\n${stderr}`));
          }
        };
        watchers.add(watch);
        watch();
      });
    },
    write(text) {
      child.stdin.write(text);
    },
    done,
  };
}
