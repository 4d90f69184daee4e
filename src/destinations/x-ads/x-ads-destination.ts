import type { Logger } from 'pino';
import { AudienceMissingError, AuthError, DestinationApiError } from '../../errors.js';
import type {
  ApplyOptions,
  ApplyOutcome,
  ApplyResult,
  AudienceInfo,
  Destination,
  DestinationCapabilities,
  DestinationObserver,
  MemberChange,
  PreparedMember,
  PrepareOptions,
} from '../destination.js';
import { hashMember } from './identifiers.js';
import { X_IDENTIFIER_TYPES, type XIdentifierType } from './identifier-types.js';
import {
  type BatchUser,
  batchUser,
  type OperationType,
  type PlannedRequest,
  planRequests,
  userObject,
} from './batching.js';
import { type Clock, systemClock } from './clock.js';
import { accountLimiters, type AccountLimiters } from './rate-limiter.js';
import type { XAdsDestinationConfig } from './x-ads-config.js';
import { checkApiUrl } from './api-url.js';
import { XAdsHttp, type XAdsRequest, type XAdsResponse } from './x-ads-http.js';
import {
  describeErrors,
  parseAudience,
  parseCollection,
  parseErrors,
  parseOperationErrors,
  parseSingle,
  parseUsersCounts,
} from './x-ads-responses.js';

/**
 * The X Ads destination: custom audiences and the Custom Audience users endpoint
 * (https://docs.x.com/x-ads-api/audiences/reference) over OAuth 1.0a, within X's limits
 * (https://docs.x.com/x-ads-api/audiences, "Audience API Integration";
 * https://docs.x.com/x-ads-api/fundamentals/rate-limiting). See docs/x-ads.md.
 */

export interface XAdsDestinationOptions {
  logger: Logger;
  observer?: DestinationObserver;
  clock?: Clock;
  /** Jitter source for backoff; tests fix it. */
  random?: () => number;
  /** Audiences per page when listing (X allows 1-1000); tests lower it to see pagination. */
  pageSize?: number;
}

/** X's page size maximum (§3.2): fewest requests against the 2,000/15 min read limit. */
const PAGE_SIZE = 1000;
/**
 * Retry deadlines of the calls someone may be waiting on (`tailor check`, `tailor audiences`, binding an
 * audience at the start of a run): a network that is down should say so in seconds, not after the
 * users endpoint's quarter of an hour. Member changes keep `limits.retry_deadline_ms`.
 */
const CHECK_DEADLINE_MS = 15_000;
const READ_DEADLINE_MS = 60_000;
/** `q` takes 1-255 characters (§5). */
const MAX_Q_LENGTH = 255;

export function createXAdsDestination(
  name: string,
  config: XAdsDestinationConfig,
  options: XAdsDestinationOptions,
): Destination {
  return new XAdsDestination(name, config, options);
}

const X_TYPES: ReadonlySet<string> = new Set(X_IDENTIFIER_TYPES);

class XAdsDestination implements Destination {
  readonly capabilities: DestinationCapabilities;
  readonly #name: string;
  readonly #config: XAdsDestinationConfig;
  readonly #accountId: string;
  readonly #http: XAdsHttp;
  readonly #limiters: AccountLimiters;
  readonly #logger: Logger;
  readonly #pageSize: string;

