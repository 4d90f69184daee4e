/**
 * The emulator's HTTP server (node:http, no framework): routing and versions
 * (https://docs.x.com/x-ads-api/fundamentals/versioning), OAuth 1.0a, injected faults, rate limits
 * (https://docs.x.com/x-ads-api/fundamentals/rate-limiting), then the API handlers; plus the test-only
 * admin API under `/_admin/` (loopback only, no OAuth).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pino, type Logger } from 'pino';
import { adminRefusal, handleAdmin } from './admin-http.js';
import { ApiHandlers, type ApiResult, matchRoute } from './api.js';
import { type EmulatorResponse, isLoopback, readBody, singleError, sleep } from './http-util.js';
import { NonceCache, parseUrlEncoded, verifyOAuth } from './oauth.js';
import { OAuthFlow } from './oauth-flow.js';
import { loadState, StatePersister } from './persistence.js';
import { type BucketKind, RateLimiter, resolveRateLimits } from './rate-limit.js';
import { DEFAULT_SEED, EmulatorStore, WRITE_PERMISSIONS } from './store.js';
import { hostAllowed, hostInUrl, isLoopbackHostname, mediaType } from './request-guard.js';
import { type EmulatorSwitches, resolveSwitches } from './switches.js';
import {
  type EmulatorAdmin,
  type EmulatorOptions,
  type EmulatorSeed,
  ALL_FAULT_KINDS,
  type FaultSpec,
  type MembershipView,
  type RequestLogEntry,
  type RunningEmulator,
  type UsersAnswerListener,
} from './types.js';
import { MAX_BODY_BYTES } from './users-validation.js';

const CURRENT_API_VERSION = '12';
const REQUEST_LOG_LIMIT = 100_000;

type FaultCategory = 'users' | 'audiences' | 'other';

/** A request a `hold` fault keeps unanswered: settle(true) lets it go on, settle(false) drops it. */
interface HeldRequest {
  settle(apply: boolean): void;
  /** Resolves once the request has been handled to the end (answered or dropped, logged, heard). */
  handled: Promise<void>;
}

/** Per request: what #handle does once the request is finished with. */
interface RequestContext {
  users: boolean;
  onHandled: Array<() => void>;
}

export class Emulator implements EmulatorAdmin {
  readonly #switches: EmulatorSwitches;
  readonly #options: EmulatorOptions;
  readonly #logger: Logger;
  readonly #nonces = new NonceCache();
  readonly #limiter: RateLimiter | null;
  #store: EmulatorStore;
  #handlers: ApiHandlers;
  #signIn: OAuthFlow;
  #offsetMs = 0;
  #faults: Array<{ spec: FaultSpec; remaining: number }> = [];
  #requestLog: RequestLogEntry[] = [];
  #usersListeners = new Set<UsersAnswerListener>();
  #held: HeldRequest[] = [];
  #server: Server | undefined;
  #persister: StatePersister | undefined;
  #timer: NodeJS.Timeout | undefined;
  #host = '127.0.0.1';
  #port = 0;

  constructor(options: EmulatorOptions, store: EmulatorStore) {
    this.#options = options;
    this.#switches = resolveSwitches(options.switches);
    this.#logger = options.logger ?? pino({ level: 'silent' });
    const specs = resolveRateLimits(options.rateLimits);
    this.#limiter = specs ? new RateLimiter(specs) : null;
    this.#store = store;
    this.#handlers = new ApiHandlers(store, this.#switches);
    this.#signIn = new OAuthFlow(store, this.#nonces, this.#switches, () => this.#oauthPolicy());
  }

