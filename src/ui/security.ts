import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

/**
 * The web UI's guards. It binds to loopback by default; any other address needs a token. Every
 * change is a POST carrying the page's CSRF token from the same origin, and the `Host` header must
 * name the address the server listens on, so a web page elsewhere can neither drive it from the
 * user's browser (CSRF) nor reach it through a DNS name that resolves to loopback (DNS rebinding).
 */

export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  return bare === 'localhost' || bare === '::1' || /^127\.\d+\.\d+\.\d+$/.test(bare);
}

export function isWildcard(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  return bare === '0.0.0.0' || bare === '::';
}

/** Constant-time comparison of two secrets of any length (digests compared, so lengths leak nothing). */
export function secretsEqual(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Whether a request's `Host` header names this server: the bind address (or `localhost` for a
 * loopback bind) with the port. A wildcard bind accepts IP literals only: a DNS name could be an
 * attacker's, rebinding to this machine.
 */
export function hostAllowed(hostHeader: string | undefined, bindHost: string, port: number): boolean {
  if (!hostHeader) return false;
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostHeader.trim().toLowerCase());
  if (!match) return false;
  const name = match[1]!;
  if (Number(match[2] ?? 80) !== port) return false;
  const bare = name.replace(/^\[|\]$/g, '');
  const bind = bindHost.toLowerCase().replace(/^\[|\]$/g, '');
  if (isWildcard(bind)) return isIP(bare) !== 0;
  if (isLoopback(bind))
    return bare === bind || bare === 'localhost' || (bind === 'localhost' && isLoopback(bare));
  return bare === bind;
}

/**
 * Whether a POST comes from a page of this server: its `Origin` (or, without one, its `Referer`)
 * must be `http://<Host>`; a request with neither is refused. `Sec-Fetch-Site`, where the browser
 * sends it, must be `same-origin`.
 */
export function sameOrigin(headers: {
  host?: string | undefined;
  origin?: string | undefined;
  referer?: string | undefined;
  'sec-fetch-site'?: string | undefined;
}): boolean {
  if (!headers.host) return false;
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return false;
  const expected = `http://${headers.host}`.toLowerCase();
  if (headers.origin !== undefined) return headers.origin.toLowerCase() === expected;
  if (headers.referer !== undefined) {
    try {
      return new URL(headers.referer).origin.toLowerCase() === expected;
    } catch {
      return false;
    }
  }
  return false;
}
