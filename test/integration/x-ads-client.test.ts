import fc from 'fast-check';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { MemberChange, MemberHashes, RequestEvent } from '../../src/destinations/destination.js';
import { createVirtualClock } from '../../src/destinations/x-ads/clock.js';
import { sha256Hex } from '../../src/destinations/x-ads/identifiers.js';
import {
  type XAdsDestinationConfig,
  xAdsDestinationSchema,
} from '../../src/destinations/x-ads/x-ads-config.js';
import { createXAdsDestination } from '../../src/destinations/x-ads/x-ads-destination.js';
import { MAX_AUDIENCE_NAME_LENGTH } from '../../src/config/activation-config.js';
import {
  DEMO_ACCOUNT_ID,
  DEMO_CREDENTIALS,
  FAULT_KINDS,
  type RunningEmulator,
  startEmulator,
} from '../../src/emulator/index.js';
import {
  AudienceMissingError,
  AuthError,
  DestinationUnreachableError,
  RetryableError,
} from '../../src/errors.js';

/**
 * The X Ads client against the real (strict) emulator over HTTP. Waits (backoff, 429 resets, the
 * per-minute limiter) run on a virtual clock shared with the emulator, so nothing here sleeps for real
 * except the request timeouts of the latency fault.
 */

const logger = pino({ level: 'silent' });
let emulator: RunningEmulator;
let clock: ReturnType<typeof createVirtualClock>;

beforeAll(async () => {
  clock = createVirtualClock();
  emulator = await startEmulator({ clock: () => clock.now() });
});
afterAll(async () => {
  await emulator.close();
});
afterEach(() => {
  emulator.admin.clearFaults();
  emulator.admin.clearRequestLog();
});

function config(
  overrides: {
    limits?: Partial<XAdsDestinationConfig['limits']>;
    credentials?: Partial<XAdsDestinationConfig['credentials']>;
  } = {},
): XAdsDestinationConfig {
  return xAdsDestinationSchema.parse({
    type: 'x_ads',
    account_id: DEMO_ACCOUNT_ID,
    api_url: emulator.url,
    credentials: {
      consumer_key: DEMO_CREDENTIALS.consumerKey,
      consumer_secret: DEMO_CREDENTIALS.consumerSecret,
      access_token: DEMO_CREDENTIALS.accessToken,
      access_token_secret: DEMO_CREDENTIALS.accessTokenSecret,
      ...overrides.credentials,
    },
    // Generous: a loaded CI machine must not turn a slow answer into a timeout (the latency test sets its own).
    limits: { request_timeout_ms: 15_000, ...overrides.limits },
  });
}

function client(options: Parameters<typeof config>[0] & { pageSize?: number } = {}) {
  const events: RequestEvent[] = [];
  const destination = createXAdsDestination('x', config(options), {
    logger,
    clock,
    random: () => 0.5,
    observer: { onRequest: (event) => events.push(event) },
    ...(options.pageSize ? { pageSize: options.pageSize } : {}),
  });
  return { destination, events };
}

let audienceCounter = 0;
async function newAudience(): Promise<string> {
  audienceCounter += 1;
  const audience = await client().destination.createAudience(
    `it ${audienceCounter} ${Date.now()}`,
    undefined,
  );
  return audience.id;
}

const email = (i: number) => sha256Hex(`user${i}@example.com`);
const update = (user: MemberHashes): MemberChange => ({ op: 'update', user });
const remove = (user: MemberHashes): MemberChange => ({ op: 'delete', user });
/** The emulator's log of users requests for one audience (late answers of other tests' timed-out requests land too). */
const usersLog = (audienceId: string) =>
  emulator.admin.requestLog().filter((e) => e.path.endsWith(`/custom_audiences/${audienceId}/users`));
const membership = (audienceId: string) => emulator.admin.membership(DEMO_ACCOUNT_ID, audienceId);

