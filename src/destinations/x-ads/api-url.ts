import { ConfigError } from '../../errors.js';

/**
 * The one place the Ads API version lives (https://docs.x.com/x-ads-api/fundamentals/versioning: v12
 * current, v11 still listed).
 */
export const X_ADS_API_VERSION = '12';

export const DEFAULT_API_URL = 'https://ads-api.x.com';

/**
 * The API base URL, checked: X serves only HTTPS (§1), and the credentials travel with every request,
 * so plain http is allowed only to a loopback host (a local emulator). Throws ConfigError otherwise.
 */
export function checkApiUrl(apiUrl: string, destination: string): URL {
  const path = `destinations.${destination}.api_url`;
  let url: URL;
  try {
    url = new URL(apiUrl);
  } catch (cause) {
    throw new ConfigError([{ file: 'tailor.yml', path, message: `not a URL: ${apiUrl}` }], { cause });
  }
  if (url.protocol === 'https:') return url;
  if (url.protocol === 'http:' && isLoopbackHost(url.hostname)) return url;
  throw new ConfigError(
    [
      {
        file: 'tailor.yml',
        path,
        message:
          url.protocol === 'http:'
            ? `plain http is allowed only for a loopback host (127.0.0.0/8, ::1, localhost), not ${url.hostname}; use https`
            : `the X Ads API is served over https, not ${url.protocol.replace(/:$/, '')}`,
      },
    ],
    { hint: 'set api_url to https://ads-api.x.com, the sandbox, or a local emulator on 127.0.0.1' },
  );
}

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost') || host === '::1') return true;
  const octets = host.split('.');
  return (
    octets.length === 4 &&
    octets[0] === '127' &&
    octets.every((octet) => /^\d{1,3}$/.test(octet) && Number(octet) <= 255)
  );
}
