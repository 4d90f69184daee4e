/**
 * The destination side of a run, as a few verbs: `check`, the audience calls,
 * `prepare(values) -> identifiers | invalid`, `apply(changes) -> results`. A destination knows nothing
 * of warehouses, and the sync knows nothing of a destination beyond this file: identifier types are
 * plain strings to it, and a destination's peculiarities are `capabilities` it reads.
 */

/**
 * A member's prepared identifier values (hashed, or whatever the destination sends) by identifier
 * type. Types are the destination's own names (X: `email`, `phone_number`, ...); to the sync and
 * the diff they are opaque strings.
 */
export type MemberHashes = Partial<Record<string, string[]>>;

/** A value that could not be prepared: where it came from and why, never the value itself. */
export interface InvalidValue {
  column: string;
  type: string;
  reason: string;
}

/** A member's identifiers as the destination will send them, and the values it refused. */
export interface PreparedMember {
  hashes: MemberHashes;
  invalid: InvalidValue[];
}

export interface PrepareOptions {
  /** ISO 3166-1 alpha-2 region for phone numbers written without a country code. */
  defaultRegion: string;
}

/** What the sync must know of how a destination treats members, to keep membership exact. */
export interface DestinationCapabilities {
  /**
   * A Delete removes every record that shares any identifier with it, not only that identifier (X).
   * The sync then re-sends a changed member's whole identifier set after deleting any of it, and
   * never deletes an identifier another current member still holds.
   */
  readonly deleteRemovesSharingRecords: boolean;
  /**
   * How long after a request whose outcome Tailor never learned (a timeout, a lost connection, a
   * crash) the destination may still apply it. Deletes of identifiers such a request added are
   * repeated on later runs for this long.
   */
  readonly lateApplyWindowMs: number;
}

/**
 * Adds one value under `type`. The first value makes a one-slot array: `[].push(v)` would reserve 17
 * slots (152 bytes) for what is nearly always a single value, and a run holds up to four batches of
 * 10,000 members, each with its new and previous hashes (measured at 5M rows: 22 of the 102 MB live
 * heap were such backing stores).
 */
export function appendValue(hashes: MemberHashes, type: string, value: string): void {
  const list = hashes[type];
  if (list) list.push(value);
  else hashes[type] = [value];
}

/**
 * One user object to add/refresh (`update`) or remove (`delete`) at the destination. Values are
 * already normalized and hashed; the destination never sees raw identifiers.
 */
export interface MemberChange {
  op: 'update' | 'delete';
  user: MemberHashes;
}

/** The outcome of one MemberChange, in input order. Only `ok` moves state forward. */
export type ApplyResult =
  { status: 'ok' } | { status: 'rejected'; reason: string } | { status: 'retryable'; reason: string };

/** What a destination reports about an audience (X: https://docs.x.com/x-ads-api/audiences/reference). */
export interface AudienceInfo {
  id: string;
  name: string;
  description: string | null;
  /** Matched size; null while processing or when too small. */
  size: number | null;
  targetable: boolean | null;
  reasonsNotTargetable: string[];
  deleted: boolean;
  createdAt: string | null;
  updatedAt: string | null;
}

export interface ApplyProgress {
  /** Changes handled so far (acknowledged, rejected or given up) out of the total of this call. */
  done: number;
  total: number;
  requests: number;
}

export interface ApplyOptions {
  signal?: AbortSignal;
  onProgress?: (progress: ApplyProgress) => void;
}

export interface ApplyOutcome {
  results: ApplyResult[];
  /** HTTP requests sent for this call, retries included. */
  requests: number;
}

export interface Destination {
  readonly capabilities: DestinationCapabilities;
  /**
   * A member's mapped column values (column -> value; raw, never logged) as the identifiers this
   * destination sends (`mappings`: column -> identifier type). Pure and synchronous: it runs for
   * every delta member.
   */
  prepare(
    values: Record<string, unknown>,
    mappings: Readonly<Record<string, string>>,
    options: PrepareOptions,
  ): PreparedMember;
  /** Checks credentials and access to the account; throws AuthError with an actionable message. */
  check(signal?: AbortSignal): Promise<void>;
  listAudiences(signal?: AbortSignal): Promise<AudienceInfo[]>;
  /** The audience with this id, or undefined when it does not exist or was deleted. */
  getAudience(id: string, signal?: AbortSignal): Promise<AudienceInfo | undefined>;
  /** The non-deleted audience with exactly this name, if any (X's `q` is only a prefix match). */
  findAudienceByName(name: string, signal?: AbortSignal): Promise<AudienceInfo | undefined>;
  createAudience(name: string, description: string | undefined, signal?: AbortSignal): Promise<AudienceInfo>;
  /** Replaces an audience's description (an empty string unsets it); the audience as it now is. */
  updateAudienceDescription(id: string, description: string, signal?: AbortSignal): Promise<AudienceInfo>;
  /**
   * Applies member changes to an audience. Returns one result per input change, in input order.
   * Deletes are sent before updates. Never throws for per-member problems; throws AuthError,
   * AudienceMissingError or DestinationApiError when the whole call cannot proceed.
   */
  apply(audienceId: string, changes: readonly MemberChange[], options?: ApplyOptions): Promise<ApplyOutcome>;
}

/** One HTTP request a destination made, for metrics (never carries identifiers or parameters). */
export interface RequestEvent {
  destination: string;
  /** A route template, e.g. `custom_audiences/:id/users`. */
  endpoint: string;
  method: string;
  /** The HTTP status, or what went wrong before one arrived. */
  status: number | 'network_error' | 'timeout';
  /** 1 for the first try, 2+ for retries. */
  attempt: number;
  durationMs: number;
}

export interface DestinationObserver {
  onRequest?(event: RequestEvent): void;
}