describe('audiences', () => {
  it('creates, gets, finds by exact name and lists with pagination', async () => {
    const { destination, events } = client({ pageSize: 2 });
    const stamp = Date.now();
    const created = await destination.createAudience(`VIP: a+b, c/d (x)! @${stamp}`, 'CRM sync');
    expect(created).toMatchObject({
      name: `VIP: a+b, c/d (x)! @${stamp}`,
      description: 'CRM sync',
      deleted: false,
      size: null,
      targetable: false,
    });
    expect(created.reasonsNotTargetable).toContain('PROCESSING');
    const sibling = await destination.createAudience(`VIP: a+b, c/d (x)! @${stamp} and more`, undefined);
    for (let i = 0; i < 3; i += 1) await destination.createAudience(`filler ${stamp} ${i}`, undefined);

    expect(await destination.getAudience(created.id)).toEqual(created);
    expect(await destination.getAudience(created.id.toUpperCase())).toEqual(created);
    expect(await destination.getAudience('zzzzzz9')).toBeUndefined();

    // `q` matches both by prefix; only the exact name is returned.
    expect((await destination.findAudienceByName(created.name))?.id).toBe(created.id);
    expect((await destination.findAudienceByName(sibling.name))?.id).toBe(sibling.id);
    expect(await destination.findAudienceByName(`VIP: a+b, c/d (x)! @${stamp} and`)).toBeUndefined();

    const all = await destination.listAudiences();
    const ids = all.map((a) => a.id);
    expect(ids).toEqual(expect.arrayContaining([created.id, sibling.id]));
    expect(new Set(ids).size).toBe(ids.length);
    const listCalls = events.filter((e) => e.endpoint === 'custom_audiences' && e.method === 'GET');
    expect(listCalls.length).toBeGreaterThan(1);
  });

  it('creates and finds an audience whose name tailor.yml accepts: 255 code points, mostly emoji', async () => {
    const { destination } = client();
    const stamp = Date.now().toString(36);
    const name = `${stamp}${'😀'.repeat(MAX_AUDIENCE_NAME_LENGTH - stamp.length)}`;
    expect(name.length).toBeGreaterThan(MAX_AUDIENCE_NAME_LENGTH);
    const created = await destination.createAudience(name, undefined);
    expect(created.name).toBe(name);
    expect((await destination.findAudienceByName(name))?.id).toBe(created.id);
  });

  it('reports size and targetability after the size job', async () => {
    const { destination } = client();
    const id = await newAudience();
    const changes = Array.from({ length: 150 }, (_, i) => update({ email: [email(i)] }));
    const { results } = await destination.apply(id, changes);
    expect(results.every((r) => r.status === 'ok')).toBe(true);
    emulator.admin.processAudiences();
    const audience = await destination.getAudience(id);
    expect(audience?.targetable).toBe(true);
    expect(audience?.size).toBeGreaterThanOrEqual(100);
    expect(audience?.reasonsNotTargetable).toEqual([]);
  });

  it('check() passes with good credentials', async () => {
    await expect(client().destination.check()).resolves.toBeUndefined();
  });
});

