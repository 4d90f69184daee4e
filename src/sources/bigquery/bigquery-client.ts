import path from 'node:path';
import { BigQuery, type BigQueryOptions } from '@google-cloud/bigquery';
import { ConfigError } from '../../errors.js';
import type { BigqueryConfig } from './bigquery-config.js';

export interface BigqueryClientOptions {
  /** Relative `key_file` paths resolve against the project directory. */
  projectDir: string;
  /**
   * An auth client to use instead of the configured credentials (a `GoogleAuth` or an `AuthClient`);
   * tests pass one holding a fake token.
   */
  authClient?: BigQueryOptions['authClient'];
}

/**
 * Builds the SDK client from `warehouse:`. Credentials, in order: `key_json` (a service-account key
 * as JSON text, usually `${GOOGLE_KEY_JSON}`), `key_file`, else application default credentials.
 * https://cloud.google.com/docs/authentication/application-default-credentials
 */
export function createBigqueryClient(config: BigqueryConfig, options: BigqueryClientOptions): BigQuery {
  const clientOptions: BigQueryOptions = {
    projectId: config.project_id,
    location: config.location,
    // The SDK retries 429/5xx itself: keep it bounded, the run as a whole is retried by the next run.
    autoRetry: true,
    maxRetries: 3,
  };
  if (config.api_endpoint) clientOptions.apiEndpoint = config.api_endpoint.replace(/\/+$/, '');
  if (options.authClient) {
    clientOptions.authClient = options.authClient;
  } else if (config.key_json) {
    clientOptions.credentials = parseKeyJson(config.key_json);
  } else if (config.key_file) {
    clientOptions.keyFilename = path.resolve(options.projectDir, config.key_file);
  }
  return new BigQuery(clientOptions);
}

/** The fields of a service-account key the SDK needs. The text itself is never echoed back. */
function parseKeyJson(text: string): { client_email: string; private_key: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError([
      {
        file: 'tailor.yml',
        path: 'warehouse.key_json',
        message: 'is not valid JSON (expected a service-account key)',
      },
    ]);
  }
  const key = parsed as { client_email?: unknown; private_key?: unknown };
  if (typeof key.client_email !== 'string' || typeof key.private_key !== 'string') {
    throw new ConfigError([
      {
        file: 'tailor.yml',
        path: 'warehouse.key_json',
        message: 'must be a service-account key with client_email and private_key',
      },
    ]);
  }
  return { client_email: key.client_email, private_key: key.private_key };
}
