import type { DiffInput } from '../../src/diff/diff-sql.js';

/** The diff the compile tests record statements for: one model, one mapped column, a fixed token. */
export const vipDiff = (overrides: Partial<DiffInput> = {}): DiffInput => ({
  activationId: 'vip_x',
  modelName: 'vip',
  modelSql: 'select id, email from customers',
  primaryKey: 'id',
  columns: ['email'],
  refreshBefore: null,
  fullResync: false,
  token: 'abc123',
  ...overrides,
});