describe('apply', () => {
  it('applies deletes before updates, one result per change in input order', async () => {
    const { destination } = client();
    const id = await newAudience();
    await destination.apply(id, [update({ email: [email(1)] }), update({ email: [email(2)] })]);
    // The update of email(1) comes first in the input but must land after the delete of email(1).
    const outcome = await destination.apply(id, [
      update({ email: [email(1)], handle: [sha256Hex('one')] }),
      remove({ email: [email(1)] }),
      remove({ email: [email(2)] }),
      update({ email: [email(3)] }),
    ]);
    expect(outcome.results).toEqual([{ status: 'ok' }, { status: 'ok' }, { status: 'ok' }, { status: 'ok' }]);
    expect(outcome.requests).toBe(1);
    expect(membership(id).records).toEqual(
      [{ email: [email(1)], handle: [sha256Hex('one')] }, { email: [email(3)] }].sort((a, b) =>
        JSON.stringify(a) < JSON.stringify(b) ? -1 : 1,
      ),
    );
  });

  it('sends nothing for no changes, and rejects changes with nothing to send', async () => {
    const { destination, events } = client();
    const id = await newAudience();
    expect(await destination.apply(id, [])).toEqual({ results: [], requests: 0 });
    const outcome = await destination.apply(id, [
      update({}),
      update({ email: [] }),
      update({ email: [email(9)] }),
    ]);
    expect(outcome.results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'ok']);
    expect(events.filter((e) => e.endpoint.endsWith('/users'))).toHaveLength(1);
  });

  it.each(FAULT_KINDS)('recovers from %s', async (kind) => {
    const { destination, events } = client(
      kind === 'latency' ? { limits: { request_timeout_ms: 1_000 } } : {},
    );
    const id = await newAudience();
    emulator.admin.clearRequestLog();
    emulator.admin.injectFaults([
      {
        kind,
        times: 2,
        retryAfterSeconds: 30,
        resetInSeconds: 45,
        latencyMs: kind === 'latency' ? 2_000 : 0,
      },
    ]);
    const changes = Array.from({ length: 20 }, (_, i) => update({ email: [email(100 + i)] }));
    const progress: number[] = [];
    const outcome = await destination.apply(id, changes, { onProgress: (p) => progress.push(p.done) });
    expect(outcome.results.every((r) => r.status === 'ok')).toBe(true);
    expect(outcome.requests).toBe(3);
    expect(progress.at(-1)).toBe(20);
    expect(membership(id).identifiers.email).toEqual(changes.map((c) => c.user.email![0]).sort());
    const users = events.filter((e) => e.endpoint.endsWith('/users'));
    expect(users.map((e) => e.attempt)).toEqual([1, 2, 3]);
    if (kind === 'latency') expect(users.slice(0, 2).map((e) => e.status)).toEqual(['timeout', 'timeout']);
    if (kind === 'drop_connection') expect(users[0]!.status).toBe('network_error');
    if (kind === 'rate_limit_429') expect(users[0]!.status).toBe(429);
  });

  it('waits for the 429 reset and the 503 retry-after before retrying', async () => {
    const { destination } = client();
    const id = await newAudience();
    const before = clock.slept.length;
    emulator.admin.injectFaults([
      { kind: 'rate_limit_429', times: 1, resetInSeconds: 40 },
      { kind: 'unavailable_503', times: 1, retryAfterSeconds: 25 },
    ]);
    const outcome = await destination.apply(id, [update({ email: [email(5000)] })]);
    expect(outcome.results).toEqual([{ status: 'ok' }]);
    const waits = clock.slept.slice(before).filter((ms) => ms >= 1_000);
    expect(waits.some((ms) => ms >= 25_000 && ms < 30_000)).toBe(true); // retry-after 25 s
    expect(waits.some((ms) => ms > 30_000 && ms <= 45_000)).toBe(true); // reset in ~40 s + margin
  });

  it('gives up at the retry deadline and reports every change as retryable', async () => {
    const { destination } = client({ limits: { retry_deadline_ms: 60_000 } });
    const id = await newAudience();
    emulator.admin.injectFaults([{ kind: 'unavailable_503', times: 1000, retryAfterSeconds: 20 }]);
    const outcome = await destination.apply(id, [
      update({ email: [email(1)] }),
      remove({ email: [email(2)] }),
    ]);
    expect(outcome.results.map((r) => r.status)).toEqual(['retryable', 'retryable']);
    expect(outcome.requests).toBe(3); // at 0, 20 and 40 s; a fourth would start past 60 s
    expect(membership(id).records).toEqual([]);
  });

  it('stops when aborted, leaving the unacknowledged changes retryable', async () => {
    const { destination } = client();
    const id = await newAudience();
    const controller = new AbortController();
    // The request hangs at the emulator; the abort must cut it short, not wait for it or retry it.
    emulator.admin.injectFaults([{ kind: 'latency', times: 1, latencyMs: 3_000 }]);
    const changes = [update({ email: [email(1)] }), remove({ email: [email(2)] })];
    const pending = destination.apply(id, changes, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('stop')), 100);
    const outcome = await pending;
    expect(outcome.results).toEqual([
      { status: 'retryable', reason: 'stopped before X acknowledged it' },
      { status: 'retryable', reason: 'stopped before X acknowledged it' },
    ]);
    expect(outcome.requests).toBe(1);
  });

  it('an already aborted call sends nothing', async () => {
    const { destination } = client();
    const id = await newAudience();
    const controller = new AbortController();
    controller.abort(new Error('stop'));
    const outcome = await destination.apply(id, [update({ email: [email(1)] })], {
      signal: controller.signal,
    });
    expect(outcome).toEqual({
      results: [{ status: 'retryable', reason: 'stopped before X acknowledged it' }],
      requests: 0,
    });
  });

  it('throws AuthError naming the credentials on a wrong secret (401)', async () => {
    const { destination } = client({ credentials: { consumer_secret: 'wrong-secret' } });
    await expect(destination.check()).rejects.toThrow(AuthError);
    const id = await newAudience();
    const error = await destination.apply(id, [update({ email: [email(1)] })]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect(String((error as AuthError).hint)).toContain('destinations.x.credentials');
    expect(String((error as AuthError).message) + (error as AuthError).hint).not.toContain('wrong-secret');
  });

  it('throws AuthError naming the account when the user cannot reach it (403)', async () => {
    const destination = createXAdsDestination(
      'x',
      { ...config(), account_id: 'zz99nope' },
      { logger, clock },
    );
    const error = await destination.check().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect(String((error as AuthError).message)).toContain('zz99nope');
  });

  it('a read-only user: check() warns, writes fail with AuthError naming the role problem', async () => {
    emulator.admin.seed({
      credentials: [
        {
          consumerKey: DEMO_CREDENTIALS.consumerKey,
          consumerSecret: DEMO_CREDENTIALS.consumerSecret,
          accessToken: 'analyst-token',
          accessTokenSecret: 'analyst-token-secret',
          access: { [DEMO_ACCOUNT_ID]: ['CAMPAIGN_ANALYST'] },
        },
      ],
    });
    const lines: string[] = [];
    const destination = createXAdsDestination(
      'x',
      config({ credentials: { access_token: 'analyst-token', access_token_secret: 'analyst-token-secret' } }),
      { logger: pino({ level: 'warn' }, { write: (line: string) => lines.push(line) }), clock },
    );
    await destination.check();
    expect(lines.join('')).toContain('may not be able to write audiences');
    const id = await newAudience();
    const error = await destination.apply(id, [update({ email: [email(1)] })]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthError);
    expect(String((error as AuthError).hint)).toMatch(/read-only roles/);
    await expect(destination.createAudience('analyst audience', undefined)).rejects.toThrow(AuthError);
  });

  it('fails at once when nothing listens on a loopback port: the origin in the message, what to check in the hint', async () => {
    const gone = await startEmulator({});
    await gone.close();
    const port = new URL(gone.url).port;
    const virtual = createVirtualClock();
    const events: RequestEvent[] = [];
    const destination = createXAdsDestination(
      'x',
      // Credentials and a query in api_url must never reach a message.
      { ...config(), api_url: `http://tailor:pa55word@127.0.0.1:${port}/?token=abc123` },
      { logger, clock: virtual, random: () => 0.5, observer: { onRequest: (e) => events.push(e) } },
    );
    const error = await destination.check().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DestinationUnreachableError);
    const unreachable = error as DestinationUnreachableError;
    expect(unreachable.message).toContain(`http://127.0.0.1:${port}`);
    expect(unreachable.message).toMatch(/connection refused/);
    expect(unreachable.message).not.toMatch(/gave up|pa55word|tailor:|token|abc123/);
    expect(unreachable.origin).toBe(`http://127.0.0.1:${port}`);
    expect(unreachable.hint).toMatch(/destinations\.x\.api_url in tailor\.yml/);
    expect(unreachable.hint).toMatch(/emulator/);
    expect(unreachable.hint).toMatch(/network/);
    expect(unreachable.cause).toMatchObject({ code: 'ECONNREFUSED' });
    // Not retried: one attempt, no wait.
    expect(events).toHaveLength(1);
    expect(virtual.slept).toEqual([]);
    // Every call, the users endpoint included, says the same rather than leaving changes to retry.
    await expect(destination.listAudiences()).rejects.toThrow(DestinationUnreachableError);
    await expect(destination.createAudience('a', undefined)).rejects.toThrow(DestinationUnreachableError);
    await expect(destination.apply('abc1', [update({ email: [email(1)] })])).rejects.toThrow(
      DestinationUnreachableError,
    );
    expect(virtual.slept).toEqual([]);
  });

  it('fails at once on a host name that does not resolve, and on TLS it cannot complete', async () => {
    const virtual = createVirtualClock();
    const make = (apiUrl: string) =>
      createXAdsDestination('x', { ...config(), api_url: apiUrl }, { logger, clock: virtual });
    // `.invalid` never resolves (RFC 2606).
    const dns = await make('https://ads-api.tailor-test.invalid')
      .check()
      .catch((e: unknown) => e);
    expect(dns).toBeInstanceOf(DestinationUnreachableError);
    expect((dns as Error).message).toContain('https://ads-api.tailor-test.invalid');
    expect((dns as DestinationUnreachableError).hint).toMatch(/host name in destinations\.x\.api_url/);
    // https spoken to the plain-http emulator: the TLS handshake fails, as with a refused certificate.
    const tlsUrl = emulator.url.replace(/^http:/, 'https:');
    const tls = await make(tlsUrl)
      .check()
      .catch((e: unknown) => e);
    expect(tls).toBeInstanceOf(DestinationUnreachableError);
    expect((tls as Error).message).toContain(tlsUrl);
    expect((tls as Error).message).toMatch(/TLS/);
    expect((tls as DestinationUnreachableError).hint).toMatch(/plain http/);
    expect(virtual.slept).toEqual([]);
  });

  it('a read that X keeps failing gives up with a RetryableError naming the address', async () => {
    const { destination } = client();
    emulator.admin.injectFaults([{ kind: 'server_error_500', match: 'audiences', times: 100 }]);
    const error = await destination.listAudiences().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetryableError);
    expect((error as Error).message).toContain(new URL(emulator.url).origin);
    expect((error as Error).message).toMatch(/server error \(500\); gave up after \d+ attempts/);
  });

  it('says while it waits to retry: a log line with the wait and the reason, and no query parameters', async () => {
    const lines: string[] = [];
    const destination = createXAdsDestination('x', config(), {
      logger: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }),
      clock,
      random: () => 0.5,
    });
    emulator.admin.injectFaults([
      { kind: 'unavailable_503', match: 'audiences', times: 1, retryAfterSeconds: 7 },
      { kind: 'drop_connection', match: 'audiences', times: 1 },
    ]);
    const name = `Query-borne name ${Date.now()}`;
    await destination.createAudience(name, 'a description');
    const retries = lines.map((line) => JSON.parse(line)).filter((entry) => /retrying/.test(entry.msg));
    expect(retries).toHaveLength(2);
    expect(retries[0]).toMatchObject({
      level: 40,
      endpoint: 'custom_audiences',
      attempt: 1,
      waitMs: 7_000,
      reason: 'service unavailable (503)',
    });
    expect(retries[0].msg).toMatch(/retrying in 7 s/);
    expect(retries[1]).toMatchObject({
      level: 40,
      attempt: 2,
      reason: expect.stringMatching(/^connection lost/),
    });
    expect(lines.join('')).not.toMatch(/Query-borne|a description|name=/);
  });

  it('throws AudienceMissingError for a missing audience (404), whose hint names the options that recreate it', async () => {
    const { destination } = client();
    const error = await destination
      .apply('zzzz9999', [update({ email: [email(1)] })])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AudienceMissingError);
    // --full-resync alone re-sends every member to the bound audience, which is gone: only with
    // --recreate does a run make a new one (bind-audience.ts).
    const hint = (error as AudienceMissingError).hint ?? '';
    expect(hint).toContain('tailor sync <activation> --full-resync --recreate');
    expect(hint).not.toMatch(/--full-resync(?! --recreate)/);
  });

  it('rejects only the operations X refuses and resends the rest (operation_errors)', async () => {
    const { destination } = client();
    const id = await newAudience();
    emulator.admin.clearRequestLog();
    const outcome = await destination.apply(id, [
      update({ email: [email(1)] }),
      update({ email: ['raw@example.com'] }), // not hashed: bypasses hashMember, the strict emulator refuses it
      update({ email: [email(3)] }),
      remove({ handle: [sha256Hex('x').toUpperCase()] }), // uppercase hex is refused too
      remove({ email: [email(4)] }),
    ]);
    expect(outcome.results.map((r) => r.status)).toEqual(['ok', 'rejected', 'ok', 'rejected', 'ok']);
    const rejected = outcome.results[1] as { reason: string };
    expect(rejected.reason).toMatch(/INVALID_PARAMETER/);
    expect(rejected.reason).not.toContain('raw@example.com');
    expect(membership(id).identifiers).toEqual({ email: [email(1), email(3)].sort() });
    // 1st: two packed operations, refused; 2nd: one user per operation, the bad ones found;
    // 3rd: the good users packed again.
    const log = usersLog(id);
    expect(log.map((e) => [e.status, e.operations, e.users])).toEqual([
      [400, 2, 5],
      [400, 5, 5],
      [200, 2, 3],
    ]);
  });

  it('splits by max_request_bytes and max_operations, as the request log shows', async () => {
    const { destination } = client({ limits: { max_request_bytes: 10_000 } });
    const id = await newAudience();
    emulator.admin.clearRequestLog();
    const changes = [
      ...Array.from({ length: 150 }, (_, i) => remove({ email: [email(10_000 + i)] })),
      ...Array.from({ length: 250 }, (_, i) =>
        update({ email: [email(20_000 + i)], handle: [sha256Hex(`h${i}`)] }),
      ),
    ];
    const outcome = await destination.apply(id, changes);
    expect(outcome.results.every((r) => r.status === 'ok')).toBe(true);
    const log = usersLog(id);
    expect(log.length).toBe(outcome.requests);
    expect(log.length).toBeGreaterThan(4);
    for (const entry of log) {
      expect(entry.status).toBe(200);
      expect(entry.bytes).toBeLessThanOrEqual(10_000);
      expect(entry.operations).toBeLessThanOrEqual(2);
    }
    expect(log.reduce((n, e) => n + (e.users ?? 0), 0)).toBe(400);
    // A full request: the next user (~70 bytes) would not have fitted.
    expect(log[0]!.bytes).toBeGreaterThan(10_000 - 100);
    expect(membership(id).records).toHaveLength(250);
  });

  it('keeps X limits on a large apply: 2,500 isolated operations at most', async () => {
    const { destination } = client();
    const id = await newAudience();
    emulator.admin.clearRequestLog();
    // 3,000 users with the 2nd one bad: the first request is one operation, then isolation sends one
    // user per operation, which must split at 2,500 operations; the good ones of the first 2,500 are
    // packed again and go before the last 500 (input order is kept).
    const changes = Array.from({ length: 3000 }, (_, i) =>
      update({ email: [i === 1 ? 'bad' : email(30_000 + i)] }),
    );
    const outcome = await destination.apply(id, changes);
    expect(outcome.results.filter((r) => r.status === 'rejected')).toHaveLength(1);
    expect(outcome.results[1]!.status).toBe('rejected');
    const log = usersLog(id);
    expect(log.map((e) => e.operations)).toEqual([1, 2500, 1, 500]);
    expect(membership(id).records).toHaveLength(2999);
  });
});

