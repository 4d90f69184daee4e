/**
 * The sign-in client (x-oauth-flow.ts) against the emulator's OAuth endpoints over real HTTP: the
 * 3-legged and PIN flows, the tokens they give working on the Ads API, and the refusals. The authorize
 * page is driven here by plain HTTP (the e2e test clicks it in Chromium).
 */
import { createServer } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  accountRefusal,
  CallbackListener,
  defaultOAuthUrl,
  listAdAccounts,
  OOB,
  type RequestToken,
  XSignIn,
} from '../../src/destinations/x-ads/x-oauth-flow.js';
import { AuthError } from '../../src/errors.js';
import { DEMO_CREDENTIALS, type RunningEmulator, startEmulator } from '../../src/emulator/index.js';

const logger = pino({ level: 'silent' });
const APP = { consumerKey: 'sign-in-app', consumerSecret: 'sign-in-app-secret' };
const STRICT_APP = {
  consumerKey: 'strict-app',
  consumerSecret: 'strict-app-secret',
  callbackUrls: ['http://127.0.0.1:1/registered'],
};
const USER = { userId: '77', screenName: 'seven' };
const ACCOUNTS = ['a1', 'a2', 'a3', 'a4', 'a5'].map((id, i) => ({
  id,
  name: `Account ${i + 1}`,
  approvalStatus: i === 2 ? 'UNDER_REVIEW' : 'ACCEPTED',
}));

let emulator: RunningEmulator;

beforeAll(async () => {
  emulator = await startEmulator({
    seed: {
      accounts: [...ACCOUNTS, { id: 'other9', name: 'Not hers' }],
      apps: [APP, STRICT_APP],
      users: [{ ...USER, access: Object.fromEntries(ACCOUNTS.map((a) => [a.id, ['AD_MANAGER']])) }],
    },
  });
});
afterAll(() => emulator.close());

function signIn(consumer = APP): XSignIn {
  return new XSignIn({ oauthUrl: emulator.url, consumer, logger });
}

/** What the browser does on the authorize page: GET it, then POST the form's decision. */
async function decide(url: string, decision: 'allow' | 'deny'): Promise<Response> {
  const page = await fetch(url);
  expect(page.status).toBe(200);
  const html = await page.text();
  expect(html).toContain('Authorize app');
  const token = /name="oauth_token" value="([^"]+)"/.exec(html)![1]!;
  return fetch(new URL('/oauth/authorize', emulator.url), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ oauth_token: token, user_id: USER.userId, decision }),
    redirect: 'manual',
  });
}

