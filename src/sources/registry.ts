import type { Logger } from 'pino';
import { WarehouseError } from '../errors.js';
import type { BigqueryConfig } from './bigquery/bigquery-config.js';
import { openPgliteSource } from './pglite/pglite-source.js';
import { openPostgresSource } from './postgres/postgres-source.js';
import type { SnowflakeConfig } from './snowflake/snowflake-config.js';
import type { Source } from './source.js';
import type { WarehouseConfig } from './warehouse-config.js';

export interface OpenSourceOptions {
  /** Relative paths in the warehouse config (PGlite's data directory) resolve against it. */
  projectDir: string;
  logger: Logger;
}

/**
 * Opens the project's warehouse: the only switch on the warehouse kind. BigQuery and Snowflake load
 * on demand, so their SDKs cost nothing to projects that do not use them.
 */
export async function openSource(config: WarehouseConfig, options: OpenSourceOptions): Promise<Source> {
  switch (config.type) {
    case 'postgres':
      return openPostgresSource(config, options);
    case 'pglite':
      return openPgliteSource(config, options);
    case 'bigquery': {
      const module = await loadKind<{
        openBigquerySource(config: BigqueryConfig, options: OpenSourceOptions): Promise<Source>;
      }>('bigquery', './bigquery/bigquery-source.js');
      return module.openBigquerySource(config, options);
    }
    case 'snowflake': {
      const module = await loadKind<{
        openSnowflakeSource(config: SnowflakeConfig, options: OpenSourceOptions): Promise<Source>;
      }>('snowflake', './snowflake/snowflake-source.js');
      return module.openSnowflakeSource(config, options);
    }
  }
}

/** Loads a warehouse module on demand; a module that does not exist yet is a clear WarehouseError. */
export async function loadKind<T>(kind: string, path: string): Promise<T> {
  // A computed specifier: typechecks whether or not the module exists yet.
  const specifier: string = path;
  try {
    return (await import(specifier)) as T;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const missing =
      (code === 'ERR_MODULE_NOT_FOUND' ||
        /Cannot find module|Failed to load url|Failed to resolve/i.test(String(error))) &&
      String((error as Error).message).includes(path.slice(path.lastIndexOf('/') + 1).replace(/\.js$/, ''));
    if (missing) {
      throw new WarehouseError(`the ${kind} warehouse is not available in this version of Tailor yet`, {
        cause: error,
        hint: 'use postgres or pglite, or upgrade Tailor',
      });
    }
    throw new WarehouseError(`cannot load the ${kind} warehouse`, { cause: error });
  }
}
