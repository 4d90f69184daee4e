/**
 * Validation of `POST …/custom_audiences/:id/users` in this order
 * (https://docs.x.com/x-ads-api/audiences/reference, "Custom Audiences Users"):
 * content type, size, JSON array, operation count, then every operation, collecting item-level errors
 * into `operation_errors` indexed like the input. Nothing is applied unless everything passes (the
 * endpoint is atomic: https://docs.x.com/x-ads-api/audiences/reference, "Custom Audiences Users").
 */
import type { ApiError } from './http-util.js';
import { isSha256Hex } from './sha256-hex.js';
import type { EmulatorSwitches } from './switches.js';
import { type PackedUsers, readPackedUsers } from './users-packed.js';

/** https://docs.x.com/x-ads-api/audiences (Audience API Integration › Rate limiting and batch size). */
export const MAX_OPERATIONS = 2500;
export const MAX_BODY_BYTES = 5_000_000;

export const USER_KEYS = [
  'email',
  'phone_number',
  'handle',
  'twitter_id',
  'device_id',
  'partner_user_id',
] as const;

const USER_KEY_SET: ReadonlySet<string> = new Set(USER_KEYS);
/**
 * ISO 8601 date or date-time, optional fraction, `Z` or an offset
 * (https://docs.x.com/x-ads-api/fundamentals/timezones).
 */
const ISO_8601 = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?))?$/;

export interface ValidOperation {
  type: 'Update' | 'Delete';
  /** The user objects, or (a body in the form of users-packed.ts) the users as membership record keys. */
  users: Array<Record<string, string[]>> | PackedUsers;
  effectiveAt: number;
  expiresAt: number;
}

