import { describe } from 'vitest';
import { defineSourceContract } from '../contract/source-contract.js';
import { liveSnowflakeConfig, snowflakeContractWarehouse } from './live-warehouses.js';

/**
 * The source contract against a real Snowflake account. Opt-in: runs only when
 * TAILOR_LIVE_SNOWFLAKE_ACCOUNT, _USERNAME, _WAREHOUSE, _DATABASE and a credential
 * (_PRIVATE_KEY_PATH, _PRIVATE_KEY or _PASSWORD) are set; reported as skipped otherwise.
 * See docs/warehouses.md, "Live tests".
 */
const config = liveSnowflakeConfig();

describe.skipIf(config === undefined)(
  'live Snowflake',
  () => {
    defineSourceContract('snowflake (live)', () => snowflakeContractWarehouse(config!), {
      propertyRuns: 3,
      bulkRows: 2500,
    });
  },
  600_000,
);
