/**
 * Keeps browsers' pages out of the emulator. A page on any site can make the browser send a request to
 * http://127.0.0.1:PORT (cross-site request forgery: a form or a no-cors fetch, `text/plain`, with the
 * page's Origin), and a page whose own host name its DNS re-points at 127.0.0.1 (DNS rebinding) is even
 * same-origin with the emulator: then the browser still names the page's host in `Host`. So: `Host` must
 * name a loopback address or `localhost` with the emulator's port, `Origin` (sent by browsers on every
 * POST and every CORS request) must be absent or loopback, and admin writes must be JSON, which a
 * page on another origin cannot send without a CORS preflight the emulator never grants.
 */
import { isIP } from 'node:net';

const IPV4_LOOPBACK =
  /^127\.(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){2}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/**
 * A loopback name or address as a URL writes it: `localhost`, 127.0.0.0/8 in dotted decimal, `[::1]`
 * (also IPv4-mapped `[::ffff:127.x.y.z]`). Other spellings (`0x7f.1`, `127.1`) are refused: browsers send
 * the canonical form, so only a hand-made request would use them.
 */
export function isLoopbackHostname(hostname: string): boolean {
  const name = hostname.toLowerCase();
  if (name === 'localhost' || IPV4_LOOPBACK.test(name)) return true;
  if (!name.startsWith('[') || !name.endsWith(']')) return false;
  const v6 = name.slice(1, -1);
  if (isIP(v6) !== 6) return false;
  // Through the URL parser, which writes IPv6 addresses in their shortest form.
  const canonical = new URL(`http://[${v6}]/`).hostname;
  return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
}

/** `host[:port]` of a Host header, or undefined when it is not one (userinfo, a path, junk). */
export function parseHostHeader(value: string): { hostname: string; port: number | undefined } | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^\s:/?#@[\]]+)(?::(\d{1,5}))?$/.exec(value);
  if (!match?.[1]) return undefined;
  return { hostname: match[1].toLowerCase(), port: match[2] === undefined ? undefined : Number(match[2]) };
}

/**
 * Whether a Host header names this emulator on loopback: a loopback name (or one of `alsoAllowed`, the
 * address the emulator was told to listen on, so its own printed url works) and the emulator's port
 * (no port: 80, HTTP's default).
 */
export function hostAllowed(
  value: string | undefined,
  port: number,
  alsoAllowed: readonly string[] = [],
): boolean {
  if (value === undefined) return false;
  const parsed = parseHostHeader(value);
  if (!parsed) return false;
  if ((parsed.port ?? 80) !== port) return false;
  return isLoopbackHostname(parsed.hostname) || alsoAllowed.includes(parsed.hostname);
}

/**
 * Whether an Origin header is absent (not a browser, or a same-origin GET) or a page served from this
 * machine's loopback (any port: a local tool may drive the emulator). `null` (sandboxed frames, file://,
 * privacy-stripped cross-origin requests) is foreign.
 */
export function originAllowed(value: string | undefined): boolean {
  if (value === undefined) return true;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  return isLoopbackHostname(url.hostname);
}

/** The media type of a Content-Type header, lower case, without parameters ('' when absent). */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/** `host` as a Host header writes it (IPv6 in brackets), lower case. */
export function hostInUrl(host: string): string {
  return (isIP(host) === 6 ? `[${host}]` : host).toLowerCase();
}
