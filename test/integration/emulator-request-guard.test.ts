/**
 * The emulator against browsers that aim at it: cross-site requests (CSRF: a page on another site POSTs to
 * http://127.0.0.1:PORT/_admin/… as a simple `text/plain` request, with its own Origin) and DNS rebinding
 * (a page's own host name re-pointed at 127.0.0.1, so the browser sends `Host: attacker.example:PORT`).
 * Raw node:http requests, so every header (Host included) is exactly what a test chooses.
 */
import { createHmac } from 'node:crypto';
import { request } from 'node:http';
import OAuth from 'oauth-1.0a';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEMO_ACCOUNT_ID,
  DEMO_CREDENTIALS,
  type EmulatorOptions,
  type RunningEmulator,
  startEmulator,
} from '../../src/emulator/index.js';

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/** One HTTP/1.1 request to 127.0.0.1:port with exactly these headers (Host included). */
function raw(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, headers, setHost: false, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = text;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The OAuth 1.0a header for `method` on `http://{host}{path}`, signed by the oauth-1.0a package. */
let nonce = 0;
function signed(method: string, host: string, path: string): string {
  const oauth = new OAuth({
    consumer: { key: DEMO_CREDENTIALS.consumerKey, secret: DEMO_CREDENTIALS.consumerSecret },
    signature_method: 'HMAC-SHA1',
    hash_function: (base, key) => createHmac('sha1', key).update(base).digest('base64'),
  });
  const stamp = `g${Date.now()}x${++nonce}`;
  oauth.getNonce = () => stamp;
  return oauth.toHeader(
    oauth.authorize(
      { url: `http://${host}${path}`, method },
      { key: DEMO_CREDENTIALS.accessToken, secret: DEMO_CREDENTIALS.accessTokenSecret },
    ),
  ).Authorization;
}

async function withEmulator<T>(options: EmulatorOptions, body: (emulator: RunningEmulator) => Promise<T>) {
  const emulator = await startEmulator(options);
  try {
    return await body(emulator);
  } finally {
    await emulator.close();
  }
}

const json = 'application/json';
const fault = JSON.stringify({ faults: [{ kind: 'server_error_500', match: 'any' }] });

describe('emulator admin API: cross-site requests and DNS rebinding', () => {
  let emulator: RunningEmulator;
  let port: number;
  let host: string;
  beforeAll(async () => {
    emulator = await startEmulator({ rateLimits: false });
    port = emulator.port;
    host = `127.0.0.1:${port}`;
  });
  afterAll(() => emulator.close());

  /** Whether a queued fault took effect (then it is used up): the proof a refused request did nothing. */
  const faultQueued = async () => {
    const path = '/12/accounts';
    const res = await raw(port, 'GET', path, { host, authorization: signed('GET', host, path) });
    return res.status === 500;
  };

  const refused = (res: RawAnswer, why: RegExp) => {
    expect(res.status).toBe(403);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(res.json).toEqual({ ok: false, error: expect.stringMatching(why) });
  };

  it('refuses a cross-site text/plain POST (a form or a no-cors fetch from another site)', async () => {
    const res = await raw(
      port,
      'POST',
      '/_admin/faults',
      { host, origin: 'https://attacker.example', 'content-type': 'text/plain' },
      fault,
    );
    refused(res, /Origin/);
    expect(await faultQueued()).toBe(false);
  });

  it('refuses a text/plain body even without an Origin, and any non-JSON body', async () => {
    for (const contentType of [
      'text/plain',
      'text/plain;charset=utf-8',
      'application/x-www-form-urlencoded',
    ]) {
      const res = await raw(port, 'POST', '/_admin/faults', { host, 'content-type': contentType }, fault);
      refused(res, /Content-Type: application\/json/);
    }
    refused(await raw(port, 'POST', '/_admin/faults', { host }, fault), /Content-Type: application\/json/);
    // An empty body with a simple content type is what an empty cross-site form sends.
    refused(
      await raw(port, 'POST', '/_admin/process', { host, 'content-type': 'text/plain' }),
      /Content-Type/,
    );
    refused(
      await raw(port, 'DELETE', '/_admin/requests', {
        host,
        'content-type': 'multipart/form-data; boundary=x',
      }),
      /Content-Type/,
    );
    expect(await faultQueued()).toBe(false);
  });

  it('refuses a foreign Origin even on a JSON request, and the opaque Origin "null"', async () => {
    for (const origin of [
      'https://attacker.example',
      `http://attacker.example:${port}`,
      'http://127.0.0.1.attacker.example',
      'http://localhost.attacker.example',
      'null',
      'file://',
    ]) {
      const post = await raw(port, 'POST', '/_admin/faults', { host, origin, 'content-type': json }, fault);
      refused(post, /Origin/);
      refused(await raw(port, 'GET', '/_admin/requests', { host, origin }), /Origin/);
    }
    expect(await faultQueued()).toBe(false);
  });

  it('refuses a rebinding Host (a foreign name sent to 127.0.0.1), and a wrong port', async () => {
    for (const rebound of [
      `attacker.example:${port}`,
      'attacker.example',
      `127.0.0.1.nip.io:${port}`,
      `localhost.attacker.example:${port}`,
      `127.0.0.1:${port + 1}`,
      '127.0.0.1',
      `[::2]:${port}`,
      `10.0.0.1:${port}`,
      `0x7f.0.0.1:${port}`,
      `127.0.0.1:${port}@attacker.example`,
    ]) {
      // Same-origin for the rebound page, so no Origin is needed: the Host is all that gives it away.
      const post = await raw(port, 'POST', '/_admin/faults', { host: rebound, 'content-type': json }, fault);
      refused(post, /Host/);
      const get = await raw(port, 'GET', '/_admin/requests', { host: rebound });
      refused(get, /Host/);
      expect(JSON.stringify(get.json)).not.toContain('/12/');
    }
    expect(await faultQueued()).toBe(false);
  });

  it('grants no CORS preflight, so no other origin can send JSON or an Authorization header', async () => {
    const preflight = {
      host,
      origin: 'https://attacker.example',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type, authorization',
    };
    for (const path of ['/_admin/faults', '/12/accounts']) {
      const res = await raw(port, 'OPTIONS', path, preflight);
      expect(res.status, path).toBeGreaterThanOrEqual(400);
      expect(res.headers['access-control-allow-origin'], path).toBeUndefined();
      expect(res.headers['access-control-allow-headers'], path).toBeUndefined();
    }
  });

  it('still serves legitimate JSON admin requests by every loopback name, and bodyless ones', async () => {
    for (const name of [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      `LocalHost:${port}`,
      `127.8.9.10:${port}`,
      `[::1]:${port}`,
    ]) {
      const post = await raw(port, 'POST', '/_admin/faults', { host: name, 'content-type': json }, fault);
      expect(post, name).toMatchObject({ status: 200, json: { ok: true } });
      expect(await faultQueued(), name).toBe(true);
    }
    const charset = await raw(
      port,
      'POST',
      '/_admin/faults',
      { host, 'content-type': 'application/json; charset=utf-8', origin: `http://localhost:${port}` },
      fault,
    );
    expect(charset.status).toBe(200);
    expect(await faultQueued()).toBe(true);
    // A tool on this machine (another loopback origin) may drive the emulator.
    for (const origin of ['http://127.0.0.1:5173', 'http://localhost:3000', 'https://[::1]:8443']) {
      const res = await raw(port, 'POST', '/_admin/process', { host, origin, 'content-type': json });
      expect(res.status, origin).toBe(200);
    }
    // Bodyless calls (curl -X POST, fetch without a body) send no Content-Type: still served.
    expect((await raw(port, 'POST', '/_admin/process', { host })).status).toBe(200);
    expect((await raw(port, 'DELETE', '/_admin/faults', { host })).status).toBe(200);
    expect((await raw(port, 'GET', '/_admin/held', { host })).json).toEqual({ held: 0 });
    // And node's fetch, as tests and scripts call it, with the emulator's own url.
    const res = await fetch(`${emulator.url}/_admin/faults`, {
      method: 'POST',
      headers: { 'content-type': json },
      body: fault,
    });
    expect(res.status).toBe(200);
    expect(await faultQueued()).toBe(true);
  });
});

describe("emulator X surface: Host names this machine's loopback", () => {
  const accounts = '/12/accounts';

  it('refuses a rebinding Host while listening on loopback, even when correctly signed for it', async () => {
    await withEmulator({ rateLimits: false }, async (emulator) => {
      const port = emulator.port;
      const rebound = `attacker.example:${port}`;
      // Signed for the very host the page's browser names: only the Host check stands in the way.
      const res = await raw(port, 'GET', accounts, {
        host: rebound,
        authorization: signed('GET', rebound, accounts),
      });
      expect(res.status).toBe(403);
      expect(res.json).toEqual({
        errors: [{ code: 'HOST_NOT_ALLOWED', message: expect.stringMatching(/loopback/) }],
        request: { params: {} },
      });
      expect(res.headers['x-current-api-version']).toBe('12');
      const create = `/12/accounts/${DEMO_ACCOUNT_ID}/custom_audiences?name=rebound`;
      const write = await raw(port, 'POST', create, {
        host: rebound,
        authorization: signed('POST', rebound, create),
      });
      expect(write.status).toBe(403);
      expect(emulator.admin.audiences(DEMO_ACCOUNT_ID)).toEqual([]);

      for (const name of [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]) {
        const ok = await raw(port, 'GET', accounts, {
          host: name,
          authorization: signed('GET', name, accounts),
        });
        expect(ok.status, name).toBe(200);
      }
    });
  });

  it('accepts any Host when told to listen beyond loopback (clients name the machine their own way)', async () => {
    await withEmulator({ host: '0.0.0.0', rateLimits: false }, async (emulator) => {
      const name = `emulator.internal:${emulator.port}`;
      const res = await raw(emulator.port, 'GET', accounts, {
        host: name,
        authorization: signed('GET', name, accounts),
      });
      expect(res.status).toBe(200);
      // The admin API stays loopback-named even then; the url the emulator prints is accepted.
      const admin = await raw(emulator.port, 'GET', '/_admin/held', { host: name });
      expect(admin.status).toBe(403);
      const own = await raw(emulator.port, 'GET', '/_admin/held', { host: new URL(emulator.url).host });
      expect(own.status).toBe(200);
    });
  });
});
