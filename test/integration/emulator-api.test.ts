/**
 * The emulator over real HTTP, with requests signed by the `oauth-1.0a` package (an implementation
 * independent of both the emulator and Tailor's client) and sent with node's fetch.
 */
import { createHash, createHmac } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OAuth from 'oauth-1.0a';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEMO_ACCOUNT_ID,
  DEMO_CREDENTIALS,
  type EmulatorOptions,
  type EmulatorSeed,
  type RunningEmulator,
  startEmulator,
} from '../../src/emulator/index.js';

interface Credentials {
  consumerKey: string;
  consumerSecret: string;
  accessToken: string;
  accessTokenSecret: string;
}

interface CallOptions {
  query?: Record<string, string>;
  json?: unknown;
  /** Raw body with its content type (for 415 and size tests). */
  body?: string | Buffer;
  contentType?: string;
  /** Form-urlencoded body; signed unless signForm is false. */
  form?: Record<string, string>;
  signForm?: boolean;
  /** Extra parameters put into the signature only (to sign what is not sent, e.g. a JSON body). */
  signExtra?: Record<string, string>;
  credentials?: Credentials;
  timestampSeconds?: number;
  nonce?: string;
  /** Rewrites the Authorization header after signing. */
  header?: (authorization: string) => string;
  /** Raw query string (already encoded), instead of `query`. */
  rawQuery?: string;
}

interface CallResult {
  status: number;
  headers: Headers;
  text: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
}

/** RFC 3986 encoding, written here so the test does not borrow the emulator's. */
const enc = (s: string) =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

function client(emulator: RunningEmulator, clock: () => number = Date.now) {
  let nonceCounter = 0;
  return async function call(method: string, path: string, options: CallOptions = {}): Promise<CallResult> {
    const creds = options.credentials ?? DEMO_CREDENTIALS;
    const oauth = new OAuth({
      consumer: { key: creds.consumerKey, secret: creds.consumerSecret },
      signature_method: 'HMAC-SHA1',
      hash_function: (base, key) => createHmac('sha1', key).update(base).digest('base64'),
    });
    const timestamp = options.timestampSeconds ?? Math.floor(clock() / 1000);
    oauth.getTimeStamp = () => timestamp;
    const nonce = options.nonce ?? `n${Date.now()}x${++nonceCounter}x${Math.random().toString(36).slice(2)}`;
    oauth.getNonce = () => nonce;
    const query =
      options.rawQuery ??
      Object.entries(options.query ?? {})
        .map(([k, v]) => `${enc(k)}=${enc(v)}`)
        .join('&');
    const url = `${emulator.url}${path}${query ? `?${query}` : ''}`;
    const data = {
      ...(options.form && options.signForm !== false ? options.form : {}),
      ...(options.signExtra ?? {}),
    };
    let authorization = oauth.toHeader(
      oauth.authorize({ url, method, data }, { key: creds.accessToken, secret: creds.accessTokenSecret }),
    ).Authorization;
    if (options.header) authorization = options.header(authorization);
    const headers: Record<string, string> = { authorization };
    let body: string | Buffer | undefined;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
    } else if (options.form) {
      body = Object.entries(options.form)
        .map(([k, v]) => `${enc(k)}=${enc(v)}`)
        .join('&');
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else if (options.body !== undefined) {
      body = options.body;
    }
    if (options.contentType) headers['content-type'] = options.contentType;
    const res = await fetch(url, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  };
}

const ACCOUNT = DEMO_ACCOUNT_ID;
const audiencesPath = `/12/accounts/${ACCOUNT}/custom_audiences`;
let nameCounter = 0;
const uniqueName = (prefix = 'audience') => `${prefix} ${++nameCounter}`;

async function withEmulator<T>(options: EmulatorOptions, body: (emulator: RunningEmulator) => Promise<T>) {
  const emulator = await startEmulator(options);
  try {
    return await body(emulator);
  } finally {
    await emulator.close();
  }
}

async function createAudience(call: ReturnType<typeof client>, name = uniqueName()): Promise<string> {
  const res = await call('POST', audiencesPath, { query: { name } });
  expect(res.status).toBe(200);
  return res.json.data.id as string;
}

const usersBody = (users: unknown[], type = 'Update') => [{ operation_type: type, params: { users } }];

describe('emulator: transport, routing and OAuth', () => {
  let emulator: RunningEmulator;
  let call: ReturnType<typeof client>;
  beforeAll(async () => {
    emulator = await startEmulator();
    call = client(emulator);
  });
  afterAll(() => emulator.close());

  it('answers a signed request with JSON, request.params and x-current-api-version', async () => {
    const res = await call('GET', '/12/accounts');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.headers.get('x-current-api-version')).toBe('12');
    expect(res.json).toMatchObject({ request: { params: {} }, data: [{ id: ACCOUNT }], next_cursor: null });
  });

  it('serves 11 beside 12, as X still lists both (deprecation "TBD"), without x-api-warn', async () => {
    // https://docs.x.com/x-ads-api/fundamentals/versioning: 12 current, 11 listed, 10 ended 2022-10-27.
    const v11 = await call('GET', '/11/accounts');
    expect(v11.status).toBe(200);
    expect(v11.json).toMatchObject({ data: [{ id: ACCOUNT }], next_cursor: null });
    expect(v11.headers.get('x-current-api-version')).toBe('12');
    expect(v11.headers.get('x-api-warn')).toBeNull();
    const audience = await call('POST', `/11/accounts/${ACCOUNT}/custom_audiences`, {
      query: { name: uniqueName('v11') },
    });
    expect(audience.status).toBe(200);
    const read = await call('GET', `${audiencesPath}/${audience.json.data.id as string}`);
    expect(read.json.data.name).toBe(audience.json.data.name);
  });

  it('refuses other versions with 403 INVALID, unknown and legacy routes with 404, wrong methods with 405', async () => {
    for (const version of ['10', '13', '1']) {
      const res = await call('GET', `/${version}/accounts`);
      expect(res.status).toBe(403);
      expect(res.json).toEqual({
        errors: [{ code: 'INVALID', message: `Version ${version}.0 is not available.` }],
        request: { params: {} },
      });
    }
    await withEmulator({ switches: { versions: ['12'] } }, async (e) => {
      const res = await client(e)('GET', '/11/accounts');
      expect(res.status).toBe(403);
      expect(res.json.errors[0].message).toBe('Version 11.0 is not available.');
    });
    for (const path of [
      '/12/nothing',
      `/12/accounts/${ACCOUNT}/tailored_audiences`,
      `/12/accounts/${ACCOUNT}/tailored_audience_changes`,
      `/12/accounts/${ACCOUNT}/tailored_audiences/global_opt_out`,
      '/12/tailored_audience_memberships',
      `${audiencesPath}/abc/users/extra`,
      '/',
    ]) {
      const res = await call('GET', path);
      expect(res.status, path).toBe(404);
      expect(res.json.errors[0].code).toBe('ROUTE_NOT_FOUND');
      expect(res.headers.get('x-current-api-version')).toBe('12');
    }
    const wrong = await call('DELETE', audiencesPath);
    expect(wrong.status).toBe(405);
    expect(wrong.json.errors[0].code).toBe('METHOD_NOT_ALLOWED');
    expect(wrong.headers.get('allow')).toBe('GET, POST');
  });

  it('serves a deprecated version with x-api-warn when switched on', async () => {
    await withEmulator({ switches: { versions: ['11', '12'], deprecatedVersions: ['11'] } }, async (e) => {
      const res = await client(e)('GET', '/11/accounts');
      expect(res.status).toBe(200);
      expect(res.headers.get('x-api-warn')).toMatch(/deprecated/);
    });
  });

  const unauthorized = (res: CallResult) => {
    expect(res.status).toBe(401);
    expect(res.json).toEqual({
      errors: [{ code: 'UNAUTHORIZED_ACCESS', message: 'This request is not properly authenticated' }],
      request: { params: {} },
    });
  };

  it('refuses a tampered signature, a wrong secret and a missing header', async () => {
    unauthorized(
      await call('GET', '/12/accounts', {
        header: (h) =>
          h.replace(
            /oauth_signature="([^"]+)"/,
            (_m, s: string) => `oauth_signature="${s.slice(0, -4)}AAA%3D"`,
          ),
      }),
    );
    unauthorized(
      await call('GET', '/12/accounts', { credentials: { ...DEMO_CREDENTIALS, consumerSecret: 'wrong' } }),
    );
    unauthorized(
      await call('GET', '/12/accounts', { credentials: { ...DEMO_CREDENTIALS, accessTokenSecret: 'wrong' } }),
    );
    unauthorized(
      await call('GET', '/12/accounts', { credentials: { ...DEMO_CREDENTIALS, accessToken: 'other' } }),
    );
    unauthorized(await call('GET', '/12/accounts', { header: () => '' }));
    const res = await fetch(`${emulator.url}/12/accounts`);
    expect(res.status).toBe(401);
  });

  it('refuses a request whose signed query differs from the one sent', async () => {
    const signedOther = await call('GET', audiencesPath, {
      query: { count: '5' },
      header: (h) => h,
      signExtra: { q: 'x' },
    });
    unauthorized(signedOther);
  });

  it('requires each of the 7 oauth parameters, and no others', async () => {
    for (const name of [
      'oauth_consumer_key',
      'oauth_nonce',
      'oauth_signature',
      'oauth_signature_method',
      'oauth_timestamp',
      'oauth_token',
      'oauth_version',
    ]) {
      const res = await call('GET', '/12/accounts', {
        header: (h) => h.replace(new RegExp(`${name}="[^"]*",? ?`), '').replace(/, $/, ''),
      });
      expect(res.headers.get('x-emulator-auth-failure'), name).toMatch(
        new RegExp(`missing ${name}|signature`),
      );
      unauthorized(res);
    }
    unauthorized(await call('GET', '/12/accounts', { header: (h) => `${h}, oauth_body_hash="abc"` }));
    unauthorized(await call('GET', '/12/accounts', { header: (h) => `${h}, realm="x"` }));
    unauthorized(await call('GET', '/12/accounts', { header: (h) => h.replace('HMAC-SHA1', 'PLAINTEXT') }));
    unauthorized(await call('GET', '/12/accounts', { header: (h) => `${h}, oauth_nonce="again"` }));
  });

  it('refuses a stale or future timestamp (±300 s by default) and accepts one inside the window', async () => {
    const now = Math.floor(Date.now() / 1000);
    unauthorized(await call('GET', '/12/accounts', { timestampSeconds: now - 310 }));
    unauthorized(await call('GET', '/12/accounts', { timestampSeconds: now + 310 }));
    expect((await call('GET', '/12/accounts', { timestampSeconds: now - 280 })).status).toBe(200);
    await withEmulator({ timestampWindowSeconds: 30 }, async (e) => {
      unauthorized(await client(e)('GET', '/12/accounts', { timestampSeconds: now - 60 }));
    });
  });

  it('refuses a replayed nonce', async () => {
    const nonce = `replay-${Date.now()}`;
    expect((await call('GET', '/12/accounts', { nonce })).status).toBe(200);
    const replay = await call('GET', '/12/accounts', { nonce });
    unauthorized(replay);
    expect(replay.headers.get('x-emulator-auth-failure')).toBe('nonce replayed');
  });

  it('never signs a JSON body, but does sign a form-urlencoded one', async () => {
    const id = await createAudience(call);
    const body = usersBody([{ email: [sha('json@example.com')] }]);
    expect((await call('POST', `${audiencesPath}/${id}/users`, { json: body })).status).toBe(200);
    // Signing the JSON as if it were parameters (what a confused client does) fails.
    unauthorized(
      await call('POST', `${audiencesPath}/${id}/users`, {
        json: body,
        signExtra: { [JSON.stringify(body)]: '' },
      }),
    );
    const name = uniqueName('form');
    unauthorized(await call('POST', audiencesPath, { form: { name }, signForm: false }));
    const viaForm = await call('POST', audiencesPath, {
      form: { name, description: 'from a form: yes, really!' },
    });
    expect(viaForm.status).toBe(200);
    expect(viaForm.json.data).toMatchObject({ name, description: 'from a form: yes, really!' });
  });

  it('refuses duplicate parameter keys and raw reserved characters', async () => {
    unauthorized(await call('GET', audiencesPath, { rawQuery: 'count=1&count=2' }));
    unauthorized(await call('POST', audiencesPath, { query: { name: 'dup' }, form: { name: 'dup' } }));
    unauthorized(await call('POST', audiencesPath, { rawQuery: 'name=a:b' }));
    unauthorized(await call('GET', audiencesPath, { rawQuery: 'custom_audience_ids=a,b' }));
    // The same values, encoded as X requires, pass.
    expect((await call('GET', audiencesPath, { query: { custom_audience_ids: 'a,b' } })).status).toBe(200);
  });

  it('refuses an account the token cannot reach with 403 NOT_FOUND (or ACCOUNT_NOT_FOUND)', async () => {
    for (const account of ['2iqph', '938627011618263040', 'AB-C']) {
      const res = await call('GET', `/12/accounts/${account}/custom_audiences`);
      expect(res.status).toBe(403);
      expect(res.json).toEqual({
        errors: [{ code: 'NOT_FOUND', message: `Account ${account} was not found` }],
        request: { params: {} },
      });
    }
    // Ids are read case-insensitively and emitted lower case.
    const upper = await call('GET', `/12/accounts/${ACCOUNT.toUpperCase()}`);
    expect(upper.status).toBe(200);
    expect(upper.json.data.id).toBe(ACCOUNT);
    await withEmulator({ switches: { accountNotFoundCode: 'ACCOUNT_NOT_FOUND' } }, async (e) => {
      const res = await client(e)('GET', '/12/accounts/2iqph');
      expect(res.json.errors[0].code).toBe('ACCOUNT_NOT_FOUND');
    });
  });

  it('lets read-only users read but not write, and refuses apps without Ads or users access', async () => {
    const analyst = {
      consumerKey: 'ck2',
      consumerSecret: 'cs2',
      accessToken: 'analyst',
      accessTokenSecret: 'as',
    };
    const unapproved = { ...analyst, accessToken: 'unapproved', accessTokenSecret: 'us' };
    const notAllowlisted = { ...analyst, accessToken: 'nolist', accessTokenSecret: 'ns' };
    emulator.admin.seed({
      credentials: [
        { ...analyst, access: { [ACCOUNT]: ['CAMPAIGN_ANALYST'] } },
        { ...unapproved, access: { [ACCOUNT]: ['ACCOUNT_ADMIN'] }, adsApiApproved: false },
        { ...notAllowlisted, access: { [ACCOUNT]: ['ACCOUNT_ADMIN'] }, usersEndpointAllowlisted: false },
      ],
    });
    expect((await call('GET', audiencesPath, { credentials: analyst })).status).toBe(200);
    const write = await call('POST', audiencesPath, { credentials: analyst, query: { name: uniqueName() } });
    expect(write.status).toBe(403);
    expect(write.json.errors[0].code).toBe('ACTION_NOT_ALLOWED');
    const app = await call('GET', '/12/accounts', { credentials: unapproved });
    expect(app.status).toBe(403);
    expect(app.json.errors[0].code).toBe('UNAUTHORIZED_CLIENT_APPLICATION');
    const id = await createAudience(call);
    const users = await call('POST', `${audiencesPath}/${id}/users`, {
      credentials: notAllowlisted,
      json: usersBody([{ email: [sha('a')] }]),
    });
    expect(users.status).toBe(403);
    expect(users.json.errors[0].code).toBe('UNAUTHORIZED_CLIENT_APPLICATION');
    expect((await call('GET', audiencesPath, { credentials: notAllowlisted })).status).toBe(200);
  });
});

