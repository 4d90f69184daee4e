/**
 * X's 3-legged (and PIN-based) OAuth 1.0a sign-in, emulated: `POST oauth/request_token`, the
 * `oauth/authorize` page with its "Authorize app" button, `POST oauth/access_token`
 * (https://docs.x.com/fundamentals/authentication/oauth-1-0a/obtaining-user-access-tokens,
 * https://docs.x.com/fundamentals/authentication/oauth-1-0a/pin-based-oauth,
 * https://docs.x.com/fundamentals/authentication/api-reference). Signatures are verified as on every
 * other endpoint (oauth.ts). The tokens it issues are credentials of the store from then on, reaching
 * the ad accounts of the user who clicked "Authorize app".
 */
import { randomBytes, randomInt } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { EmulatorResponse } from './http-util.js';
import { type NonceCache, type OAuthPolicy, parseUrlEncoded, verifyOAuth } from './oauth.js';
import { mediaType } from './request-guard.js';
import type { EmulatorStore } from './store.js';
import type { EmulatorSwitches } from './switches.js';

/** How long a request token waits to be authorized and exchanged (X does not publish its lifetime). */
const REQUEST_TOKEN_TTL_MS = 15 * 60_000;

interface PendingRequestToken {
  consumerKey: string;
  secret: string;
  /** A URL, or `oob` (the PIN flow). */
  callback: string;
  expiresAt: number;
  /** Set once the user clicked "Authorize app". */
  verifier?: string;
  userId?: string;
}

export interface OAuthFlowRequest {
  req: IncomingMessage;
  method: string;
  path: string;
  queryRaw: string;
  body: Buffer;
  /** scheme://host[:port] as the client named it (the signature covers it). */
  origin: string;
  now: number;
}

/** The answer, and whether the store changed (a token pair was issued: persist it). */
export interface OAuthFlowResult {
  response: EmulatorResponse;
  mutated: boolean;
}

/**
 * The JSON error X's v1.1 sign-in endpoints answer (code 32 "Could not authenticate you."; 415 for a
 * callback URL the app did not register). The exact bodies are not in X's current reference; clients
 * should go by the status.
 */
function oauthError(status: number, code: number, message: string, reason?: string): OAuthFlowResult {
  return {
    response: {
      status,
      json: { errors: [{ code, message }] },
      // Not X behaviour: a hint for whoever debugs a client against the emulator.
      ...(reason ? { headers: { 'x-emulator-auth-failure': reason } } : {}),
    },
    mutated: false,
  };
}

function formEncoded(values: Record<string, string>): EmulatorResponse {
  return {
    status: 200,
    text: new URLSearchParams(values).toString(),
    contentType: 'application/x-www-form-urlencoded',
  };
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}

function page(title: string, body: string, status = 200): EmulatorResponse {
  return {
    status,
    contentType: 'text/html; charset=utf-8',
    headers: {
      'cache-control': 'no-store',
      // The page is framed by nothing and runs no script.
      'content-security-policy':
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; frame-ancestors 'none'",
      'x-frame-options': 'DENY',
    },
    text:
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
      '<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}' +
      'button{font-size:1rem;padding:.5rem 1rem;margin-right:.5rem}.note{color:#666;font-size:.85rem}</style>' +
      `</head><body><main>${body}<p class="note">Not X: the Tailor X Ads API emulator's sign-in page.</p></main></body></html>`,
  };
}

