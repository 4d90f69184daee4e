import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { redactionPaths, secretPaths, secretValues } from '../../src/config/secret.js';
import { ConfigError } from '../../src/errors.js';
import { bigqueryConfigSchema } from '../../src/sources/bigquery/bigquery-config.js';
import { createBigqueryClient } from '../../src/sources/bigquery/bigquery-client.js';
import { openSource } from '../../src/sources/registry.js';
import { snowflakeConfigSchema } from '../../src/sources/snowflake/snowflake-config.js';
import { snowflakeConnectionOptions } from '../../src/sources/snowflake/snowflake-client.js';
import { warehouseConfigSchema } from '../../src/sources/warehouse-config.js';

/** `warehouse:` for BigQuery and Snowflake: validation, secret marks, SDK options, the registry. */

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('BigQuery and Snowflake warehouse config', () => {
  it('marks every credential as a secret, so logs redact it and outputs scrub it', () => {
    const paths = secretPaths(warehouseConfigSchema).map((p) => p.join('.'));
    expect(paths).toEqual(
      expect.arrayContaining(['key_json', 'private_key', 'private_key_passphrase', 'password']),
    );
    const config = snowflakeConfigSchema.parse({
      type: 'snowflake',
      account: 'acme-prod',
      username: 'U',
      private_key: 'PEM',
      private_key_passphrase: 'pass',
      warehouse: 'W',
      database: 'D',
    });
    expect(secretValues(snowflakeConfigSchema, config).sort()).toEqual(['PEM', 'pass']);
    expect(redactionPaths(secretPaths(bigqueryConfigSchema))).toContain('config.key_json');
  });

  it('defaults and validates BigQuery settings', () => {
    const parsed = warehouseConfigSchema.parse({ type: 'bigquery', project_id: 'acme-analytics' });
    expect(parsed).toEqual({ type: 'bigquery', project_id: 'acme-analytics', location: 'US' });
    expect(() => bigqueryConfigSchema.parse({ type: 'bigquery', project_id: 'Bad Project' })).toThrow(
      /project id/,
    );
    expect(() =>
      bigqueryConfigSchema.parse({
        type: 'bigquery',
        project_id: 'acme-analytics',
        key_file: 'k.json',
        key_json: '{}',
      }),
    ).toThrow(/not both/);
    expect(() =>
      bigqueryConfigSchema.parse({ type: 'bigquery', project_id: 'acme-analytics', state_dataset: 'a-b' }),
    ).toThrow(/dataset name/);
  });

  it('requires a Snowflake credential, and only one kind of private key', () => {
    const base = { type: 'snowflake', account: 'acme-prod', username: 'U', warehouse: 'W', database: 'D' };
    expect(() => snowflakeConfigSchema.parse(base)).toThrow(/private_key or private_key_path/);
    expect(() => snowflakeConfigSchema.parse({ ...base, private_key: 'a', private_key_path: 'b' })).toThrow(
      /not both/,
    );
    expect(snowflakeConfigSchema.parse({ ...base, password: 'pw' }).schema).toBe('PUBLIC');
  });

  it('builds snowflake-sdk options: key pair first (paths against the project), else the password', () => {
    const base = snowflakeConfigSchema.parse({
      type: 'snowflake',
      account: 'acme-prod',
      username: 'U',
      private_key_path: 'keys/tailor.p8',
      private_key_passphrase: 'pp',
      password: 'ignored-when-a-key-is-set',
      role: 'R',
      warehouse: 'W',
      database: 'D',
    });
    expect(snowflakeConnectionOptions(base, { projectDir: '/srv/project' })).toMatchObject({
      account: 'acme-prod',
      username: 'U',
      authenticator: 'SNOWFLAKE_JWT',
      privateKeyPath: '/srv/project/keys/tailor.p8',
      privateKeyPass: 'pp',
      role: 'R',
      warehouse: 'W',
      database: 'D',
      schema: 'PUBLIC',
    });
    expect(snowflakeConnectionOptions(base, { projectDir: '/x' })).not.toHaveProperty('password');
    const escaped = snowflakeConnectionOptions(
      {
        ...base,
        private_key_path: undefined,
        private_key: '-----BEGIN PRIVATE KEY-----\\nABC\\n-----END PRIVATE KEY-----',
      },
      { projectDir: '/x' },
    );
    expect(escaped.privateKey).toBe('-----BEGIN PRIVATE KEY-----\nABC\n-----END PRIVATE KEY-----');
    const password = snowflakeConnectionOptions(
      snowflakeConfigSchema.parse({
        type: 'snowflake',
        account: 'a',
        username: 'U',
        password: 'pw',
        warehouse: 'W',
        database: 'D',
      }),
      { projectDir: '/x' },
    );
    expect(password).toMatchObject({ authenticator: 'SNOWFLAKE', password: 'pw' });
  });

  it('reads BigQuery credentials from key_json without echoing it when it is malformed', () => {
    const config = bigqueryConfigSchema.parse({
      type: 'bigquery',
      project_id: 'acme-analytics',
      key_json: 'not json, secret-ish',
    });
    const error = (() => {
      try {
        createBigqueryClient(config, { projectDir: '/x' });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).not.toContain('secret-ish');
    const client = createBigqueryClient(
      bigqueryConfigSchema.parse({
        type: 'bigquery',
        project_id: 'acme-analytics',
        location: 'EU',
        key_json: JSON.stringify({ client_email: 'sa@acme.iam.gserviceaccount.com', private_key: 'PEM' }),
      }),
      { projectDir: '/x' },
    );
    expect(client.projectId).toBe('acme-analytics');
    expect(client.location).toBe('EU');
  });

  it('opens both kinds through the registry, without connecting', async () => {
    vi.stubEnv('GOOGLE_APPLICATION_CREDENTIALS', '/nonexistent/tailor-test-key.json');
    vi.stubEnv('METADATA_SERVER_DETECTION', 'none');
    const logger = pino({ level: 'silent' });
    const bigquery = await openSource(
      warehouseConfigSchema.parse({
        type: 'bigquery',
        project_id: 'acme-analytics',
        api_endpoint: 'http://127.0.0.1:9',
      }),
      { projectDir: '/tmp', logger },
    );
    expect(bigquery.kind).toBe('bigquery');
    await bigquery.close();
    const snowflake = await openSource(
      warehouseConfigSchema.parse({
        type: 'snowflake',
        account: 'acme-prod',
        username: 'U',
        password: 'pw',
        warehouse: 'W',
        database: 'D',
        access_url: 'http://127.0.0.1:9',
      }),
      { projectDir: '/tmp', logger },
    );
    expect(snowflake.kind).toBe('snowflake');
    await snowflake.close();
  });
});