describe('property: membership equals the model of what was acknowledged', () => {
  const pool = {
    email: Array.from({ length: 6 }, (_, i) => sha256Hex(`p${i}@x.com`)),
    handle: Array.from({ length: 4 }, (_, i) => sha256Hex(`h${i}`)),
    twitter_id: Array.from({ length: 3 }, (_, i) => sha256Hex(String(1000 + i))),
  };
  type Key = keyof typeof pool;
  const userArb: fc.Arbitrary<MemberHashes> = fc
    .record(
      {
        email: fc.subarray(pool.email, { minLength: 1, maxLength: 2 }),
        handle: fc.subarray(pool.handle, { minLength: 1, maxLength: 2 }),
        twitter_id: fc.subarray(pool.twitter_id, { minLength: 1, maxLength: 1 }),
      },
      { requiredKeys: [] },
    )
    .filter((user) => Object.keys(user).length > 0)
    .map((user) => {
      const out: MemberHashes = {};
      for (const key of Object.keys(user).sort() as Key[]) out[key] = [...user[key]!].sort();
      return out;
    });
  const changeArb: fc.Arbitrary<MemberChange> = fc.record({
    op: fc.constantFrom('update', 'delete'),
    user: userArb,
  });
  const callArb = fc.record({
    changes: fc.array(changeArb, { minLength: 1, maxLength: 6 }),
    fault: fc.option(
      fc.constantFrom('server_error_500', 'count_mismatch', 'drop_connection', 'unavailable_503'),
      {
        nil: undefined,
      },
    ),
  });

  type Model = Map<string, MemberHashes>;
  const canonical = (user: MemberHashes) => JSON.stringify(user);
  const applyToModel = (model: Model, changes: readonly MemberChange[], statuses: string[]) => {
    for (const op of ['delete', 'update'] as const) {
      changes.forEach((change, i) => {
        if (change.op !== op || statuses[i] !== 'ok') return;
        if (op === 'update') {
          model.set(canonical(change.user), change.user);
          return;
        }
        for (const [key, record] of model) {
          const shares = (Object.keys(change.user) as Key[]).some((k) =>
            (change.user[k] ?? []).some((v) => (record[k] ?? []).includes(v)),
          );
          if (shares) model.delete(key);
        }
      });
    }
  };

  it('holds for random sequences of apply() calls, with transient faults', async () => {
    const { destination } = client();
    await fc.assert(
      fc.asyncProperty(fc.array(callArb, { minLength: 1, maxLength: 5 }), async (calls) => {
        const id = await newAudience();
        const model: Model = new Map();
        for (const call of calls) {
          if (call.fault) emulator.admin.injectFaults([{ kind: call.fault, times: 1, retryAfterSeconds: 1 }]);
          const { results } = await destination.apply(id, call.changes);
          expect(results).toHaveLength(call.changes.length);
          applyToModel(
            model,
            call.changes,
            results.map((r) => r.status),
          );
          expect(results.every((r) => r.status === 'ok')).toBe(true);
        }
        const expected = [...model.values()].map((user) => canonical(user)).sort();
        const actual = membership(id)
          .records.map((record) => canonical(record as MemberHashes))
          .sort();
        expect(actual).toEqual(expected);
      }),
      { numRuns: 25 },
    );
  });
});

