import { z } from 'zod';
import { bigqueryConfigSchema } from './bigquery/bigquery-config.js';
import { pgliteConfigSchema } from './pglite/pglite-config.js';
import { postgresConfigSchema } from './postgres/postgres-config.js';
import { snowflakeConfigSchema } from './snowflake/snowflake-config.js';

/** `warehouse:` in tailor.yml: one schema per kind, each kept beside its source. */
export const warehouseConfigSchema = z.discriminatedUnion('type', [
  postgresConfigSchema,
  pgliteConfigSchema,
  bigqueryConfigSchema,
  snowflakeConfigSchema,
]);
export type WarehouseConfig = z.infer<typeof warehouseConfigSchema>;
export type WarehouseKind = WarehouseConfig['type'];
export const WAREHOUSE_KINDS = [
  'postgres',
  'pglite',
  'bigquery',
  'snowflake',
] as const satisfies readonly WarehouseKind[];
