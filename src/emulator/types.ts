import type { Logger } from 'pino';
import type { EmulatorSwitches } from './switches.js';

/** The ad account every default emulator knows, and the one the demo project points at. */
export const DEMO_ACCOUNT_ID = '18ce54d4x5t';

/** Credentials of the demo user (READ_WRITE on the demo account). Not secrets: they only open the emulator. */
export const DEMO_CREDENTIALS = {
  consumerKey: 'demo-consumer-key',
  consumerSecret: 'demo-consumer-secret',
  accessToken: 'demo-access-token',
  accessTokenSecret: 'demo-access-token-secret',
} as const;

/**
 * One ad account (https://docs.x.com/x-ads-api/campaign-management/reference). Omitted fields get
 * plausible defaults.
 */
export interface SeedAccount {
  id: string;
  name?: string;
  businessName?: string | null;
  businessId?: string | null;
  timezone?: string;
  industryType?: string | null;
  approvalStatus?: string;
  createdAt?: string;
  deleted?: boolean;
}

/** One OAuth 1.0a user token of one app, and what it may reach. */
export interface SeedCredential {
  consumerKey: string;
  consumerSecret: string;
  accessToken: string;
  accessTokenSecret: string;
  /** The X user id behind the token (authenticated_user_access). */
  userId?: string;
  /**
   * Account id -> permissions (`ACCOUNT_ADMIN`, `AD_MANAGER`, `PARTNER_AUDIENCE_MANAGER`, `CAMPAIGN_ANALYST`,
   * `ANALYST`, `CREATIVE_MANAGER`, `TWEET_COMPOSER`). Only ACCOUNT_ADMIN, AD_MANAGER and
   * PARTNER_AUDIENCE_MANAGER may write audiences.
   */
  access: Record<string, string[]>;
  /** false: the app is not approved for the Ads API (403 UNAUTHORIZED_CLIENT_APPLICATION). Default true. */
  adsApiApproved?: boolean;
  /** false: the app is not allowlisted for the users endpoint (403 UNAUTHORIZED_CLIENT_APPLICATION). Default true. */
  usersEndpointAllowlisted?: boolean;
}

/**
 * An X app (its API key pair) that may run the 3-legged OAuth flow
 * (https://docs.x.com/fundamentals/authentication/oauth-1-0a/obtaining-user-access-tokens). The apps of
 * seeded credentials are known too; seed one here to give it a name or callback URLs.
 */
export interface SeedApp {
  consumerKey: string;
  consumerSecret: string;
  /** Shown on the authorize page. */
  name?: string;
  /**
   * Callback URLs registered in the app's settings. When given, `oauth/request_token` refuses any other
   * callback (403, code 415), as X does; `oob` is always accepted. Which loopback URLs X accepts (does
   * the port count?) is not documented: here the match is exact.
   */
  callbackUrls?: string[];
  /** As SeedCredential's: copied onto the tokens the flow issues. Default true. */
  adsApiApproved?: boolean;
  usersEndpointAllowlisted?: boolean;
}

/**
 * An X user who can sign in on the emulator's authorize page; tokens issued to an app for this user
 * reach these ad accounts with these permissions.
 */
export interface SeedUser {
  userId: string;
  screenName: string;
  /** Account id -> permissions, as SeedCredential's. */
  access: Record<string, string[]>;
}

/**
 * What the emulator knows besides the audiences it creates. `seed()` upserts accounts and credentials
 * (by id / access token) and, when `activeUsers` is given, replaces the active-users set.
 */
export interface EmulatorSeed {
  accounts?: SeedAccount[];
  credentials?: SeedCredential[];
  /** Apps that may run the OAuth flow (upserted by consumer key). */
  apps?: SeedApp[];
  /** Users who can sign in on the authorize page (upserted by user id). */
  users?: SeedUser[];
  /**
   * Hashed identifier values of "active X users". When the set is non-empty the size job counts only
   * members carrying at least one of them; when empty every member counts.
   */
  activeUsers?: string[];
}

export type FaultKind =
  | 'rate_limit_429'
  | 'unavailable_503'
  | 'server_error_500'
  | 'drop_connection'
  | 'count_mismatch'
  | 'latency'
  | 'bad_gateway_502'
  | 'hold';

/**
 * The faults a client gets past within one run: each answers (or, `latency`, answers late) and lets the
 * next matching request through once its `times` are used. `hold` is not one of them: see ALL_FAULT_KINDS.
 */
export const FAULT_KINDS: readonly FaultKind[] = [
  'rate_limit_429',
  'unavailable_503',
  'server_error_500',
  'drop_connection',
  'count_mismatch',
  'latency',
  'bad_gateway_502',
];

/**
 * Every fault kind `injectFaults` accepts: FAULT_KINDS plus `hold`, which keeps a request unanswered
 * until the test calls `admin.applyHeld()` (a request that times out at the client and that X applies
 * later, after the client gave up).
 */
