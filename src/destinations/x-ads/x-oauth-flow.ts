/**
 * Signing in to X with the user's own app: the 3-legged OAuth 1.0a flow (request token, the authorize
 * page, access token), or its PIN variant for machines no browser can reach
 * (https://docs.x.com/fundamentals/authentication/oauth-1-0a/obtaining-user-access-tokens,
 * https://docs.x.com/fundamentals/authentication/oauth-1-0a/pin-based-oauth,
 * https://docs.x.com/fundamentals/authentication/api-reference), then the ad accounts the signed-in user
 * can reach (`GET /12/accounts`, https://docs.x.com/x-ads-api/campaign-management/reference).
 *
 * Used by `tailor connect` and the web UI alike: nothing here prints, prompts or reads the environment.
 * Signing is the `oauth-1.0a` library's, as for every Ads API call (oauth.ts).
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import OAuth from 'oauth-1.0a';
import type { Logger } from 'pino';
import { request } from 'undici';
import { AuthError, DestinationApiError, DestinationUnreachableError, RetryableError } from '../../errors.js';
import { isLoopbackHost } from './api-url.js';
import { type Clock, systemClock } from './clock.js';
import { classifyConnectionError } from './retry-policy.js';
import { parseAccount, parseCollection } from './x-ads-responses.js';
import { XAdsHttp } from './x-ads-http.js';
import type { OAuthCredentials } from './oauth.js';

/** X's API host, where the sign-in endpoints live (not the Ads API host). */
export const DEFAULT_OAUTH_URL = 'https://api.x.com';

/** `oauth_callback` of the PIN flow: X then shows the user a PIN instead of redirecting. */
export const OOB = 'oob';

/**
 * The sign-in host for an Ads API URL when `oauth_url` is not set: X's API host for X's hosts (the
 * sandbox included); the same server for a loopback one (a local emulator serves both).
 */
export function defaultOAuthUrl(apiUrl: string): string {
  const url = URL.parse(apiUrl);
  if (url && url.protocol === 'http:' && isLoopbackHost(url.hostname)) return url.origin;
  return DEFAULT_OAUTH_URL;
}

export interface ConsumerKeys {
  consumerKey: string;
  consumerSecret: string;
}

/** The temporary credentials of one sign-in (`oauth_token` is public: it is in the authorize URL). */
export interface RequestToken {
  token: string;
  secret: string;
}

export interface UserTokens {
  accessToken: string;
  accessTokenSecret: string;
  /** The signed-in X user, when X says (it does: `user_id`, `screen_name`). */
  userId: string | undefined;
  screenName: string | undefined;
}

export interface XSignInOptions {
  /** scheme://host[:port] of the sign-in endpoints (DEFAULT_OAUTH_URL, or a local emulator). */
  oauthUrl: string;
  consumer: ConsumerKeys;
  logger: Logger;
  clock?: Clock;
  /** One request may take this long (default 30 s). */
  requestTimeoutMs?: number;
}

/** The three sign-in steps, for one app. */
export class XSignIn {
  readonly #options: XSignInOptions;
  readonly #oauth: OAuth;
  readonly #origin: string;

