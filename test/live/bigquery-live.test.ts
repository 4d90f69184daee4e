import { describe } from 'vitest';
import { defineSourceContract } from '../contract/source-contract.js';
import { bigqueryContractWarehouse, liveBigqueryConfig } from './live-warehouses.js';

/**
 * The source contract against a real BigQuery project. Opt-in: runs only when
 * TAILOR_LIVE_BIGQUERY_PROJECT and credentials (GOOGLE_APPLICATION_CREDENTIALS, or
 * TAILOR_LIVE_BIGQUERY_KEY_FILE / TAILOR_LIVE_BIGQUERY_KEY_JSON) are set; reported as skipped otherwise.
 * See docs/warehouses.md, "Live tests".
 */
const config = liveBigqueryConfig();

describe.skipIf(config === undefined)(
  'live BigQuery',
  () => {
    // Every statement is a job of a second or more: keep the property runs few.
    defineSourceContract('bigquery (live)', () => bigqueryContractWarehouse(config!), {
      propertyRuns: 3,
      bulkRows: 2500,
    });
  },
  600_000,
);