  #oauthPolicy() {
    return {
      timestampWindowSeconds: this.#options.timestampWindowSeconds ?? 300,
      rejectReplayedNonce: this.#switches.rejectReplayedNonce,
      allowRealm: this.#switches.allowOAuthRealm,
    };
  }

  static async create(options: EmulatorOptions = {}): Promise<Emulator> {
    const now = (options.clock ?? Date.now)();
    let store: EmulatorStore | undefined;
    if (options.statePath) {
      const saved = await loadState(options.statePath);
      if (saved) store = EmulatorStore.deserialize(saved);
    }
    const fresh = !store;
    store ??= new EmulatorStore();
    store.seed(options.seed ?? DEFAULT_SEED, now);
    const emulator = new Emulator(options, store);
    if (options.statePath) {
      emulator.#persister = new StatePersister(
        options.statePath,
        () => emulator.#store.serialize(),
        emulator.#logger,
      );
      if (fresh) emulator.#persister.changed();
    }
    return emulator;
  }

  now(): number {
    return (this.#options.clock ?? Date.now)() + this.#offsetMs;
  }

  async listen(): Promise<RunningEmulator> {
    const server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        this.#logger.error({ err: error }, 'emulator: could not answer a request');
        res.destroy();
      });
    });
    // Longer than a client's idle keep-alive, so a reused connection is not closed under it.
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 70_000;
    this.#server = server;
    this.#host = this.#options.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#options.port ?? 0, this.#host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#port = (server.address() as AddressInfo).port;
    if (this.#switches.sizeJobIntervalMs > 0) {
      this.#timer = setInterval(() => this.processAudiences(), this.#switches.sizeJobIntervalMs);
      this.#timer.unref();
    }
    const url = `http://${hostInUrl(this.#host)}:${this.#port}`;
    this.#logger.info({ address: url }, 'X Ads API emulator listening');
    return { url, port: this.#port, admin: this, close: () => this.close() };
  }

  async close(): Promise<void> {
    this.discardHeld();
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    }
    await this.#persister?.flush();
  }

  // ---- EmulatorAdmin ------------------------------------------------------------------------------

  injectFaults(faults: FaultSpec[]): void {
    for (const spec of faults) {
      if (!ALL_FAULT_KINDS.includes(spec.kind)) throw new Error(`unknown fault kind ${String(spec.kind)}`);
      if (spec.match !== undefined && !['users', 'audiences', 'any'].includes(spec.match)) {
        throw new Error(`unknown fault match ${String(spec.match)}`);
      }
      const times = spec.times ?? 1;
      if (!Number.isInteger(times) || times < 1) throw new Error('fault times must be a positive integer');
      this.#faults.push({ spec: { ...spec }, remaining: times });
    }
  }

  clearFaults(): void {
    this.#faults = [];
  }

  membership(accountId: string, audienceId: string): MembershipView {
    const audience = this.#store.findAudience(accountId.toLowerCase(), audienceId.toLowerCase());
    if (!audience) throw new Error(`no custom audience ${audienceId} in account ${accountId}`);
    return this.#store.membership(audience);
  }

  memberCount(accountId: string, audienceId: string): number {
    const audience = this.#store.findAudience(accountId.toLowerCase(), audienceId.toLowerCase());
    if (!audience) throw new Error(`no custom audience ${audienceId} in account ${accountId}`);
    return audience.members.size;
  }

  processAudiences(): void {
    this.#store.processAudiences(this.now());
    this.#persister?.changed();
  }

  advanceClock(ms: number): void {
    if (this.#options.clock) {
      throw new Error('advanceClock: this emulator was given a custom clock; advance that clock instead');
    }
    if (!Number.isFinite(ms) || ms < 0) throw new Error('advanceClock: ms must be a non-negative number');
    this.#offsetMs += ms;
  }

  requestLog(): RequestLogEntry[] {
    return this.#requestLog.map((entry) => ({ ...entry }));
  }

  clearRequestLog(): void {
    this.#requestLog = [];
  }

  seed(seed: EmulatorSeed): void {
    this.#store.seed(seed, this.now());
    this.#persister?.changed();
  }

  audiences(accountId: string): Array<{ id: string; name: string; deleted: boolean }> {
    return this.#store
      .audiencesOf(accountId.toLowerCase())
      .map((a) => ({ id: a.id, name: a.name, deleted: a.deleted }));
  }

  onUsersAnswered(listener: UsersAnswerListener): () => void {
    // A wrapper per call, so one listener added twice is removed once per returned function.
    const entry: UsersAnswerListener = (answer) => listener(answer);
    this.#usersListeners.add(entry);
    return () => void this.#usersListeners.delete(entry);
  }

  heldRequests(): number {
    return this.#held.length;
  }

  async applyHeld(): Promise<number> {
    const held = this.#held;
    this.#held = [];
    for (const request of held) request.settle(true);
    await Promise.all(held.map((request) => request.handled));
    return held.length;
  }

  discardHeld(): number {
    const held = this.#held;
    this.#held = [];
    for (const request of held) request.settle(false);
    return held.length;
  }

  /** Whether the admin clock can be advanced (no custom clock). */
  get clockAdvanceable(): boolean {
    return this.#options.clock === undefined;
  }

  // ---- HTTP ---------------------------------------------------------------------------------------

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const method = req.method ?? 'GET';
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
    const queryRaw = q === -1 ? '' : rawUrl.slice(q + 1);
    let result: ApiResult;
    let bytes = 0;
    const context: RequestContext = { users: false, onHandled: [] };
    try {
      const read = await readBody(req, MAX_BODY_BYTES);
      bytes = read.bytes;
      if (path === '/_admin' || path.startsWith('/_admin/')) {
        const response = !isLoopback(req.socket.remoteAddress)
          ? singleError(404, 'ROUTE_NOT_FOUND', 'The requested resource could not be found')
          : (adminRefusal(req.headers, method, read.bytes, this.#port, [hostInUrl(this.#host)]) ??
            (await handleAdmin(this, method, path, read.body)));
        this.#send(res, response);
        return;
      }
      result = OAuthFlow.handles(path)
        ? this.#oauthFlow(req, method, path, queryRaw, read.body)
        : await this.#api(req, method, path, queryRaw, read.body, read.bytes, context);
    } catch (error) {
      this.#logger.error({ err: error, method, path }, 'emulator: request failed');
      result = { mutated: false, response: singleError(500, 'INTERNAL_ERROR', 'Internal error') };
    }
    try {
      this.#finish(req, res, method, path, bytes, started, result, context);
    } finally {
      for (const done of context.onHandled) done();
    }
  }

  /** Answers (or drops), logs, and tells users-answer listeners. */
  #finish(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    path: string,
    bytes: number,
    started: number,
    result: ApiResult,
    context: RequestContext,
  ): void {
    if (result.mutated) this.#persister?.changed();
    const status = result.response.drop ? 0 : result.response.status;
    // A held request's client may have given up: then nothing reaches it.
    const delivered = !result.response.drop && !req.socket.destroyed && !res.destroyed;
    if (result.response.drop) req.socket.destroy();
    else this.#send(res, result.response);
    this.#requestLog.push({
      method,
      path,
      status,
      ...(result.operations !== undefined ? { operations: result.operations } : {}),
      ...(result.users !== undefined ? { users: result.users } : {}),
      bytes,
    });
    if (this.#requestLog.length > REQUEST_LOG_LIMIT) this.#requestLog.splice(0, this.#requestLog.length / 2);
    // Path only: query strings may carry audience names; bodies carry customers' identifiers.
    this.#logger.info(
      { method, path, status, ms: Math.round(performance.now() - started) },
      'emulator request',
    );
    if (context.users && this.#usersListeners.size > 0) {
      const answer = {
        method,
        path,
        status,
        ...(result.operations !== undefined ? { operations: result.operations } : {}),
        ...(result.users !== undefined ? { users: result.users } : {}),
        applied: result.mutated,
        delivered,
      };
      for (const listener of [...this.#usersListeners]) {
        try {
          listener({ ...answer });
        } catch (error) {
          this.#logger.error({ err: error }, 'emulator: a users-answer listener threw');
        }
      }
    }
  }

  /** Keeps a request unanswered until applyHeld (true: go on) or discardHeld/close (false: drop it). */
  #hold(context: RequestContext): Promise<boolean> {
    return new Promise<boolean>((settle) => {
      let handled!: () => void;
      const request: HeldRequest = {
        settle,
        handled: new Promise<void>((resolve) => (handled = resolve)),
      };
      context.onHandled.push(handled);
      this.#held.push(request);
    });
  }

  #send(res: ServerResponse, response: EmulatorResponse): void {
    if (res.destroyed || res.headersSent) return;
    const headers: Record<string, string> = {
      'x-current-api-version': CURRENT_API_VERSION,
      ...(response.headers ?? {}),
    };
    let body = '';
    if (response.text !== undefined) {
      body = response.text;
      headers['content-type'] = response.contentType ?? 'text/plain; charset=utf-8';
    } else if (response.json !== undefined) {
      body = JSON.stringify(response.json);
      headers['content-type'] = 'application/json; charset=utf-8';
    }
    headers['content-length'] = String(Buffer.byteLength(body));
    res.writeHead(response.status, headers);
    res.end(body);
  }

  /** The sign-in routes (oauth/request_token, oauth/authorize, oauth/access_token), on the same host. */
  #oauthFlow(req: IncomingMessage, method: string, path: string, queryRaw: string, body: Buffer): ApiResult {
    const refused = this.#hostRefusal(req);
    if (refused) return { mutated: false, response: refused };
    const host = (req.headers.host ?? `${this.#host}:${this.#port}`).toLowerCase().replace(/:80$/, '');
    return this.#signIn.handle({
      req,
      method,
      path,
      queryRaw,
      body,
      origin: `http://${host}`,
      now: this.now(),
    });
  }

  /** See #api: on loopback only loopback Host names are answered (DNS rebinding). */
  #hostRefusal(req: IncomingMessage): EmulatorResponse | undefined {
    if (isLoopbackHostname(hostInUrl(this.#host)) && !hostAllowed(req.headers.host, this.#port)) {
      return singleError(
        403,
        'HOST_NOT_ALLOWED',
        `Not X behaviour: the emulator listens on loopback and answers only a Host of 127.0.0.1:${this.#port}, ` +
          `localhost:${this.#port} or [::1]:${this.#port}`,
      );
    }
    return undefined;
  }

  async #api(
    req: IncomingMessage,
    method: string,
    path: string,
    queryRaw: string,
    body: Buffer,
    bytes: number,
    context: RequestContext,
  ): Promise<ApiResult> {
    const sw = this.#switches;
    const fail = (response: EmulatorResponse): ApiResult => ({ mutated: false, response });
    // X's surface checks Host too, but only while the emulator listens on loopback (the default). Then
    // every client that can connect runs on this machine and names it as emulator.url or a tailor.yml
    // does (127.0.0.1, localhost, [::1]), so a foreign name can only be a DNS-rebinding web page, which
    // the demo credentials (public) would let sign its requests. Listening beyond loopback (--host
    // 0.0.0.0, for containers), clients name the machine however their network does, and no Host can be
    // told apart from a rebinding one: there the operator chose to expose it. No Origin check is needed
    // here: a cross-origin request carrying `Authorization` needs a CORS preflight, never granted.
    const refused = this.#hostRefusal(req);
    if (refused) return fail(refused);
    const segments = path.split('/').slice(1);
    const version = segments[0] ?? '';
    if (!sw.versions.includes(version)) {
      if (/^\d+$/.test(version)) {
        return fail(singleError(403, 'INVALID', `Version ${version}.0 is not available.`));
      }
      return fail(singleError(404, 'ROUTE_NOT_FOUND', 'The requested resource could not be found'));
    }
    const versionHeaders: Record<string, string> = sw.deprecatedVersions.includes(version)
      ? { 'x-api-warn': `Version ${version} is deprecated` }
      : {};
    const route = matchRoute(segments.slice(1));
    if (!route) return fail(singleError(404, 'ROUTE_NOT_FOUND', 'The requested resource could not be found'));
    context.users = route.name === 'custom_audience_users';
    if (!route.methods.includes(method)) {
      const response = singleError(
        405,
        'METHOD_NOT_ALLOWED',
        `Method ${method} is not allowed on this resource`,
      );
      response.headers = { allow: route.methods.join(', ') };
      return fail(response);
    }

    // OAuth 1.0a: query parameters, plus body parameters only for a form-urlencoded body, never JSON.
    const contentType = req.headers['content-type'];
    let now = this.now();
    const query = parseUrlEncoded(queryRaw, sw.requirePercentEncoding);
    const isForm = mediaType(contentType) === 'application/x-www-form-urlencoded';
    const form = isForm ? parseUrlEncoded(body.toString('utf8'), sw.requirePercentEncoding) : [];
    const unauthorized = (reason: string): ApiResult => {
      const response = singleError(401, 'UNAUTHORIZED_ACCESS', 'This request is not properly authenticated');
      // Not X behaviour: a hint for whoever debugs a client against the emulator.
      response.headers = { 'x-emulator-auth-failure': reason };
      return fail(response);
    };
    if (!query || !form) return unauthorized('query or form body is not strictly percent-encoded');
    const host = (req.headers.host ?? `${this.#host}:${this.#port}`).toLowerCase().replace(/:80$/, '');
    const auth = verifyOAuth(
      {
        method,
        baseUrl: `http://${host}${path}`,
        authorization: req.headers.authorization,
        params: [...query, ...form],
        nowMs: now,
      },
      (consumerKey, token) => this.#store.secretsFor(consumerKey, token),
      this.#nonces,
      this.#oauthPolicy(),
    );
    if (!auth.ok) {
      this.#logger.debug({ method, path, reason: auth.reason }, 'emulator: OAuth refused');
      return unauthorized(auth.reason);
    }
    const credential = this.#store.credentials.get(auth.token);
    if (!credential) return unauthorized('unknown token');
    if (credential.adsApiApproved === false) {
      return fail(
        singleError(
          403,
          'UNAUTHORIZED_CLIENT_APPLICATION',
          'The client application making this request does not have access to this API',
        ),
      );
    }

    const lower = (id: string | undefined) =>
      id === undefined ? undefined : sw.caseInsensitiveIds ? id.toLowerCase() : id;
    const accountId = lower(route.accountId);
    const audienceId = lower(route.audienceId);
    const permissionId = lower(route.permissionId);
    let permissions: string[] = [];
    if (accountId !== undefined) {
      const access = credential.access[accountId];
      if (!/^[0-9a-z]+$/.test(accountId) || !access || !this.#store.accounts.has(accountId)) {
        return fail(singleError(403, sw.accountNotFoundCode, `Account ${route.accountId} was not found`));
      }
      permissions = access;
    }
    const isWrite = method !== 'GET';
    if (isWrite && !permissions.some((p) => WRITE_PERMISSIONS.has(p))) {
      return fail(
        singleError(
          403,
          sw.readOnlyCode,
          'The authenticated user does not have write access to this account',
        ),
      );
    }
    if (route.name === 'custom_audience_users' && credential.usersEndpointAllowlisted === false) {
      return fail(
        singleError(
          403,
          'UNAUTHORIZED_CLIENT_APPLICATION',
          'The client application making this request does not have access to this API',
        ),
      );
    }

    const category: FaultCategory =
      route.name === 'custom_audience_users'
        ? 'users'
        : route.name === 'custom_audiences' || route.name === 'custom_audience'
          ? 'audiences'
          : 'other';
    const bucket: BucketKind =
      route.name === 'custom_audience_users' ? 'users' : isWrite ? 'writes' : 'reads';
    const bucketKey =
      bucket === 'reads' ? `${accountId ?? `token:${auth.token}`}\u0000${route.name}` : (accountId ?? '');
    const fault = this.#takeFault(category);
    if (fault?.kind === 'hold') {
      if (!(await this.#hold(context))) return fail({ status: 0, drop: true });
      // Handled as if it arrived now: X applies it late.
      now = this.now();
    } else if (fault) {
      const injected = await this.#applyFault(fault, bucket, now);
      if (injected) return fail(injected);
    }

    const headers: Record<string, string> = { ...versionHeaders };
    if (this.#limiter) {
      const decision = this.#limiter.take(bucket, bucketKey, now);
      let shown = decision;
      let allowed = decision.allowed;
      const wantsTotal = !isWrite && query.some(([k, v]) => k === 'with_total_count' && v === 'true');
      if (allowed && wantsTotal) {
        shown = this.#limiter.take('total_count', bucketKey, now);
        allowed = shown.allowed;
      }
      Object.assign(
        headers,
        this.#rateHeaders(bucket, shown.limit, shown.remaining, shown.resetEpochSeconds),
      );
      if (!allowed) {
        const response = singleError(429, 'TOO_MANY_REQUESTS', 'Rate limit exceeded', {
          ...(accountId !== undefined ? { account_id: accountId } : {}),
          ...(audienceId !== undefined ? { custom_audience_id: audienceId } : {}),
        });
        response.headers = headers;
        return fail(response);
      }
    }

    const result = this.#handlers.handle({
      method,
      route,
      ...(accountId !== undefined ? { accountId } : {}),
      ...(audienceId !== undefined ? { audienceId } : {}),
      ...(permissionId !== undefined ? { permissionId } : {}),
      query,
      form,
      contentType,
      body,
      bytes,
      credential,
      now,
      // Consumed only by a users request that passed validation.
      countMismatch: () => category === 'users' && this.#takeFault(category, true) !== undefined,
    });
    result.response.headers = { ...headers, ...(result.response.headers ?? {}) };
    return result;
  }

  /** Users and writes: user-level x-rate-limit-*; reads: account-level x-account-rate-limit-* (§9.2). */
  #rateHeaders(bucket: BucketKind, limit: number, remaining: number, reset: number): Record<string, string> {
    const headers: Record<string, string> = {};
    const families =
      bucket === 'reads'
        ? ['x-account-rate-limit']
        : bucket === 'users' && this.#switches.usersAccountRateLimitHeaders
          ? ['x-rate-limit', 'x-account-rate-limit']
          : ['x-rate-limit'];
    for (const family of families) {
      headers[`${family}-limit`] = String(limit);
      headers[`${family}-remaining`] = String(remaining);
      headers[`${family}-reset`] = String(reset);
    }
    return headers;
  }

  /** The first queued fault matching the request (count_mismatch only when asked for it). */
  #takeFault(category: FaultCategory, countMismatch = false): FaultSpec | undefined {
    const index = this.#faults.findIndex(({ spec }) => {
      if ((spec.kind === 'count_mismatch') !== countMismatch) return false;
      const match = spec.match ?? 'users';
      return match === 'any' || match === category;
    });
    if (index === -1) return undefined;
    const active = this.#faults[index];
    if (!active) return undefined;
    active.remaining -= 1;
    if (active.remaining <= 0) this.#faults.splice(index, 1);
    return active.spec;
  }

  /** The response an injected fault stands for, or undefined when the request goes on (latency, count). */
  async #applyFault(
    fault: FaultSpec,
    bucket: BucketKind,
    now: number,
  ): Promise<EmulatorResponse | undefined> {
    switch (fault.kind) {
      case 'latency':
        await sleep(fault.latencyMs ?? 1000);
        return undefined;
      case 'count_mismatch':
      case 'hold': // handled by the caller
        return undefined;
      case 'drop_connection':
        return { status: 0, drop: true };
      case 'rate_limit_429': {
        const response = singleError(429, 'TOO_MANY_REQUESTS', 'Rate limit exceeded');
        const limit = bucket === 'users' ? 1500 : bucket === 'writes' ? 450 : 2000;
        const reset = Math.ceil(now / 1000) + (fault.resetInSeconds ?? 1);
        response.headers = this.#rateHeaders(bucket, limit, 0, reset);
        return response;
      }
      case 'unavailable_503': {
        const response = singleError(503, this.#switches.unavailableCode, 'Over capacity');
        response.headers = { 'retry-after': String(fault.retryAfterSeconds ?? 1) };
        return response;
      }
      case 'server_error_500':
        return singleError(500, 'INTERNAL_ERROR', 'Internal error');
      case 'bad_gateway_502':
        // Edges answer some failures in HTML
        // (https://docs.x.com/x-ads-api/fundamentals/error-codes-and-responses): the status must decide,
        // not the body.
        return {
          status: 502,
          text: '<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>',
          contentType: 'text/html; charset=utf-8',
        };
    }
  }
}