export const ALL_FAULT_KINDS: readonly FaultKind[] = [...FAULT_KINDS, 'hold'];

export interface FaultSpec {
  kind: FaultKind;
  /** Which requests it hits: the users endpoint (default), audience CRUD, or any API request. */
  match?: 'users' | 'audiences' | 'any';
  /** How many matching requests it hits (default 1). */
  times?: number;
  /** 503: the retry-after header in seconds (default 1). */
  retryAfterSeconds?: number;
  /** 429: seconds until the x-rate-limit-reset epoch (default 1). */
  resetInSeconds?: number;
  /** latency: how long to hold the response (default 1000 ms). */
  latencyMs?: number;
}

/** What `onUsersAnswered` listeners hear: one users-endpoint request the emulator has finished with. */
export interface UsersAnswer {
  method: string;
  /** Path without the query string. */
  path: string;
  /** The status answered (0: the connection was dropped without an answer). */
  status: number;
  /** Operations in the body (when it parsed). */
  operations?: number;
  /** User objects in the body (when it parsed). */
  users?: number;
  /** Whether the request changed the audience's membership (its operations were applied). */
  applied: boolean;
  /**
   * Whether the answer was written to a connection still open: false when the client had gone (it gave
   * up on a held request) or the connection was dropped.
   */
  delivered: boolean;
}

export type UsersAnswerListener = (answer: UsersAnswer) => void;

export interface RequestLogEntry {
  method: string;
  /** Path without the query string (query strings may carry audience names). */
  path: string;
  status: number;
  /** Users endpoint: operations in the body (when it parsed). */
  operations?: number;
  /** Users endpoint: user objects in the body (when it parsed). */
  users?: number;
  /** Request body bytes. */
  bytes: number;
}

export interface MembershipView {
  /** One record per stored member, identifiers by key, each list sorted; records sorted. */
  records: Array<Record<string, string[]>>;
  /** The union of identifiers by key, each sorted. */
  identifiers: Record<string, string[]>;
}

export interface EmulatorAdmin {
  injectFaults(faults: FaultSpec[]): void;
  clearFaults(): void;
  /** Current membership of an audience: the records, and the union of identifiers by key, each sorted. */
  membership(accountId: string, audienceId: string): MembershipView;
  /** How many records an audience holds, without building the membership view (cheap at millions). */
  memberCount(accountId: string, audienceId: string): number;
  /** Run the size job now. */
  processAudiences(): void;
  /** Only when no custom clock was given; otherwise the test drives its clock. */
  advanceClock(ms: number): void;
  requestLog(): RequestLogEntry[];
  clearRequestLog(): void;
  seed(seed: EmulatorSeed): void;
  audiences(accountId: string): Array<{ id: string; name: string; deleted: boolean }>;
  /**
   * Calls `listener` synchronously right after the emulator has answered a users-endpoint request (the
   * response written to the socket, membership already changed), before it handles anything else: a
   * test can SIGKILL a client at that exact moment. Returns a function that removes the listener.
   * In process only. A listener that throws is logged and ignored.
   */
  onUsersAnswered(listener: UsersAnswerListener): () => void;
  /** How many requests a `hold` fault keeps unanswered now. */
  heldRequests(): number;
  /**
   * Releases every held request: each is then handled as if it had just arrived (validated, applied,
   * answered if its client still waits). Resolves with how many were released once all are handled.
   */
  applyHeld(): Promise<number>;
  /** Drops every held request without applying it (its connection is closed). Returns how many. */
  discardHeld(): number;
}

export interface RateLimitOptions {
  /** Users endpoint, per account (default 1,500 / 60 s). */
  usersPerMinute?: number;
  /** POST/PUT/DELETE on audiences, per account (default 450 / 60 s). */
  writesPerMinute?: number;
  /** GETs, per account and endpoint (default 2,000 / 15 min). */
  readsPer15Minutes?: number;
  /** GETs with with_total_count=true (default 200 / 15 min). */
  totalCountPer15Minutes?: number;
}

export interface EmulatorOptions {
  /** 0 (default) = ephemeral. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Persistence file (JSON), loaded at start, written atomically after mutations. */
  statePath?: string;
  /** Epoch ms; default Date.now (plus whatever advanceClock added). */
  clock?: () => number;
  /** OAuth timestamp window, default 300 s either way. */
  timestampWindowSeconds?: number;
  /** false = no limits. */
  rateLimits?: RateLimitOptions | false;
  switches?: Partial<EmulatorSwitches>;
  /** Default: the demo account 18ce54d4x5t with DEMO_CREDENTIALS (READ_WRITE). */
  seed?: EmulatorSeed;
  logger?: Logger;
}

export interface RunningEmulator {
  url: string;
  port: number;
  admin: EmulatorAdmin;
  close(): Promise<void>;
}