  constructor(name: string, config: XAdsDestinationConfig, options: XAdsDestinationOptions) {
    const apiUrl = checkApiUrl(config.api_url, name);
    this.#name = name;
    this.#config = config;
    this.capabilities = {
      // "Delete matching": a Delete removes every user record sharing any identifier with it (§6.1).
      deleteRemovesSharingRecords: true,
      lateApplyWindowMs: config.limits.late_apply_window_hours * 3_600_000,
    };
    this.#pageSize = String(Math.min(Math.max(options.pageSize ?? PAGE_SIZE, 1), PAGE_SIZE));
    // §4: ids are read case-insensitively but the client always sends lower case.
    this.#accountId = config.account_id.toLowerCase();
    this.#logger = options.logger.child({ destination: name });
    this.#limiters = accountLimiters(apiUrl.href, this.#accountId, {
      usersPerMinute: config.limits.users_requests_per_minute,
      writesPerMinute: config.limits.writes_per_minute,
    });
    this.#http = new XAdsHttp({
      destination: name,
      apiUrl,
      accountId: this.#accountId,
      credentials: {
        consumerKey: config.credentials.consumer_key,
        consumerSecret: config.credentials.consumer_secret,
        accessToken: config.credentials.access_token,
        accessTokenSecret: config.credentials.access_token_secret,
      },
      requestTimeoutMs: config.limits.request_timeout_ms,
      retryDeadlineMs: config.limits.retry_deadline_ms,
      logger: this.#logger,
      ...(options.observer ? { observer: options.observer } : {}),
      clock: options.clock ?? systemClock,
      ...(options.random ? { random: options.random } : {}),
    });
  }

  prepare(
    values: Record<string, unknown>,
    mappings: Readonly<Record<string, string>>,
    options: PrepareOptions,
  ): PreparedMember {
    // tailor.yml's schema admits only X's identifier types; a caller passing another is a bug.
    for (const type of Object.values(mappings)) {
      if (!X_TYPES.has(type)) throw new TypeError(`not an X identifier type: ${JSON.stringify(type)}`);
    }
    return hashMember(values, mappings as Readonly<Record<string, XIdentifierType>>, options);
  }

  async check(signal?: AbortSignal): Promise<void> {
    // GET accounts/:account_id proves the signature, the app's Ads API access and the user's access
    // to the account in one request (§4). A 404 here means the same as X's 403 NOT_FOUND.
    await this.#http.sendOk(
      {
        method: 'GET',
        path: ['accounts', this.#accountId],
        endpoint: 'accounts/:id',
        deadlineMs: CHECK_DEADLINE_MS,
        ...sig(signal),
      },
      () => {
        throw new AuthError(`X has no ad account ${this.#accountId} visible to destination ${this.#name}`, {
          hint: `check destinations.${this.#name}.account_id (the base-36 id, e.g. 18ce54d4x5t)`,
        });
      },
    );
    // The user's roles on the account (§4). Which roles may write audiences is inferred, not documented,
    // so a role list without any writer role is a warning, and a failure to read it is ignored.
    const access = await this.#http.send({
      method: 'GET',
      path: ['accounts', this.#accountId, 'authenticated_user_access'],
      endpoint: 'accounts/:id/authenticated_user_access',
      deadlineMs: CHECK_DEADLINE_MS,
      ...sig(signal),
    });
    if (access.kind === 'response' && access.response.status >= 200 && access.response.status < 300) {
      const permissions = readPermissions(access.response.body);
      if (permissions && permissions.length > 0 && !permissions.some((p) => AUDIENCE_WRITER_ROLES.has(p))) {
        this.#logger.warn(
          { account: this.#accountId, permissions },
          `the X user of destinations.${this.#name}.credentials.access_token may not be able to write ` +
            'audiences in this account (needs Account Admin, Ad Manager or Partner Audience Manager)',
        );
      }
    }
  }

  async listAudiences(signal?: AbortSignal): Promise<AudienceInfo[]> {
    return this.#listPages({}, signal);
  }

  async getAudience(id: string, signal?: AbortSignal): Promise<AudienceInfo | undefined> {
    const response = await this.#http.sendOk(
      {
        method: 'GET',
        path: ['accounts', this.#accountId, 'custom_audiences', id.toLowerCase()],
        endpoint: 'custom_audiences/:id',
        deadlineMs: READ_DEADLINE_MS,
        ...sig(signal),
      },
      () => undefined,
    );
    if (!response) return undefined;
    const audience = parseSingle(response.body, parseAudience);
    return audience.deleted ? undefined : audience;
  }

  async findAudienceByName(name: string, signal?: AbortSignal): Promise<AudienceInfo | undefined> {
    if (name === '') return undefined;
    // `q` is a case-insensitive name prefix (§5), so the exact match is made here.
    const prefix = Array.from(name).slice(0, MAX_Q_LENGTH).join('');
    const audiences = await this.#listPages({ q: prefix }, signal);
    return audiences.find((audience) => audience.name === name && !audience.deleted);
  }

  async createAudience(
    name: string,
    description: string | undefined,
    signal?: AbortSignal,
  ): Promise<AudienceInfo> {
    // The docs and both SDKs send name and description in the query string (§5, §13.1).
    const query: Record<string, string> = { name };
    if (description) query.description = description;
    const request: XAdsRequest = {
      method: 'POST',
      path: ['accounts', this.#accountId, 'custom_audiences'],
      endpoint: 'custom_audiences',
      query,
      deadlineMs: READ_DEADLINE_MS,
      limiter: this.#limiters.writes,
      ...sig(signal),
    };
    const result = await this.#http.send(request);
    // A retried create whose first attempt did reach X fails on the unique name (§10): the audience
    // exists, and it is the one this call made.
    if (result.kind === 'response' && result.response.status === 400 && result.attempts > 1) {
      const existing = await this.findAudienceByName(name, signal);
      if (existing) return existing;
    }
    return parseSingle(this.#http.finish(request, result)!.body, parseAudience);
  }

  async updateAudienceDescription(
    id: string,
    description: string,
    signal?: AbortSignal,
  ): Promise<AudienceInfo> {
    // PUT changes only the fields sent; an empty string unsets the description
    // (https://docs.x.com/x-ads-api/fundamentals/making-authenticated-requests).
    const request: XAdsRequest = {
      method: 'PUT',
      path: ['accounts', this.#accountId, 'custom_audiences', id.toLowerCase()],
      endpoint: 'custom_audiences/:id',
      query: { description },
      deadlineMs: READ_DEADLINE_MS,
      limiter: this.#limiters.writes,
      ...sig(signal),
    };
    const result = await this.#http.send(request);
    return parseSingle(this.#http.finish(request, result)!.body, parseAudience);
  }

  async apply(
    audienceId: string,
    changes: readonly MemberChange[],
    options: ApplyOptions = {},
  ): Promise<ApplyOutcome> {
    const { signal, onProgress } = options;
    const id = audienceId.toLowerCase();
    const results: Array<ApplyResult | undefined> = new Array(changes.length).fill(undefined);
    let done = 0;
    let requests = 0;
    const settle = (index: number, result: ApplyResult) => {
      if (results[index] === undefined) done += 1;
      results[index] = result;
    };

    // Deletes before updates (X's Delete removes every member sharing any identifier): a member whose
    // identifier moved is removed by its old hash and re-added by its new one, in that order, even when
    // both share a hash.
    const users: BatchUser[] = [];
    for (const type of ['Delete', 'Update'] as const satisfies readonly OperationType[]) {
      changes.forEach((change, index) => {
        if ((change.op === 'delete' ? 'Delete' : 'Update') !== type) return;
        const problem = malformed(change);
        if (problem) settle(index, { status: 'rejected', reason: problem });
        else users.push(batchUser(index, type, change.user));
      });
    }
    const byIndex = new Map(users.map((user) => [user.index, user]));
    const limits = {
      maxOperations: this.#config.limits.max_operations,
      maxRequestBytes: this.#config.limits.max_request_bytes,
    };
    const plan = (batch: readonly BatchUser[]): PlannedRequest[] => {
      const { requests: planned, oversized } = planRequests(batch, limits);
      for (const index of oversized) {
        settle(index, {
          status: 'rejected',
          reason: `user object larger than limits.max_request_bytes (${limits.maxRequestBytes} bytes)`,
        });
      }
      return planned;
    };

    const pending = plan(users);
    const report = () => onProgress?.({ done, total: changes.length, requests });
    const giveUp = (reason: string) => {
      for (let i = 0; i < results.length; i += 1) {
        if (results[i] === undefined) settle(i, { status: 'retryable', reason });
      }
    };

    while (pending.length > 0) {
      const batch = pending.shift()!;
      const before = this.#http.requestsSent;
      const result = await this.#http.send({
        method: 'POST',
        path: ['accounts', this.#accountId, 'custom_audiences', id, 'users'],
        endpoint: 'custom_audiences/:id/users',
        json: batch.body,
        limiter: this.#limiters.users,
        ...sig(signal),
        validate: (response) => countMismatch(response, batch.users),
      });
      requests += this.#http.requestsSent - before;

      if (result.kind === 'aborted') {
        giveUp('stopped before X acknowledged it');
        break;
      }
      if (result.kind === 'gave_up') {
        giveUp(`X did not acknowledge it: ${result.reason}`);
        break;
      }
      const { response } = result;
      const indexes = batch.operations.flatMap((op) => op.indexes);
      if (response.status >= 200 && response.status < 300) {
        for (const index of indexes) settle(index, { status: 'ok' });
      } else if (response.status === 404) {
        // The destination does not know which activation it serves, so the hint names it generically.
        // --full-resync alone would re-send every member to this same, missing audience: only with
        // --recreate does a run make a new one (src/sync/bind-audience.ts).
        throw new AudienceMissingError(
          `custom audience ${id} no longer exists in X ad account ${this.#accountId} (it was deleted at X)`,
          {
            hint:
              'run `tailor sync <activation> --full-resync --recreate` to create a new audience and send every ' +
              'member to it; an activation whose tailor.yml names its audience by `id` needs another id there instead',
          },
        );
      } else if (response.status === 401 || response.status === 403) {
        throw this.#http.errorFor({ method: 'POST', endpoint: 'custom_audiences/:id/users' }, response);
      } else {
        const operationErrors =
          response.status === 400 ? parseOperationErrors(response.body, batch.operations.length) : undefined;
        if (operationErrors) {
          // §6.3/§6.5: the batch is atomic and nothing was applied; operation_errors is indexed like the
          // operations sent. Bad single-user operations are rejected; a bad operation holding several
          // users is resent one user per operation to find the culprits; good operations are resent.
          const resend: BatchUser[] = [];
          batch.operations.forEach((op, i) => {
            const errors = operationErrors[i] ?? [];
            if (errors.length === 0) {
              for (const index of op.indexes) resend.push(byIndex.get(index)!);
            } else if (op.indexes.length > 1) {
              for (const index of op.indexes) resend.push({ ...byIndex.get(index)!, isolate: true });
            } else {
              settle(op.indexes[0]!, {
                status: 'rejected',
                reason: describeErrors(errors, `rejected by X (${response.status})`),
              });
            }
          });
          pending.unshift(...plan(resend));
        } else {
          const reason = describeErrors(
            parseErrors(response.body),
            `rejected by X (HTTP ${response.status})`,
          );
          const hint = response.status === 413 ? ' (lower limits.max_request_bytes)' : '';
          for (const index of indexes) settle(index, { status: 'rejected', reason: `${reason}${hint}` });
        }
      }
      report();
    }

    const final = results.map((result) => result ?? { status: 'retryable' as const, reason: 'not sent' });
    const count = (status: ApplyResult['status']) => final.filter((r) => r.status === status).length;
    this.#logger.info(
      {
        audience: id,
        changes: changes.length,
        ok: count('ok'),
        rejected: count('rejected'),
        retryable: count('retryable'),
        requests,
      },
      'applied member changes to X audience',
    );
    report();
    return { results: final, requests };
  }

  async #listPages(filter: Record<string, string>, signal?: AbortSignal): Promise<AudienceInfo[]> {
    const out: AudienceInfo[] = [];
    let cursor: string | null = null;
    const seen = new Set<string>();
    do {
      const query: Record<string, string> = { ...filter, count: this.#pageSize };
      if (cursor) query.cursor = cursor;
      const response = (await this.#http.sendOk({
        method: 'GET',
        path: ['accounts', this.#accountId, 'custom_audiences'],
        endpoint: 'custom_audiences',
        query,
        deadlineMs: READ_DEADLINE_MS,
        ...sig(signal),
      }))!;
      const page = parseCollection(response.body, parseAudience);
      out.push(...page.items);
      cursor = page.nextCursor;
      // A cursor that comes back twice would page forever.
      if (cursor && seen.has(cursor)) throw new DestinationApiError('X returned the same page cursor twice');
      if (cursor) seen.add(cursor);
    } while (cursor);
    return out;
  }
}