describe('emulator: accounts', () => {
  let emulator: RunningEmulator;
  let call: ReturnType<typeof client>;
  beforeAll(async () => {
    emulator = await startEmulator({
      seed: {
        accounts: [
          { id: ACCOUNT, name: 'Demo', createdAt: '2020-01-01T00:00:00Z' },
          { id: 'hkk5', name: 'Hikes', createdAt: '2021-01-01T00:00:00Z' },
          { id: '2iqph', name: 'Schuppe-Casper', createdAt: '2022-01-01T00:00:00Z', industryType: 'RETAIL' },
          { id: 'gone1', name: 'Gone', deleted: true },
          { id: 'other', name: 'Not mine' },
        ],
        credentials: [
          {
            ...DEMO_CREDENTIALS,
            userId: '42',
            access: {
              [ACCOUNT]: ['ACCOUNT_ADMIN'],
              hkk5: ['CAMPAIGN_ANALYST'],
              '2iqph': ['PARTNER_AUDIENCE_MANAGER'],
              gone1: ['ACCOUNT_ADMIN'],
            },
          },
        ],
      },
    });
    call = client(emulator);
  });
  afterAll(() => emulator.close());

  it('lists the accounts the token reaches, with paging, filters and total_count', async () => {
    const all = await call('GET', '/12/accounts', { query: { with_total_count: 'true' } });
    expect(all.json.data.map((a: { id: string }) => a.id)).toEqual([ACCOUNT, 'hkk5', '2iqph']);
    expect(all.json.total_count).toBe(3);
    expect(all.json.request.params).toEqual({ with_total_count: 'true' });
    const first = await call('GET', '/12/accounts', { query: { count: '2' } });
    expect(first.json.data).toHaveLength(2);
    expect(typeof first.json.next_cursor).toBe('string');
    expect(first.json.request.params).toEqual({ count: 2 });
    const second = await call('GET', '/12/accounts', {
      query: { count: '2', cursor: first.json.next_cursor },
    });
    expect(second.json.data.map((a: { id: string }) => a.id)).toEqual(['2iqph']);
    expect(second.json.next_cursor).toBeNull();
    const deleted = await call('GET', '/12/accounts', { query: { with_deleted: 'true' } });
    expect(deleted.json.data).toHaveLength(4);
    const filtered = await call('GET', '/12/accounts', { query: { account_ids: 'hkk5,2IQPH', q: 'SCH' } });
    expect(filtered.json.data.map((a: { id: string }) => a.id)).toEqual(['2iqph']);
    expect(filtered.json.request.params.account_ids).toEqual(['hkk5', '2IQPH']);
    const sorted = await call('GET', '/12/accounts', { query: { sort_by: 'name-desc' } });
    expect(sorted.json.data.map((a: { name: string }) => a.name)).toEqual([
      'Schuppe-Casper',
      'Hikes',
      'Demo',
    ]);
  });

  it('validates count, sort_by, cursor and the with_total_count/cursor exclusion', async () => {
    for (const count of ['0', '1001', 'x', '-1']) {
      const res = await call('GET', '/12/accounts', { query: { count } });
      expect(res.status, count).toBe(400);
      expect(res.json.errors[0]).toMatchObject({ code: 'INVALID_PARAMETER', parameter: 'count' });
    }
    expect((await call('GET', '/12/accounts', { query: { count: '1000' } })).status).toBe(200);
    expect((await call('GET', '/12/accounts', { query: { sort_by: 'size-asc' } })).status).toBe(400);
    expect((await call('GET', '/12/accounts', { query: { cursor: 'garbage' } })).status).toBe(400);
    expect((await call('GET', '/12/accounts', { query: { with_deleted: 'yes' } })).status).toBe(400);
    const exclusive = await call('GET', '/12/accounts', {
      query: { cursor: 'c-1', with_total_count: 'true' },
    });
    expect(exclusive.status).toBe(400);
    expect(exclusive.json.errors[0].code).toBe('EXCLUSIVE_PARAMETERS');
  });

  it('returns one account with industry_type, and the user access', async () => {
    const one = await call('GET', '/12/accounts/2iqph');
    expect(one.json).toMatchObject({
      data_type: 'account',
      data: { id: '2iqph', name: 'Schuppe-Casper', industry_type: 'RETAIL', approval_status: 'ACCEPTED' },
      request: { params: { account_id: '2iqph' } },
    });
    expect((await call('GET', '/12/accounts/gone1')).status).toBe(404);
    expect((await call('GET', '/12/accounts/gone1', { query: { with_deleted: 'true' } })).status).toBe(200);
    expect((await call('GET', '/12/accounts/other')).status).toBe(403);
    const access = await call('GET', '/12/accounts/hkk5/authenticated_user_access');
    expect(access.json).toEqual({
      request: { params: { account_id: 'hkk5' } },
      data: { user_id: '42', permissions: ['CAMPAIGN_ANALYST'] },
    });
  });
});

