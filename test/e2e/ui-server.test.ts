import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEmulator } from '../../src/emulator/index.js';
import { CLI } from '../helpers/cli.js';
import { createE2eProject, type E2eProject, startTestEmulator, waitFor } from '../helpers/e2e.js';

/**
 * The web UI served by the scheduler daemon (`tailor schedule --ui`), and the token the UI asks for:
 * over HTTP, as a script or a browser would talk to it. The pages themselves are driven in Chromium
 * by ui-browser.test.ts.
 */

let emulator: RunningEmulator;
let project: E2eProject;

beforeAll(async () => {
  emulator = await startTestEmulator();
  project = await createE2eProject(emulator, {
    setup: [
      'create table {schema}.customers (customer_id int primary key, email text)',
      `insert into {schema}.customers select i, 'member' || i || '@example.com' from generate_series(1, 20) i`,
    ],
    models: {
      members: {
        sql: 'select customer_id, email from {schema}.customers',
        yml: 'name: members\ndescription: Members\nprimary_key: customer_id\n',
      },
    },
    activations: `  members_x:
    model: members
    destination: x
    schedule: manual
`,
  });
});

afterAll(async () => {
  await project?.cleanup();
  await emulator?.close();
});

/** Starts `tailor <args>` and collects its output; `stop()` sends SIGTERM and waits for the exit. */
function start(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [CLI, ...args, '--project', project.dir], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TZ: 'UTC', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (out.stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    out,
    exited,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** The CSRF token of a page's forms. */
function csrfOf(page: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(page);
  if (!match) throw new Error(`no form token in the page:\n${page.slice(0, 2000)}`);
  return match[1]!;
}

describe('tailor schedule --ui', () => {
  it('serves the UI from the daemon, and a Pause there reloads the schedule at once', async () => {
    const daemon = start(['schedule', '--port', '0', '--ui', '--ui-port', '0']);
    try {
      let url = '';
      await waitFor(
        () => {
          url = /web UI at (http:\/\/[0-9.:]+)/.exec(daemon.out.stderr)?.[1] ?? '';
          return url !== '' || daemon.out.stderr.includes('"level":50');
        },
        'the daemon to serve its UI',
        60_000,
      );
      expect(url, daemon.out.stderr).not.toBe('');
      const index = await fetch(`${url}/`);
      expect(index.status).toBe(200);
      expect(await index.text()).toContain('data-activation="members_x"');
      const page = await (await fetch(`${url}/activations/members_x`)).text();
      const pause = await fetch(`${url}/activations/members_x/pause`, {
        method: 'POST',
        headers: { origin: url, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: csrfOf(page) }).toString(),
        redirect: 'manual',
      });
      expect(pause.status).toBe(303);
      expect(await readFile(join(project.dir, 'tailor.yml'), 'utf8')).toMatch(
        /members_x:[\s\S]*enabled: false/,
      );
      await waitFor(
        () => /"trigger":"ui"[^\n]*reloading the configuration/.test(daemon.out.stderr),
        'the daemon to reload after the UI wrote tailor.yml',
      );
      await waitFor(() => daemon.out.stderr.includes('configuration reloaded'), 'the reload to apply');
    } finally {
      expect(await daemon.stop()).toBe(0);
    }
  });
});

describe('tailor ui and a broken tailor.yml', () => {
  it('says on every page what is wrong, refuses edits with the check errors, and recovers once fixed', async () => {
    const path = join(project.dir, 'tailor.yml');
    const good = await readFile(path, 'utf8');
    const ui = start(['ui', '--port', '0']);
    try {
      await waitFor(() => /Tailor UI: http:\/\/\S+/.test(ui.out.stdout), 'tailor ui to listen', 60_000);
      const url = /Tailor UI: (http:\/\/\S+)/.exec(ui.out.stdout)![1]!;
      const token = csrfOf(await (await fetch(`${url}/activations/members_x`)).text());
      // Run now, then follow the job's server-sent events to its end.
      const run = await fetch(`${url}/activations/members_x/run`, {
        method: 'POST',
        headers: { origin: url, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: token }).toString(),
        redirect: 'manual',
      });
      expect(run.status).toBe(303);
      const jobPath = run.headers.get('location')!;
      expect(jobPath).toMatch(/^\/jobs\/[0-9a-f-]+$/);
      const events = await fetch(`${url}${jobPath}/events`);
      expect(events.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const stream = await events.text(); // the server ends the stream once the job is done
      const last = stream.trim().split('\n\n').pop()!;
      expect(last).toMatch(/^event: done\ndata: /);
      expect(JSON.parse(last.split('data: ')[1]!)).toMatchObject({ state: 'finished', status: 'succeeded' });
      const jobPage = await (await fetch(`${url}${jobPath}`)).text();
      expect(jobPage).toContain('data-count="added">20<');
      // Someone mistypes a key by hand.
      const broken = good.replace('schedule: manual', 'schedule: manual\n    enabeld: false');
      expect(broken).not.toBe(good);
      await writeFile(path, broken);
      const index = await fetch(`${url}/`);
      expect(index.status).toBe(200);
      const page = await index.text();
      expect(page).toContain('The project does not load');
      expect(page).toContain('enabeld');
      const pause = await fetch(`${url}/activations/members_x/pause`, {
        method: 'POST',
        headers: { origin: url, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: token }).toString(),
        redirect: 'manual',
      });
      expect(pause.status).toBe(422);
      expect(await pause.text()).toContain('enabeld');
      expect(await readFile(path, 'utf8')).toBe(broken);
      await writeFile(path, good);
      const fixed = await (await fetch(`${url}/`)).text();
      expect(fixed).not.toContain('The project does not load');
      expect(fixed).toContain('data-activation="members_x"');
    } finally {
      await writeFile(path, good);
      expect(await ui.stop()).toBe(0);
    }
  });
});

