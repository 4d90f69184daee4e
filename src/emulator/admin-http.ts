/**
 * The test-only admin API over HTTP (not part of X's surface): the same functions as `EmulatorAdmin`,
 * under `/_admin/`, without OAuth, served to loopback clients only, and only
 * to requests no browser page can forge (`adminRefusal`). `onUsersAnswered` is in process only: HTTP has
 * no way to call a listener at that moment.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { EmulatorResponse } from './http-util.js';
import { hostAllowed, mediaType, originAllowed } from './request-guard.js';
import type { EmulatorAdmin, EmulatorSeed, FaultSpec } from './types.js';

export interface AdminTarget extends EmulatorAdmin {
  readonly clockAdvanceable: boolean;
  now(): number;
}

function ok(json: unknown = { ok: true }): EmulatorResponse {
  return { status: 200, json };
}

function problem(status: number, message: string): EmulatorResponse {
  return { status, json: { ok: false, error: message } };
}

function parseJson(body: Buffer): { value: unknown } | undefined {
  if (body.length === 0) return { value: undefined };
  try {
    return { value: JSON.parse(body.toString('utf8')) as unknown };
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Why an admin request must be refused (403), or undefined. Without OAuth, the admin API can seed
 * credentials, queue faults and read what was sent, so a web page must not reach it (request-guard.ts):
 * - `Host` must be a loopback name with the emulator's port (DNS rebinding: a foreign name sent here);
 * - `Origin`, when sent, must be loopback (cross-site requests; browsers send it on every POST);
 * - a request other than GET/HEAD that has a body or a Content-Type must be `application/json`, the one
 *   type another origin cannot send without a CORS preflight, which the emulator never answers. A
 *   bodyless POST/DELETE without a Content-Type (curl -X POST, fetch with no body) is still served: a
 *   browser marks a cross-site one with its Origin, refused above.
 */
export function adminRefusal(
  headers: IncomingHttpHeaders,
  method: string,
  bodyBytes: number,
  port: number,
  alsoAllowedHosts: readonly string[],
): EmulatorResponse | undefined {
  if (!hostAllowed(headers.host, port, alsoAllowedHosts)) {
    return problem(
      403,
      `admin API: the Host header must be 127.0.0.1:${port}, localhost:${port} or [::1]:${port} ` +
        '(a foreign name is how a DNS-rebinding web page reaches a local server)',
    );
  }
  if (!originAllowed(headers.origin)) {
    return problem(
      403,
      'admin API: requests from web pages are refused; the Origin header must be absent or a loopback origin',
    );
  }
  const hasBody = bodyBytes > 0 || headers['content-type'] !== undefined;
  if (
    method !== 'GET' &&
    method !== 'HEAD' &&
    hasBody &&
    mediaType(headers['content-type']) !== 'application/json'
  ) {
    return problem(
      403,
      'admin API: a request with a body must send Content-Type: application/json (a cross-site form cannot)',
    );
  }
  return undefined;
}

export async function handleAdmin(
  target: AdminTarget,
  method: string,
  path: string,
  body: Buffer,
): Promise<EmulatorResponse> {
  const segments = path.split('/').slice(2); // ['', '_admin', ...]
  const parsed = parseJson(body);
  if (!parsed) return problem(400, 'body is not valid JSON');
  const json = parsed.value;
  const route = segments.join('/');
  const allow = (methods: string[]): EmulatorResponse | undefined =>
    methods.includes(method) ? undefined : problem(405, `use ${methods.join(' or ')}`);

  try {
    if (route === 'faults') {
      const denied = allow(['POST', 'DELETE']);
      if (denied) return denied;
      if (method === 'DELETE') {
        target.clearFaults();
        return ok();
      }
      if (!isObject(json) || !Array.isArray(json.faults)) return problem(400, 'expected {"faults":[...]}');
      target.injectFaults(json.faults as FaultSpec[]);
      return ok();
    }
    if (route === 'process') {
      const denied = allow(['POST']);
      if (denied) return denied;
      target.processAudiences();
      return ok();
    }
    if (route === 'clock') {
      const denied = allow(['POST', 'GET']);
      if (denied) return denied;
      if (method === 'GET') return ok({ now_ms: target.now() });
      if (!target.clockAdvanceable)
        return problem(409, 'the emulator runs on a custom clock; advance that clock');
      const advance = isObject(json) ? json.advance_ms : undefined;
      if (typeof advance !== 'number') return problem(400, 'expected {"advance_ms": <number>}');
      target.advanceClock(advance);
      return ok({ ok: true, now_ms: target.now() });
    }
    if (route === 'requests') {
      const denied = allow(['GET', 'DELETE']);
      if (denied) return denied;
      if (method === 'DELETE') {
        target.clearRequestLog();
        return ok();
      }
      return ok({ data: target.requestLog() });
    }
    if (route === 'held') {
      const denied = allow(['GET', 'DELETE']);
      if (denied) return denied;
      if (method === 'DELETE') return ok({ ok: true, discarded: target.discardHeld() });
      return ok({ held: target.heldRequests() });
    }
    if (route === 'held/apply') {
      const denied = allow(['POST']);
      if (denied) return denied;
      return ok({ ok: true, applied: await target.applyHeld() });
    }
    if (route === 'seed') {
      const denied = allow(['POST']);
      if (denied) return denied;
      if (!isObject(json)) return problem(400, 'expected an EmulatorSeed object');
      target.seed(json as EmulatorSeed);
      return ok();
    }
    const [accounts, accountId, audiences, audienceId, membership, ...rest] = segments;
    if (accounts === 'accounts' && accountId && audiences === 'custom_audiences' && audienceId) {
      if (membership === 'member_count' && rest.length === 0) {
        const denied = allow(['GET']);
        if (denied) return denied;
        try {
          return ok({ member_count: target.memberCount(accountId, audienceId) });
        } catch (error) {
          return problem(404, (error as Error).message);
        }
      }
    }
    if (accounts === 'accounts' && accountId && audiences === 'custom_audiences' && rest.length === 0) {
      if (audienceId === undefined) {
        const denied = allow(['GET']);
        if (denied) return denied;
        return ok({ data: target.audiences(accountId) });
      }
      if (audienceId && membership === 'membership') {
        const denied = allow(['GET']);
        if (denied) return denied;
        try {
          return ok(target.membership(accountId, audienceId));
        } catch (error) {
          return problem(404, (error as Error).message);
        }
      }
    }
    return problem(404, 'no such admin route');
  } catch (error) {
    return problem(400, (error as Error).message);
  }
}