describe('signing in to the emulator', () => {
  it('3-legged: request token, authorize, callback with the verifier, access token that works on the Ads API', async () => {
    const listener = await CallbackListener.start();
    try {
      const client = signIn();
      const requestToken = await client.requestToken(listener.url);
      const waiting = listener.wait(requestToken, { timeoutMs: 10_000 });
      const answer = await decide(client.authorizeUrl(requestToken), 'allow');
      expect(answer.status).toBe(302);
      const location = answer.headers.get('location')!;
      expect(location.startsWith(`${listener.url}?`)).toBe(true);
      const back = await fetch(location);
      expect(await back.text()).toContain('Connected');
      const verifier = await waiting;
      const tokens = await client.accessToken(requestToken, verifier);
      expect(tokens).toMatchObject({ userId: USER.userId, screenName: USER.screenName });

      // The token reaches exactly the user's accounts, every page of them.
      const accounts = await listAdAccounts({
        apiUrl: emulator.url,
        credentials: { ...APP, accessToken: tokens.accessToken, accessTokenSecret: tokens.accessTokenSecret },
        logger,
        destination: 'x',
        pageSize: 2,
      });
      expect(accounts.map((a) => a.id).sort()).toEqual(ACCOUNTS.map((a) => a.id));
      expect(accounts.find((a) => a.id === 'a3')!.approvalStatus).toBe('UNDER_REVIEW');
      expect(accountRefusal(accounts.find((a) => a.id === 'a3')!)).toMatch(/not approved/);
      expect(accountRefusal(accounts.find((a) => a.id === 'a1')!)).toBeUndefined();

      // The request token is spent.
      await expect(client.accessToken(requestToken, verifier)).rejects.toThrow(AuthError);
    } finally {
      await listener.close();
    }
  });

  it('PIN: oob, the page shows a PIN, which is the verifier; a wrong PIN is refused', async () => {
    const client = signIn();
    const requestToken = await client.requestToken(OOB);
    const page = await (await decide(client.authorizeUrl(requestToken), 'allow')).text();
    const pin = /id="pin"[^>]*>(\d{7})</.exec(page)![1]!;
    const wrong = String((Number(pin) + 1) % 10_000_000).padStart(7, '0');
    await expect(client.accessToken(requestToken, wrong)).rejects.toThrow(/PIN or verifier is wrong/);
    // A wrong try does not spend the token.
    const tokens = await client.accessToken(requestToken, pin);
    expect(tokens.screenName).toBe(USER.screenName);
  });

  it('refuses a wrong consumer secret, and an unregistered callback', async () => {
    await expect(signIn({ ...APP, consumerSecret: 'nope' }).requestToken(OOB)).rejects.toThrow(
      /refused the app's consumer key and secret \(401\)/,
    );
    await expect(signIn({ ...APP, consumerKey: 'unknown-app' }).requestToken(OOB)).rejects.toThrow(AuthError);
    await expect(signIn(STRICT_APP).requestToken('http://127.0.0.1:2/other')).rejects.toThrow(
      /refused the callback URL http:\/\/127\.0\.0\.1:2\/other \(403\)/,
    );
    await expect(signIn(STRICT_APP).requestToken('http://127.0.0.1:1/registered')).resolves.toMatchObject({
      token: expect.any(String),
    });
  });

  it('a token signed for one app cannot be exchanged by another', async () => {
    const requestToken: RequestToken = await signIn().requestToken(OOB);
    const page = await (await decide(signIn().authorizeUrl(requestToken), 'allow')).text();
    const pin = /id="pin"[^>]*>(\d{7})</.exec(page)![1]!;
    await expect(signIn(STRICT_APP).accessToken(requestToken, pin)).rejects.toThrow(AuthError);
  });

  it('the listener: "Cancel" rejects, no answer times out, a busy port is said so', async () => {
    const listener = await CallbackListener.start();
    try {
      const client = signIn();
      const requestToken = await client.requestToken(listener.url);
      const waiting = listener.wait(requestToken, { timeoutMs: 10_000 });
      // It rejects while the browser is still being answered; the assertion below reads it.
      waiting.catch(() => undefined);
      const answer = await decide(client.authorizeUrl(requestToken), 'deny');
      expect(answer.headers.get('location')).toBe(`${listener.url}?denied=${requestToken.token}`);
      expect(await (await fetch(answer.headers.get('location')!)).text()).toContain('Not connected');
      await expect(waiting).rejects.toThrow(/denied/);
      await expect(listener.wait(requestToken, { timeoutMs: 50 })).rejects.toThrow(/within 0 s/);
    } finally {
      await listener.close();
    }
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const { port } = busy.address() as { port: number };
    try {
      await expect(CallbackListener.start({ port })).rejects.toThrow(/EADDRINUSE/);
    } finally {
      busy.close();
    }
  });

  it('a default emulator (`tailor emulator`) signs the demo user in with the demo app', async () => {
    const plain = await startEmulator();
    try {
      const client = new XSignIn({
        oauthUrl: plain.url,
        consumer: {
          consumerKey: DEMO_CREDENTIALS.consumerKey,
          consumerSecret: DEMO_CREDENTIALS.consumerSecret,
        },
        logger,
      });
      const requestToken = await client.requestToken(OOB);
      const html = await (await fetch(client.authorizeUrl(requestToken))).text();
      expect(html).toContain('Authorize Tailor demo app');
      expect(html).toContain('@tailor_demo');
    } finally {
      await plain.close();
    }
  });

  it("signs in on X's API host, or on a local emulator itself", () => {
    expect(defaultOAuthUrl('https://ads-api.x.com')).toBe('https://api.x.com');
    expect(defaultOAuthUrl('https://ads-api-sandbox.x.com')).toBe('https://api.x.com');
    expect(defaultOAuthUrl('http://127.0.0.1:4010')).toBe('http://127.0.0.1:4010');
  });
});
