import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A stand-in for the GCE metadata server, for the benchmark's BigQuery case only. It exists because
 * the benchmark runs offline: `tailor sync`, run as users run it with no `key_file`/`key_json`, takes
 * application default credentials, and with no key on the machine google-auth-library asks the
 * metadata server for an access token. gcp-metadata reads that server's address from
 * `GCE_METADATA_HOST` (host:port) and, with `METADATA_SERVER_DETECTION=assume-present`, skips its
 * presence probe (gcp-metadata 8.1.2, `getBaseUrl` and `isAvailable`). The bench sets both in the
 * tailor subprocess's environment only (see `metadataEnv`); the bench process itself never uses it.
 *
 * It answers the one request google-auth-library's `Compute` client makes (`refreshTokenNoCache`):
 * `GET /computeMetadata/v1/instance/service-accounts/default/token` (with `?scopes=...`) carrying
 * `Metadata-Flavor: Google`, with a token JSON and the `Metadata-Flavor: Google` response header that
 * gcp-metadata insists on. Everything else gets a 404: the project id comes from `project_id` in
 * tailor.yml (GoogleAuth caches it and never asks), and a 404 on `universe/universe-domain` means
 * googleapis.com to the library. bqemulator accepts any bearer token.
 */

const TOKEN_PATH = '/computeMetadata/v1/instance/service-accounts/default/token';

export interface FakeMetadataServer {
  /** `127.0.0.1:<port>`, the form `GCE_METADATA_HOST` takes. */
  host: string;
  /** Token requests answered so far (a sync asks once: the token lasts an hour). */
  tokenRequests(): number;
  /** Paths of the requests that got a 404 (none expected). */
  unknownRequests(): readonly string[];
  close(): Promise<void>;
}

export async function startFakeMetadata(): Promise<FakeMetadataServer> {
  let tokens = 0;
  const unknown: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === TOKEN_PATH && req.headers['metadata-flavor'] === 'Google') {
      tokens++;
      res.writeHead(200, { 'Content-Type': 'application/json', 'Metadata-Flavor': 'Google' });
      res.end(JSON.stringify({ access_token: 'bench-fake-token', expires_in: 3600, token_type: 'Bearer' }));
      return;
    }
    unknown.push(`${req.method ?? '?'} ${req.url ?? ''}`);
    res.writeHead(404, { 'Content-Type': 'text/plain', 'Metadata-Flavor': 'Google' });
    res.end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    tokenRequests: () => tokens,
    unknownRequests: () => unknown,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * The environment of the tailor subprocess for application default credentials from the fake:
 * `CLOUDSDK_CONFIG` points at an empty directory so that a developer's own
 * `~/.config/gcloud/application_default_credentials.json`, which google-auth-library reads before
 * asking the metadata server, is not used instead.
 */
export function metadataEnv(metadata: FakeMetadataServer, emptyDir: string): Record<string, string> {
  return {
    GCE_METADATA_HOST: metadata.host,
    METADATA_SERVER_DETECTION: 'assume-present',
    CLOUDSDK_CONFIG: emptyDir,
  };
}
