/**
 * Every behaviour of the emulator that X does not document (inferred or unknown), behind a named switch,
 * so tests can be re-pointed the day the real behaviour is learned. Behaviour X documents is not
 * switchable. Defaults are the strict choice.
 */
export interface EmulatorSwitches {
  /**
   * API versions served (first path element). Others: 403 INVALID "Version N.0 is not available." [3P].
   * X lists 12 (current) and 11, both with deprecation "TBD" [DOC]; whether 11 still answers is [UNK].
   */
  versions: string[];
  /** Versions served with an `x-api-warn` header (deprecated) [DOC header; which versions UNK]. */
  deprecatedVersions: string[];
  /** Code of the 403 when the token cannot reach the account [3P NOT_FOUND vs DOC table ACCOUNT_NOT_FOUND]. */
  accountNotFoundCode: 'NOT_FOUND' | 'ACCOUNT_NOT_FOUND';
  /** Code of the 404 for a missing or deleted custom audience [UNK]. */
  audienceNotFoundCode: 'NOT_FOUND' | 'TAILORED_AUDIENCE_NOT_FOUND';
  /** Code of the 400 for a duplicate audience name in the account [UNK]. */
  duplicateNameCode: string;
  /**
   * Longest audience name accepted, in Unicode code points (the `q` filter allows 1-255) [INF: neither
   * the limit nor what X counts in it is documented; tailor.yml counts code points up to 255 too].
   */
  maxNameLength: number;
  /** Code of the 403 when a read-only user (e.g. CAMPAIGN_ANALYST) writes [INF]. */
  readOnlyCode: string;
  /** Status for a users body over 5,000,000 bytes [UNK: 400 or 413]. */
  oversizeStatus: 400 | 413;
  /** `operation_type` must be exactly `Update` / `Delete` [UNK whether other casings pass]. */
  operationTypeCaseSensitive: boolean;
  /** Unknown keys in a user object are errors (else ignored) [INF]. */
  strictUserKeys: boolean;
  /** Unknown keys in an operation or its params are errors (else ignored) [INF]. */
  strictOperationKeys: boolean;
  /** Identifier values (all but partner_user_id) must be lowercase 64-hex SHA-256 [INF: protects tests]. */
  requireHashedIdentifiers: boolean;
  /** `params.users` must be non-empty [INF]. */
  requireNonEmptyUsers: boolean;
  /** Each identifier list must be non-empty, each value a non-empty string [INF]. */
  requireNonEmptyValues: boolean;
  /** What `operation_errors` holds for a valid operation when another one failed [UNK]. */
  operationErrorsForValidOps: 'empty_array' | 'null';
  /** At most this many errors are listed per operation (a bad 100k-user batch stays readable) [INF]. */
  maxErrorsPerOperation: number;
  /** Accept `name`/`description` for audience create/update from a form-urlencoded body too [INF]. */
  acceptFormBody: boolean;
  /** Ids in paths are read case-insensitively and always emitted lower case [INF from a DOC example]. */
  caseInsensitiveIds: boolean;
  /** A nonce seen within the timestamp window is refused (401) [INF]. */
  rejectReplayedNonce: boolean;
  /**
   * Raw reserved characters (`! # $ & ' ( ) * + , / : ; = ? @ [ ]`, spaces, non-ASCII) in a query string or
   * form body, rather than their %XX form, are refused (401) [DOC "must be encoded"; refusal INF].
   */
  requirePercentEncoding: boolean;
  /** An OAuth `realm` parameter is tolerated (X's header has exactly 7 params) [INF]. */
  allowOAuthRealm: boolean;
  /** Query booleans are echoed in request.params as strings ("true") rather than booleans [DOC example]. */
  echoBooleansAsStrings: boolean;
  /** Matched members needed to be targetable [DOC 100; the FAQ also says 500]. */
  minTargetableSize: number;
  /** Round audience_size down to 2 significant digits ("approximate") [INF]. */
  roundAudienceSize: boolean;
  /** Run the size job on a real-time timer every N ms; 0 = only on demand [INF; X says 6-8 h]. */
  sizeJobIntervalMs: number;
  /** Users endpoint also answers with x-account-rate-limit-* headers [UNK, open question 10]. */
  usersAccountRateLimitHeaders: boolean;
  /** Body code of an injected 503 [DOC: OVER_CAPACITY or SERVICE_UNAVAILABLE]. */
  unavailableCode: 'OVER_CAPACITY' | 'SERVICE_UNAVAILABLE';
}

export const DEFAULT_SWITCHES: Readonly<EmulatorSwitches> = Object.freeze({
  versions: ['12', '11'],
  deprecatedVersions: [],
  accountNotFoundCode: 'NOT_FOUND',
  audienceNotFoundCode: 'NOT_FOUND',
  duplicateNameCode: 'INVALID_PARAMETER',
  maxNameLength: 255,
  readOnlyCode: 'ACTION_NOT_ALLOWED',
  oversizeStatus: 413,
  operationTypeCaseSensitive: true,
  strictUserKeys: true,
  strictOperationKeys: true,
  requireHashedIdentifiers: true,
  requireNonEmptyUsers: true,
  requireNonEmptyValues: true,
  operationErrorsForValidOps: 'empty_array',
  maxErrorsPerOperation: 50,
  acceptFormBody: true,
  caseInsensitiveIds: true,
  rejectReplayedNonce: true,
  requirePercentEncoding: true,
  allowOAuthRealm: false,
  echoBooleansAsStrings: true,
  minTargetableSize: 100,
  roundAudienceSize: false,
  sizeJobIntervalMs: 0,
  usersAccountRateLimitHeaders: false,
  unavailableCode: 'OVER_CAPACITY',
}) as Readonly<EmulatorSwitches>;

export function resolveSwitches(partial: Partial<EmulatorSwitches> | undefined): EmulatorSwitches {
  const merged = { ...DEFAULT_SWITCHES, ...(partial ?? {}) };
  return { ...merged, versions: [...merged.versions], deprecatedVersions: [...merged.deprecatedVersions] };
}
