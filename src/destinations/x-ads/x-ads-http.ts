import type { Logger } from 'pino';
import type { Agent, request as undiciRequest } from 'undici';
import { AuthError, DestinationApiError, DestinationUnreachableError, RetryableError } from '../../errors.js';
import { X_ADS_API_VERSION } from './api-url.js';
import type { DestinationObserver, RequestEvent } from '../destination.js';
import type { Clock } from './clock.js';
import { type OAuthCredentials, OAuthSigner, percentEncode } from './oauth.js';
import type { SlidingWindowLimiter } from './rate-limiter.js';
import {
  type AttemptStatus,
  type BackoffOptions,
  backoffDelayMs,
  classifyConnectionError,
  type ConnectionFailure,
  DEFAULT_BACKOFF,
  pastDeadline,
  retryDecision,
  type UnreachableCause,
} from './retry-policy.js';
import { type ApiErrorItem, describeErrors, parseErrors } from './x-ads-responses.js';

/**
 * undici with the keep-alive connections shared by every X client of the process (one audience sync
 * sends many requests to one host, and a TLS handshake per request would cost more than the request),
 * loaded with the first request: a command that loads the X client's code but sends nothing
 * (`history`, `state reset`, `plan`) does not pay its ~40 ms of module loading.
 */
let undici: Promise<{ request: typeof undiciRequest; agent: Agent }> | undefined;
function http(): Promise<{ request: typeof undiciRequest; agent: Agent }> {
  undici ??= import('undici').then(({ Agent, request }) => ({
    request,
    agent: new Agent({ keepAliveTimeout: 10_000, keepAliveMaxTimeout: 60_000, connections: 16 }),
  }));
  return undici;
}

export interface XAdsRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Path after `/{version}/`, each segment given raw (it is percent-encoded here). */
  path: readonly string[];
  /** Route template for metrics and logs, e.g. `custom_audiences/:id/users` (as in destination.ts). */
  endpoint: string;
  query?: Readonly<Record<string, string>>;
  /** A JSON body (sent with `Content-Type: application/json`, never signed). */
  json?: string;
  /** A shorter retry deadline than `retryDeadlineMs` for this request (interactive reads, checks). */
  deadlineMs?: number;
  /** The limiter this request counts against, if any. */
  limiter?: SlidingWindowLimiter;
  signal?: AbortSignal;
  /**
   * Checks a 2xx response; a returned string is a reason to retry (the users endpoint's count check).
   */
  validate?: (response: XAdsResponse) => string | undefined;
}

export interface XAdsResponse {
  status: number;
  header: (name: string) => string | undefined;
  /** Parsed JSON, or undefined when the body was empty or not JSON (e.g. an HTML error page). */
  body: unknown;
}

/** One attempt: X's answer, no answer (and why), or the caller's abort. */
type AttemptOutcome = { response: XAdsResponse } | { failure: ConnectionFailure; error: unknown } | 'aborted';

/** How a request ended after its retries. */
export type SendResult =
  | { kind: 'response'; response: XAdsResponse; attempts: number }
  | { kind: 'gave_up'; reason: string; attempts: number }
  | { kind: 'aborted'; attempts: number };

export interface XAdsHttpOptions {
  destination: string;
  apiUrl: URL;
  accountId: string;
  credentials: OAuthCredentials;
  requestTimeoutMs: number;
  retryDeadlineMs: number;
  logger: Logger;
  observer?: DestinationObserver;
  clock: Clock;
  random?: () => number;
  backoff?: BackoffOptions;
}

/** Signed requests to the Ads API with timeouts, throttling and the retry policy of retry-policy.ts. */
export class XAdsHttp {
  readonly #options: XAdsHttpOptions;
  readonly #signer: OAuthSigner;
  readonly #base: string;
  /** Scheme, host and port of the API: what messages name (never api_url's credentials or query). */
  readonly #origin: string;
  /** Requests sent (attempts, retries included) since the counter was last read. */
  #sent = 0;

  constructor(options: XAdsHttpOptions) {
    this.#options = options;
    this.#signer = new OAuthSigner(options.credentials);
    this.#origin = options.apiUrl.origin;
    this.#base = `${this.#origin}${options.apiUrl.pathname.replace(/\/+$/, '')}/${X_ADS_API_VERSION}`;
  }

