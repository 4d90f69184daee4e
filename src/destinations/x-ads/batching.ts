import type { MemberHashes } from '../destination.js';
import { X_IDENTIFIER_TYPES } from './identifier-types.js';

/**
 * Packing member changes into requests to X's users endpoint, within its two documented limits
 * (https://docs.x.com/x-ads-api/audiences, "Audience API Integration"): at most
 * 2,500 operation objects and 5,000,000 bytes per request, with no separate limit on users. So users
 * go into as few operations as possible (one per run of the same operation type), and a request is
 * closed when one more user would pass either limit. Pure: no I/O, unit-tested at the exact limits.
 */

export type OperationType = 'Update' | 'Delete';

/** One user object, serialized once, with the index of the change it came from. */
export interface BatchUser {
  index: number;
  type: OperationType;
  json: string;
  bytes: number;
  /**
   * Put this user in an operation of its own. Used after X rejected an operation holding several
   * users: sent one per operation, X's `operation_errors` (indexed by operation) names the bad user.
   */
  isolate: boolean;
}

export interface PlannedOperation {
  type: OperationType;
  /** Indexes (into the caller's changes) of the users of this operation, in order. */
  indexes: number[];
}

export interface PlannedRequest {
  operations: PlannedOperation[];
  /** The exact JSON body: an array of `{operation_type, params: {users}}`. */
  body: string;
  /** Buffer.byteLength(body). */
  bytes: number;
  users: number;
}

export interface BatchLimits {
  maxOperations: number;
  maxRequestBytes: number;
}

/** The user object X receives, keys in one fixed order, empty keys left out. */
export function userObject(user: MemberHashes): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const key of X_IDENTIFIER_TYPES) {
    const values = user[key];
    if (values && values.length > 0) out[key] = values;
  }
  return out;
}

/**
 * `JSON.stringify(userObject(user))`, written without building the object: this runs for every user
 * sent (a million for a 1M first load), where the object and the generic serializer cost 1.5 s of CPU.
 * Each value goes through JSON.stringify, so escaping is exactly the serializer's.
 */
export function userJson(user: MemberHashes): string {
  let json = '{';
  for (const key of X_IDENTIFIER_TYPES) {
    const values = user[key];
    if (!values || values.length === 0) continue;
    json += `${json === '{' ? '' : ','}"${key}":[`;
    for (let i = 0; i < values.length; i++) json += `${i === 0 ? '' : ','}${JSON.stringify(values[i])}`;
    json += ']';
  }
  return `${json}}`;
}

export function batchUser(
  index: number,
  type: OperationType,
  user: MemberHashes,
  isolate = false,
): BatchUser {
  const json = userJson(user);
  return { index, type, json, bytes: Buffer.byteLength(json, 'utf8'), isolate };
}

const OPEN = (type: OperationType) => `{"operation_type":"${type}","params":{"users":[`;
const CLOSE = ']}}';

/** Bytes of an operation object with no users: `{"operation_type":"Update","params":{"users":[]}}`. */
export function operationOverheadBytes(type: OperationType): number {
  return Buffer.byteLength(OPEN(type) + CLOSE, 'utf8');
}

function render(operations: ReadonlyArray<{ type: OperationType; users: string[] }>): string {
  return `[${operations.map((op) => OPEN(op.type) + op.users.join(',') + CLOSE).join(',')}]`;
}

/**
 * Splits users (already in sending order: deletes first) into requests. Consecutive users of one type
 * share an operation unless marked `isolate`. Each request holds at most `maxOperations` operations and
 * at most `maxRequestBytes` bytes of body. A user too large for a request on its own is returned in
 * `oversized` (it can never be sent).
 */
export function planRequests(
  users: readonly BatchUser[],
  limits: BatchLimits,
): { requests: PlannedRequest[]; oversized: number[] } {
  const requests: PlannedRequest[] = [];
  const oversized: number[] = [];
  let ops: Array<{ type: OperationType; users: string[]; indexes: number[]; isolate: boolean }> = [];
  let bytes = 2; // `[` and `]`
  let count = 0;

  const flush = () => {
    if (ops.length === 0) return;
    const body = render(ops);
    requests.push({
      operations: ops.map((op) => ({ type: op.type, indexes: op.indexes })),
      body,
      bytes: Buffer.byteLength(body, 'utf8'),
      users: count,
    });
    ops = [];
    bytes = 2;
    count = 0;
  };

  for (const user of users) {
    for (let fresh = false; ; fresh = true) {
      const last = ops[ops.length - 1];
      const join = last !== undefined && !last.isolate && !user.isolate && last.type === user.type;
      const added = join
        ? user.bytes + (last.users.length > 0 ? 1 : 0)
        : operationOverheadBytes(user.type) + user.bytes + (ops.length > 0 ? 1 : 0);
      const fits = bytes + added <= limits.maxRequestBytes && (join || ops.length < limits.maxOperations);
      if (fits) {
        if (join) {
          last.users.push(user.json);
          last.indexes.push(user.index);
        } else {
          ops.push({ type: user.type, users: [user.json], indexes: [user.index], isolate: user.isolate });
        }
        bytes += added;
        count += 1;
        break;
      }
      if (fresh || ops.length === 0) {
        oversized.push(user.index);
        break;
      }
      flush();
    }
  }
  flush();
  return { requests, oversized };
}
