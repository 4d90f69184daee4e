import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OAuth from 'oauth-1.0a';
import { describe, expect, it } from 'vitest';
import { DEMO_ACCOUNT_ID, DEMO_CREDENTIALS } from '../../src/emulator/index.js';
import { CLI, REPO_ROOT } from '../helpers/cli.js';

/** Starts `tailor emulator` and resolves with the child and the first stdout line, parsed. */
function startCli(args: string[]) {
  const child = spawn(process.execPath, [CLI, 'emulator', ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', TZ: 'UTC' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  const firstLine = new Promise<string>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      const newline = stdout.indexOf('\n');
      if (newline !== -1) resolve(stdout.slice(0, newline));
    });
    void exited.then(({ code }) => reject(new Error(`emulator exited (${code}) before printing: ${stderr}`)));
  });
  return { child, exited, firstLine, stderr: () => stderr, stdout: () => stdout };
}

async function signedFetch(method: string, url: string) {
  const oauth = new OAuth({
    consumer: { key: DEMO_CREDENTIALS.consumerKey, secret: DEMO_CREDENTIALS.consumerSecret },
    signature_method: 'HMAC-SHA1',
    hash_function: (base, key) => createHmac('sha1', key).update(base).digest('base64'),
  });
  const header = oauth.toHeader(
    oauth.authorize(
      { url, method },
      { key: DEMO_CREDENTIALS.accessToken, secret: DEMO_CREDENTIALS.accessTokenSecret },
    ),
  );
  return fetch(url, { method, headers: { ...header } });
}

describe('tailor emulator (CLI)', () => {
  it('prints {url, port} with --json, serves signed requests, and exits 0 on SIGTERM after saving state', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tailor-emulator-cli-'));
    const statePath = join(dir, 'emulator.json');
    try {
      const run = startCli(['--port', '0', '--json', '--state', statePath]);
      try {
        const printed = JSON.parse(await run.firstLine) as { url: string; port: number };
        expect(printed.url).toBe(`http://127.0.0.1:${printed.port}`);
        expect(printed.port).toBeGreaterThan(0);
        const created = await signedFetch(
          'POST',
          `${printed.url}/12/accounts/${DEMO_ACCOUNT_ID}/custom_audiences?name=From%20the%20CLI`,
        );
        expect(created.status).toBe(200);
        const id = ((await created.json()) as { data: { id: string } }).data.id;
        const unsigned = await fetch(`${printed.url}/12/accounts`);
        expect(unsigned.status).toBe(401);
        run.child.kill('SIGTERM');
        expect(await run.exited).toEqual({ code: 0, signal: null });
        const saved = JSON.parse(await readFile(statePath, 'utf8')) as {
          audiences: Array<{ id: string; name: string }>;
        };
        expect(saved.audiences).toContainEqual(expect.objectContaining({ id, name: 'From the CLI' }));
        // Requests are logged by method, path and status; never the query string (audience names) or bodies.
        expect(run.stderr()).toMatch(/"path":"\/12\/accounts\/18ce54d4x5t\/custom_audiences"/);
        expect(run.stderr()).not.toMatch(/From/);
      } finally {
        run.child.kill('SIGKILL');
      }

      // A second run loads what the first one saved.
      const again = startCli(['--port', '0', '--state', statePath, '--no-rate-limit']);
      try {
        const line = await again.firstLine;
        const url = /(http:\/\/\S+)/.exec(line)?.[1] ?? '';
        expect(line).toMatch(/^X Ads API emulator listening on http:\/\/127\.0\.0\.1:\d+$/);
        const list = await signedFetch('GET', `${url}/12/accounts/${DEMO_ACCOUNT_ID}/custom_audiences`);
        expect(list.headers.get('x-account-rate-limit-limit')).toBeNull();
        const body = (await list.json()) as { data: Array<{ name: string }> };
        expect(body.data.map((a) => a.name)).toEqual(['From the CLI']);
        again.child.kill('SIGINT');
        expect(await again.exited).toEqual({ code: 0, signal: null });
      } finally {
        again.child.kill('SIGKILL');
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bad port with exit code 2', async () => {
    const run = startCli(['--port', 'eighty']);
    await run.firstLine.catch(() => undefined);
    expect((await run.exited).code).toBe(2);
    expect(run.stderr()).toMatch(/--port/);
  });
});
