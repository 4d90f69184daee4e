import path from 'node:path';
import snowflake from 'snowflake-sdk';
import { ConfigError } from '../../errors.js';
import type { SnowflakeConfig } from './snowflake-config.js';

export interface SnowflakeClientOptions {
  /** Relative `private_key_path` values resolve against the project directory. */
  projectDir: string;
}

let configured = false;

/**
 * snowflake-sdk's global settings, applied once: its own logger stays silent (it would write
 * `snowflake.log` into the working directory), and it must not read proxies from the environment
 * behind our back. https://docs.snowflake.com/en/developer-guide/node-js/nodejs-driver-logs
 */
function configureOnce(): void {
  if (configured) return;
  snowflake.configure({ logLevel: 'OFF', additionalLogToConsole: false, useEnvProxy: false });
  configured = true;
}

/**
 * The connection options for `warehouse:`. Key-pair authentication (`SNOWFLAKE_JWT`) when a private
 * key is configured, which Snowflake recommends for service users; otherwise the password.
 * https://docs.snowflake.com/en/developer-guide/node-js/nodejs-driver-authenticate#use-key-pair-authentication-and-key-pair-rotation
 */
export function snowflakeConnectionOptions(
  config: SnowflakeConfig,
  options: SnowflakeClientOptions,
): snowflake.ConnectionOptions {
  const base: snowflake.ConnectionOptions = {
    account: config.account,
    username: config.username,
    warehouse: config.warehouse,
    database: config.database,
    schema: config.schema,
    application: 'Tailor',
    // Tailor's statements are short; a lost session is re-established by the next run.
    clientSessionKeepAlive: false,
  };
  if (config.role) base.role = config.role;
  if (config.access_url) base.accessUrl = config.access_url.replace(/\/+$/, '');
  if (config.private_key || config.private_key_path) {
    base.authenticator = 'SNOWFLAKE_JWT';
    if (config.private_key) base.privateKey = normalizePem(config.private_key);
    else base.privateKeyPath = path.resolve(options.projectDir, config.private_key_path!);
    if (config.private_key_passphrase) base.privateKeyPass = config.private_key_passphrase;
    return base;
  }
  if (config.password) {
    base.authenticator = 'SNOWFLAKE';
    base.password = config.password;
    return base;
  }
  throw new ConfigError([
    {
      file: 'tailor.yml',
      path: 'warehouse',
      message: 'set private_key or private_key_path (key-pair authentication, preferred) or password',
    },
  ]);
}

/** Creates (without connecting) a snowflake-sdk connection for `warehouse:`. */
export function createSnowflakeConnection(
  config: SnowflakeConfig,
  options: SnowflakeClientOptions,
): snowflake.Connection {
  configureOnce();
  return snowflake.createConnection(snowflakeConnectionOptions(config, options));
}

/** A PEM passed through an environment variable often arrives with literal `\n`; restore the lines. */
function normalizePem(pem: string): string {
  return pem.includes('\\n') && !pem.includes('\n') ? pem.replace(/\\n/g, '\n') : pem;
}