  constructor(options: XSignInOptions) {
    this.#options = options;
    const url = URL.parse(options.oauthUrl);
    if (!url || !(url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname)))) {
      throw new AuthError(
        `oauth_url must be an https URL (plain http only on loopback): ${options.oauthUrl}`,
        {
          hint: `use ${DEFAULT_OAUTH_URL}, or a local emulator's http://127.0.0.1:<port>`,
        },
      );
    }
    this.#origin = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
    this.#oauth = new OAuth({
      consumer: { key: options.consumer.consumerKey, secret: options.consumer.consumerSecret },
      signature_method: 'HMAC-SHA1',
      hash_function: (baseString, key) => createHmac('sha1', key).update(baseString).digest('base64'),
    });
  }

  /**
   * Step 1: `POST oauth/request_token`, signed with the app's key pair only, with `oauth_callback`
   * (a URL registered in the app's settings, or OOB for the PIN flow).
   */
  async requestToken(callback: string, signal?: AbortSignal): Promise<RequestToken> {
    const answer = await this.#post('request_token', { oauth_callback: callback }, undefined, signal);
    if (answer.status === 401) {
      throw new AuthError("X refused the app's consumer key and secret (401)", {
        hint:
          'give the API Key and API Key Secret from your app\'s "Keys and tokens" page in X\'s developer portal ' +
          "(--consumer-key/--consumer-secret, or X_CONSUMER_KEY/X_CONSUMER_SECRET), and check this machine's clock",
      });
    }
    if (answer.status === 403) {
      throw new AuthError(
        callback === OOB
          ? 'X refused to start the PIN sign-in for this app (403)'
          : `X refused the callback URL ${callback} (403): it is not among the app's callback URLs`,
        {
          hint:
            callback === OOB
              ? "check the app's User authentication settings in X's developer portal (it needs a callback URL even for the PIN flow)"
              : "add it under the app's User authentication settings → Callback URI in X's developer portal " +
                '(keep the port fixed with --callback-port), or sign in with --pin',
        },
      );
    }
    const values = this.#expectForm(answer, 'request_token', ['oauth_token', 'oauth_token_secret']);
    // A provider that ignores the callback would strand the user on its own page (RFC 5849 §2.1).
    if (values.get('oauth_callback_confirmed') === 'false') {
      throw new DestinationApiError('X did not confirm the callback URL (oauth_callback_confirmed=false)');
    }
    return { token: values.get('oauth_token')!, secret: values.get('oauth_token_secret')! };
  }

  /** Step 2: where the user signs in and clicks "Authorize app". */
  authorizeUrl(requestToken: RequestToken): string {
    return `${this.#origin}/oauth/authorize?oauth_token=${encodeURIComponent(requestToken.token)}`;
  }

  /**
   * Step 3: `POST oauth/access_token` with the verifier the callback brought (or the PIN the user
   * typed), signed with the app's secret and the request token's secret.
   */
  async accessToken(requestToken: RequestToken, verifier: string, signal?: AbortSignal): Promise<UserTokens> {
    const answer = await this.#post('access_token', { oauth_verifier: verifier }, requestToken, signal);
    if (answer.status === 401 || answer.status === 403) {
      throw new AuthError(
        `X refused to complete the sign-in (${answer.status}): the PIN or verifier is wrong, or the authorization expired`,
        { hint: 'run `tailor connect` again and authorize the app once more' },
      );
    }
    const values = this.#expectForm(answer, 'access_token', ['oauth_token', 'oauth_token_secret']);
    return {
      accessToken: values.get('oauth_token')!,
      accessTokenSecret: values.get('oauth_token_secret')!,
      userId: values.get('user_id') ?? undefined,
      screenName: values.get('screen_name') ?? undefined,
    };
  }

  #expectForm(answer: { status: number; text: string }, step: string, required: string[]): URLSearchParams {
    if (answer.status === 429 || answer.status >= 500) {
      throw new RetryableError(`X's sign-in (oauth/${step}) answered ${answer.status}`, {
        hint: 'wait a minute and run `tailor connect` again',
      });
    }
    if (answer.status < 200 || answer.status >= 300) {
      throw new DestinationApiError(`X's sign-in (oauth/${step}) answered ${answer.status}`, {
        status: answer.status,
      });
    }
    const values = new URLSearchParams(answer.text);
    for (const key of required) {
      if (!values.get(key)) {
        throw new DestinationApiError(`X's sign-in (oauth/${step}) answered without ${key}`);
      }
    }
    return values;
  }

  /** One signed POST; its `oauth_*` extras (callback, verifier) travel in the header, as RFC 5849 §3.5.1 has it. */
  async #post(
    step: 'request_token' | 'access_token',
    extra: Record<string, string>,
    token: RequestToken | undefined,
    signal?: AbortSignal,
  ): Promise<{ status: number; text: string }> {
    const clock = this.#options.clock ?? systemClock;
    const url = `${this.#origin}/oauth/${step}`;
    const oauthData: OAuth.Data = {
      oauth_consumer_key: this.#options.consumer.consumerKey,
      oauth_nonce: randomBytes(16).toString('hex'),
      oauth_signature_method: 'HMAC-SHA1',
      oauth_timestamp: Math.floor(clock.now() / 1000),
      oauth_version: '1.0',
      ...(token ? { oauth_token: token.token } : {}),
    };
    // oauth-1.0a signs every key of `data` beside the oauth_* ones; toHeader keeps the oauth_* keys.
    const withExtra = { ...oauthData, ...extra } as OAuth.Data;
    const signature = this.#oauth.getSignature(
      { url, method: 'POST', data: {} },
      token?.secret ?? '',
      withExtra,
    );
    const { Authorization } = this.#oauth.toHeader({ ...withExtra, oauth_signature: signature });
    const timeout = AbortSignal.timeout(this.#options.requestTimeoutMs ?? 30_000);
    try {
      const res = await request(url, {
        method: 'POST',
        headers: { authorization: Authorization, 'user-agent': 'tailor (X sign-in)' },
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      const text = await res.body.text();
      // The step and the status only: the answer carries tokens.
      this.#options.logger.debug({ step, status: res.statusCode }, 'X sign-in request');
      return { status: res.statusCode, text };
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const origin = new URL(this.#origin).origin;
      if (timeout.aborted) {
        throw new RetryableError(`X's sign-in host ${origin} did not answer within its timeout`, {
          hint: 'check the network, and run `tailor connect` again',
        });
      }
      const failure = classifyConnectionError(error);
      const what =
        failure.status === 'unreachable'
          ? {
              refused: 'connection refused',
              dns: 'the host name does not resolve',
              tls: 'TLS failed',
              network: 'no route to the host',
            }[failure.cause]
          : 'the connection failed';
      throw new DestinationUnreachableError(
        `cannot reach X's sign-in host ${origin}: ${what} (${failure.code ?? 'no code'})`,
        {
          origin,
          hint:
            `check --oauth-url (or the destination's oauth_url; X's is ${DEFAULT_OAUTH_URL}); for a local emulator, ` +
            'check that it runs (`tailor emulator`) on that port',
          cause: error,
        },
      );
    }
  }
}

/**
 * Where X sends the browser back after "Authorize app": a one-request HTTP server on a loopback
 * address. Its page says only whether the sign-in went through; the verifier goes to `wait`.
 */
export class CallbackListener {
  readonly #server: Server;
  #url = '';
  #waiter:
    { requestToken: string; resolve: (verifier: string) => void; reject: (error: Error) => void } | undefined;
  #early: { requestToken: string; verifier?: string; denied?: boolean } | undefined;

  private constructor(path: string) {
    this.#server = createServer((req, res) => this.#onRequest(req.url ?? '/', path, res));
  }

  /**
   * Listens on `host` (default 127.0.0.1: X has refused `localhost` callbacks) and `port` (default 0:
   * a free one; fix it when the app's registered callback URL names a port).
   */
  static async start(
    options: { host?: string; port?: number; path?: string } = {},
  ): Promise<CallbackListener> {
    const host = options.host ?? '127.0.0.1';
    const path = options.path ?? '/callback';
    const listener = new CallbackListener(path);
    const server = listener.#server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        const port = options.port ?? 0;
        reject(
          new AuthError(
            `cannot listen for X's callback on ${host}:${port} (${error.code ?? error.message})`,
            {
              hint:
                error.code === 'EADDRINUSE'
                  ? 'another program uses that port: choose another --callback-port (and register it with the app), or sign in with --pin'
                  : 'choose another --callback-host/--callback-port, or sign in with --pin',
              cause: error,
            },
          ),
        );
      });
      server.listen(options.port ?? 0, host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const hostInUrl = host.includes(':') ? `[${host}]` : host;
    listener.#url = `http://${hostInUrl}:${port}${path}`;
    return listener;
  }

  /** The `oauth_callback` to register and send. */
  get url(): string {
    return this.#url;
  }

  #onRequest(rawUrl: string, path: string, res: ServerResponse): void {
    const url = new URL(rawUrl, 'http://callback.invalid');
    const reply = (status: number, title: string, text: string) => {
      res.writeHead(status, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy': "default-src 'none'",
      });
      res.end(
        `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head><body><h1>${title}</h1><p>${text}</p></body></html>`,
      );
    };
    if (url.pathname !== path) return reply(404, 'Not found', 'This is Tailor waiting for X to sign you in.');
    const denied = url.searchParams.get('denied');
    const requestToken = url.searchParams.get('oauth_token') ?? denied ?? '';
    const verifier = url.searchParams.get('oauth_verifier') ?? undefined;
    const waiter = this.#waiter;
    if (waiter && requestToken !== waiter.requestToken) {
      return reply(400, 'Unknown sign-in', 'This answer belongs to another sign-in; go back to Tailor.');
    }
    if (denied !== null) {
      reply(200, 'Not connected', 'You did not authorize the app. You can close this tab.');
      this.#settle({ requestToken, denied: true });
    } else if (verifier) {
      reply(
        200,
        'Connected',
        'Tailor is signed in to X. You can close this tab and go back to the terminal.',
      );
      this.#settle({ requestToken, verifier });
    } else {
      reply(400, 'Not connected', 'X sent no verifier. Go back to Tailor and try again.');
    }
  }

  #settle(outcome: { requestToken: string; verifier?: string; denied?: boolean }): void {
    const waiter = this.#waiter;
    if (!waiter) {
      this.#early ??= outcome;
      return;
    }
    this.#waiter = undefined;
    if (outcome.denied) {
      waiter.reject(
        new AuthError('the authorization was denied on X\'s page ("Cancel")', {
          hint: 'run `tailor connect` again and click "Authorize app"',
        }),
      );
    } else waiter.resolve(outcome.verifier!);
  }

  /** The verifier X's redirect brings for `requestToken`; rejects on "Cancel", timeout or abort. */
  wait(requestToken: RequestToken, options: { timeoutMs: number; signal?: AbortSignal }): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(
          new AuthError(
            `X's authorize page did not send the browser back within ${Math.round(options.timeoutMs / 1000)} s`,
            {
              hint:
                'run `tailor connect` again and click "Authorize app" sooner (--timeout to wait longer); ' +
                'if the browser cannot reach this machine, use --pin',
            },
          ),
        );
      }, options.timeoutMs);
      const onAbort = () => {
        clearTimeout(timer);
        this.#waiter = undefined;
        reject(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted'));
      };
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiter = {
        requestToken: requestToken.token,
        resolve: (verifier) => {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
          resolve(verifier);
        },
        reject: (error) => {
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
          reject(error);
        },
      };
      const early = this.#early;
      this.#early = undefined;
      if (early && early.requestToken === requestToken.token) this.#settle(early);
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }
}

