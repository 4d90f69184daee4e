import type { StateStore } from '../diff/types.js';
import type { WarehouseKind } from './warehouse-config.js';

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
  /** The state store in `stateSchema`, over this source's connection. */
  state(stateSchema: string): StateStore;
  close(): Promise<void>;
}
