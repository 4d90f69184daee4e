export { DELTA_BATCH_SIZE, emptyCounts, openSyncEngine } from './engine.js';
export { DEFAULT_CONCURRENCY, syncMany } from './sync-many.js';
export type * from './types.js';