  get requestsSent(): number {
    return this.#sent;
  }

  /**
   * Sends with retries for transient failures, until success, a final answer, the deadline, or abort.
   * Throws DestinationUnreachableError at once when X cannot be reached at all (retry-policy.ts).
   */
  async send(req: XAdsRequest): Promise<SendResult> {
    const { clock } = this.#options;
    const random = this.#options.random ?? Math.random;
    const backoff = this.#options.backoff ?? DEFAULT_BACKOFF;
    // The deadline runs from the first attempt: time spent queued behind the limiter is not failure.
    let started: number | undefined;
    let attempts = 0;
    for (;;) {
      if (req.signal?.aborted) return { kind: 'aborted', attempts };
      if (req.limiter) {
        try {
          await req.limiter.acquire(clock, req.signal);
        } catch (error) {
          if (req.signal?.aborted) return { kind: 'aborted', attempts };
          throw error;
        }
      }
      attempts += 1;
      started ??= clock.now();
      const outcome = await this.#attempt(req, attempts);
      if (outcome === 'aborted') return { kind: 'aborted', attempts };
      if ('failure' in outcome && outcome.failure.status === 'unreachable') {
        throw this.#unreachable(outcome.failure.cause, outcome.failure.code, outcome.error);
      }

      const status: AttemptStatus = 'failure' in outcome ? outcome.failure.status : outcome.response.status;
      const header = 'failure' in outcome ? () => undefined : outcome.response.header;
      const now = clock.now();
      let decision = retryDecision(status, header, now, attempts, random(), backoff);
      if (!decision.retry && 'response' in outcome) {
        const { response } = outcome;
        const invalid =
          response.status >= 200 && response.status < 300 ? req.validate?.(response) : undefined;
        if (invalid === undefined) return { kind: 'response', response, attempts };
        // A 2xx that does not acknowledge what was sent (§6.4): a failure, retried with backoff.
        decision = {
          retry: true,
          delayMs: backoffDelayMs(attempts, random(), backoff),
          reason: invalid,
          rateLimited: false,
        };
      }
      if (!decision.retry) {
        // Only an answer is final without a retry; no answer is either retried or thrown above.
        if (!('response' in outcome)) throw new Error(`no retry decision for ${String(status)}`);
        return { kind: 'response', response: outcome.response, attempts };
      }
      const code = 'failure' in outcome ? outcome.failure.code : undefined;
      const reason = code ? `${decision.reason} (${code})` : decision.reason;
      if (decision.rateLimited) req.limiter?.pauseUntil(now + decision.delayMs);
      const deadline = Math.min(req.deadlineMs ?? Infinity, this.#options.retryDeadlineMs);
      if (pastDeadline(started, now, decision.delayMs, deadline)) {
        this.#options.logger.warn(
          { endpoint: req.endpoint, attempts, reason },
          'X Ads request still failing at its retry deadline; leaving it for the next run',
        );
        return { kind: 'gave_up', reason: `${reason}; gave up after ${attempts} attempts`, attempts };
      }
      // Said while it happens, so a wait is never silence. Only the route template and the reason (a
      // status, an error code, counts): never the request's query string nor any identifier. A rate
      // limit is X's throttle working as documented, so info; anything else is a fault, so warn.
      this.#options.logger[decision.rateLimited ? 'info' : 'warn'](
        { endpoint: req.endpoint, attempt: attempts, reason, waitMs: decision.delayMs },
        `X Ads request: ${reason}; retrying in ${formatWait(decision.delayMs)}`,
      );
      try {
        await clock.sleep(decision.delayMs, req.signal);
      } catch (error) {
        if (req.signal?.aborted) return { kind: 'aborted', attempts };
        throw error;
      }
    }
  }

  /**
   * Sends and demands a final 2xx answer: gives up → RetryableError, abort → the signal's reason,
   * 401/403 → AuthError, other statuses → DestinationApiError (404 left to `onNotFound` if given).
   */
  async sendOk(
    req: XAdsRequest,
    onNotFound?: () => XAdsResponse | undefined,
  ): Promise<XAdsResponse | undefined> {
    return this.finish(req, await this.send(req), onNotFound);
  }

  /** What `sendOk` makes of a `send` result: the 2xx response, or the error to throw. */
  finish(
    req: XAdsRequest,
    result: SendResult,
    onNotFound?: () => XAdsResponse | undefined,
  ): XAdsResponse | undefined {
    if (result.kind === 'aborted') throw req.signal?.reason ?? new Error('aborted');
    if (result.kind === 'gave_up') {
      throw new RetryableError(
        `X Ads API ${req.method} ${req.endpoint} at ${this.#origin}: ${result.reason}`,
      );
    }
    const { response } = result;
    if (response.status >= 200 && response.status < 300) return response;
    if (response.status === 404 && onNotFound) return onNotFound();
    throw this.errorFor(req, response);
  }

  /** The error to throw for a final non-2xx answer. */
  errorFor(req: Pick<XAdsRequest, 'method' | 'endpoint'>, response: XAdsResponse): Error {
    const errors = parseErrors(response.body);
    if (response.status === 401 || response.status === 403) return this.#authError(response.status, errors);
    const first = errors[0];
    return new DestinationApiError(
      `X Ads API ${req.method} ${req.endpoint} answered ${response.status}: ${describeErrors(errors, 'no error details')}`,
      { status: response.status, ...(first?.code ? { code: first.code } : {}) },
    );
  }

  #authError(status: number, errors: ApiErrorItem[]): AuthError {
    const { destination, accountId } = this.#options;
    const code = errors[0]?.code ?? null;
    const creds = `destinations.${destination}.credentials`;
    const what = `${status}${code ? ` ${code}` : ''}`;
    // https://docs.x.com/x-ads-api/fundamentals/error-codes-and-responses (401/403 codes), §2.1, §12.
    if (status === 401) {
      return new AuthError(`X refused the request signature for destination ${destination} (${what})`, {
        hint:
          `check ${creds}: consumer_key + consumer_secret (the app's API key pair) and access_token + ` +
          `access_token_secret (the user's token pair) must belong together; a wrong or revoked secret ` +
          `fails the signature. Also check this machine's clock (OAuth timestamps).`,
      });
    }
    if (code === 'UNAUTHORIZED_CLIENT_APPLICATION') {
      return new AuthError(`the X app behind ${creds}.consumer_key has no Ads API access (${what})`, {
        hint: 'apply for Ads API access for the app, and for the Custom Audiences allowlist of the users endpoint',
      });
    }
    if (code === 'NOT_FOUND' || code === 'ACCOUNT_NOT_FOUND') {
      return new AuthError(
        `the X user of ${creds}.access_token cannot reach ad account ${accountId} (${what})`,
        {
          hint:
            `check destinations.${destination}.account_id (the base-36 id, e.g. 18ce54d4x5t, not a number) ` +
            `and that the user has access to it (Partner Audience Manager or Ad Manager)`,
        },
      );
    }
    if (code === 'INVALID') {
      return new AuthError(`X refused API version ${X_ADS_API_VERSION} (${what})`, {
        hint: 'upgrade Tailor: the Ads API version it speaks has been retired',
      });
    }
    return new AuthError(
      `X refused access to ad account ${accountId} for destination ${destination} (${what}: ${describeErrors(errors, 'forbidden')})`,
      {
        hint:
          `check that the user of ${creds}.access_token may write audiences in account ${accountId} ` +
          `(read-only roles such as Campaign Analyst cannot) and that the account is not locked`,
      },
    );
  }

  /** The error for an X that cannot be reached: its address and what to check, at once. */
  #unreachable(cause: UnreachableCause, code: string, error: unknown): DestinationUnreachableError {
    const origin = this.#origin;
    const apiUrl = `destinations.${this.#options.destination}.api_url in tailor.yml`;
    const { what, hint } = {
      refused: {
        what: 'connection refused',
        hint:
          `check ${apiUrl} (scheme, host and port); for a local emulator, check that it runs ` +
          "(`tailor emulator`) on that port; otherwise check this machine's network (a proxy or firewall)",
      },
      dns: {
        what: 'the host name does not resolve',
        hint: `check the host name in ${apiUrl} (X's is ads-api.x.com) and this machine's network and DNS`,
      },
      tls: {
        what: 'TLS failed',
        hint:
          `check ${apiUrl}: a local emulator speaks plain http (http://127.0.0.1:<port>), not https; ` +
          "otherwise check this machine's clock and any proxy that intercepts TLS (its CA goes in NODE_EXTRA_CA_CERTS)",
      },
      network: {
        what: 'no route to the host',
        hint: `check this machine's network connection, and ${apiUrl}`,
      },
    }[cause];
    // The driver's own words (`connect ECONNREFUSED 127.0.0.1:1`, `self-signed certificate`: an
    // address or a reason, never a path or query), shortened when OpenSSL adds its internals.
    const raw = error instanceof Error ? error.message : String(error);
    const detail = /SSL routines:[^:]*:([^:]+)/.exec(raw)?.[1] ?? raw.split('\n')[0]!.trim();
    const quoted = detail.includes(code) ? detail : detail ? `${detail}, ${code}` : code;
    return new DestinationUnreachableError(
      `cannot reach the X Ads API at ${origin}: ${what} (${quoted})`,
      // The cause is what the message quotes: the raw error when quoted whole, else a wrapper of it.
      { origin, hint, cause: detail === raw ? error : new Error(detail, { cause: error }) },
    );
  }

  /** One attempt: the response, no answer (and why), or 'aborted' when the caller's signal fired. */
  async #attempt(req: XAdsRequest, attempt: number): Promise<AttemptOutcome> {
    const { clock, requestTimeoutMs, logger, observer, destination } = this.#options;
    const baseUrl = `${this.#base}/${req.path.map(percentEncode).join('/')}`;
    const signed = this.#signer.sign({
      method: req.method,
      baseUrl,
      query: req.query ?? {},
      timestamp: Math.floor(clock.now() / 1000),
    });
    const headers: Record<string, string> = {
      authorization: signed.authorization,
      accept: 'application/json',
      'user-agent': 'tailor (X Ads custom audiences sync)',
    };
    if (req.json !== undefined) headers['content-type'] = 'application/json';

    const { request, agent } = await http();
    // The request timeout is real time (it is about the network), unlike the injectable waits.
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), requestTimeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout.signal]) : timeout.signal;
    const startedAt = performance.now();
    this.#sent += 1;
    let status: RequestEvent['status'];
    try {
      const res = await request(signed.url, {
        method: req.method,
        headers,
        body: req.json,
        dispatcher: agent,
        signal,
      });
      const text = await res.body.text();
      status = res.statusCode;
      const header = (name: string) => {
        const value = res.headers[name.toLowerCase()];
        return Array.isArray(value) ? value[0] : value;
      };
      const warning = header('x-api-warn');
      if (warning) logger.warn({ endpoint: req.endpoint, x_api_warn: warning }, 'X Ads API warning');
      let body: unknown;
      if (text.trim() !== '') {
        try {
          body = JSON.parse(text);
        } catch {
          // Edges may answer with HTML (§3.3); the status decides then.
          body = undefined;
        }
      }
      return { response: { status: res.statusCode, header, body } };
    } catch (error) {
      if (req.signal?.aborted) {
        status = 'network_error';
        return 'aborted';
      }
      const failure: ConnectionFailure = timeout.signal.aborted
        ? { status: 'timeout', code: undefined }
        : classifyConnectionError(error);
      status = failure.status === 'timeout' ? 'timeout' : 'network_error';
      logger.debug(
        { endpoint: req.endpoint, attempt, error: (error as Error).name, code: failure.code },
        `X Ads request failed: ${failure.status}`,
      );
      return { failure, error };
    } finally {
      clearTimeout(timer);
      observer?.onRequest?.({
        destination,
        endpoint: req.endpoint,
        method: req.method,
        status: status!,
        attempt,
        durationMs: performance.now() - startedAt,
      });
    }
  }
}

/** A wait as people read it: `7 s`, `1.5 s`, `2 min 5 s`. */
function formatWait(ms: number): string {
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(ms < 10_000 ? 1 : 0))} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return seconds === 0 ? `${minutes} min` : `${minutes} min ${seconds} s`;
}
