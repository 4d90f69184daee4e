/**
 * The web UI's Connect X state (src/ui/connect.ts) against the emulator's OAuth endpoints over real
 * HTTP, with a clock of its own: a sign-in expires, an unapproved account posted anyway is refused,
 * and neither writes anything. The browser's part is played by plain HTTP (ui-connect.test.ts clicks
 * it in Chromium).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { readDotEnv } from '../../src/config/dotenv.js';
import { loadProject } from '../../src/config/load-project.js';
import { type RunningEmulator, startEmulator } from '../../src/emulator/index.js';
import { ConnectFlow, SIGN_IN_TTL_MS } from '../../src/ui/connect.js';

const logger = pino({ level: 'silent' });
const APP = { consumerKey: 'flow-app', consumerSecret: 'flow-app-secret' };
const USER = { userId: '31', screenName: 'flow_user' };
const CALLBACK = 'http://127.0.0.1:4141/connect/callback';
const YML = '# mine\nwarehouse: { type: pglite, url: w }\ndestinations: {}\nactivations: {}\n';

let emulator: RunningEmulator;
let dir: string;
let now = 1_000_000;

beforeAll(async () => {
  emulator = await startEmulator({
    seed: {
      accounts: [
        { id: 'ok1', name: 'Approved', approvalStatus: 'ACCEPTED' },
        { id: 'rev1', name: 'In review', approvalStatus: 'UNDER_REVIEW' },
      ],
      apps: [APP],
      users: [{ ...USER, access: { ok1: ['ACCOUNT_ADMIN'], rev1: ['ACCOUNT_ADMIN'] } }],
    },
  });
});
afterAll(() => emulator.close());
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tailor-ui-connect-flow-'));
  await writeFile(join(dir, 'tailor.yml'), YML);
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function flow(env: Record<string, string> = {}): ConnectFlow {
  return new ConnectFlow({
    projectDir: dir,
    env: () => env,
    validate: async () => loadProject(dir, await readDotEnv(dir)),
    logger,
    now: () => now,
  });
}

/** The user clicks "Authorize app"; returns the query X's redirect brings to the callback. */
async function authorize(authorizeUrl: string): Promise<{ oauth_token: string; oauth_verifier: string }> {
  const html = await (await fetch(authorizeUrl)).text();
  const token = /name="oauth_token" value="([^"]+)"/.exec(html)![1]!;
  const answer = await fetch(new URL('/oauth/authorize', emulator.url), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ oauth_token: token, user_id: USER.userId, decision: 'allow' }),
    redirect: 'manual',
  });
  const location = new URL(answer.headers.get('location')!);
  expect(`${location.origin}${location.pathname}`).toBe(CALLBACK);
  return {
    oauth_token: location.searchParams.get('oauth_token')!,
    oauth_verifier: location.searchParams.get('oauth_verifier')!,
  };
}

const FORM = { ...APP, apiUrl: '' };

describe('Connect X sign-ins in progress', () => {
  it('forgets a sign-in X answers after it expired, and writes nothing', async () => {
    const connect = flow();
    const authorizeUrl = await connect.start({ ...FORM, apiUrl: emulator.url }, CALLBACK);
    expect(connect.inProgress).toBe(1);
    const back = await authorize(authorizeUrl);
    now += SIGN_IN_TTL_MS;
    await expect(connect.callback(back)).rejects.toThrow(/this sign-in is unknown or has expired/);
    expect(connect.inProgress).toBe(0);
    expect(await readFile(join(dir, 'tailor.yml'), 'utf8')).toBe(YML);
    expect(existsSync(join(dir, '.env'))).toBe(false);
  });

  it('refuses an unapproved account posted anyway, then saves the approved one once', async () => {
    const connect = flow({ X_CONSUMER_KEY: APP.consumerKey, X_CONSUMER_SECRET: APP.consumerSecret });
    expect(await connect.defaults()).toMatchObject({ hasConsumerKey: true, hasConsumerSecret: true });
    // The keys come from the environment when the form leaves them blank.
    const authorizeUrl = await connect.start({ apiUrl: emulator.url }, CALLBACK);
    const outcome = await connect.callback(await authorize(authorizeUrl));
    if (outcome.kind !== 'choose') throw new Error(`expected the picker, got ${outcome.kind}`);
    expect(outcome.accounts.map((a) => a.id)).toEqual(['ok1', 'rev1']);
    await expect(connect.choose(outcome.handle, 'rev1')).rejects.toThrow(
      /ad account rev1 \("In review"\) is not approved for custom audiences/,
    );
    await expect(connect.choose('forged-handle', 'ok1')).rejects.toThrow(/unknown or has expired/);
    expect(await readFile(join(dir, 'tailor.yml'), 'utf8')).toBe(YML);
    expect(existsSync(join(dir, '.env'))).toBe(false);

    const saved = await connect.choose(outcome.handle, 'ok1');
    expect(saved).toMatchObject({ kind: 'connected', destination: 'x', created: true });
    const yml = await readFile(join(dir, 'tailor.yml'), 'utf8');
    expect(yml).toContain('# mine');
    expect(yml).toContain('account_id: ok1');
    expect(Object.keys(await readDotEnv(dir)).sort()).toEqual([
      'X_ACCESS_TOKEN',
      'X_ACCESS_TOKEN_SECRET',
      'X_CONSUMER_KEY',
      'X_CONSUMER_SECRET',
    ]);
    // The handle is spent.
    await expect(connect.choose(outcome.handle, 'ok1')).rejects.toThrow(/unknown or has expired/);
  });

  it('refuses a bad form before asking X anything', async () => {
    const connect = flow();
    await expect(connect.start({ ...FORM, destination: 'Bad Name' }, CALLBACK)).rejects.toThrow(
      /not a destination name/,
    );
    await expect(connect.start({ ...FORM, apiUrl: 'http://example.com' }, CALLBACK)).rejects.toThrow(
      /must be an https URL/,
    );
    await expect(connect.start({ consumerKey: APP.consumerKey }, CALLBACK)).rejects.toThrow(
      /enter your X app's API key secret/,
    );
    expect(connect.inProgress).toBe(0);
  });
});
