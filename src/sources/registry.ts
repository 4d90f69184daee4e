import type { Logger } from 'pino';
import { errorMessage, WarehouseError } from '../errors.js';
import type { Source } from './source.js';
import type { WarehouseConfig } from './warehouse-config.js';

export interface OpenSourceOptions {
  /** Relative paths in the warehouse config (PGlite's data directory) resolve against it. */
  projectDir: string;
  logger: Logger;
}

/**
 * Opens the project's warehouse: the only switch on the warehouse kind. Each kind loads on demand,
 * so its client costs nothing to projects that do not use it (BigQuery's and Snowflake's SDKs; and
 * PGlite's wasm runtime, or pg, about 20-40 ms of every command's start).
 */
export async function openSource(config: WarehouseConfig, options: OpenSourceOptions): Promise<Source> {
  switch (config.type) {
    case 'postgres': {
      const module = await loadKind('postgres', () => import('./postgres/postgres-source.js'));
      return module.openPostgresSource(config, options);
    }
    case 'pglite': {
      const module = await loadKind('pglite', () => import('./pglite/pglite-source.js'));
      return module.openPgliteSource(config, options);
    }
    case 'bigquery': {
      const module = await loadKind('bigquery', () => import('./bigquery/bigquery-source.js'));
      return module.openBigquerySource(config, options);
    }
    case 'snowflake': {
      const module = await loadKind('snowflake', () => import('./snowflake/snowflake-source.js'));
      return module.openSnowflakeSource(config, options);
    }
  }
}

/** Loads a warehouse module on demand; a module that does not exist yet is a clear WarehouseError. */
export async function loadKind<T>(kind: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (
      code === 'ERR_MODULE_NOT_FOUND' ||
      /Cannot find module|Failed to load url/i.test(errorMessage(error))
    ) {
      throw new WarehouseError(`the ${kind} warehouse is not available in this installation of Tailor`, {
        cause: error,
        hint: 'reinstall Tailor with its dependencies (npm ci), or use postgres or pglite',
      });
    }
    throw new WarehouseError(`cannot load the ${kind} warehouse: ${errorMessage(error)}`, { cause: error });
  }
}
