/**
 * The emulator's test hooks for crash and late-delivery tests, over real HTTP with requests signed by the
 * `oauth-1.0a` package (independent of both the emulator and Tailor's client):
 *
 * - the `hold` fault keeps a users request unanswered until `admin.applyHeld()`, which then applies it
 *   (answering the client if it still waits), or `admin.discardHeld()` / `close()`, which drop it;
 * - `admin.onUsersAnswered(listener)` is called synchronously once a users request has been answered,
 *   with membership already changed, so a test can kill a client at that exact moment.
 */
import { createHash, createHmac } from 'node:crypto';
import OAuth from 'oauth-1.0a';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALL_FAULT_KINDS,
  DEMO_ACCOUNT_ID,
  DEMO_CREDENTIALS,
  FAULT_KINDS,
  type RunningEmulator,
  startEmulator,
  type UsersAnswer,
} from '../../src/emulator/index.js';

const ACCOUNT = DEMO_ACCOUNT_ID;
const audiencesPath = `/12/accounts/${ACCOUNT}/custom_audiences`;
const sha = (s: string) => createHash('sha256').update(s).digest('hex');
const enc = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

let nonce = 0;

/** One signed request; `signal` lets a test give up on it the way a client's timeout does. */
async function call(
  emulator: RunningEmulator,
  method: string,
  path: string,
  options: { query?: Record<string, string>; json?: unknown; signal?: AbortSignal } = {},
) {
  const oauth = new OAuth({
    consumer: { key: DEMO_CREDENTIALS.consumerKey, secret: DEMO_CREDENTIALS.consumerSecret },
    signature_method: 'HMAC-SHA1',
    hash_function: (base, key) => createHmac('sha1', key).update(base).digest('base64'),
  });
  const stamp = `h${Date.now()}x${++nonce}`;
  oauth.getNonce = () => stamp;
  const query = Object.entries(options.query ?? {})
    .map(([k, v]) => `${enc(k)}=${enc(v)}`)
    .join('&');
  const url = `${emulator.url}${path}${query ? `?${query}` : ''}`;
  const { Authorization } = oauth.toHeader(
    oauth.authorize(
      { url, method },
      { key: DEMO_CREDENTIALS.accessToken, secret: DEMO_CREDENTIALS.accessTokenSecret },
    ),
  );
  const headers: Record<string, string> = { authorization: Authorization };
  let body: string | undefined;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(url, {
    method,
    headers,
    ...(body !== undefined ? { body } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const text = await res.text();
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return { status: res.status, json: JSON.parse(text) as any };
}

async function admin(emulator: RunningEmulator, method: string, path: string) {
  const res = await fetch(`${emulator.url}/_admin/${path}`, { method });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

const update = (...emails: string[]) => [
  { operation_type: 'Update', params: { users: emails.map((e) => ({ email: [sha(e)] })) } },
];

/** Polls until `check` holds, at most 10 s (50 ms apart). */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

let emulator: RunningEmulator;
let counter = 0;

async function newAudience(): Promise<{ id: string; users: string }> {
  const res = await call(emulator, 'POST', audiencesPath, { query: { name: `held ${++counter}` } });
  expect(res.status).toBe(200);
  const id = res.json.data.id as string;
  return { id, users: `${audiencesPath}/${id}/users` };
}

const emails = (id: string) => emulator.admin.membership(ACCOUNT, id).identifiers.email ?? [];

beforeAll(async () => {
  emulator = await startEmulator({ rateLimits: false });
});

afterAll(() => emulator.close());

describe('emulator: the hold fault', () => {
  it('is accepted by injectFaults but is not one of the in-run FAULT_KINDS', () => {
    expect(FAULT_KINDS).not.toContain('hold');
    expect(ALL_FAULT_KINDS).toEqual([...FAULT_KINDS, 'hold']);
    emulator.admin.injectFaults([{ kind: 'hold' }]);
    emulator.admin.clearFaults();
  });

  it('keeps a users request unanswered past its client timeout, then applies it on applyHeld', async () => {
    const { id, users } = await newAudience();
    const answers: UsersAnswer[] = [];
    const off = emulator.admin.onUsersAnswered((a) => answers.push(a));
    emulator.admin.injectFaults([{ kind: 'hold' }]);
    const controller = new AbortController();
    const gaveUp = call(emulator, 'POST', users, {
      json: update('late@example.com'),
      signal: controller.signal,
    });
    await until(() => emulator.admin.heldRequests() === 1, 'the request to be held');
    // The client gives up, as on a request timeout.
    controller.abort();
    await expect(gaveUp).rejects.toThrow();
    expect(emails(id)).toEqual([]);
    expect(answers).toEqual([]);

    // The emulator is not blocked meanwhile, and the fault was used up: the next request goes through.
    const next = await call(emulator, 'POST', users, { json: update('now@example.com') });
    expect(next.status).toBe(200);
    expect(emails(id)).toEqual([sha('now@example.com')]);

    expect(await emulator.admin.applyHeld()).toBe(1);
    expect(emulator.admin.heldRequests()).toBe(0);
    expect(emails(id)).toEqual([sha('late@example.com'), sha('now@example.com')].sort());
    expect(answers.map((a) => ({ status: a.status, applied: a.applied, delivered: a.delivered }))).toEqual([
      { status: 200, applied: true, delivered: true },
      { status: 200, applied: true, delivered: false },
    ]);
    expect(answers[1]).toMatchObject({ method: 'POST', path: users, operations: 1, users: 1 });
    expect(emulator.admin.requestLog().at(-1)).toMatchObject({ path: users, status: 200, users: 1 });
    off();
  });

  it('answers the client when it still waits, and holds `times` requests in arrival order', async () => {
    const { id, users } = await newAudience();
    emulator.admin.injectFaults([{ kind: 'hold', times: 2 }]);
    const first = call(emulator, 'POST', users, { json: update('a@example.com') });
    await until(() => emulator.admin.heldRequests() === 1, 'the first request to be held');
    const second = call(emulator, 'POST', users, {
      json: [{ operation_type: 'Delete', params: { users: [{ email: [sha('a@example.com')] }] } }],
    });
    await until(() => emulator.admin.heldRequests() === 2, 'the second request to be held');
    expect(await emulator.admin.applyHeld()).toBe(2);
    expect((await first).json.data).toEqual({ success_count: 1, total_count: 1 });
    expect((await second).status).toBe(200);
    // Applied in the order they arrived: the add, then its delete.
    expect(emails(id)).toEqual([]);
  });

  it('validates a held request when it is applied, not before', async () => {
    const { id, users } = await newAudience();
    emulator.admin.injectFaults([{ kind: 'hold' }]);
    const bad = call(emulator, 'POST', users, {
      json: [{ operation_type: 'Update', params: { users: [] } }],
    });
    await until(() => emulator.admin.heldRequests() === 1, 'the request to be held');
    await emulator.admin.applyHeld();
    expect((await bad).status).toBe(400);
    expect(emails(id)).toEqual([]);
  });

  it('discardHeld drops held requests without applying them', async () => {
    const { id, users } = await newAudience();
    emulator.admin.injectFaults([{ kind: 'hold' }]);
    const dropped = call(emulator, 'POST', users, { json: update('never@example.com') });
    await until(() => emulator.admin.heldRequests() === 1, 'the request to be held');
    expect(emulator.admin.discardHeld()).toBe(1);
    await expect(dropped).rejects.toThrow();
    expect(emails(id)).toEqual([]);
    expect(await emulator.admin.applyHeld()).toBe(0);
  });

  it('is driven over HTTP too: GET /_admin/held, POST /_admin/held/apply, DELETE /_admin/held', async () => {
    const { id, users } = await newAudience();
    expect(await admin(emulator, 'GET', 'held')).toEqual({ status: 200, json: { held: 0 } });
    emulator.admin.injectFaults([{ kind: 'hold', times: 2 }]);
    const applied = call(emulator, 'POST', users, { json: update('http1@example.com') });
    await until(() => emulator.admin.heldRequests() === 1, 'the request to be held');
    expect((await admin(emulator, 'GET', 'held')).json).toEqual({ held: 1 });
    expect((await admin(emulator, 'POST', 'held/apply')).json).toEqual({ ok: true, applied: 1 });
    expect((await applied).status).toBe(200);
    const dropped = call(emulator, 'POST', users, { json: update('http2@example.com') });
    await until(() => emulator.admin.heldRequests() === 1, 'the second request to be held');
    expect((await admin(emulator, 'DELETE', 'held')).json).toEqual({ ok: true, discarded: 1 });
    await expect(dropped).rejects.toThrow();
    expect(emails(id)).toEqual([sha('http1@example.com')]);
    expect((await admin(emulator, 'GET', 'held/apply')).status).toBe(405);
  });

  it('close() drops held requests rather than waiting for them', async () => {
    const own = await startEmulator({ rateLimits: false });
    const res = await call(own, 'POST', audiencesPath, { query: { name: 'closing' } });
    own.admin.injectFaults([{ kind: 'hold' }]);
    const held = call(own, 'POST', `${audiencesPath}/${res.json.data.id as string}/users`, {
      json: update('x@example.com'),
    });
    await until(() => own.admin.heldRequests() === 1, 'the request to be held');
    await own.close();
    await expect(held).rejects.toThrow();
  });
});

describe('emulator: onUsersAnswered', () => {
  it('calls the listener synchronously after the answer, with membership already changed', async () => {
    const { id, users } = await newAudience();
    const seen: Array<{ answer: UsersAnswer; members: string[]; logged: number | undefined }> = [];
    const off = emulator.admin.onUsersAnswered((answer) => {
      seen.push({ answer, members: emails(id), logged: emulator.admin.requestLog().at(-1)?.status });
    });
    const res = await call(emulator, 'POST', users, { json: update('one@example.com', 'two@example.com') });
    // Heard once, by the time the client has its answer.
    expect(seen).toHaveLength(1);
    expect(res.json.data).toEqual({ success_count: 2, total_count: 2 });
    expect(seen[0]).toEqual({
      answer: {
        method: 'POST',
        path: users,
        status: 200,
        operations: 1,
        users: 2,
        applied: true,
        delivered: true,
      },
      members: [sha('one@example.com'), sha('two@example.com')].sort(),
      logged: 200,
    });
    off();
    await call(emulator, 'POST', users, { json: update('three@example.com') });
    expect(seen).toHaveLength(1);
  });

  it('hears refused and faulted users requests (applied: false), not audience CRUD', async () => {
    const { users } = await newAudience();
    const seen: UsersAnswer[] = [];
    const off = emulator.admin.onUsersAnswered((answer) => seen.push(answer));
    await call(emulator, 'GET', audiencesPath);
    expect((await call(emulator, 'POST', users, { json: [] })).status).toBe(400);
    emulator.admin.injectFaults([{ kind: 'server_error_500' }]);
    expect((await call(emulator, 'POST', users, { json: update('f@example.com') })).status).toBe(500);
    off();
    expect(seen.map((a) => [a.status, a.applied])).toEqual([
      [400, false],
      [500, false],
    ]);
  });

  it('a throwing listener neither breaks the answer nor silences other listeners', async () => {
    const { id, users } = await newAudience();
    let heard = 0;
    const offThrowing = emulator.admin.onUsersAnswered(() => {
      throw new Error('listener bug');
    });
    const offCounting = emulator.admin.onUsersAnswered(() => heard++);
    expect((await call(emulator, 'POST', users, { json: update('t@example.com') })).status).toBe(200);
    expect(heard).toBe(1);
    expect(emails(id)).toEqual([sha('t@example.com')]);
    offThrowing();
    offCounting();
  });
});