export type UsersValidation =
  | { ok: true; operations: ValidOperation[]; operationCount: number; userCount: number }
  | {
      ok: false;
      status: number;
      errors: ApiError[];
      operationErrors?: Array<ApiError[] | null>;
      operationCount?: number;
      userCount?: number;
    };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Thirteen months after `now`, the default expiry (https://docs.x.com/x-ads-api/audiences/reference). */
export function thirteenMonthsAfter(now: number): number {
  const date = new Date(now);
  date.setUTCMonth(date.getUTCMonth() + 13);
  return date.getTime();
}

function parseIsoTime(value: unknown): number | undefined {
  if (typeof value !== 'string' || !ISO_8601.test(value)) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

function isJsonContentType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const mediaType = contentType.split(';')[0]?.trim().toLowerCase();
  return mediaType === 'application/json';
}

export function validateUsersRequest(
  contentType: string | undefined,
  body: Buffer,
  bodyBytes: number,
  now: number,
  switches: EmulatorSwitches,
): UsersValidation {
  if (!isJsonContentType(contentType)) {
    return {
      ok: false,
      status: 415,
      errors: [{ code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Content-Type must be application/json' }],
    };
  }
  if (bodyBytes > MAX_BODY_BYTES) {
    return {
      ok: false,
      status: switches.oversizeStatus,
      errors: [
        {
          code: 'INVALID_PARAMETER',
          message: `Request body of ${bodyBytes} bytes exceeds the maximum of ${MAX_BODY_BYTES} bytes`,
        },
      ],
    };
  }
  const packed = readPackedUsers(body, MAX_OPERATIONS);
  if (packed) {
    // Such a body carries no times: the defaults of validateOperation.
    const expiresAt = thirteenMonthsAfter(now);
    let userCount = 0;
    for (const op of packed) userCount += op.users.length;
    return {
      ok: true,
      operations: packed.map(({ type, users }) => ({ type, users, effectiveAt: now, expiresAt })),
      operationCount: packed.length,
      userCount,
    };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return {
      ok: false,
      status: 400,
      errors: [{ code: 'INVALID_PARAMETER', message: 'Request body is not valid JSON' }],
    };
  }
  if (!Array.isArray(parsed) || parsed.length === 0) {
    return {
      ok: false,
      status: 400,
      errors: [
        { code: 'INVALID_PARAMETER', message: 'Request body must be a non-empty JSON array of operations' },
      ],
    };
  }
  const userCount = parsed.reduce<number>((n, op) => {
    const users = isObject(op) && isObject(op.params) ? op.params.users : undefined;
    return n + (Array.isArray(users) ? users.length : 0);
  }, 0);
  if (parsed.length > MAX_OPERATIONS) {
    return {
      ok: false,
      status: 400,
      errors: [
        {
          code: 'INVALID_PARAMETER',
          message: `Batch size ${parsed.length} exceeds maximum of ${MAX_OPERATIONS}`,
        },
      ],
      operationCount: parsed.length,
      userCount,
    };
  }

  const operations: ValidOperation[] = [];
  const operationErrors: ApiError[][] = [];
  let failed = false;
  for (const op of parsed) {
    const errors: ApiError[] = [];
    const valid = validateOperation(op, now, switches, errors);
    if (errors.length > switches.maxErrorsPerOperation) errors.length = switches.maxErrorsPerOperation;
    operationErrors.push(errors);
    if (errors.length > 0 || !valid) failed = true;
    else operations.push(valid);
  }
  if (failed) {
    return {
      ok: false,
      status: 400,
      errors: [],
      operationErrors: operationErrors.map((e) =>
        e.length === 0 && switches.operationErrorsForValidOps === 'null' ? null : e,
      ),
      operationCount: parsed.length,
      userCount,
    };
  }
  return { ok: true, operations, operationCount: parsed.length, userCount };
}

function validateOperation(
  op: unknown,
  now: number,
  switches: EmulatorSwitches,
  errors: ApiError[],
): ValidOperation | undefined {
  if (!isObject(op)) {
    errors.push({ code: 'INVALID_PARAMETER', message: 'Each operation must be a JSON object' });
    return undefined;
  }
  if (switches.strictOperationKeys) {
    for (const key of Object.keys(op)) {
      if (key !== 'operation_type' && key !== 'params') {
        errors.push({ code: 'INVALID_PARAMETER', parameter: key, message: `Unexpected parameter ${key}` });
      }
    }
  }
  let type: 'Update' | 'Delete' | undefined;
  const rawType = op.operation_type;
  if (rawType === undefined) {
    errors.push({
      code: 'MISSING_PARAMETER',
      parameter: 'operation_type',
      message: '"operation_type" is missing',
    });
  } else if (typeof rawType !== 'string') {
    errors.push({
      code: 'INVALID_PARAMETER',
      parameter: 'operation_type',
      message: 'Expected one of Update, Delete for operation_type',
    });
  } else {
    const normalized = switches.operationTypeCaseSensitive ? rawType : rawType.toLowerCase();
    if (normalized === (switches.operationTypeCaseSensitive ? 'Update' : 'update')) type = 'Update';
    else if (normalized === (switches.operationTypeCaseSensitive ? 'Delete' : 'delete')) type = 'Delete';
    else {
      errors.push({
        code: 'INVALID_PARAMETER',
        parameter: 'operation_type',
        message: `Expected one of Update, Delete, got ${JSON.stringify(rawType.slice(0, 40))} for operation_type`,
      });
    }
  }
  const params = op.params;
  if (params === undefined) {
    errors.push({ code: 'MISSING_PARAMETER', parameter: 'params', message: '"params" is missing' });
    return undefined;
  }
  if (!isObject(params)) {
    errors.push({ code: 'INVALID_PARAMETER', parameter: 'params', message: 'Expected an object for params' });
    return undefined;
  }
  if (switches.strictOperationKeys) {
    for (const key of Object.keys(params)) {
      if (key !== 'users' && key !== 'effective_at' && key !== 'expires_at') {
        errors.push({ code: 'INVALID_PARAMETER', parameter: key, message: `Unexpected parameter ${key}` });
      }
    }
  }

  let effectiveAt = now;
  let expiresAt = thirteenMonthsAfter(now);
  let timesValid = true;
  if (params.effective_at !== undefined) {
    const parsed = parseIsoTime(params.effective_at);
    if (parsed === undefined) {
      timesValid = false;
      errors.push({
        code: 'INVALID_PARAMETER',
        parameter: 'effective_at',
        message: 'Expected an ISO 8601 time for effective_at',
      });
    } else effectiveAt = parsed;
  }
  if (params.expires_at !== undefined) {
    const parsed = parseIsoTime(params.expires_at);
    if (parsed === undefined) {
      timesValid = false;
      errors.push({
        code: 'INVALID_PARAMETER',
        parameter: 'expires_at',
        message: 'Expected an ISO 8601 time for expires_at',
      });
    } else expiresAt = parsed;
  }
  if (timesValid && expiresAt <= effectiveAt) {
    errors.push({
      code: 'INVALID_PARAMETER',
      parameter: 'expires_at',
      message: 'expires_at must be later than effective_at',
    });
  }

  const users = params.users;
  if (users === undefined) {
    errors.push({ code: 'MISSING_PARAMETER', parameter: 'users', message: '"users" is missing' });
    return undefined;
  }
  if (!Array.isArray(users)) {
    errors.push({ code: 'INVALID_PARAMETER', parameter: 'users', message: 'Expected an array for users' });
    return undefined;
  }
  if (users.length === 0 && switches.requireNonEmptyUsers) {
    errors.push({ code: 'INVALID_PARAMETER', parameter: 'users', message: 'users must not be empty' });
    return undefined;
  }
  const validUsers: Array<Record<string, string[]>> = [];
  users.forEach((user: unknown, index: number) => {
    const valid = validateUser(user, index, switches, errors);
    if (valid) validUsers.push(valid);
  });
  if (errors.length > 0 || !type) return undefined;
  return { type, users: validUsers, effectiveAt, expiresAt };
}

function validateUser(
  user: unknown,
  index: number,
  switches: EmulatorSwitches,
  errors: ApiError[],
): Record<string, string[]> | undefined {
  if (!isObject(user)) {
    errors.push({
      code: 'INVALID_PARAMETER',
      parameter: 'users',
      message: `users[${index}] must be an object`,
    });
    return undefined;
  }
  const out: Record<string, string[]> = {};
  let ok = true;
  // for-in over a parsed JSON object visits exactly Object.keys(user), in the same order.
  for (const key in user) {
    const values = user[key];
    if (!USER_KEY_SET.has(key)) {
      if (switches.strictUserKeys) {
        ok = false;
        errors.push({
          code: 'INVALID_PARAMETER',
          parameter: key,
          message: `users[${index}]: unknown identifier type ${key.slice(0, 40)}`,
        });
      }
      continue;
    }
    if (!Array.isArray(values) || (switches.requireNonEmptyValues && values.length === 0)) {
      ok = false;
      errors.push({
        code: 'INVALID_PARAMETER',
        parameter: key,
        message: `users[${index}].${key} must be a non-empty array of strings`,
      });
      continue;
    }
    for (const value of values) {
      // Never echo identifier values: they are customers' data, even hashed.
      if (typeof value !== 'string' || (switches.requireNonEmptyValues && value === '')) {
        ok = false;
        errors.push({
          code: 'INVALID_PARAMETER',
          parameter: key,
          message: `users[${index}].${key} must hold non-empty strings`,
        });
        break;
      }
      if (key !== 'partner_user_id' && switches.requireHashedIdentifiers && !isSha256Hex(value)) {
        ok = false;
        errors.push({
          code: 'INVALID_PARAMETER',
          parameter: key,
          message: `users[${index}].${key} must be SHA-256 hashes in lowercase hex`,
        });
        break;
      }
    }
    if (values.length > 0) out[key] = values as string[];
  }
  if (ok && Object.keys(out).length === 0) {
    errors.push({
      code: 'INVALID_PARAMETER',
      parameter: 'users',
      message: `users[${index}] must carry at least one identifier`,
    });
    return undefined;
  }
  return ok ? out : undefined;
}