describe('tailor ui token', () => {
  it('refuses to listen off loopback without TAILOR_UI_TOKEN', async () => {
    const ui = start(['ui', '--host', '0.0.0.0', '--port', '0']);
    expect(await ui.exited).toBe(2);
    expect(ui.out.stderr).toContain('needs a token');
    expect(ui.out.stderr).toContain('TAILOR_UI_TOKEN');
  });

  it('asks every request for the token, takes it once from the URL into a cookie, never prints it', async () => {
    const token = 'a-long-random-ui-token-0123456789';
    const ui = start(['ui', '--port', '0'], { TAILOR_UI_TOKEN: token });
    try {
      await waitFor(() => /Tailor UI: http:\/\/\S+/.test(ui.out.stdout), 'tailor ui to listen', 60_000);
      const url = /Tailor UI: (http:\/\/\S+)/.exec(ui.out.stdout)![1]!;
      expect((await fetch(`${url}/`)).status).toBe(401);
      expect((await fetch(`${url}/`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await fetch(`${url}/?token=wrong`, { redirect: 'manual' })).status).toBe(401);
      const entry = await fetch(`${url}/activations/members_x?token=${token}`, { redirect: 'manual' });
      expect(entry.status).toBe(303);
      expect(entry.headers.get('location')).toBe('/activations/members_x');
      const cookie = entry.headers.get('set-cookie')!;
      expect(cookie).toMatch(/HttpOnly/);
      expect(cookie).toMatch(/SameSite=Strict/);
      const withCookie = await fetch(`${url}/activations/members_x`, {
        headers: { cookie: cookie.split(';')[0]! },
      });
      expect(withCookie.status).toBe(200);
      const page = await withCookie.text();
      expect(page).not.toContain(token);
      expect((await fetch(`${url}/`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    } finally {
      expect(await ui.stop()).toBe(0);
    }
    expect(ui.out.stdout + ui.out.stderr).not.toContain(token);
  });
});