function token(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

export class OAuthFlow {
  readonly #store: EmulatorStore;
  readonly #nonces: NonceCache;
  readonly #policy: () => OAuthPolicy;
  readonly #switches: EmulatorSwitches;
  readonly #pending = new Map<string, PendingRequestToken>();

  constructor(
    store: EmulatorStore,
    nonces: NonceCache,
    switches: EmulatorSwitches,
    policy: () => OAuthPolicy,
  ) {
    this.#store = store;
    this.#nonces = nonces;
    this.#switches = switches;
    this.#policy = policy;
  }

  /** Whether the path is one of the sign-in routes (served unversioned, as on X's API host). */
  static handles(path: string): boolean {
    return path === '/oauth/request_token' || path === '/oauth/authorize' || path === '/oauth/access_token';
  }

  handle(request: OAuthFlowRequest): OAuthFlowResult {
    for (const [key, pending] of this.#pending) {
      if (pending.expiresAt <= request.now) this.#pending.delete(key);
    }
    const route = request.path.slice('/oauth/'.length);
    const allowed = route === 'authorize' ? ['GET', 'POST'] : ['POST'];
    if (!allowed.includes(request.method)) {
      return {
        response: {
          status: 405,
          json: { errors: [{ code: 'METHOD_NOT_ALLOWED', message: `use ${allowed.join(' or ')}` }] },
          headers: { allow: allowed.join(', ') },
        },
        mutated: false,
      };
    }
    if (route === 'request_token') return this.#requestToken(request);
    if (route === 'access_token') return this.#accessToken(request);
    return request.method === 'GET' ? this.#authorizePage(request) : this.#authorizeDecision(request);
  }

  /** Query and form-body pairs (the signature covers both), or undefined when not valid encoding. */
  #params(request: OAuthFlowRequest): Array<[string, string]> | undefined {
    const strict = this.#switches.requirePercentEncoding;
    const query = parseUrlEncoded(request.queryRaw, strict);
    const isForm = mediaType(request.req.headers['content-type']) === 'application/x-www-form-urlencoded';
    const form = isForm ? parseUrlEncoded(request.body.toString('utf8'), strict) : [];
    return query && form ? [...query, ...form] : undefined;
  }

  #requestToken(request: OAuthFlowRequest): OAuthFlowResult {
    const params = this.#params(request);
    if (!params) return oauthError(401, 32, 'Could not authenticate you.', 'bad encoding');
    const auth = verifyOAuth(
      {
        method: request.method,
        baseUrl: `${request.origin}${request.path}`,
        authorization: request.req.headers.authorization,
        params,
        nowMs: request.now,
      },
      (consumerKey) => {
        const app = this.#store.app(consumerKey);
        return app ? { consumerSecret: app.consumerSecret, tokenSecret: '' } : undefined;
      },
      this.#nonces,
      this.#policy(),
      { token: 'absent', extra: ['oauth_callback'] },
    );
    if (!auth.ok) return oauthError(401, 32, 'Could not authenticate you.', auth.reason);
    const app = this.#store.app(auth.consumerKey)!;
    const callback = auth.header.get('oauth_callback') ?? '';
    if (callback !== 'oob') {
      const url = URL.parse(callback);
      const registered = app.callbackUrls === undefined || app.callbackUrls.includes(callback);
      if (!url || !['http:', 'https:'].includes(url.protocol) || !registered) {
        return oauthError(
          403,
          415,
          'Callback URL not approved for this client application. Approved callback URLs can be adjusted in your application settings',
        );
      }
    }
    const requestToken = token(24);
    const secret = token(24);
    this.#pending.set(requestToken, {
      consumerKey: auth.consumerKey,
      secret,
      callback,
      expiresAt: request.now + REQUEST_TOKEN_TTL_MS,
    });
    return {
      response: formEncoded({
        oauth_token: requestToken,
        oauth_token_secret: secret,
        oauth_callback_confirmed: 'true',
      }),
      mutated: false,
    };
  }

  #authorizePage(request: OAuthFlowRequest): OAuthFlowResult {
    const requestToken = new URLSearchParams(request.queryRaw).get('oauth_token') ?? '';
    const pending = this.#pending.get(requestToken);
    if (!pending || pending.verifier !== undefined) {
      return {
        response: page(
          'Authorize app · X',
          '<h1>This page is no longer valid</h1><p>The request token is unknown, expired or already used. Go back to the application and start again.</p>',
          400,
        ),
        mutated: false,
      };
    }
    const app = this.#store.app(pending.consumerKey);
    const appName = app?.name ?? `App ${pending.consumerKey.slice(0, 6)}…`;
    const users = [...this.#store.users.values()];
    if (users.length === 0) {
      return {
        response: page(
          'Authorize app · X',
          '<h1>No user can sign in</h1><p>Seed a user (EmulatorSeed.users).</p>',
          409,
        ),
        mutated: false,
      };
    }
    const options = users
      .map((user) => `<option value="${escapeHtml(user.userId)}">@${escapeHtml(user.screenName)}</option>`)
      .join('');
    const body =
      `<h1>Authorize ${escapeHtml(appName)} to access your account?</h1>` +
      '<form method="post" action="/oauth/authorize">' +
      `<input type="hidden" name="oauth_token" value="${escapeHtml(requestToken)}">` +
      `<p><label>Signed in as <select name="user_id">${options}</select></label></p>` +
      '<p>This application will be able to manage your ads and audiences.</p>' +
      '<button type="submit" name="decision" value="allow" id="allow">Authorize app</button>' +
      '<button type="submit" name="decision" value="deny" id="cancel">Cancel</button>' +
      '</form>';
    return { response: page('Authorize app · X', body), mutated: false };
  }

  #authorizeDecision(request: OAuthFlowRequest): OAuthFlowResult {
    const form = new URLSearchParams(request.body.toString('utf8'));
    const requestToken = form.get('oauth_token') ?? '';
    const pending = this.#pending.get(requestToken);
    if (!pending || pending.verifier !== undefined) {
      return {
        response: page('Authorize app · X', '<h1>This page is no longer valid</h1>', 400),
        mutated: false,
      };
    }
    const redirect = (params: Record<string, string>): OAuthFlowResult => {
      const url = new URL(pending.callback);
      for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
      return {
        response: {
          status: 302,
          headers: { location: url.toString(), 'cache-control': 'no-store' },
          text: '',
        },
        mutated: false,
      };
    };
    if (form.get('decision') !== 'allow') {
      this.#pending.delete(requestToken);
      // X sends the user back with `denied=<request token>`.
      if (pending.callback === 'oob') {
        return {
          response: page(
            'Authorize app · X',
            '<h1>You did not authorize the app</h1><p>Nothing was shared.</p>',
          ),
          mutated: false,
        };
      }
      return redirect({ denied: requestToken });
    }
    const user = this.#store.users.get(form.get('user_id') ?? '');
    if (!user) {
      return { response: page('Authorize app · X', '<h1>Unknown user</h1>', 400), mutated: false };
    }
    pending.userId = user.userId;
    // The PIN flow shows a 7-digit PIN; the callback flow sends a longer verifier.
    pending.verifier = pending.callback === 'oob' ? String(randomInt(1_000_000, 10_000_000)) : token(24);
    if (pending.callback === 'oob') {
      return {
        response: page(
          'Authorize app · X',
          '<h1>You have authorized the app</h1><p>Enter this PIN in the application to complete authorization:</p>' +
            `<p><code id="pin" style="font-size:2rem">${pending.verifier}</code></p>`,
        ),
        mutated: false,
      };
    }
    return redirect({ oauth_token: requestToken, oauth_verifier: pending.verifier });
  }

  #accessToken(request: OAuthFlowRequest): OAuthFlowResult {
    const params = this.#params(request);
    if (!params) return oauthError(401, 32, 'Could not authenticate you.', 'bad encoding');
    // The verifier travels in the header (RFC 5849 §2.3) or as a parameter (X's examples put it in the
    // query string); both are accepted.
    const inHeader = /oauth_verifier\s*=/.test(request.req.headers.authorization ?? '');
    const auth = verifyOAuth(
      {
        method: request.method,
        baseUrl: `${request.origin}${request.path}`,
        authorization: request.req.headers.authorization,
        params,
        nowMs: request.now,
      },
      (consumerKey, requestToken) => {
        const pending = this.#pending.get(requestToken);
        const app = this.#store.app(consumerKey);
        if (!pending || !app || pending.consumerKey !== consumerKey) return undefined;
        return { consumerSecret: app.consumerSecret, tokenSecret: pending.secret };
      },
      this.#nonces,
      this.#policy(),
      { token: 'required', extra: inHeader ? ['oauth_verifier'] : [] },
    );
    if (!auth.ok) return oauthError(401, 32, 'Could not authenticate you.', auth.reason);
    const verifier = auth.header.get('oauth_verifier') ?? params.find(([k]) => k === 'oauth_verifier')?.[1];
    const pending = this.#pending.get(auth.token)!;
    const user = pending.userId === undefined ? undefined : this.#store.users.get(pending.userId);
    if (pending.verifier === undefined || verifier !== pending.verifier || !user) {
      return oauthError(401, 32, 'Could not authenticate you.', 'wrong or missing oauth_verifier');
    }
    this.#pending.delete(auth.token);
    const app = this.#store.app(auth.consumerKey)!;
    const credential = this.#store.issueCredential(app, user, `${user.userId}-${token(24)}`, token(32));
    return {
      response: formEncoded({
        oauth_token: credential.accessToken,
        oauth_token_secret: credential.accessTokenSecret,
        user_id: user.userId,
        screen_name: user.screenName,
      }),
      mutated: true,
    };
  }
}