describe('emulator: custom audiences CRUD', () => {
  let emulator: RunningEmulator;
  let call: ReturnType<typeof client>;
  beforeAll(async () => {
    emulator = await startEmulator();
    call = client(emulator);
  });
  afterAll(() => emulator.close());

  it('creates a CRM audience in the documented initial state', async () => {
    const res = await call('POST', audiencesPath, { query: { name: 'developers', description: 'CRM sync' } });
    expect(res.status).toBe(200);
    const data = res.json.data;
    expect(data.id).toMatch(/^[0-9a-z]+$/);
    expect(res.json).toEqual({
      data_type: 'custom_audience',
      data: {
        targetable: false,
        name: 'developers',
        targetable_types: ['CRM', 'EXCLUDED_CRM'],
        audience_type: 'CRM',
        description: 'CRM sync',
        permission_level: 'READ_WRITE',
        owner_account_id: ACCOUNT,
        is_owner: true,
        id: data.id,
        reasons_not_targetable: ['PROCESSING', 'TOO_SMALL'],
        created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
        updated_at: data.created_at,
        partner_source: 'OTHER',
        deleted: false,
        audience_size: null,
      },
      request: { params: { account_id: ACCOUNT, name: 'developers', description: 'CRM sync' } },
    });
    const noDescription = await call('POST', audiencesPath, { query: { name: uniqueName() } });
    expect(noDescription.json.data.description).toBeNull();
    expect(noDescription.json.data.id).not.toBe(data.id);
  });

  it('requires a unique name of at most 255 characters', async () => {
    const missing = await call('POST', audiencesPath);
    expect(missing.status).toBe(400);
    expect(missing.json.errors[0]).toMatchObject({ code: 'MISSING_PARAMETER', parameter: 'name' });
    expect((await call('POST', audiencesPath, { query: { name: '' } })).status).toBe(400);
    const name = uniqueName('unique');
    await createAudience(call, name);
    const dup = await call('POST', audiencesPath, { query: { name } });
    expect(dup.status).toBe(400);
    expect(dup.json.errors[0]).toMatchObject({ code: 'INVALID_PARAMETER', parameter: 'name' });
    expect((await call('POST', audiencesPath, { query: { name: 'x'.repeat(256) } })).status).toBe(400);
    expect((await call('POST', audiencesPath, { query: { name: 'y'.repeat(255) } })).status).toBe(200);
    await withEmulator({ switches: { duplicateNameCode: 'DUPLICATE_NAME' } }, async (e) => {
      const c = client(e);
      await createAudience(c, 'same');
      expect((await c('POST', audiencesPath, { query: { name: 'same' } })).json.errors[0].code).toBe(
        'DUPLICATE_NAME',
      );
    });
  });

  it('measures names and q in code points, as tailor.yml does, up to maxNameLength', async () => {
    // 255 emoji are 255 code points but 510 UTF-16 units: tailor.yml accepts them, so must X's stand-in.
    const emoji = (n: number) => '😀'.repeat(n);
    const created = await call('POST', audiencesPath, { query: { name: emoji(255) } });
    expect(created.status, JSON.stringify(created.json?.errors)).toBe(200);
    expect(created.json.data.name).toBe(emoji(255));
    // Combining marks count one each: 255 code points, 128 letters as a reader sees them.
    const marks = `${'e\u0301'.repeat(127)}e`;
    expect((await call('POST', audiencesPath, { query: { name: marks } })).status).toBe(200);
    const tooLong = await call('POST', audiencesPath, { query: { name: `${emoji(255)}!` } });
    expect(tooLong.status).toBe(400);
    expect(tooLong.json.errors[0]).toMatchObject({ code: 'INVALID_PARAMETER', parameter: 'name' });
    const rename = await call('PUT', `${audiencesPath}/${created.json.data.id}`, {
      query: { name: emoji(256) },
    });
    expect(rename.status).toBe(400);
    expect((await call('GET', audiencesPath, { query: { q: emoji(255) } })).json.data).toHaveLength(1);
    expect((await call('GET', audiencesPath, { query: { q: emoji(256) } })).status).toBe(400);
    await withEmulator({ switches: { maxNameLength: 10 } }, async (e) => {
      const c = client(e);
      expect((await c('POST', audiencesPath, { query: { name: emoji(10) } })).status).toBe(200);
      const over = await c('POST', audiencesPath, { query: { name: emoji(11) } });
      expect(over.status).toBe(400);
      expect(over.json.errors[0].message).toMatch(/at most 10 characters/);
    });
  });

  it('lists with count/cursor, q, custom_audience_ids, with_deleted and with_total_count', async () => {
    await withEmulator({}, async (e) => {
      const c = client(e);
      const ids: string[] = [];
      for (const name of ['Alpha one', 'alpha two', 'Beta', 'ALPHA three', 'Gamma'])
        ids.push(await createAudience(c, name));
      const page1 = await c('GET', audiencesPath, { query: { count: '2' } });
      expect(page1.json.data.map((a: { id: string }) => a.id)).toEqual(ids.slice(0, 2));
      expect(page1.json.request.params).toEqual({ account_id: ACCOUNT, count: 2 });
      const page2 = await c('GET', audiencesPath, { query: { count: '2', cursor: page1.json.next_cursor } });
      const page3 = await c('GET', audiencesPath, { query: { count: '2', cursor: page2.json.next_cursor } });
      expect([...page2.json.data, ...page3.json.data].map((a: { id: string }) => a.id)).toEqual(ids.slice(2));
      expect(page3.json.next_cursor).toBeNull();
      const alpha = await c('GET', audiencesPath, { query: { q: 'alpha' } });
      expect(alpha.json.data.map((a: { name: string }) => a.name)).toEqual([
        'Alpha one',
        'alpha two',
        'ALPHA three',
      ]);
      const some = await c('GET', audiencesPath, {
        query: { custom_audience_ids: `${ids[4]},${ids[0]!.toUpperCase()}` },
      });
      expect(some.json.data.map((a: { id: string }) => a.id)).toEqual([ids[0], ids[4]]);
      expect(some.json.request.params.custom_audience_ids).toEqual([ids[4], ids[0]!.toUpperCase()]);
      const tooMany = Array.from({ length: 201 }, (_, i) => `a${i}`).join(',');
      expect((await c('GET', audiencesPath, { query: { custom_audience_ids: tooMany } })).status).toBe(400);
      expect((await c('GET', audiencesPath, { query: { q: 'x'.repeat(256) } })).status).toBe(400);
      expect((await c('GET', audiencesPath, { query: { permission_scope: 'ALL' } })).status).toBe(400);
      expect((await c('GET', audiencesPath, { query: { permission_scope: 'SHARED' } })).json.data).toEqual(
        [],
      );
      await c('DELETE', `${audiencesPath}/${ids[2]}`);
      const total = await c('GET', audiencesPath, { query: { with_total_count: 'true' } });
      expect(total.json.total_count).toBe(4);
      const withDeleted = await c('GET', audiencesPath, {
        query: { with_deleted: 'true', with_total_count: 'true' },
      });
      expect(withDeleted.json.total_count).toBe(5);
      expect(withDeleted.json.request.params).toMatchObject({
        with_deleted: 'true',
        with_total_count: 'true',
      });
      const exclusive = await c('GET', audiencesPath, { query: { with_total_count: 'true', cursor: 'c-2' } });
      expect(exclusive.status).toBe(400);
      expect(exclusive.json.errors[0].code).toBe('EXCLUSIVE_PARAMETERS');
    });
  });

  it('gets one, updates only the given fields, deletes, then answers 404', async () => {
    const id = await createAudience(call, uniqueName('crud'));
    const got = await call('GET', `${audiencesPath}/${id}`);
    expect(got.json).toMatchObject({
      data: { id },
      request: { params: { account_id: ACCOUNT, custom_audience_id: id } },
    });
    const renamed = uniqueName('renamed');
    const put = await call('PUT', `${audiencesPath}/${id}`, { query: { name: renamed, description: 'd' } });
    expect(put.json.data).toMatchObject({ name: renamed, description: 'd' });
    const unset = await call('PUT', `${audiencesPath}/${id}`, { query: { description: '' } });
    expect(unset.json.data).toMatchObject({ name: renamed, description: null });
    expect((await call('PUT', `${audiencesPath}/${id}`, { query: { name: '' } })).status).toBe(400);
    const other = uniqueName('other');
    await createAudience(call, other);
    expect((await call('PUT', `${audiencesPath}/${id}`, { query: { name: other } })).status).toBe(400);
    expect((await call('PUT', `${audiencesPath}/${id}`, { query: { name: renamed } })).status).toBe(200);

    const deleted = await call('DELETE', `${audiencesPath}/${id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.json).toMatchObject({
      data: { id, deleted: true },
      request: { params: { custom_audience_id: id } },
    });
    for (const [method, options] of [
      ['GET', {}],
      ['PUT', { query: { description: 'x' } }],
      ['DELETE', {}],
      ['POST', { json: usersBody([{ email: [sha('a')] }]) }],
    ] as const) {
      const path = method === 'POST' ? `${audiencesPath}/${id}/users` : `${audiencesPath}/${id}`;
      const res = await call(method, path, options);
      expect(res.status, method).toBe(404);
      expect(res.json.errors[0].code).toBe('NOT_FOUND');
    }
    expect(
      (await call('GET', `${audiencesPath}/${id}`, { query: { with_deleted: 'true' } })).json.data.deleted,
    ).toBe(true);
    // A deleted audience's name is free again.
    expect((await call('POST', audiencesPath, { query: { name: renamed } })).status).toBe(200);
    expect((await call('GET', `${audiencesPath}/nothere`)).status).toBe(404);
    await withEmulator({ switches: { audienceNotFoundCode: 'TAILORED_AUDIENCE_NOT_FOUND' } }, async (e) => {
      const res = await client(e)('GET', `${audiencesPath}/nothere`);
      expect(res.json.errors[0].code).toBe('TAILORED_AUDIENCE_NOT_FOUND');
    });
  });

  it('emits what the recorded SDK fixtures carry, with the same types', async () => {
    // Abridged from the official Python Ads SDK's recorded responses (tests/fixtures/*.json, MIT licence,
    // also in test/fixtures/x-ads/). v12 no longer sends list_type or salt.
    const fixtureAudience = {
      targetable: true,
      name: 'TA #1',
      owner_account_id: '2iqph',
      targetable_types: ['CRM', 'EXCLUDED_CRM'],
      audience_type: 'CRM',
      id: 'abc1',
      reasons_not_targetable: [],
      list_type: 'DEVICE_ID',
      created_at: '2014-05-22T17:37:12Z',
      updated_at: '2014-05-22T21:05:33Z',
      partner_source: 'OTHER',
      deleted: false,
      audience_size: null,
    };
    const fixtureAccount = {
      name: 'Schuppe-Casper',
      timezone: 'America/Los_Angeles',
      timezone_switch_at: '2014-11-17T08:00:00Z',
      id: '2iqph',
      created_at: '2015-03-04T10:50:42Z',
      salt: '5ab2pizq7qxjjqrx3z67f4wbko61o7xs',
      updated_at: '2015-04-11T05:20:08Z',
      approval_status: 'ACCEPTED',
      deleted: false,
    };
    const fixtureListEnvelope = {
      request: { params: { account_id: '2iqph' } },
      data: [],
      total_count: 3,
      next_cursor: null,
    };
    const fixtureLoadEnvelope = { data_type: 'custom_audience', data: {}, request: { params: {} } };
    const nullable = new Set([
      'audience_size',
      'description',
      'business_name',
      'business_id',
      'industry_type',
      'next_cursor',
    ]);
    const removed = new Set(['list_type', 'salt']);
    const sameShape = (ours: Record<string, unknown>, fixture: Record<string, unknown>) => {
      for (const [key, value] of Object.entries(fixture)) {
        if (removed.has(key)) {
          expect(ours, key).not.toHaveProperty(key);
          continue;
        }
        expect(ours, key).toHaveProperty(key);
        const theirs = ours[key];
        if (value === null || theirs === null) expect(nullable.has(key), key).toBe(true);
        else expect(Array.isArray(theirs), key).toBe(Array.isArray(value));
        if (value !== null && theirs !== null) expect(typeof theirs, key).toBe(typeof value);
        if (typeof value === 'string' && /At$|_at$/.test(key))
          expect(theirs).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      }
    };
    const id = await createAudience(call, uniqueName('fixture'));
    const one = await call('GET', `${audiencesPath}/${id}`);
    sameShape(one.json, fixtureLoadEnvelope);
    sameShape(one.json.data, fixtureAudience);
    const list = await call('GET', audiencesPath, { query: { with_total_count: 'true' } });
    sameShape(list.json, fixtureListEnvelope);
    for (const audience of list.json.data) sameShape(audience, fixtureAudience);
    const accounts = await call('GET', '/12/accounts', { query: { with_total_count: 'true' } });
    sameShape(accounts.json, { ...fixtureListEnvelope, data_type: 'account' });
    sameShape(accounts.json.data[0], fixtureAccount);
    const account = await call('GET', `/12/accounts/${ACCOUNT}`);
    sameShape(account.json, { ...fixtureLoadEnvelope, data_type: 'account' });
    sameShape(account.json.data, fixtureAccount);

    // Every object of the full recorded files too (test/fixtures/x-ads/README.md).
    const recorded = fileURLToPath(new URL('../fixtures/x-ads', import.meta.url));
    const load = async (file: string) => JSON.parse(await readFile(join(recorded, file), 'utf8'));
    const audiencesAll = await load('custom_audiences_all.json');
    sameShape(list.json, { ...audiencesAll, data: [] });
    for (const audience of audiencesAll.data) sameShape(one.json.data, audience);
    sameShape(one.json.data, (await load('custom_audiences_load.json')).data);
    const accountsAll = await load('accounts_all.json');
    sameShape(accounts.json, { ...accountsAll, data: [] });
    for (const a of accountsAll.data) sameShape(accounts.json.data[0], a);
    sameShape(account.json.data, (await load('accounts_load.json')).data);
  });
});

describe('emulator: sharing permissions and targeted (custom audience endpoints beside users)', () => {
  // Shapes of GET …/custom_audiences/:id/permissions as recorded from the real API by X's Python Ads SDK
  // (tests/fixtures/custom_audiences_permissions_all.json, MIT licence), values made up here; the
  // endpoints are documented at https://docs.x.com/x-ads-api/audiences/reference.
  const recordedPermission = {
    custom_audience_id: 'abc2',
    permission_level: 'READ_ONLY',
    id: 'k',
    created_at: '2016-04-09T18:16:32Z',
    granted_account_id: 'pz6ec',
    updated_at: '2016-04-10T15:07:38Z',
    deleted: false,
  };
  const recordedList = {
    request: { params: { account_id: '2iqph', custom_audience_id: 'abc2' } },
    data: [recordedPermission],
    data_type: 'custom_audience_permission',
    total_count: 1,
    next_cursor: null,
  };
  /** Same keys, and each value of the same JSON type (null stands for a string or null). */
  const shapeOf = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.length === 0 ? [] : [shapeOf(value[0])];
    if (value === null) return 'string|null';
    if (typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value as Record<string, unknown>)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([k, v]) => [k, k === 'params' ? 'params' : shapeOf(v)]),
      );
    }
    return typeof value === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(value)
      ? 'time'
      : typeof value;
  };
  const nullable = (shape: unknown): unknown =>
    JSON.parse(JSON.stringify(shape).replaceAll('"string|null"', '"string"'));

  const OTHER = 'hkk5';
  const otherCredentials = {
    consumerKey: 'other-key',
    consumerSecret: 'other-secret',
    accessToken: 'other-token',
    accessTokenSecret: 'other-token-secret',
  };
  const seed: EmulatorSeed = {
    accounts: [
      { id: ACCOUNT, name: 'Owner', businessName: 'Tailor Demo' },
      { id: OTHER, name: 'Granted', businessName: 'Tailor Demo' },
    ],
    credentials: [
      { ...DEMO_CREDENTIALS, access: { [ACCOUNT]: ['ACCOUNT_ADMIN'] } },
      { ...otherCredentials, access: { [OTHER]: ['ACCOUNT_ADMIN'] } },
    ],
  };

  it('grants, lists and revokes permissions in the shapes X answers', async () => {
    await withEmulator({ seed, rateLimits: false }, async (emulator) => {
      const call = client(emulator);
      const id = await createAudience(call, 'shared');
      const permissions = `${audiencesPath}/${id}/permissions`;

      const empty = await call('GET', permissions);
      expect(empty.status).toBe(200);
      expect(empty.json).toEqual({
        request: { params: { account_id: ACCOUNT, custom_audience_id: id } },
        data: [],
        data_type: 'custom_audience_permission',
        next_cursor: null,
      });

      const granted = await call('POST', permissions, {
        query: { granted_account_id: OTHER, permission_level: 'READ_ONLY' },
      });
      expect(granted.status).toBe(200);
      expect(granted.json).toEqual({
        request: {
          params: {
            account_id: ACCOUNT,
            custom_audience_id: id,
            granted_account_id: OTHER,
            permission_level: 'READ_ONLY',
          },
        },
        data: {
          custom_audience_id: id,
          permission_level: 'READ_ONLY',
          id: expect.stringMatching(/^[0-9a-z]+$/),
          created_at: expect.stringMatching(/Z$/),
          granted_account_id: OTHER,
          updated_at: expect.stringMatching(/Z$/),
          deleted: false,
        },
        data_type: 'custom_audience_permission',
      });
      const permissionId = granted.json.data.id as string;
      expect(shapeOf(granted.json.data)).toEqual(shapeOf(recordedPermission));

      const second = await call('POST', permissions, {
        query: { granted_account_id: 'ZZ9', permission_level: 'READ_WRITE' },
      });
      expect(second.json.data).toMatchObject({ granted_account_id: 'zz9', permission_level: 'READ_WRITE' });

      const list = await call('GET', permissions, { query: { with_total_count: 'true' } });
      expect(nullable(shapeOf(list.json))).toEqual(nullable(shapeOf(recordedList)));
      expect(list.json.total_count).toBe(2);
      expect(list.json.data.map((p: { id: string }) => p.id)).toEqual([permissionId, second.json.data.id]);
      expect(list.json.request.params).toEqual({
        account_id: ACCOUNT,
        custom_audience_id: id,
        with_total_count: 'true',
      });

      const byAccount = await call('GET', permissions, { query: { granted_account_ids: `${OTHER},nobody` } });
      expect(byAccount.json.data.map((p: { id: string }) => p.id)).toEqual([permissionId]);
      expect(byAccount.json.request.params.granted_account_ids).toEqual([OTHER, 'nobody']);
      const byId = await call('GET', permissions, {
        query: { custom_audience_permission_ids: second.json.data.id },
      });
      expect(byId.json.data).toHaveLength(1);
      const paged = await call('GET', permissions, { query: { count: '1', sort_by: 'created_at-desc' } });
      expect(paged.json.next_cursor).toEqual(expect.any(String));
      const next = await call('GET', permissions, {
        query: { count: '1', sort_by: 'created_at-desc', cursor: paged.json.next_cursor },
      });
      expect(next.json.next_cursor).toBeNull();

      const revoked = await call('DELETE', `${permissions}/${permissionId.toUpperCase()}`);
      expect(revoked.status).toBe(200);
      expect(revoked.json).toEqual({
        request: {
          params: {
            account_id: ACCOUNT,
            custom_audience_id: id,
            custom_audience_permission_id: permissionId,
          },
        },
        data: { ...granted.json.data, deleted: true, updated_at: expect.stringMatching(/Z$/) },
        data_type: 'custom_audience_permission',
      });
      expect((await call('GET', permissions)).json.data).toHaveLength(1);
      const again = await call('DELETE', `${permissions}/${permissionId}`);
      expect(again.status).toBe(404);
      expect(again.json.errors[0].code).toBe('NOT_FOUND');

      // The same endpoints under /11/, which X still lists.
      const v11 = await call('GET', `/11/accounts/${ACCOUNT}/custom_audiences/${id}/permissions`);
      expect(v11.json.data).toHaveLength(1);
    });
  });

  it('shows a shared audience to the granted account under permission_scope=SHARED until revoked', async () => {
    await withEmulator({ seed, rateLimits: false }, async (emulator) => {
      const call = client(emulator);
      const id = await createAudience(call, 'to share');
      const asOther = (scope: string) =>
        call('GET', `/12/accounts/${OTHER}/custom_audiences`, {
          credentials: otherCredentials,
          query: { permission_scope: scope },
        });
      expect((await asOther('SHARED')).json.data).toEqual([]);
      const granted = await call('POST', `${audiencesPath}/${id}/permissions`, {
        query: { granted_account_id: OTHER, permission_level: 'READ_ONLY' },
      });
      const shared = await asOther('SHARED');
      expect(shared.json.data).toEqual([
        expect.objectContaining({
          id,
          name: 'to share',
          owner_account_id: ACCOUNT,
          is_owner: false,
          permission_level: 'READ_ONLY',
        }),
      ]);
      expect((await asOther('OWNER')).json.data).toEqual([]);
      // The owner's own view is unchanged, and its SHARED list holds nothing of its own.
      expect((await call('GET', audiencesPath)).json.data[0]).toMatchObject({ id, is_owner: true });
      expect((await call('GET', audiencesPath, { query: { permission_scope: 'SHARED' } })).json.data).toEqual(
        [],
      );
      // Only the owner manages permissions: through the granted account the audience is not there.
      const byOther = await call('POST', `/12/accounts/${OTHER}/custom_audiences/${id}/permissions`, {
        credentials: otherCredentials,
        query: { granted_account_id: ACCOUNT, permission_level: 'READ_WRITE' },
      });
      expect(byOther.status).toBe(404);
      await call('DELETE', `${audiencesPath}/${id}/permissions/${granted.json.data.id as string}`);
      expect((await asOther('SHARED')).json.data).toEqual([]);
    });
  });

  it('validates the permission parameters, the audience and the methods', async () => {
    await withEmulator({ seed, rateLimits: false }, async (emulator) => {
      const call = client(emulator);
      const id = await createAudience(call);
      const permissions = `${audiencesPath}/${id}/permissions`;
      const refused = async (query: Record<string, string>, code: string, parameter: string) => {
        const res = await call('POST', permissions, { query });
        expect(res.status, JSON.stringify(query)).toBe(400);
        expect(res.json.errors[0]).toMatchObject({ code, parameter });
      };
      await refused({ permission_level: 'READ_ONLY' }, 'MISSING_PARAMETER', 'granted_account_id');
      await refused({ granted_account_id: OTHER }, 'MISSING_PARAMETER', 'permission_level');
      await refused(
        { granted_account_id: OTHER, permission_level: 'ADMIN' },
        'INVALID_PARAMETER',
        'permission_level',
      );
      await refused(
        { granted_account_id: 'not-an-id', permission_level: 'READ_ONLY' },
        'INVALID_PARAMETER',
        'granted_account_id',
      );
      expect((await call('GET', permissions)).json.data).toEqual([]);
      expect(
        (await call('GET', permissions, { query: { custom_audience_permission_ids: '' } })).json.errors[0]
          .code,
      ).toBe('INVALID_PARAMETER');

      const missing = await call('GET', `${audiencesPath}/nothere/permissions`);
      expect(missing.status).toBe(404);
      await call('DELETE', `${audiencesPath}/${id}`);
      expect(
        (
          await call('POST', permissions, {
            query: { granted_account_id: OTHER, permission_level: 'READ_ONLY' },
          })
        ).status,
      ).toBe(404);

      const put = await call('PUT', `${audiencesPath}/x/permissions`);
      expect(put.status).toBe(405);
      expect(put.headers.get('allow')).toBe('GET, POST');
      expect((await call('GET', `${audiencesPath}/x/permissions/y`)).headers.get('allow')).toBe('DELETE');
      expect((await call('GET', `${audiencesPath}/x/permissions/y/z`)).status).toBe(404);
      expect((await call('GET', `${audiencesPath}/x/users/y`)).status).toBe(404);
    });
  });

  it('answers targeted with the documented envelope: no campaigns in the emulator, so no data', async () => {
    await withEmulator({ rateLimits: false }, async (emulator) => {
      const call = client(emulator);
      const id = await createAudience(call);
      const targeted = `${audiencesPath}/${id}/targeted`;
      const res = await call('GET', targeted);
      expect(res.status).toBe(200);
      expect(res.json).toEqual({
        request: { params: { account_id: ACCOUNT, custom_audience_id: id } },
        next_cursor: null,
        data: [],
      });
      const all = await call('GET', targeted, { query: { with_active: 'false' } });
      expect(all.json.request.params).toEqual({
        account_id: ACCOUNT,
        custom_audience_id: id,
        with_active: 'false',
      });
      expect((await call('GET', targeted, { query: { with_active: 'maybe' } })).json.errors[0]).toMatchObject(
        {
          code: 'INVALID_PARAMETER',
          parameter: 'with_active',
        },
      );
      expect((await call('GET', `${audiencesPath}/nothere/targeted`)).status).toBe(404);
      const post = await call('POST', targeted);
      expect(post.status).toBe(405);
      expect(post.headers.get('allow')).toBe('GET');
    });
  });

  it('keeps permissions in the state file across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tailor-emulator-'));
    const statePath = join(dir, 'emulator.json');
    try {
      let id = '';
      await withEmulator({ seed, statePath }, async (emulator) => {
        const call = client(emulator);
        id = await createAudience(call, 'kept');
        await call('POST', `${audiencesPath}/${id}/permissions`, {
          query: { granted_account_id: OTHER, permission_level: 'READ_WRITE' },
        });
      });
      await withEmulator({ seed, statePath }, async (emulator) => {
        const res = await client(emulator)('GET', `${audiencesPath}/${id}/permissions`);
        expect(res.json.data).toEqual([
          expect.objectContaining({ granted_account_id: OTHER, permission_level: 'READ_WRITE' }),
        ]);
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('emulator: users endpoint', () => {
  let emulator: RunningEmulator;
  let call: ReturnType<typeof client>;
  beforeAll(async () => {
    emulator = await startEmulator({ rateLimits: false });
    call = client(emulator);
  });
  afterAll(() => emulator.close());

  const members = (id: string) => emulator.admin.membership(ACCOUNT, id);

  it('applies Update/Delete and answers success_count = total_count = user objects', async () => {
    const id = await createAudience(call);
    const res = await call('POST', `${audiencesPath}/${id}/users`, {
      json: [
        {
          operation_type: 'Update',
          params: {
            effective_at: '2018-05-15T00:00:00Z',
            expires_at: '2099-01-01T07:00:00Z',
            users: [
              { email: [sha('abc@twitter.com')], handle: [sha('twitter'), sha('adsapi')] },
              {
                email: [sha('edf@twitter.com')],
                phone_number: [sha('14155552671')],
                partner_user_id: ['crm-000123'],
              },
            ],
          },
        },
        {
          operation_type: 'Delete',
          params: { users: [{ device_id: [sha('x')] }, { twitter_id: [sha('143567')] }] },
        },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      request: { params: { account_id: ACCOUNT, custom_audience_id: id } },
      data: { success_count: 4, total_count: 4 },
    });
    expect(members(id).records).toHaveLength(2);
    expect(members(id).identifiers.partner_user_id).toEqual(['crm-000123']);
  });

  it('Delete by any one shared identifier removes the whole record, including one shared with another user', async () => {
    const id = await createAudience(call);
    const path = `${audiencesPath}/${id}/users`;
    const alice = { email: [sha('alice@example.com')], phone_number: [sha('1555')] };
    const bob = { email: [sha('bob@example.com')], phone_number: [sha('1555')] };
    const carol = { email: [sha('carol@example.com')], handle: [sha('carol')] };
    expect((await call('POST', path, { json: usersBody([alice, bob, carol]) })).status).toBe(200);
    expect((await call('POST', path, { json: usersBody([alice]) })).status).toBe(200); // refresh, not a new record
    expect(members(id).records).toHaveLength(3);
    expect(emulator.admin.memberCount(ACCOUNT, id)).toBe(3);
    await call('POST', path, { json: usersBody([{ handle: [sha('carol')] }], 'Delete') });
    expect(emulator.admin.memberCount(ACCOUNT, id)).toBe(2);
    expect(members(id).identifiers.email).toEqual([sha('alice@example.com'), sha('bob@example.com')].sort());
    expect(members(id).identifiers.handle).toBeUndefined();
    await call('POST', path, { json: usersBody([{ email: [sha('alice@example.com')] }], 'Delete') });
    expect(members(id).records).toEqual([bob]);
    await call('POST', path, { json: usersBody([alice]) });
    await call('POST', path, { json: usersBody([{ phone_number: [sha('1555')] }], 'Delete') });
    expect(members(id)).toEqual({ records: [], identifiers: {} });
    // Operations apply in order within one request.
    const both = [
      { operation_type: 'Update', params: { users: [carol] } },
      { operation_type: 'Delete', params: { users: [{ email: carol.email }] } },
      { operation_type: 'Update', params: { users: [bob] } },
    ];
    expect((await call('POST', path, { json: both })).json.data).toEqual({
      success_count: 3,
      total_count: 3,
    });
    expect(members(id).records).toEqual([bob]);
  });

  it('is atomic: one bad operation and nothing is applied', async () => {
    const id = await createAudience(call);
    const path = `${audiencesPath}/${id}/users`;
    await call('POST', path, { json: usersBody([{ email: [sha('keep')] }]) });
    const before = members(id);
    const res = await call('POST', path, {
      json: [
        { operation_type: 'Delete', params: { users: [{ email: [sha('keep')] }] } },
        { operation_type: 'Update', params: { users: [{ email: [sha('new')] }] } },
        { operation_type: 'Update', params: { users: [{ email: ['RAW@EXAMPLE.COM'] }] } },
      ],
    });
    expect(res.status).toBe(400);
    expect(res.json).toEqual({
      errors: [],
      operation_errors: [
        [],
        [],
        [{ code: 'INVALID_PARAMETER', parameter: 'email', message: expect.any(String) }],
      ],
      request: { params: { account_id: ACCOUNT, custom_audience_id: id } },
    });
    expect(members(id)).toEqual(before);
  });

  it('checks content type, size, array and operation count over HTTP, in that order', async () => {
    const id = await createAudience(call);
    const path = `${audiencesPath}/${id}/users`;
    const users = [{ email: [sha('a')] }];
    const text = await call('POST', path, {
      body: JSON.stringify(usersBody(users)),
      contentType: 'text/plain',
    });
    expect(text.status).toBe(415);
    expect(text.json.errors).toHaveLength(1);
    const huge = Buffer.alloc(5_000_001, 0x20);
    expect((await call('POST', path, { body: huge, contentType: 'text/plain' })).status).toBe(415);
    expect((await call('POST', path, { body: huge, contentType: 'application/json' })).status).toBe(413);

    // A valid body of exactly 5,000,000 bytes (JSON padded with whitespace) passes; one byte more does not.
    const json = JSON.stringify(usersBody(users));
    const exact = json + ' '.repeat(5_000_000 - Buffer.byteLength(json));
    expect(Buffer.byteLength(exact)).toBe(5_000_000);
    expect((await call('POST', path, { body: exact, contentType: 'application/json' })).status).toBe(200);
    const over = await call('POST', path, { body: `${exact} `, contentType: 'application/json' });
    expect(over.status).toBe(413);
    expect(over.json.errors[0].code).toBe('INVALID_PARAMETER');

    expect((await call('POST', path, { body: '{nope', contentType: 'application/json' })).status).toBe(400);
    expect((await call('POST', path, { json: [] })).status).toBe(400);
    expect((await call('POST', path, { json: { operation_type: 'Update' } })).status).toBe(400);

    const op = { operation_type: 'Update', params: { users } };
    const max = await call('POST', path, { json: Array.from({ length: 2500 }, () => op) });
    expect(max.json.data).toEqual({ success_count: 2500, total_count: 2500 });
    const tooMany = await call('POST', path, { json: Array.from({ length: 2501 }, () => op) });
    expect(tooMany.status).toBe(400);
    expect(tooMany.json.errors[0].message).toBe('Batch size 2501 exceeds maximum of 2500');
    expect(tooMany.json.operation_errors).toBeUndefined();

    const log = emulator.admin.requestLog().filter((e) => e.path === path);
    expect(log.map((e) => e.status)).toEqual([415, 415, 413, 200, 413, 400, 400, 400, 200, 400]);
    expect(log[8]).toMatchObject({ operations: 2500, users: 2500 });
    expect(log[2]?.bytes).toBe(5_000_001);
  });
});

describe('emulator: rate limits', () => {
  it('allows 1,500 users requests per minute per account, then 429 until the window resets', async () => {
    let now = Date.parse('2026-11-22T12:00:00.250Z');
    const clock = () => now;
    await withEmulator({ clock }, async (emulator) => {
      const call = client(emulator, clock);
      const id = await createAudience(call);
      const path = `${audiencesPath}/${id}/users`;
      const json = usersBody([{ email: [sha('a')] }]);
      const statuses: number[] = [];
      let last: CallResult | undefined;
      for (let i = 0; i < 1500; i += 100) {
        const batch = await Promise.all(Array.from({ length: 100 }, () => call('POST', path, { json })));
        statuses.push(...batch.map((r) => r.status));
        last = batch[batch.length - 1];
      }
      expect(statuses.every((s) => s === 200)).toBe(true);
      const resetAt = String(Math.ceil((Date.parse('2026-11-22T12:00:00.250Z') + 60_000) / 1000));
      expect(last?.headers.get('x-rate-limit-limit')).toBe('1500');
      expect(last?.headers.get('x-rate-limit-reset')).toBe(resetAt);
      now += 30_000;
      const limited = await call('POST', path, { json });
      expect(limited.status).toBe(429);
      expect(limited.json.errors[0].code).toBe('TOO_MANY_REQUESTS');
      expect(limited.headers.get('x-rate-limit-remaining')).toBe('0');
      expect(limited.headers.get('x-rate-limit-reset')).toBe(resetAt);
      expect(limited.headers.get('x-account-rate-limit-limit')).toBeNull();
      // Other buckets are untouched.
      expect((await call('GET', audiencesPath)).status).toBe(200);
      now = Number(resetAt) * 1000;
      const again = await call('POST', path, { json });
      expect(again.status).toBe(200);
      expect(again.headers.get('x-rate-limit-remaining')).toBe('1499');
    });
  });

  it('counts writes and reads in their own buckets with their own headers; false turns limits off', async () => {
    let now = Date.parse('2026-11-22T12:00:00Z');
    const clock = () => now;
    await withEmulator(
      { clock, rateLimits: { writesPerMinute: 2, readsPer15Minutes: 3 } },
      async (emulator) => {
        const call = client(emulator, clock);
        const created = await call('POST', audiencesPath, { query: { name: uniqueName() } });
        expect(created.headers.get('x-rate-limit-limit')).toBe('2');
        expect(created.headers.get('x-rate-limit-remaining')).toBe('1');
        await call('PUT', `${audiencesPath}/${created.json.data.id}`, { query: { description: 'x' } });
        const third = await call('POST', audiencesPath, { query: { name: uniqueName() } });
        expect(third.status).toBe(429);
        const read = await call('GET', audiencesPath);
        expect(read.headers.get('x-account-rate-limit-limit')).toBe('3');
        expect(read.headers.get('x-account-rate-limit-remaining')).toBe('2');
        expect(read.headers.get('x-account-rate-limit-reset')).toBe(String((now + 15 * 60_000) / 1000));
        await call('GET', audiencesPath);
        await call('GET', audiencesPath);
        const limited = await call('GET', audiencesPath);
        expect(limited.status).toBe(429);
        expect(limited.headers.get('x-account-rate-limit-remaining')).toBe('0');
        // Reads of another endpoint have their own bucket.
        expect((await call('GET', `/12/accounts/${ACCOUNT}`)).status).toBe(200);
        now += 15 * 60_000;
        expect((await call('GET', audiencesPath)).status).toBe(200);
      },
    );
    await withEmulator({ rateLimits: false }, async (emulator) => {
      const res = await client(emulator)('GET', audiencesPath);
      expect(res.headers.get('x-account-rate-limit-limit')).toBeNull();
      expect(res.headers.get('x-rate-limit-limit')).toBeNull();
    });
  });

  it('limits with_total_count requests to 200 per 15 minutes', async () => {
    await withEmulator({ rateLimits: { totalCountPer15Minutes: 1 } }, async (emulator) => {
      const call = client(emulator);
      expect((await call('GET', audiencesPath, { query: { with_total_count: 'true' } })).status).toBe(200);
      expect((await call('GET', audiencesPath, { query: { with_total_count: 'true' } })).status).toBe(429);
      expect((await call('GET', audiencesPath)).status).toBe(200);
    });
  });
});

describe('emulator: injected faults', () => {
  let emulator: RunningEmulator;
  let call: ReturnType<typeof client>;
  let id: string;
  let path: string;
  const json = usersBody([{ email: [sha('fault')] }]);
  beforeAll(async () => {
    emulator = await startEmulator();
    call = client(emulator);
    id = await createAudience(call);
    path = `${audiencesPath}/${id}/users`;
  });
  afterAll(() => emulator.close());

  it('rate_limit_429 answers 429 with reset headers in epoch seconds', async () => {
    emulator.admin.injectFaults([{ kind: 'rate_limit_429', resetInSeconds: 30 }]);
    const before = Math.floor(Date.now() / 1000);
    const res = await call('POST', path, { json });
    expect(res.status).toBe(429);
    expect(res.json.errors[0].code).toBe('TOO_MANY_REQUESTS');
    expect(res.headers.get('x-rate-limit-remaining')).toBe('0');
    const reset = Number(res.headers.get('x-rate-limit-reset'));
    expect(reset).toBeGreaterThanOrEqual(before + 30);
    expect(reset).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 30);
    expect((await call('POST', path, { json })).status).toBe(200); // times defaults to 1
  });

  it('unavailable_503, server_error_500 and bad_gateway_502 answer as X and its edge do', async () => {
    emulator.admin.injectFaults([
      { kind: 'unavailable_503', retryAfterSeconds: 7 },
      { kind: 'server_error_500' },
      { kind: 'bad_gateway_502' },
    ]);
    const unavailable = await call('POST', path, { json });
    expect(unavailable.status).toBe(503);
    expect(unavailable.headers.get('retry-after')).toBe('7');
    expect(unavailable.json.errors[0].code).toBe('OVER_CAPACITY');
    const error = await call('POST', path, { json });
    expect(error.status).toBe(500);
    expect(error.json.errors[0].code).toBe('INTERNAL_ERROR');
    const gateway = await call('POST', path, { json });
    expect(gateway.status).toBe(502);
    expect(gateway.headers.get('content-type')).toMatch(/text\/html/);
    expect(gateway.json).toBeUndefined();
    expect((await call('POST', path, { json })).status).toBe(200);
  });

  it('drop_connection destroys the socket without a response and applies nothing', async () => {
    const dropId = await createAudience(call);
    emulator.admin.injectFaults([{ kind: 'drop_connection' }]);
    await expect(call('POST', `${audiencesPath}/${dropId}/users`, { json })).rejects.toThrow();
    expect(emulator.admin.membership(ACCOUNT, dropId).records).toEqual([]);
    expect(emulator.admin.requestLog().at(-1)).toMatchObject({ status: 0 });
  });

  it('count_mismatch answers 200 with success_count < total_count and applies nothing', async () => {
    const mismatchId = await createAudience(call);
    emulator.admin.injectFaults([{ kind: 'count_mismatch', times: 2 }]);
    // An invalid request is refused as usual and does not use the fault up.
    const invalid = await call('POST', `${audiencesPath}/${mismatchId}/users`, {
      json: usersBody([{ email: ['raw'] }]),
    });
    expect(invalid.status).toBe(400);
    const users = [{ email: [sha('m1')] }, { email: [sha('m2')] }, { email: [sha('m3')] }];
    for (let i = 0; i < 2; i++) {
      const res = await call('POST', `${audiencesPath}/${mismatchId}/users`, { json: usersBody(users) });
      expect(res.status).toBe(200);
      expect(res.json.data.total_count).toBe(3);
      expect(res.json.data.success_count).toBeLessThan(3);
    }
    expect(emulator.admin.membership(ACCOUNT, mismatchId).records).toEqual([]);
    const ok = await call('POST', `${audiencesPath}/${mismatchId}/users`, { json: usersBody(users) });
    expect(ok.json.data).toEqual({ success_count: 3, total_count: 3 });
  });

  it('latency holds the response while other requests are answered', async () => {
    emulator.admin.injectFaults([{ kind: 'latency', latencyMs: 400 }]);
    const order: string[] = [];
    const slow = call('POST', path, { json }).then((r) => order.push(`slow ${r.status}`));
    await new Promise((r) => setTimeout(r, 50));
    await call('GET', audiencesPath).then((r) => order.push(`fast ${r.status}`));
    await slow;
    expect(order).toEqual(['fast 200', 'slow 200']);
  });

  it('matches users (default), audiences or any request; clearFaults removes them', async () => {
    emulator.admin.injectFaults([{ kind: 'server_error_500', match: 'audiences' }]);
    expect((await call('POST', path, { json })).status).toBe(200);
    expect((await call('GET', '/12/accounts')).status).toBe(200);
    expect((await call('GET', audiencesPath)).status).toBe(500);
    emulator.admin.injectFaults([{ kind: 'server_error_500', match: 'any', times: 2 }]);
    expect((await call('GET', '/12/accounts')).status).toBe(500);
    expect((await call('POST', path, { json })).status).toBe(500);
    expect((await call('GET', '/12/accounts')).status).toBe(200);
    emulator.admin.injectFaults([{ kind: 'unavailable_503', times: 5 }]);
    emulator.admin.clearFaults();
    expect((await call('POST', path, { json })).status).toBe(200);
    expect(() => emulator.admin.injectFaults([{ kind: 'nope' as 'latency' }])).toThrow();
  });
});

describe('emulator: audience processing', () => {
  it('moves from PROCESSING to TOO_SMALL to targetable as the size job runs', async () => {
    await withEmulator({ rateLimits: false }, async (emulator) => {
      let advancedMs = 0;
      const call = client(emulator, () => Date.now() + advancedMs);
      const id = await createAudience(call);
      const get = async () => (await call('GET', `${audiencesPath}/${id}`)).json.data;
      const users = Array.from({ length: 99 }, (_, i) => ({ email: [sha(`u${i}@example.com`)] }));
      await call('POST', `${audiencesPath}/${id}/users`, { json: usersBody(users) });
      expect(await get()).toMatchObject({
        targetable: false,
        reasons_not_targetable: ['PROCESSING', 'TOO_SMALL'],
        audience_size: null,
      });
      emulator.admin.processAudiences();
      expect(await get()).toMatchObject({
        targetable: false,
        reasons_not_targetable: ['TOO_SMALL'],
        audience_size: null,
      });
      await call('POST', `${audiencesPath}/${id}/users`, {
        json: usersBody([{ email: [sha('u99@example.com')] }]),
      });
      expect((await get()).reasons_not_targetable).toEqual(['TOO_SMALL']); // unchanged until the next job
      emulator.admin.processAudiences();
      expect(await get()).toMatchObject({ targetable: true, reasons_not_targetable: [], audience_size: 100 });

      // Memberships expire: after 13 months (the default expiry) nobody counts.
      advancedMs = 400 * 86_400_000;
      emulator.admin.advanceClock(advancedMs);
      emulator.admin.processAudiences();
      expect(await get()).toMatchObject({ targetable: false, audience_size: null });
    });
  });

  it('counts only members matching the seeded active users, and only while effective', async () => {
    await withEmulator({ rateLimits: false, switches: { minTargetableSize: 2 } }, async (emulator) => {
      const call = client(emulator);
      const id = await createAudience(call);
      const active = ['a', 'b', 'c'].map((s) => sha(s));
      emulator.admin.seed({ activeUsers: active });
      const path = `${audiencesPath}/${id}/users`;
      await call('POST', path, {
        json: [
          {
            operation_type: 'Update',
            params: { users: [{ email: [active[0]] }, { email: [sha('z')], handle: [active[1]] }] },
          },
          { operation_type: 'Update', params: { users: [{ email: [sha('y')] }] } },
          {
            operation_type: 'Update',
            params: {
              effective_at: '2099-01-01T00:00:00Z',
              expires_at: '2099-02-01T00:00:00Z',
              users: [{ email: [active[2]] }],
            },
          },
        ],
      });
      emulator.admin.processAudiences();
      expect((await call('GET', `${audiencesPath}/${id}`)).json.data).toMatchObject({
        targetable: true,
        audience_size: 2,
      });
    });
  });

  it('refuses advanceClock when the test drives its own clock', async () => {
    await withEmulator({ clock: () => 0 }, async (emulator) => {
      expect(() => emulator.admin.advanceClock(1)).toThrow(/custom clock/);
    });
  });
});

describe('emulator: switches', () => {
  it('changes the [INF]/[UNK] behaviours they name', async () => {
    const switches = {
      echoBooleansAsStrings: false,
      allowOAuthRealm: true,
      rejectReplayedNonce: false,
      requirePercentEncoding: false,
      acceptFormBody: false,
      caseInsensitiveIds: false,
      roundAudienceSize: true,
      minTargetableSize: 1,
      usersAccountRateLimitHeaders: true,
      unavailableCode: 'SERVICE_UNAVAILABLE',
      oversizeStatus: 400,
    } as const;
    await withEmulator({ switches }, async (emulator) => {
      const call = client(emulator);
      const listed = await call('GET', audiencesPath, { query: { with_deleted: 'false' } });
      expect(listed.json.request.params.with_deleted).toBe(false);
      expect((await call('GET', '/12/accounts', { header: (h) => `${h}, realm="x"` })).status).toBe(200);
      expect((await call('GET', '/12/accounts', { nonce: 'same' })).status).toBe(200);
      expect((await call('GET', '/12/accounts', { nonce: 'same' })).status).toBe(200);
      // Signed over the decoded values, a raw ':' now passes.
      const raw = await call('POST', audiencesPath, { rawQuery: 'name=a:b' });
      expect(raw.status).toBe(200);
      expect(raw.json.data.name).toBe('a:b');
      const formOnly = await call('POST', audiencesPath, { form: { name: 'form only' } });
      expect(formOnly.json.errors[0].code).toBe('MISSING_PARAMETER');
      expect((await call('GET', `/12/accounts/${ACCOUNT.toUpperCase()}`)).status).toBe(403);

      const id = raw.json.data.id as string;
      const users = Array.from({ length: 1234 }, (_, i) => ({ email: [sha(`r${i}`)] }));
      const added = await call('POST', `${audiencesPath}/${id}/users`, { json: usersBody(users) });
      expect(added.headers.get('x-account-rate-limit-limit')).toBe('1500');
      expect(added.headers.get('x-rate-limit-limit')).toBe('1500');
      emulator.admin.processAudiences();
      expect((await call('GET', `${audiencesPath}/${id}`)).json.data.audience_size).toBe(1200);
      emulator.admin.injectFaults([{ kind: 'unavailable_503' }]);
      expect(
        (await call('POST', `${audiencesPath}/${id}/users`, { json: usersBody(users) })).json.errors[0].code,
      ).toBe('SERVICE_UNAVAILABLE');
      const huge = await call('POST', `${audiencesPath}/${id}/users`, {
        body: Buffer.alloc(5_000_001, 0x20),
        contentType: 'application/json',
      });
      expect(huge.status).toBe(400);
    });
  });

  it('runs the size job on a timer when sizeJobIntervalMs is set', async () => {
    await withEmulator({ switches: { sizeJobIntervalMs: 20 } }, async (emulator) => {
      const call = client(emulator);
      const id = await createAudience(call);
      let reasons: string[] = ['PROCESSING'];
      for (let attempt = 0; attempt < 200 && reasons.includes('PROCESSING'); attempt++) {
        await new Promise((r) => setTimeout(r, 25));
        reasons = (await call('GET', `${audiencesPath}/${id}`)).json.data.reasons_not_targetable;
      }
      expect(reasons).toEqual(['TOO_SMALL']);
    });
  });
});

describe('emulator: admin API over HTTP', () => {
  const external = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

  it.skipIf(external === undefined)('serves the admin API to loopback clients only', async () => {
    await withEmulator({ host: '0.0.0.0' }, async (emulator) => {
      expect((await fetch(`http://127.0.0.1:${emulator.port}/_admin/requests`)).status).toBe(200);
      const remote = await fetch(`http://${external}:${emulator.port}/_admin/requests`);
      expect(remote.status).toBe(404);
      const signed = await client({ ...emulator, url: `http://${external}:${emulator.port}` })(
        'GET',
        '/12/accounts',
      );
      expect(signed.status).toBe(200);
    });
  });

  it('injects faults, processes, advances the clock, lists requests and seeds', async () => {
    await withEmulator({}, async (emulator) => {
      const call = client(emulator);
      const admin = (method: string, path: string, body?: unknown) =>
        fetch(`${emulator.url}/_admin/${path}`, {
          method,
          ...(body !== undefined
            ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }
            : {}),
        }).then(async (r) => ({ status: r.status, json: (await r.json()) as Record<string, unknown> }));
      const id = await createAudience(call);
      await call('POST', `${audiencesPath}/${id}/users`, {
        json: usersBody([{ email: [sha('h')], handle: [sha('x')] }]),
      });
      expect(await admin('GET', `accounts/${ACCOUNT}/custom_audiences/${id}/membership`)).toEqual({
        status: 200,
        json: {
          records: [{ email: [sha('h')], handle: [sha('x')] }],
          identifiers: { email: [sha('h')], handle: [sha('x')] },
        },
      });
      expect((await admin('GET', `accounts/${ACCOUNT}/custom_audiences/zzz/membership`)).status).toBe(404);
      expect((await admin('GET', `accounts/${ACCOUNT}/custom_audiences/${id}/member_count`)).json).toEqual({
        member_count: 1,
      });
      expect((await admin('GET', `accounts/${ACCOUNT}/custom_audiences`)).json).toEqual({
        data: [{ id, name: expect.any(String), deleted: false }],
      });

      expect((await admin('POST', 'faults', { faults: [{ kind: 'server_error_500' }] })).status).toBe(200);
      expect(
        (await call('POST', `${audiencesPath}/${id}/users`, { json: usersBody([{ email: [sha('h')] }]) }))
          .status,
      ).toBe(500);
      await admin('POST', 'faults', { faults: [{ kind: 'server_error_500' }] });
      expect((await admin('DELETE', 'faults')).status).toBe(200);
      expect((await admin('POST', 'faults', { faults: [{ kind: 'bogus' }] })).status).toBe(400);

      expect((await admin('POST', 'process')).status).toBe(200);
      expect((await call('GET', `${audiencesPath}/${id}`)).json.data.reasons_not_targetable).toEqual([
        'TOO_SMALL',
      ]);

      const clockBefore = (await admin('GET', 'clock')).json.now_ms as number;
      const advanced = await admin('POST', 'clock', { advance_ms: 3_600_000 });
      expect(advanced.json.now_ms as number).toBeGreaterThanOrEqual(clockBefore + 3_600_000);
      // OAuth timestamps are judged against the emulator's clock: a real-time signature is now stale.
      expect((await call('GET', '/12/accounts')).status).toBe(401);
      expect(
        (await call('GET', '/12/accounts', { timestampSeconds: Math.floor((Date.now() + 3_600_000) / 1000) }))
          .status,
      ).toBe(200);

      const requests = await admin('GET', 'requests');
      expect((requests.json.data as unknown[]).length).toBeGreaterThan(3);
      expect(requests.json.data).toContainEqual(
        expect.objectContaining({
          method: 'POST',
          path: `${audiencesPath}/${id}/users`,
          status: 200,
          operations: 1,
          users: 1,
        }),
      );
      await admin('DELETE', 'requests');
      expect((await admin('GET', 'requests')).json.data).toEqual([]);

      const seeded = await admin('POST', 'seed', {
        accounts: [{ id: 'hkk5', name: 'Seeded' }],
        credentials: [
          {
            consumerKey: 'k',
            consumerSecret: 's',
            accessToken: 't',
            accessTokenSecret: 'ts',
            access: { hkk5: ['AD_MANAGER'] },
          },
        ],
      });
      expect(seeded.status).toBe(200);
      const res = await call('GET', '/12/accounts/hkk5', {
        credentials: { consumerKey: 'k', consumerSecret: 's', accessToken: 't', accessTokenSecret: 'ts' },
        timestampSeconds: Math.floor((Date.now() + 3_600_000) / 1000),
      });
      expect(res.json.data).toMatchObject({ id: 'hkk5', name: 'Seeded' });
      expect((await admin('GET', 'nothing')).status).toBe(404);
      expect((await admin('PUT', 'process')).status).toBe(405);
    });
  });
});