/**
 * Roles that manage audiences (https://docs.x.com/x-ads-api/fundamentals/accessing-ads-accounts; the
 * mapping is not documented by X, inferred).
 */
const AUDIENCE_WRITER_ROLES = new Set(['ACCOUNT_ADMIN', 'AD_MANAGER', 'PARTNER_AUDIENCE_MANAGER']);

function readPermissions(body: unknown): string[] | undefined {
  const data = (body as { data?: { permissions?: unknown } } | undefined)?.data;
  const permissions = data?.permissions;
  return Array.isArray(permissions)
    ? permissions.filter((p): p is string => typeof p === 'string')
    : undefined;
}

const sig = (signal: AbortSignal | undefined) => (signal ? { signal } : {});

/** Why a change cannot be sent at all (the contract says it arrives hashed; this guards the shape). */
function malformed(change: MemberChange): string | undefined {
  if (change.op !== 'update' && change.op !== 'delete') return `unknown operation ${String(change.op)}`;
  const user = userObject(change.user ?? {});
  const values = Object.values(user);
  if (values.length === 0) return 'no identifiers to send';
  if (!values.every((list) => list.every((value) => typeof value === 'string' && value !== ''))) {
    return 'identifier values must be non-empty strings';
  }
  return undefined;
}

/**
 * §6.4: success_count and total_count count the user objects received; both must equal what was
 * sent, else X did not take the whole batch and it is retried.
 */
function countMismatch(response: XAdsResponse, sent: number): string | undefined {
  const counts = parseUsersCounts(response.body);
  if (!counts) return 'X acknowledged without success_count/total_count';
  if (counts.successCount !== sent || counts.totalCount !== sent) {
    return `X acknowledged ${counts.successCount}/${counts.totalCount} of ${sent} users`;
  }
  return undefined;
}