describe('logging', () => {
  it('logs x-api-warn, and never identifiers, query strings or secrets, even at debug level', async () => {
    const warned = await startEmulator({ switches: { deprecatedVersions: ['12'] } });
    try {
      const lines: string[] = [];
      const captured = pino({ level: 'debug' }, { write: (line: string) => lines.push(line) });
      const destination = createXAdsDestination(
        'x',
        { ...config(), api_url: warned.url },
        { logger: captured, clock: createVirtualClock(), random: () => 0.5 },
      );
      const audience = await destination.createAudience('Secret-ish audience name', undefined);
      warned.admin.injectFaults([{ kind: 'server_error_500', times: 1 }]);
      const hashes = [email(1), email(2), sha256Hex('handle')];
      const outcome = await destination.apply(audience.id, [
        update({ email: [hashes[0]!], handle: [hashes[2]!] }),
        remove({ email: [hashes[1]!] }),
        update({ partner_user_id: ['crm-000123'] }),
      ]);
      expect(outcome.results.every((r) => r.status === 'ok')).toBe(true);
      const log = lines.join('');
      expect(log).toContain('x_api_warn');
      expect(log).toMatch(/X Ads request: server error \(500\); retrying in /);
      for (const value of [
        ...hashes,
        'crm-000123',
        'Secret-ish',
        DEMO_CREDENTIALS.consumerSecret,
        DEMO_CREDENTIALS.accessTokenSecret,
      ]) {
        expect(log).not.toContain(value);
      }
    } finally {
      await warned.close();
    }
  });
});
