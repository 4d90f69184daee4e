import { DestinationApiError } from '../../errors.js';
import type { AudienceInfo } from '../destination.js';

/**
 * Parsers for X Ads API response bodies (https://docs.x.com/x-ads-api/fundamentals/error-codes-and-responses,
 * https://docs.x.com/x-ads-api/audiences/reference). Tolerant by design: only `id` (and
 * `name` where the object has one) may be assumed present, every other field is optional and may be
 * of an older shape (the recorded SDK fixtures predate v12: `list_type`, `salt`, no `description`).
 * Unknown fields are ignored. A body that lacks what must be there is a DestinationApiError.
 */

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

const str = (value: unknown): string | null => (typeof value === 'string' ? value : null);

function requireString(item: Json, key: string, what: string): string {
  const value = item[key];
  if (typeof value === 'string' && value !== '') return value;
  // X documents every id as a string (§1), but a number is read without loss rather than failing.
  if (key === 'id' && typeof value === 'number' && Number.isSafeInteger(value)) return String(value);
  throw new DestinationApiError(`X returned a ${what} without a usable "${key}"`);
}

/** A custom audience object (§5.1). */
export function parseAudience(item: unknown): AudienceInfo {
  if (!isObject(item)) throw new DestinationApiError('X returned a custom audience that is not an object');
  const size = item.audience_size;
  const reasons = item.reasons_not_targetable;
  return {
    id: requireString(item, 'id', 'custom audience'),
    name: requireString(item, 'name', 'custom audience'),
    description: str(item.description),
    size: typeof size === 'number' && Number.isFinite(size) ? size : null,
    targetable: typeof item.targetable === 'boolean' ? item.targetable : null,
    reasonsNotTargetable: Array.isArray(reasons)
      ? reasons.filter((r): r is string => typeof r === 'string')
      : [],
    // Booleans may come back as strings in places (§3.1): accept both.
    deleted: item.deleted === true || item.deleted === 'true',
    createdAt: str(item.created_at),
    updatedAt: str(item.updated_at),
  };
}

export interface AccountInfo {
  id: string;
  name: string;
  timezone: string | null;
  approvalStatus: string | null;
  deleted: boolean;
}

/** An ad account object (§4). */
export function parseAccount(item: unknown): AccountInfo {
  if (!isObject(item)) throw new DestinationApiError('X returned an account that is not an object');
  return {
    id: requireString(item, 'id', 'account'),
    name: requireString(item, 'name', 'account'),
    timezone: str(item.timezone),
    approvalStatus: str(item.approval_status),
    deleted: item.deleted === true || item.deleted === 'true',
  };
}

export interface AudiencePermissionInfo {
  id: string;
  customAudienceId: string | null;
  grantedAccountId: string | null;
  permissionLevel: string | null;
  deleted: boolean;
}

/** A custom audience permission (sharing) object (§5); it has no name. */
export function parseAudiencePermission(item: unknown): AudiencePermissionInfo {
  if (!isObject(item)) throw new DestinationApiError('X returned a permission that is not an object');
  return {
    id: requireString(item, 'id', 'custom audience permission'),
    customAudienceId: str(item.custom_audience_id),
    grantedAccountId: str(item.granted_account_id),
    permissionLevel: str(item.permission_level),
    deleted: item.deleted === true || item.deleted === 'true',
  };
}

/** `{data: {...}}`: one object. */
export function parseSingle<T>(body: unknown, parse: (item: unknown) => T): T {
  if (!isObject(body) || !('data' in body))
    throw new DestinationApiError('X returned a response without "data"');
  return parse(body.data);
}

/** `{data: [...], next_cursor}`: one page of a collection (§3.2). */
export function parseCollection<T>(
  body: unknown,
  parse: (item: unknown) => T,
): { items: T[]; nextCursor: string | null; totalCount: number | null } {
  if (!isObject(body) || !Array.isArray(body.data)) {
    throw new DestinationApiError('X returned a collection without a "data" array');
  }
  const cursor = body.next_cursor;
  return {
    items: body.data.map(parse),
    nextCursor: typeof cursor === 'string' && cursor !== '' ? cursor : null,
    totalCount: typeof body.total_count === 'number' ? body.total_count : null,
  };
}

/** The users endpoint's success body (§6.4): `{data: {success_count, total_count}}`. */
export function parseUsersCounts(body: unknown): { successCount: number; totalCount: number } | undefined {
  if (!isObject(body) || !isObject(body.data)) return undefined;
  const { success_count: success, total_count: total } = body.data;
  if (typeof success !== 'number' || typeof total !== 'number') return undefined;
  return { successCount: success, totalCount: total };
}

export interface ApiErrorItem {
  code: string | null;
  message: string | null;
  parameter: string | null;
}

function parseErrorItems(value: unknown): ApiErrorItem[] {
  const list = Array.isArray(value) ? value : isObject(value) ? [value] : [];
  return list.filter(isObject).map((item) => ({
    code: str(item.code),
    message: str(item.message),
    parameter: str(item.parameter) ?? str(item.attribute),
  }));
}

/** The error envelope (§3.3): top-level `errors`. */
export function parseErrors(body: unknown): ApiErrorItem[] {
  return isObject(body) ? parseErrorItems(body.errors) : [];
}

/**
 * `operation_errors`, indexed like the operations sent (§6.5). Its exact shape is undocumented (§17.1),
 * so each entry may be null, an empty array (no error), an array of error objects, or one error object.
 * Returns undefined when the body has no usable `operation_errors` at all, else the errors per index.
 */
export function parseOperationErrors(body: unknown, operations: number): ApiErrorItem[][] | undefined {
  if (!isObject(body) || !Array.isArray(body.operation_errors)) return undefined;
  const entries = body.operation_errors as unknown[];
  const out: ApiErrorItem[][] = [];
  for (let i = 0; i < operations; i += 1) {
    const entry = entries[i];
    const items = parseErrorItems(entry);
    // An entry that is present but not understood still marks the operation as bad.
    if (
      items.length === 0 &&
      entry !== null &&
      entry !== undefined &&
      !(Array.isArray(entry) && entry.length === 0)
    ) {
      items.push({ code: null, message: null, parameter: null });
    }
    out.push(items);
  }
  return out.some((items) => items.length > 0) ? out : undefined;
}

/**
 * A short reason for a rejection, safe to store: code and parameter, and the message with quoted
 * values blanked out (X echoes the offending value, which may be a hash or a partner id).
 */
export function describeErrors(errors: readonly ApiErrorItem[], fallback: string): string {
  if (errors.length === 0) return fallback;
  return errors
    .map((error) => {
      const head = [error.code ?? 'ERROR', error.parameter ? `(${error.parameter})` : '']
        .filter(Boolean)
        .join(' ');
      const message = error.message
        ?.replace(/"[^"]*"/g, '"…"')
        .replace(/[0-9a-fA-F]{16,}/g, '…')
        .slice(0, 200);
      return message ? `${head}: ${message}` : head;
    })
    .join('; ');
}
