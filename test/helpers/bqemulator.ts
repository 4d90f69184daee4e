import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OAuth2Client } from 'google-auth-library';

/**
 * bqemulator (PyPI; a BigQuery REST emulator on DuckDB) for the BigQuery contract test: started from the
 * venv scripts/bqemulator-venv.sh makes (`.venv-bq/`, pinned by scripts/bqemulator-requirements.txt) through
 * scripts/bqemulator-launch.py, on a free loopback port, and stopped by `stop()`.
 */

const repo = fileURLToPath(new URL('../../', import.meta.url));
const requirements = `${repo}scripts/bqemulator-requirements.txt`;
const launcher = `${repo}scripts/bqemulator-launch.py`;
export const BQEMULATOR_VENV = `${repo}.venv-bq`;

/** The project the emulator serves by default; any project id in a request path works as well. */
export const BQEMULATOR_PROJECT = 'tailor-test';

const INSTALL_HINT = 'run .ci/run once, or scripts/bqemulator-venv.sh (it makes the venv)';

/** Throws, saying how to make it, unless the venv holds the pins of the requirements file as it is now. */
export function checkBqemulatorVenv(): string {
  // As scripts/bqemulator-venv.sh stamps it: the sha256 of the file's lines less comments and blank lines.
  const pins = readFileSync(requirements, 'utf8')
    .split('\n')
    .filter((line) => !/^\s*(#|$)/.test(line))
    .map((line) => `${line}\n`)
    .join('');
  const want = createHash('sha256').update(pins).digest('hex');
  let have: string;
  try {
    have = readFileSync(`${BQEMULATOR_VENV}/.requirements.sha256`, 'utf8').trim();
  } catch {
    throw new Error(`bqemulator's venv ${BQEMULATOR_VENV} is missing or unfinished: ${INSTALL_HINT}`);
  }
  if (have !== want) {
    throw new Error(
      `${BQEMULATOR_VENV} was built from other pins than scripts/bqemulator-requirements.txt: ${INSTALL_HINT}`,
    );
  }
  return `${BQEMULATOR_VENV}/bin/python`;
}

export interface Bqemulator {
  /** The REST root, e.g. http://127.0.0.1:41234 (the client's `apiEndpoint`). */
  url: string;
  project: string;
  /** The launcher's process id (the emulator runs in it; the benchmark reads its CPU from /proc). */
  pid: number;
  stop(): Promise<void>;
}

const READY_LINE = 'BQEMULATOR_READY ';

/**
 * Starts the emulator and resolves once its `/readyz` answers 200 (DuckDB answers a query and the
 * catalog lists datasets). Its log (stderr) is kept and shown only if it fails to start.
 */
export async function startBqemulator(options: { timeoutMs?: number } = {}): Promise<Bqemulator> {
  const python = checkBqemulatorVenv();
  const timeoutMs = options.timeoutMs ?? 60_000;
  const child = spawn(python, [launcher, '--project', BQEMULATOR_PROJECT, '--log-level', 'error'], {
    cwd: repo,
    // stdin stays a pipe: the launcher stops when it closes, so the emulator never outlives this process.
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null)); // could not be spawned
  });
  let log = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    log = (log + chunk).slice(-8000);
  });
  const stop = () => stopChild(child, exited);
  try {
    const url = await readyUrl(child, exited, timeoutMs);
    await waitReady(url, exited, timeoutMs);
    return { url, project: BQEMULATOR_PROJECT, pid: child.pid!, stop };
  } catch (error) {
    await stop();
    throw new Error(`bqemulator did not start: ${(error as Error).message}\n${log}`);
  }
}

/** The REST root from the launcher's ready line (written once both servers listen). */
function readyUrl(child: ChildProcess, exited: Promise<number | null>, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered: string | undefined = '';
    const timer = setTimeout(() => reject(new Error(`no ready line within ${timeoutMs} ms`)), timeoutMs);
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      if (buffered === undefined) return; // ready already: the rest is not ours to keep
      buffered += chunk;
      const line = buffered.split('\n').find((l) => l.startsWith(READY_LINE) && buffered!.includes(`${l}\n`));
      if (line === undefined) return;
      buffered = undefined;
      clearTimeout(timer);
      resolve((JSON.parse(line.slice(READY_LINE.length)) as { rest_url: string }).rest_url);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the launcher exited with code ${code}`));
    });
  });
}

/** Polls GET /readyz until it answers 200; each failed probe waits for the next one a little longer. */
async function waitReady(url: string, exited: Promise<number | null>, timeoutMs: number): Promise<void> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    if (gone) throw new Error('the launcher exited');
    try {
      const response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) });
      if (response.ok) return;
      last = `${response.status} ${await response.text()}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(20 * 2 ** attempt, 500)));
  }
  throw new Error(`${url}/readyz did not answer 200 within ${timeoutMs} ms (last: ${last})`);
}

/** SIGTERM (the launcher stops its servers and DuckDB), then SIGKILL if it has not exited in 10 s. */
async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** An auth client holding a fake token: the SDK sends it as a bearer token and never asks Google. */
export function fakeBigqueryAuth(): OAuth2Client {
  const auth = new OAuth2Client();
  auth.setCredentials({ access_token: 'fake-token', expiry_date: Date.now() + 3_600_000 });
  return auth;
}