export interface AdAccount {
  id: string;
  name: string;
  /** X's `approval_status` (ACCEPTED, or e.g. PENDING, REJECTED, UNDER_REVIEW); null when not given. */
  approvalStatus: string | null;
}

/** Only an accepted account can hold custom audiences; X documents `ACCEPTED` as the approved value. */
export function accountRefusal(account: AdAccount): string | undefined {
  if (account.approvalStatus === 'ACCEPTED') return undefined;
  return `ad account ${account.id} ("${account.name}") is not approved for custom audiences (approval_status ${account.approvalStatus ?? 'missing'})`;
}

/** Every live ad account the user of `credentials` can reach, following `next_cursor`. */
export async function listAdAccounts(options: {
  apiUrl: string;
  credentials: OAuthCredentials;
  logger: Logger;
  /** The destination name, for error messages. */
  destination: string;
  signal?: AbortSignal;
  clock?: Clock;
  /** Accounts per page (X allows 1-1000). */
  pageSize?: number;
}): Promise<AdAccount[]> {
  const http = new XAdsHttp({
    destination: options.destination,
    apiUrl: new URL(options.apiUrl),
    accountId: '',
    credentials: options.credentials,
    requestTimeoutMs: 30_000,
    retryDeadlineMs: 60_000,
    logger: options.logger,
    clock: options.clock ?? systemClock,
  });
  const accounts: AdAccount[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 100; page++) {
    const response = await http.sendOk({
      method: 'GET',
      path: ['accounts'],
      endpoint: 'accounts',
      query: { count: String(options.pageSize ?? 1000), ...(cursor ? { cursor } : {}) },
      ...(options.signal ? { signal: options.signal } : {}),
    });
    const { items, nextCursor } = parseCollection(response!.body, parseAccount);
    for (const item of items) {
      if (!item.deleted) accounts.push({ id: item.id, name: item.name, approvalStatus: item.approvalStatus });
    }
    cursor = nextCursor;
    if (!cursor) break;
  }
  return accounts;
}
