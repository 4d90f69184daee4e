import type { WarehouseKind } from './warehouse-config.js';
import type { StateBackend } from './warehouse-hooks.js';

export interface ColumnInfo {
  name: string;
  /** The warehouse's own type name, for messages only. */
  type: string;
}

/**
 * A warehouse connection. Sources own their resources (pools, clients, files) and release them on
 * every path: use `await using source = await openSource(...)`. The registry
 * (`src/sources/registry.ts`) is the only place that switches on the warehouse kind.
 */
export interface Source extends AsyncDisposable {
  readonly kind: WarehouseKind;
  /** Connects and runs a trivial query; throws WarehouseError with an actionable message. */
  check(): Promise<void>;
  /** The columns a model returns, without reading its rows. Throws ModelSqlError on bad SQL. */
  describeModel(modelName: string, sql: string): Promise<ColumnInfo[]>;
  /**
   * The state schema `stateSchema` over this source's connection, with the warehouse's hooks: what
   * src/diff's `createStateStore` builds the state store on (BigQuery may name its own dataset).
   */
  stateBackend(stateSchema: string): StateBackend;
  close(): Promise<void>;
}