describe('emulator: persistence', () => {
  it('keeps accounts, audiences and members across a restart, written atomically', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tailor-emulator-'));
    const statePath = join(dir, 'nested', 'emulator.json');
    try {
      let id = '';
      const records = [{ email: [sha('p1')], partner_user_id: ['c-1'] }];
      await withEmulator({ statePath }, async (emulator) => {
        const call = client(emulator);
        id = await createAudience(call, 'persisted');
        await call('POST', `${audiencesPath}/${id}/users`, { json: usersBody(records) });
        emulator.admin.processAudiences();
      });
      const saved = JSON.parse(await readFile(statePath, 'utf8'));
      expect(saved.format).toBe('tailor-emulator-state');
      expect(await readdir(join(dir, 'nested'))).toEqual(['emulator.json']);
      await withEmulator({ statePath }, async (emulator) => {
        const call = client(emulator);
        const res = await call('GET', `${audiencesPath}/${id}`);
        expect(res.json.data).toMatchObject({ name: 'persisted', reasons_not_targetable: ['TOO_SMALL'] });
        expect(emulator.admin.membership(ACCOUNT, id).records).toEqual(records);
        expect((await call('POST', audiencesPath, { query: { name: 'persisted' } })).status).toBe(400);
        const second = await createAudience(call, 'second');
        expect(second).not.toBe(id);
        await call('DELETE', `${audiencesPath}/${id}`);
      });
      await withEmulator({ statePath }, async (emulator) => {
        expect(emulator.admin.audiences(ACCOUNT).map((a) => [a.name, a.deleted])).toEqual([
          ['persisted', true],
          ['second', false],
        ]);
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
